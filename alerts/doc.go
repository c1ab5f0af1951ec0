// Package alerts evaluates pirack's alert rules. It is pure: an Engine is fed what the
// control center receives (ObserveStatus, ObserveMetrics, ObservePower) and the passing of
// time (Tick), each call with the current time, and returns the alert transitions that
// caused, as topics.Alert payloads. It starts no goroutine and does no I/O; the caller
// publishes each transition retained on topics.AlertTopic(a.Row, a.MAC, a.Rule) and shows
// Engine.Active on the page.
//
// # Rules
//
// Defaults, all changeable in Config (DefaultConfig is the one place they live):
//
//	rule        condition                                      for    clears when                              severity
//	offline     the Pi's status is offline                     30s    it is online again                       critical
//	stale       the Pi is stale (package presence) (*)         0      a new sample arrives                     warning
//	load_high   load_1 over 1.0 x cpu_count                    5m     load_1 under 0.9 x cpu_count             warning
//	mem_low     memory available under 10 %                    1m     available over 15 %                      warning
//	disk_full   the fullest filesystem over 90 % used (root    1m     under 85 % used                          warning
//	            disk or any of Metrics.Filesystems)
//	temp_high   cpu_temp_c over 80 °C                          1m     under 75 °C                              critical
//	throttled   any throttled_now flag, or under_voltage       0      throttled_now read with no flag for 5m   warning
//	            newly seen in throttled_since_boot (**)
//	sensor_hot  a sensor at or over its own limit (Temp.MaxC)  1m     5 °C under it (clear_margin_c)           warning
//	power_band  the row's watts outside its band (***)         2m     back inside the band by 0.5 W            warning
//
// (*) The condition is package presence's, under Config.Presence: the one the dashboard's
// tiles show stale with, so a tile and its alert never disagree (the rule's "for" may still
// delay the alert). By default a Pi is stale after 3 of its telemetry intervals, learned from
// the ts and seq of consecutive samples and 5 s until then; Config.Presence.StaleAfter fixes
// it instead. The clock starts at the last new sample or the last online birth, whichever is
// later; a Pi never heard from is never stale. Config.Presence is not read from the JSON file.
//
// (**) under_voltage in throttled_since_boot stays set until the Pi reboots. It raises the
// alert once per boot, at once (the dip is already over, so "for" does not apply), and the
// alert then clears like any other. After a restart of the control center it is reported once
// more. IgnoreSinceBoot turns this off.
//
// (***) The band is configured per row (min_w, max_w), or learned: the median of the row's
// readings over the last hour, plus or minus 20 % of it (at least 1 W), used once the row has
// been read for 10 minutes and 30 times.
//
// Between a rule's threshold and its clear level (the hysteresis), a raised alert stays
// raised and a pending one starts over, so "for" means continuously. A value that was not
// read (absent from the payload) changes nothing. "for" is checked when a sample arrives, so
// a metrics rule raises on the first sample after "for" has passed; offline and stale are
// checked by Tick as well.
//
// # Offline Pis
//
// When a Pi goes offline, its other alerts are cleared at once ("not checked while the Pi is
// offline") and its other rules are suspended, metrics included, until it is online again:
// a Pi that is off shows one alert, offline, not offline plus stale plus whatever its last
// sample said. A stale Pi keeps its other alerts: they describe its last known state.
// A status older than the one held (an offline of another session than the Pi's last birth,
// a late Will; an earlier status of the same session) is ignored, as on the tiles.
//
// # Transitions
//
// Each raised alert carries since (when the condition began), value and threshold; its clear
// carries the same since, the value that cleared it and the clear level, so ts minus since is
// how long the problem lasted. A Pi seen in a new row has its alerts cleared under the old
// row, and Forget clears the alerts of a Pi taken out of the rack. After a restart, feed the
// raised alerts found retained on the broker to Restore, so that they clear when their
// condition has ended rather than staying raised forever.
package alerts
