package promexport

// MetricNames returns the name of every metric the collector may expose, in the order of
// docs/prometheus.md (the Go runtime's go_* and the process's process_* come on top).
func MetricNames() []string {
	out := make([]string, len(families))
	for i, f := range families {
		out[i] = f.name
	}
	return out
}
