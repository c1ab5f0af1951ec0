package promexport

import (
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pirack/pirack/alerts"
	"github.com/pirack/pirack/broker"
	"github.com/pirack/pirack/dashboard"
	"github.com/pirack/pirack/history"
	"github.com/pirack/pirack/internal/buildinfo"
	"github.com/pirack/pirack/topics"
)

// Labels of every per-Pi metric. slot is "" for a Pi in no slot; name is its slot's name, or
// its hostname while the slot has none.
var piLabels = []string{"row", "slot", "mac", "name"}

// piLabelsAnd is piLabels followed by a metric's own labels.
func piLabelsAnd(extra ...string) []string { return append(slices.Clone(piLabels), extra...) }

// family is one metric the collector exposes.
type family struct {
	name string
	typ  prometheus.ValueType
	desc *prometheus.Desc
}

// families lists every metric in the order def declared them: Describe sends them, and tests
// hold the docs and the Grafana dashboard to these names.
var families []*family

func def(name, help string, typ prometheus.ValueType, labels ...string) *family {
	f := &family{name: name, typ: typ, desc: prometheus.NewDesc(name, help, labels, nil)}
	families = append(families, f)
	return f
}

const (
	gauge   = prometheus.GaugeValue
	counter = prometheus.CounterValue
)

// Per Pi.
var (
	piInfo = def("pirack_pi_info", "A Pi's identity from its last birth: always 1.", gauge,
		piLabelsAnd("hostname", "model", "agent_version")...)
	piUp       = def("pirack_pi_up", "1 when the Pi is online (its agent connected and its telemetry current), 0 when offline, stale or unknown.", gauge, piLabels...)
	piPresence = def("pirack_pi_presence", "1 for the Pi's presence state (online, offline, stale, unknown), 0 for the others.", gauge,
		piLabelsAnd("state")...)
	piLastSeen = def("pirack_pi_last_seen_timestamp_seconds", "When the Control Center last heard from the Pi, by its own clock, in Unix seconds.", gauge, piLabels...)
	piBootTime = def("pirack_pi_boot_time_seconds", "When the Pi booted, by its own clock, in Unix seconds, from its last birth.", gauge, piLabels...)
	piLoad1    = def("pirack_pi_load1", "1-minute load average.", gauge, piLabels...)
	piLoad5    = def("pirack_pi_load5", "5-minute load average.", gauge, piLabels...)
	piLoad15   = def("pirack_pi_load15", "15-minute load average.", gauge, piLabels...)
	piCPUs     = def("pirack_pi_cpus", "Number of CPUs, to compare the load with.", gauge, piLabels...)
	piCPUUsage = def("pirack_pi_cpu_usage_ratio", "CPU busy over the last telemetry interval, 0 to 1.", gauge, piLabels...)
	piCPUTemp  = def("pirack_pi_cpu_temperature_celsius", "CPU temperature.", gauge, piLabels...)
	piMemTotal = def("pirack_pi_memory_total_bytes", "Memory installed.", gauge, piLabels...)
	piMemAvail = def("pirack_pi_memory_available_bytes", "Memory available to programs without swapping.", gauge, piLabels...)
	piDisk     = def("pirack_pi_disk_total_bytes", "Size of the root filesystem.", gauge, piLabels...)
	piDiskFree = def("pirack_pi_disk_free_bytes", "Space on the root filesystem available to users (df's Avail).", gauge, piLabels...)
	piDiskUsed = def("pirack_pi_disk_used_bytes", "Space used on the root filesystem (df's Used; Use% is used / (used + free)).", gauge, piLabels...)
	piThrottle = def("pirack_pi_throttled", "1 while the firmware reports the flag (under_voltage, freq_capped, throttled, soft_temp_limit), else 0; absent when the Pi does not read them.", gauge,
		piLabelsAnd("flag")...)
	piThrottleBoot = def("pirack_pi_throttled_since_boot", "1 when the firmware has reported the flag since boot, else 0; absent when the Pi does not read them.", gauge,
		piLabelsAnd("flag")...)
	// Each sensor and real filesystem (issue 16's host figures), labelled as the Pi names them.
	piTemp      = def("pirack_pi_temperature_celsius", "Each temperature sensor the Pi reads (thermal zones, hwmon chips such as an NVMe drive).", gauge, append(piLabels[:len(piLabels):len(piLabels)], "sensor")...)
	piTempLimit = def("pirack_pi_temperature_limit_celsius", "The highest temperature a sensor's hardware says it should run at (hwmon temp*_max, else temp*_crit), when it says one: the sensor_hot alert's limit.", gauge, append(piLabels[:len(piLabels):len(piLabels)], "sensor")...)
	piFSSize    = def("pirack_pi_filesystem_size_bytes", "Size of each real filesystem mounted on the Pi (not tmpfs or overlay).", gauge, append(piLabels[:len(piLabels):len(piLabels)], "mountpoint", "device", "fstype")...)
	piFSAvail   = def("pirack_pi_filesystem_avail_bytes", "Space on each filesystem available to users (df's Avail).", gauge, append(piLabels[:len(piLabels):len(piLabels)], "mountpoint", "device", "fstype")...)
	piFSUsed    = def("pirack_pi_filesystem_used_bytes", "Space used on each filesystem (df's Used; Use% is used / (used + avail), as the disk_full alert counts it).", gauge, append(piLabels[:len(piLabels):len(piLabels)], "mountpoint", "device", "fstype")...)

	piNetRx = def("pirack_pi_network_receive_bytes_total", "Bytes received on every interface but loopback, since boot.", counter, piLabels...)
	piNetTx = def("pirack_pi_network_transmit_bytes_total", "Bytes sent on every interface but loopback, since boot.", counter, piLabels...)
)

// Per row.
var (
	rowPis        = def("pirack_row_pis", "Pis known in the row.", gauge, "row")
	rowWatts      = def("pirack_row_power_watts", "Power drawn by the row's supply, at its last reading.", gauge, "row")
	rowVolts      = def("pirack_row_voltage_volts", "Voltage of the row's supply, at its last reading.", gauge, "row")
	rowAmps       = def("pirack_row_current_amperes", "Current drawn from the row's supply, at its last reading.", gauge, "row")
	rowPowerTime  = def("pirack_row_power_reading_timestamp_seconds", "When the row's last power reading arrived, by the Control Center's clock, in Unix seconds.", gauge, "row")
	alertsFiring  = def("pirack_alerts_firing", "Alerts raised now, by rule and severity.", gauge, "rule", "severity")
	alertRaisedAt = def("pirack_alert_raised_timestamp_seconds", "When each raised alert was raised, in Unix seconds; mac is empty for a row's alert.", gauge, "row", "mac", "rule", "severity")
)

// Ingestion, live stream, audit and logins (dashboard.Stats).
var (
	ingestReceived   = def("pirack_ingest_messages_received_total", "Messages the Control Center received from the bus.", counter)
	ingestApplied    = def("pirack_ingest_messages_applied_total", "Messages that changed the rack's state.", counter)
	ingestIgnored    = def("pirack_ingest_messages_ignored_total", "Valid messages not for the Control Center (LED commands, alerts, deleted retained messages).", counter)
	ingestInvalid    = def("pirack_ingest_messages_invalid_total", "Messages dropped as invalid, by reason.", counter, "reason")
	ingestDuplicates = def("pirack_ingest_presses_duplicate_total", "Button presses already seen: redeliveries.", counter)
	ingestRefused    = def("pirack_ingest_presses_refused_total", "QoS 1 presses not acknowledged because their event could not be saved in time.", counter)
	ingestResets     = def("pirack_ingest_press_seq_resets_total", "Presses whose seq showed that an agent had restarted its numbering.", counter)
	ingestReplays    = def("pirack_ingest_metrics_replayed_total", "Metrics identical to those held (a retained message delivered again).", counter)
	ingestOutOfOrder = def("pirack_ingest_status_out_of_order_total", "Statuses older than the one shown, ignored.", counter)
	ingestPanics     = def("pirack_ingest_panics_total", "Bugs caught in ingestion; their messages were dropped.", counter)
	wentStale        = def("pirack_pis_went_stale_total", "Times a Pi went stale (its telemetry stopped without an offline).", counter)
	sseClients       = def("pirack_sse_clients", "Live-stream (SSE) clients connected.", gauge)
	sseDropped       = def("pirack_sse_clients_dropped_total", "Live-stream clients dropped for falling behind.", counter)
	auditErrors      = def("pirack_audit_write_errors_total", "Audit entries that could not be written.", counter)
	auditRotate      = def("pirack_audit_rotate_errors_total", "Failed rotations of the audit log.", counter)
	loginsLimited    = def("pirack_logins_rate_limited_total", "Login attempts (form, Basic auth, bearer token) refused by the per-address limit.", counter)
	alertsDropped    = def("pirack_alert_transitions_dropped_total", "Alert transitions not published because the queue was full.", counter)
	alertPubErrors   = def("pirack_alert_publish_errors_total", "Alert transitions the bus refused to publish.", counter)
)

// The embedded broker (broker.Stats); absent on a foreign broker.
var (
	brokerCommits       = def("pirack_broker_retained_commits_total", "Transactions that saved retained messages to disk.", counter)
	brokerCommitFails   = def("pirack_broker_retained_commit_failures_total", "Failed saves of retained messages (full disk, I/O error); retried.", counter)
	brokerPending       = def("pirack_broker_retained_pending_topics", "Topics whose retained message changed since the last save began.", gauge)
	brokerRefused       = def("pirack_broker_publishes_refused_total", "Client publishes dropped because the sender may not publish there.", counter)
	brokerInvalid       = def("pirack_broker_publishes_invalid_total", "Client publishes dropped for breaking the topic contract.", counter)
	brokerLEDDropped    = def("pirack_broker_led_commands_dropped_total", "LED commands not queued for an offline Pi that had too many waiting.", counter)
	brokerSlow          = def("pirack_broker_slow_clients_disconnected_total", "Clients disconnected because they stopped reading.", counter)
	brokerQueueFull     = def("pirack_broker_messages_dropped_queue_full_total", "Messages not delivered because the client's queue was full.", counter)
	brokerSubsRefused   = def("pirack_broker_subscriptions_refused_total", "Topic filters refused over the per-session limit.", counter)
	brokerSessRefused   = def("pirack_broker_sessions_refused_total", "Connections refused over the sessions a user may hold.", counter)
	brokerFullRefused   = def("pirack_broker_connects_refused_max_clients_total", "Connections refused because the broker held its most clients (--mqtt-max-clients).", counter)
	historyQueued       = def("pirack_history_samples_queued_total", "Samples (one metric value each) accepted for the history.", counter)
	historyWritten      = def("pirack_history_samples_written_total", "Samples committed to the history database.", counter)
	historyStale        = def("pirack_history_samples_stale_total", "Samples dropped for being older than the raw retention.", counter)
	historyDownsampled  = def("pirack_history_samples_downsampled_total", "Samples not stored because the history's queue was full: only the latest of each Pi waited for the writer.", counter)
	historyDropped      = def("pirack_history_dropped_total", "Events dropped because the history's queue was full.", counter)
	historyFailed       = def("pirack_history_failed_total", "Samples and events lost to a failed commit (full disk, I/O error).", counter)
	historyEvents       = def("pirack_history_events_written_total", "Events committed to the event log.", counter)
	historySaves        = def("pirack_history_event_saves_total", "Events saved before their publisher was acknowledged (button presses).", counter)
	historySaveCommits  = def("pirack_history_event_save_commits_total", "Transactions those saves took (saves per commit shows the group commit).", counter)
	historySaveFailures = def("pirack_history_event_save_failures_total", "Saves answered with a commit's error.", counter)
	buildInfo           = def("pirack_build_info", "The running pirack's version: always 1.", gauge, "version", "goversion")
)

// throttleFlags are the flags pirack_pi_throttled reports, each 0 or 1.
var throttleFlags = []string{topics.ThrottleUnderVoltage, topics.ThrottleFreqCapped, topics.ThrottleThrottled, topics.ThrottleSoftTempLimit}

// presenceStates are the states pirack_pi_presence reports, each 0 or 1.
var presenceStates = []string{dashboard.StateOnline, dashboard.StateOffline, dashboard.StateStale, dashboard.StateUnknown}

// severities are those pirack_alerts_firing reports for every rule, 0 when none is raised.
var severities = []string{topics.SeverityWarning, topics.SeverityCritical}

// Collector reads a Source at each scrape.
type Collector struct {
	src Source
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns the collector of pirack's own metrics (New adds the Go runtime's and
// the process's).
func NewCollector(src Source) *Collector { return &Collector{src: src} }

// Describe sends every metric's description: the registry checks each scrape against them.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range families {
		ch <- f.desc
	}
}

// Collect reads the rack, its alerts and the counters, once each, and sends what they hold.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	emit := func(f *family, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(f.desc, f.typ, v, labels...)
	}
	emit(buildInfo, 1, buildinfo.Version(), runtime.Version())
	rk := c.src.Rack()
	collectPis(emit, rk.Nodes())
	collectRows(emit, rk.Rows())
	collectAlerts(emit, rk.Alerts())
	collectStats(emit, rk.Stats())
	if b := c.src.Broker(); b != nil {
		collectBroker(emit, b.Stats())
	}
	if h := c.src.History(); h != nil {
		collectHistory(emit, h.Stats())
	}
}

// emitFunc sends one sample of a family, with its label values in the family's order.
type emitFunc func(f *family, v float64, labels ...string)

func collectPis(emit emitFunc, nodes []dashboard.Node) {
	for _, n := range nodes {
		slot := ""
		if n.Slot > 0 {
			slot = strconv.Itoa(n.Slot)
		}
		name := n.SlotName
		if name == "" {
			name = n.Hostname
		}
		l := []string{n.Row, slot, n.MAC, name}
		with := func(extra ...string) []string { return append(l[:len(l):len(l)], extra...) }

		emit(piInfo, 1, with(n.Hostname, n.Model, n.AgentVersion)...)
		emit(piUp, bool01(n.Online()), l...)
		for _, s := range presenceStates {
			emit(piPresence, bool01(n.State == s), with(s)...)
		}
		if !n.LastSeen.IsZero() {
			emit(piLastSeen, unixSeconds(n.LastSeen), l...)
		}
		if !n.BootTime.IsZero() {
			emit(piBootTime, unixSeconds(n.BootTime), l...)
		}
		m := n.Metrics
		if m == nil {
			continue
		}
		for _, f := range []struct {
			f *family
			v *float64
		}{{piLoad1, m.Load1}, {piLoad5, m.Load5}, {piLoad15, m.Load15}, {piCPUTemp, m.CPUTempC}} {
			if f.v != nil {
				emit(f.f, *f.v, l...)
			}
		}
		if m.CPUPercent != nil {
			emit(piCPUUsage, *m.CPUPercent/100, l...)
		}
		if m.CPUCount != nil {
			emit(piCPUs, float64(*m.CPUCount), l...)
		}
		for _, f := range []struct {
			f *family
			v *uint64
		}{{piMemTotal, m.MemTotalBytes}, {piMemAvail, m.MemAvailableBytes}, {piDisk, m.DiskTotalBytes}, {piDiskFree, m.DiskFreeBytes}, {piDiskUsed, m.DiskUsedBytes},
			{piNetRx, m.NetRxBytes}, {piNetTx, m.NetTxBytes}} {
			if f.v != nil {
				emit(f.f, float64(*f.v), l...)
			}
		}
		// A name twice in one payload (the contract does not forbid it) would make two series
		// of the same labels, which fails the whole scrape: the first one is kept.
		seen := map[string]bool{}
		for _, s := range m.Temps {
			if seen[s.Sensor] {
				continue
			}
			seen[s.Sensor] = true
			emit(piTemp, s.C, with(s.Sensor)...)
			if s.MaxC != nil {
				emit(piTempLimit, *s.MaxC, with(s.Sensor)...)
			}
		}
		clear(seen)
		for _, fs := range m.Filesystems {
			if seen[fs.Mount] {
				continue
			}
			seen[fs.Mount] = true
			lv := with(fs.Mount, fs.Device, fs.Type)
			emit(piFSSize, float64(fs.TotalBytes), lv...)
			emit(piFSAvail, float64(fs.FreeBytes), lv...)
			emit(piFSUsed, float64(fs.UsedBytes), lv...)
		}
		// nil: the agent does not read the flags (not a Pi); empty: read, and clear.
		for _, t := range []struct {
			f     *family
			flags []string
		}{{piThrottle, m.ThrottledNow}, {piThrottleBoot, m.ThrottledSinceBoot}} {
			if t.flags == nil {
				continue
			}
			for _, flag := range throttleFlags {
				emit(t.f, bool01(slices.Contains(t.flags, flag)), with(flag)...)
			}
		}
	}
}

func collectRows(emit emitFunc, rows []dashboard.Row) {
	for _, r := range rows {
		emit(rowPis, float64(r.Pis), r.Name)
		p := r.Power
		if p == nil {
			continue
		}
		for _, f := range []struct {
			f *family
			v *float64
		}{{rowWatts, p.Watts}, {rowVolts, p.Volts}, {rowAmps, p.Amps}} {
			if f.v != nil {
				emit(f.f, *f.v, r.Name)
			}
		}
		if !r.PowerAt.IsZero() {
			emit(rowPowerTime, unixSeconds(r.PowerAt), r.Name)
		}
	}
}

// collectAlerts reports every rule and severity, 0 when nothing is raised, so that a query
// for a rule's alerts finds a series whether or not one fires.
func collectAlerts(emit emitFunc, raised []topics.Alert) {
	type key struct{ rule, severity string }
	firing := map[key]int{}
	for _, a := range raised {
		firing[key{a.Rule, a.Severity}]++
		emit(alertRaisedAt, unixSeconds(a.TS), a.Row, a.MAC, a.Rule, a.Severity)
	}
	for _, rule := range alerts.Rules() {
		for _, sev := range severities {
			emit(alertsFiring, float64(firing[key{rule, sev}]), rule, sev)
			delete(firing, key{rule, sev})
		}
	}
	for k, n := range firing { // a rule or severity this list does not know yet
		emit(alertsFiring, float64(n), k.rule, k.severity)
	}
}

func collectStats(emit emitFunc, s dashboard.Stats) {
	emit(ingestReceived, float64(s.Received))
	emit(ingestApplied, float64(s.Applied))
	emit(ingestIgnored, float64(s.Ignored))
	emit(ingestInvalid, float64(s.InvalidBy.JSON), "invalid_json")
	emit(ingestInvalid, float64(s.InvalidBy.Payload), "invalid_payload")
	emit(ingestInvalid, float64(s.InvalidBy.Oversized), "oversized")
	emit(ingestInvalid, float64(s.InvalidBy.UnknownTopic), "unknown_topic")
	emit(ingestDuplicates, float64(s.Duplicates))
	emit(ingestRefused, float64(s.PressesRefused))
	emit(ingestResets, float64(s.PressCounterResets))
	emit(ingestReplays, float64(s.Replays))
	emit(ingestOutOfOrder, float64(s.StatusOutOfOrder))
	emit(ingestPanics, float64(s.IngestPanics))
	emit(wentStale, float64(s.WentStale))
	emit(sseClients, float64(s.SSEClients))
	emit(sseDropped, float64(s.SSEDropped))
	emit(auditErrors, float64(s.AuditErrors))
	emit(auditRotate, float64(s.AuditRotateErrors))
	emit(loginsLimited, float64(s.LoginsRateLimited))
	emit(alertsDropped, float64(s.AlertsDropped))
	emit(alertPubErrors, float64(s.AlertPublishErrors))
}

func collectBroker(emit emitFunc, s broker.Stats) {
	emit(brokerCommits, float64(s.RetainedCommits))
	emit(brokerCommitFails, float64(s.RetainedCommitFailures))
	emit(brokerPending, float64(s.RetainedPending))
	emit(brokerRefused, float64(s.PublishesRefused))
	emit(brokerInvalid, float64(s.PublishesInvalid))
	emit(brokerLEDDropped, float64(s.LEDCommandsDropped))
	emit(brokerSlow, float64(s.SlowClientsDisconnected))
	emit(brokerQueueFull, float64(s.MessagesDroppedQueueFull))
	emit(brokerSubsRefused, float64(s.SubscriptionsRefused))
	emit(brokerSessRefused, float64(s.SessionsRefused))
	emit(brokerFullRefused, float64(s.ConnectsRefusedMaxClients))
}

func collectHistory(emit emitFunc, s history.Stats) {
	emit(historyQueued, float64(s.Queued))
	emit(historyWritten, float64(s.Written))
	emit(historyStale, float64(s.Stale))
	emit(historyDownsampled, float64(s.Downsampled))
	emit(historyDropped, float64(s.Dropped))
	emit(historyFailed, float64(s.Failed))
	emit(historyEvents, float64(s.Events))
	emit(historySaves, float64(s.Saved))
	emit(historySaveCommits, float64(s.SaveCommits))
	emit(historySaveFailures, float64(s.SaveFailed))
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
