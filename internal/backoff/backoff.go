// Package backoff decides how long a supervisor waits before it starts a
// process again: at once after a process that lived, or after its first
// quick death, and then, while processes keep dying soon after they start
// or fail to start, a wait that doubles from Min up to Max, so that a
// broken deployment does not burn the machine. One policy for every
// supervisor (WSGI worker slots, procmon's commands).
package backoff

import "time"

// Policy is one supervisor's state. Set Min, Max and Healthy; the zero
// value of the rest is the start.
type Policy struct {
	Min, Max time.Duration
	// Healthy is how long a process must have lived not to count as part
	// of a crash loop.
	Healthy time.Duration

	cur   time.Duration
	quick bool // the last process died within Healthy
}

// Exited returns the wait before the next start, after a process that
// lived this long (from start, or from ready, to exit) died.
func (b *Policy) Exited(lived time.Duration) time.Duration {
	if lived >= b.Healthy || !b.quick {
		b.cur, b.quick = 0, lived < b.Healthy
		return 0
	}
	return b.Failed()
}

// Failed returns the wait before the next start, after a process failed
// to start.
func (b *Policy) Failed() time.Duration {
	b.cur = min(max(2*b.cur, b.Min), b.Max)
	return b.cur
}

// Clock is the time a supervisor reads and waits on: System, or one a
// test holds so that it sees each wait the policy chose and need not
// spend it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// System is the real clock.
var System Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
