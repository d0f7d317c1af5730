// Package testutil holds small helpers shared by torsion's tests.
package testutil

import (
	"bytes"
	"sync"
	"time"
)

// WaitUntil polls cond until it holds, or calls fail once d has passed:
// a test waits for the event itself, with a generous deadline, never
// for a fixed sleep.
func WaitUntil(d time.Duration, cond func() bool, fail func()) {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			fail()
			return
		}
	}
}

// SyncBuffer is a bytes.Buffer that goroutines may write concurrently,
// such as a server's log read by a test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
