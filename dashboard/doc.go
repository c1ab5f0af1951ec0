// Package dashboard is pirack's Control Center: it keeps the rack's state from the MQTT topics
// of the v1 contract and serves it as a web UI, a JSON API and a live SSE stream, and it turns an
// operator's "Locate" into an LED command for that Pi.
//
// It is two layers, both built by New:
//
//   - Rack is the state and its runtime: what ingestion applies, presence and alerts, the
//     layout and assign modes, the operations that change them, the events they record, and
//     Run, whose loops (staleness, the broker's state, alert ticks and publishing, assign-mode
//     expiry) keep it live. It has no HTTP; integrations read it (Nodes, Rows, Alerts, Stats).
//   - Server is the HTTP layer on top of a Rack: routes, pages, the JSON API and the live
//     stream, sessions and the login limiter, the audit of commands, and TLS. Its handlers
//     parse the request, call the Rack and write the answer. Serve runs no rack loop: a
//     caller of Handler keeps the rack live with Rack().Run.
//
// The pieces are kept apart so each can grow on its own:
//
//   - runtime.go the Rack: its read API, Run and its loops, and the Locate and clear
//     operations.
//   - rack.go    the state model, type model (nodes, metrics, selection, press dedupe, LED state, row
//     power); no HTTP, no MQTT. Presence and staleness are package presence's, with the rule
//     the alert engine is given too, derived from the clock on every read; Run's loop only
//     pushes the changes to live clients.
//   - ingest.go  the Bus subscriber that decodes payloads into the state model. It runs inside
//     the broker's publish path, so it never blocks and never trusts its input; what it drops
//     is logged and counted by reason.
//   - record.go  what ingestion hands on: events and samples to Config.History (HistoryWriter:
//     non-blocking; pages read through HistoryReader, with their request's context),
//     observations to Config.Alerts, whose transitions are shown at once and published by a
//     goroutine of Rack.Run, never from ingestion (the embedded broker delivers inline, so a
//     Publish there would re-enter it).
//   - layout.go  shelves and slots as Rack operations: placing and naming (Config.Layout,
//     package layout), assign mode (each button press of a row fills its next slot), a
//     replacement inheriting its predecessor's history, and forgetting a removed Pi;
//     layoutapi.go is their HTTP side.
//   - detail.go  the Pi detail page and its chart and event-log API, read from Config.History.
//   - eventlog.go, sparklines.go  the rack-wide event log page and API, and the tiles'
//     one-hour sparklines, read from Config.History.
//   - hub.go     the SSE fan-out: the Rack notifies, the Server streams; per-client bounded,
//     coalescing queues; slow clients are dropped.
//   - session.go login sessions and the failed-login limiter.
//   - audit.go   the dashboard's use of package audit: every login, logout and command is
//     written (and synced) before the command is carried out; its actions and outcomes.
//   - tls.go     HTTPS: certificate loading and the key-file permission check.
//   - server.go, api.go, web.go  Config, New and the Server: routes, middleware, JSON API,
//     HTML pages.
//
// Templates and static assets are embedded (go:embed), so the binary needs no files on disk, and
// the pages load no inline script and nothing from other origins.
package dashboard
