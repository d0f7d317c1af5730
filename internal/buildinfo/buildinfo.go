// Package buildinfo describes the running build of torsion: its version,
// Go's, and the commit it was built from.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// The release build (scripts/release) stamps these with -ldflags -X:
// version is the git tag of the commit built ("v0.1.0"), or "devel" when
// the commit has none; commit is the commit's hash, with "+changes" if the
// tree had some.
var (
	version string
	commit  string
)

// Version describes this build: "PROG VERSION GO [commit HASH (TIME)]".
// VERSION is the release's, else the module's when Go recorded one (a
// build by go install of a tagged module), else "devel"; the commit is the
// release's, else the one Go recorded from the checkout, if any.
func Version(prog string) string {
	info, ok := debug.ReadBuildInfo()
	v, c, when := version, commit, ""
	if ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		if c == "" {
			c, when = recordedCommit(info)
		}
	}
	if v == "" {
		v = "devel"
	}
	s := prog + " " + v + " " + runtime.Version()
	if c != "" {
		s += " commit " + c
		if when != "" {
			s += " (" + when + ")"
		}
	}
	return s
}

// recordedCommit is the commit Go recorded when it built from a checkout
// (-buildvcs): 12 digits of its hash, "+changes" if the tree had some, and
// its time.
func recordedCommit(info *debug.BuildInfo) (rev, when string) {
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(12, len(s.Value))]
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" && modified {
		rev += "+changes"
	}
	return rev, when
}
