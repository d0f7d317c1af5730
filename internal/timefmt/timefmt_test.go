package timefmt

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestSeconds(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	base := time.Date(2026, 12, 2, 5, 6, 7, 0, time.UTC)
	cases := []struct {
		s    *Seconds
		t    time.Time
		want string
	}{
		{New("02/Jan/2006:15:04:05 -0700"), base, "02/Dec/2026:05:06:07 +0000"},
		{New("02/Jan/2006:15:04:05 -0700"), base.Add(999 * time.Millisecond), "02/Dec/2026:05:06:07 +0000"},
		{New("02/Jan/2006:15:04:05 -0700"), base.Add(time.Second), "02/Dec/2026:05:06:08 +0000"},
		{New("02/Jan/2006:15:04:05 -0700"), base.In(berlin), "02/Dec/2026:06:06:07 +0100"},
		{NewUTC(http.TimeFormat), base.In(berlin), "Wed, 02 Dec 2026 05:06:07 GMT"},
	}
	for _, c := range cases {
		// Twice: formatted, then remembered.
		for range 2 {
			if got := c.s.Format(c.t); got != c.want {
				t.Errorf("Format(%v) = %q, want %q", c.t, got, c.want)
			}
		}
	}
	// One Seconds shared by times in turn: each one right, whatever the last.
	s := New("15:04:05 -0700")
	for i, tm := range []time.Time{base, base.In(berlin), base, base.Add(time.Second), base} {
		if got, want := string(s.Append([]byte("x"), tm)), "x"+tm.Format("15:04:05 -0700"); got != want {
			t.Errorf("%d: Append = %q, want %q", i, got, want)
		}
	}
}

func TestSecondsConcurrent(t *testing.T) {
	s := New(time.RFC3339)
	base := time.Date(2026, 12, 2, 5, 6, 7, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				tm := base.Add(time.Duration((i+g)%5) * time.Second)
				if got := s.Format(tm); got != tm.Format(time.RFC3339) {
					t.Errorf("Format(%v) = %q", tm, got)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkSeconds(b *testing.B) {
	s := New("02/Jan/2006:15:04:05 -0700")
	buf := make([]byte, 0, 64)
	now := time.Now()
	for b.Loop() {
		buf = s.Append(buf[:0], now)
	}
}
