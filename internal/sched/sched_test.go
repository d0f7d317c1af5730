package sched

import "testing"

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Policy
		err  string
	}{
		{"batch", Batch, ""},
		{"normal", Normal, ""},
		{"fifo", "", `want batch or normal, not "fifo"`},
		{"", "", `want batch or normal, not ""`},
	} {
		got, err := Parse(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
			t.Errorf("Parse(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}
