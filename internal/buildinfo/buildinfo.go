// Package buildinfo describes the running build of torsion: its version,
// Go's, and the commit it was built from.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Version describes this build: the module's version ("(devel)" for a
// build from a checkout), the Go version, and the commit it was built from
// when the build recorded one, with "+changes" if the tree had some.
func Version(prog string) string {
	v := prog
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v + " " + runtime.Version()
	}
	v += " " + info.Main.Version + " " + runtime.Version()
	var rev, when string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		v += " commit " + rev[:min(12, len(rev))]
		if modified {
			v += "+changes"
		}
		if when != "" {
			v += " (" + when + ")"
		}
	}
	return v
}
