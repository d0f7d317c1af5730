// Package xconnect turns on extended CONNECT (RFC 8441), by which
// WebSockets travel over HTTP/2, in net/http's HTTP/2 server and client.
//
// net/http reads the switch once, from the GODEBUG environment variable
// ("http2xconnect=1"), in its own package initialization. Go initializes a
// program's packages in the order of their import paths, each once all it
// imports is initialized, so this package, which imports only os and
// strings and sorts before "net/http", sets the variable first; Restore,
// called by a package initialized after net/http, puts it back so that
// child processes see the environment torsion was given. A user's own
// http2xconnect setting in GODEBUG is left as it is.
package xconnect

import (
	"os"
	"strings"
)

var (
	saved, had bool
	original   string
)

func init() {
	original, had = os.LookupEnv("GODEBUG")
	if strings.Contains(original, "http2xconnect=") {
		return
	}
	v := "http2xconnect=1"
	if original != "" {
		v = original + "," + v
	}
	if os.Setenv("GODEBUG", v) == nil {
		saved = true
	}
}

// Restore gives GODEBUG back the value the process started with.
func Restore() {
	if !saved {
		return
	}
	saved = false
	if had {
		os.Setenv("GODEBUG", original)
	} else {
		os.Unsetenv("GODEBUG")
	}
}
