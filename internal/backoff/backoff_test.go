package backoff

import (
	"fmt"
	"testing"
	"time"
)

// TestPolicy: a process's first death restarts it at once; processes that
// keep dying soon after they start, or fail to start, are waited for
// longer each time, up to Max; one that lived starts it all over.
func TestPolicy(t *testing.T) {
	const quick, long = 10 * time.Millisecond, time.Minute
	ms := time.Millisecond
	for _, tt := range []struct {
		name   string
		events []time.Duration // how long each process lived; -1: it failed to start
		want   []time.Duration
	}{
		{"one crash after a while", []time.Duration{long}, []time.Duration{0}},
		{"one crash right after start", []time.Duration{quick}, []time.Duration{0}},
		{"healthy crashes", []time.Duration{long, long, long}, []time.Duration{0, 0, 0}},
		{"crash loop", []time.Duration{quick, quick, quick, quick}, []time.Duration{0, 100 * ms, 200 * ms, 400 * ms}},
		{"loop broken by a healthy process", []time.Duration{quick, quick, long, quick, quick}, []time.Duration{0, 100 * ms, 0, 0, 100 * ms}},
		{"start failures", []time.Duration{long, -1, -1, -1}, []time.Duration{0, 100 * ms, 200 * ms, 400 * ms}},
		{"capped", []time.Duration{-1, -1, -1, -1, -1, -1, -1, -1, -1}, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 10 * time.Second, 10 * time.Second}},
	} {
		b := Policy{Min: 100 * ms, Max: 10 * time.Second, Healthy: time.Second}
		var got []time.Duration
		for _, lived := range tt.events {
			if lived < 0 {
				got = append(got, b.Failed())
			} else {
				got = append(got, b.Exited(lived))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: waits %v, want %v", tt.name, got, tt.want)
		}
	}
}
