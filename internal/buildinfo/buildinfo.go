// Package buildinfo reports the version pirack's binaries were built from.
package buildinfo

import "runtime/debug"

// version is set at link time by the Makefile: -X github.com/pirack/pirack/internal/buildinfo.version=...
var version string

// Version returns the release version set at build time, else the VCS revision Go recorded,
// else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			return rev + dirty
		}
	}
	return "dev"
}
