// Package history is pirack's time-series and event store: the numbers behind the Control
// Center's 1 h / 24 h / 7 d charts and the per-Pi event log, kept in one SQLite file in the data
// directory.
//
// # Why SQLite (modernc.org/sqlite)
//
// Every read is "one series, one time range, bucketed into at most N points with min/avg/max".
// In SQLite that is a range scan over a clustered (series, t) primary key plus a GROUP BY, done
// inside the engine; WAL mode gives crash safety and lets chart queries run while the writer
// commits. bbolt (already a dependency of the broker) would store the same keys, but every
// aggregate, the retention deletes and the event log's secondary index would be code of ours,
// and its single-writer file grows without reusing space as eagerly. modernc.org/sqlite is pure
// Go, so both binaries still cross-compile for ARM with CGO_ENABLED=0, and it is the SQLite C
// code itself (translated), with SQLite's file format and tools: an operator can open the file
// with the sqlite3 shell.
//
// # Tiers and retention (the defaults; Options changes them)
//
//	tier   resolution            kept for   rows per Pi and series (5 s agent interval)
//	raw    the agent's interval  24 h       17,280
//	1m     1-minute min/sum/max  7 days     10,080
//	1h     1-hour min/sum/max    90 days     2,160
//	events one row per event     90 days    (a few hundred)
//
// Aggregates are maintained incrementally: each batch that inserts raw points also upserts the
// 1-minute and 1-hour buckets they fall into, so a 24 h chart includes the current minute and
// there is no compaction watermark to lose. Compaction only deletes: rows older than each tier's
// retention, on a timer in Run (and on demand through Compact). Deleted pages are reused by new
// rows, so the file stops growing once every tier is full.
//
// A fixed set of series is stored per Pi: load_1, cpu_percent, cpu_temp_c, mem_available_bytes,
// mem_total_bytes, disk_free_bytes, disk_total_bytes, disk_used_bytes (the totals let a chart
// show a percentage); three per row supply: volts, amps, watts. Agents that send the host
// figures (topics/hoststats.go) add their host series (hostseries.go): the clock, processes,
// memory split and swap, and per device "<metric>@<device>": each core, sensor, interface
// (rates, errors, drops), block device, filesystem and container, with the same tiers.
//
// Disk use is bounded by retention. Measured at the defaults with every tier full
// (BenchmarkDiskPerPi): 6.7 MB per Pi with the fixed series, of which raw 2.8 MB (23 bytes a
// sample), 1-minute aggregates 3.2 MB and 1-hour aggregates 0.7 MB (46 bytes a bucket); a row
// supply's three series take about 2.9 MB. A Pi 5 sending its host series (NVMe, Ethernet and
// Wi-Fi, three filesystems: 44 series in all) takes 43 MB: 100 such Pis about 4.3 GB, 1,000
// about 43 GB. Raw use scales with RawRetention divided by the agent's interval;
// MinuteRetention is the largest lever (2 days instead of 7 saves about a third).
//
// # Writes
//
// Add, AddPower and AddEvent never block: they put the sample on a bounded queue and return. When
// the queue is full (the writer behind: a slow disk, a flood) samples are downsampled, not
// dropped: only the latest sample of each source waits, held aside until the writer's next
// commit, so no Pi's history stops while others fill the queue; those replaced are counted in
// Stats.Downsampled. An event that finds the queue full is dropped and counted in Stats.Dropped.
// Either is logged at most once per LogEvery. Run owns the one writer goroutine: it commits the queue in batches (BatchSize or
// every FlushInterval, whichever comes first), runs retention, and flushes what is queued when
// its context ends. A failed commit (a full disk, typically) is logged with what to do and
// counted; the batch is dropped and the store keeps answering queries from what it has.
//
// SaveEvent is the one write that waits: it returns once the event is committed and synced
// (synchronous=FULL for that transaction), or with the commit's error, so that a caller can
// refuse what it could not store (a button press is then not acknowledged, and its agent sends
// it again). Calls waiting at the same time share one commit, taken by the same writer as soon
// as it is free: a commit per press caps a rack at 1,300-2,700 presses a second on the test
// machine, 256 agents pressing at once got 31,000-42,000 (BenchmarkSaveEvent). An event with a
// Key is stored once however often it is sent.
//
// # Reads
//
// Series picks the coarsest tier whose step still fits the bucket width the caller's maxPoints
// asks for and whose retention reaches back to from: 1 h of 300 points reads raw rows, 24 h reads
// 1-minute buckets, 30 days reads 1-hour buckets. It never returns more than maxPoints points.
//
// Sparklines answers a rack page's tiles in one query: for every Pi, equal-width means of one
// metric, from the 1-minute tier (which includes the current minute: it is written with the raw
// points, so it never lags). 1,000 Pis x 60 one-minute buckets take about 50 ms on a loaded
// 2-core machine (BenchmarkSparklines1000Pis); most of it is handing 60,000 rows to Go.
//
// Events is one Pi's log; RackEvents is the rack-wide one, newest first, filtered by row, Pi,
// kinds and time, paged back by an entry's ID (EventQuery.Before) and polled for what is new
// (EventQuery.After). A page reads the events_t index backwards and stops at its limit, so it
// costs the same however long the log is.
//
// # Replacing a board
//
// Move hands a board's history to its replacement (another MAC in the same slot): its series and
// events become the new board's, in one transaction, and an EventReplaced event on the new board
// says whose history it inherited. A series only the old board has is renamed, not copied, so
// Move does not grow the file, and the moved rows age out with the same retention as if they
// had always been the new board's. Where both boards have a series, the old rows are copied over
// and deleted: a raw point at a second the new board also has is dropped (the new board's is
// kept), and aggregate buckets both have are merged, so the hour of the swap shows both boards'
// samples. Move runs on the writer between two batches: what was queued for the old board before
// the call moves too; what arrives for it afterwards (the old board still reporting somewhere)
// stays its own.
package history
