package plugin

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestDurationVar(t *testing.T) {
	for _, tt := range []struct {
		arg  string
		want time.Duration
		err  bool
	}{
		{"30", 30 * time.Second, false},
		{"0.5", 500 * time.Millisecond, false},
		{"0", 0, false},
		{"1m30s", 90 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"-1", 0, true},
		{"soon", 0, true},
		{"30 s", 0, true},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		var d time.Duration
		DurationVar(fs, &d, "timeout", "t", time.Minute, "")
		err := fs.Parse([]string{"--timeout", tt.arg})
		if (err != nil) != tt.err || !tt.err && d != tt.want {
			t.Errorf("--timeout %s: %v, %v; want %v (error %v)", tt.arg, d, err, tt.want, tt.err)
		}
	}
}
