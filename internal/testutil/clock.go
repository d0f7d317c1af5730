package testutil

import (
	"sync"
	"time"
)

// StillClock is a backoff.Clock on which time stands still (so every
// process a supervisor runs lived no time at all) and every wait ends at
// once; Waits lists the waits asked for, in order.
type StillClock struct {
	mu    sync.Mutex
	waits []time.Duration
}

// Now is always the same instant.
func (c *StillClock) Now() time.Time { return time.Unix(1_000_000_000, 0) }

// After notes d and returns a channel that is ready at once.
func (c *StillClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

// Waits returns the waits asked for so far.
func (c *StillClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}
