// Package notify sends pirack's alerts to people who are not looking at the Control Center:
// a webhook (JSON POST of a Notification), an ntfy topic (a phone push), or e-mail over SMTP
// with STARTTLS. It is fed from the retained alert topics (topics.AlertFilters) through the bus,
// like any other subscriber, and knows nothing of the dashboard; the control center mounts its
// status and test-send handlers.
//
// Its config is notify.json in the data directory (File; docs/notifications.md): targets,
// routes by rule and severity, a repeat interval for alerts still raised, resolved messages,
// and quiet hours during which only critical alerts (or none) go out; what quiet hours hold
// back is sent when they end, if it still matters. Secrets are read from files, never written
// in the config.
//
// Every notification is queued on disk (DBFile, bbolt) for each of its targets in one
// transaction with the record of what was told of its alert, and removed only once the target
// accepted it: a restart neither drops one nor, thanks to that record, repeats one for the
// retained alerts replayed at subscription. A target that fails is retried in order with
// backoff (RetryBase doubling to RetryMax) until File.RetryFor; its failure shows in Status.
// Delivery is at least once: a crash between a target's acceptance and the removal sends that
// one again, with the same Notification.ID.
package notify
