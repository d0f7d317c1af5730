package cli

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestGlobalShorthands: a global shorthand before the plugin's name is
// spelt out, so that after the name a plugin's own shorthand of the same
// letter wins (torsion -c FILE dns -c -r).
func TestGlobalShorthands(t *testing.T) {
	global := pflag.NewFlagSet("g", pflag.ContinueOnError)
	global.StringP("config", "c", "", "")
	global.String("logfile", "-", "")
	global.Bool("print-config", false, "")
	for _, tt := range []struct{ in, want string }{
		{"-c f.toml dns -c -r", "--config f.toml dns -c -r"},
		{"-cf.toml dns -c", "--config=f.toml dns -c"},
		{"-c=f.toml dns -c", "--config=f.toml dns -c"},
		{"--logfile -c dns -c", "--logfile -c dns -c"}, // -c is --logfile's value here
		{"--print-config -c f dns -c", "--print-config --config f dns -c"},
		{"dns -c -r", "dns -c -r"},
		{"-c f", "--config f"},
	} {
		if got := strings.Join(globalShorthands(strings.Fields(tt.in), global), " "); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.in, got, tt.want)
		}
	}
}
