// Package dashboard is pirack's Control Center: it keeps the rack's state from the MQTT topics
// of the v1 contract and serves it as a web UI, a JSON API and a live SSE stream, and it turns an
// operator's "Locate" into an LED command for that Pi.
//
// The pieces are kept apart so each can grow on its own:
//
//   - rack.go    the state model (nodes, presence, metrics, selection); no HTTP, no MQTT.
//   - ingest.go  the Bus subscriber that decodes payloads into the state model. It runs inside
//     the broker's publish path, so it never blocks and never trusts its input.
//   - hub.go     the SSE fan-out: per-client bounded, coalescing queues; slow clients are dropped.
//   - session.go login sessions and the failed-login limiter.
//   - server.go, api.go, web.go  HTTP: routes, middleware, JSON API, HTML pages.
//
// Templates and static assets are embedded (go:embed), so the binary needs no files on disk, and
// the pages load no inline script and nothing from other origins.
package dashboard
