// Package penalty slows login guessing by client address, as Dovecot's
// auth penalty does: each failed login from an address doubles the wait
// before that address's next attempt is checked (from Base up to Max),
// whichever of its connections the attempt comes on, so guessers gain
// nothing by opening more connections. A success, or Forget after a quiet
// while, clears it. The table is bounded: past Size addresses, one is
// dropped at random for each new one.
package penalty

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/torsion-server/torsion/internal/clientaddr"
)

// Defaults of a Table's fields.
const (
	DefaultBase   = 250 * time.Millisecond
	DefaultMax    = 15 * time.Second // Dovecot's
	DefaultForget = 15 * time.Minute
	DefaultSize   = 65536
)

// Table holds the failures of each address. Set its fields before first
// use; zero fields take the defaults. It is safe for concurrent use.
type Table struct {
	Base, Max time.Duration // the wait after one failure; the longest
	Forget    time.Duration // failures older than this are forgotten
	Size      int           // addresses kept at most
	Now       func() time.Time

	mu sync.Mutex
	m  map[netip.Addr]*entry
}

type entry struct {
	fails int
	last  time.Time
}

func (t *Table) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Delay is how long an attempt from addr waits before it is checked.
func (t *Table) Delay(addr net.Addr) time.Duration {
	k, ok := clientaddr.Key(addr)
	if !ok {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[k]
	if e == nil || t.now().Sub(e.last) > cmpOr(t.Forget, DefaultForget) {
		return 0
	}
	d := cmpOr(t.Base, DefaultBase) << min(e.fails-1, 20)
	return min(d, cmpOr(t.Max, DefaultMax))
}

// Wait waits Delay(addr), or until ctx ends (then it returns its error).
func (t *Table) Wait(ctx context.Context, addr net.Addr) error {
	d := t.Delay(addr)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Fail counts a failed login from addr.
func (t *Table) Fail(addr net.Addr) {
	k, ok := clientaddr.Key(addr)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e := t.m[k]
	if e == nil || now.Sub(e.last) > cmpOr(t.Forget, DefaultForget) {
		if t.m == nil {
			t.m = map[netip.Addr]*entry{}
		}
		if e == nil && len(t.m) >= cmpOr(t.Size, DefaultSize) {
			for drop := range t.m { // one at random
				delete(t.m, drop)
				break
			}
		}
		e = &entry{}
		t.m[k] = e
	}
	e.fails++
	e.last = now
}

// Succeed clears addr's failures.
func (t *Table) Succeed(addr net.Addr) {
	if k, ok := clientaddr.Key(addr); ok {
		t.mu.Lock()
		delete(t.m, k)
		t.mu.Unlock()
	}
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
