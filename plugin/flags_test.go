package plugin

import (
	"strconv"
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

func TestBytesVar(t *testing.T) {
	for _, tt := range []struct {
		arg  string
		want int64
		err  bool
	}{
		{"1048576", 1 << 20, false},
		{"0", 0, false},
		{"64K", 64 << 10, false},
		{"64KiB", 64 << 10, false},
		{"64kb", 64 << 10, false},
		{"10M", 10 << 20, false},
		{"10 MB", 10 << 20, false},
		{"1G", 1 << 30, false},
		{"1.5M", 3 << 19, false},
		{"100b", 100, false},
		{"-1", -1, false}, // the flag's own check refuses it where it must
		{"10X", 0, true},
		{"M", 0, true},
		{"ten", 0, true},
		{"10Mx", 0, true},
		{"9999999T", 0, true},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		var n int64
		BytesVar(fs, &n, "max-body", "", 5, "")
		err := fs.Parse([]string{"--max-body", tt.arg})
		if (err != nil) != tt.err || !tt.err && n != tt.want {
			t.Errorf("--max-body %s: %d, %v; want %d (error %v)", tt.arg, n, err, tt.want, tt.err)
		}
		if !tt.err && fs.Lookup("max-body").Value.String() != strconv.FormatInt(tt.want, 10) {
			t.Errorf("--max-body %s prints as %s", tt.arg, fs.Lookup("max-body").Value.String())
		}
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	var small int
	BytesVar(fs, &small, "body-buffer", "", 1<<20, "")
	if err := fs.Parse([]string{"--body-buffer", "64K"}); err != nil || small != 64<<10 {
		t.Errorf("an int size: %d, %v", small, err)
	}
}

// TestRangeVar: N sets the least and leaves the most 0; MIN:MAX sets
// both; anything else, or MIN over MAX, is refused; each prints back as
// it was given.
func TestRangeVar(t *testing.T) {
	for _, tt := range []struct {
		in          string
		least, most int
		ok          bool
	}{
		{"4", 4, 0, true},
		{"2:8", 2, 8, true},
		{"3:3", 3, 3, true},
		{"8:2", 0, 0, false},
		{"x", 0, 0, false},
		{"2:", 0, 0, false},
		{"-1", -1, 0, true}, // the plugin checks its range
	} {
		var least, most int
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		RangeVar(fs, &least, &most, "workers", "", "")
		err := fs.Set("workers", tt.in)
		if (err == nil) != tt.ok || tt.ok && (least != tt.least || most != tt.most) {
			t.Errorf("%q: %d, %d, %v", tt.in, least, most, err)
		}
		if want := tt.in; tt.ok && want != "3:3" && fs.Lookup("workers").Value.String() != want {
			t.Errorf("%q prints back as %q", tt.in, fs.Lookup("workers").Value.String())
		}
	}
}
