package wsgi

import (
	"errors"
	"sync/atomic"
)

// BodyBudget bounds what every request body buffered before its request
// takes a worker may hold together: Memory bytes in memory (BodyBuffer's
// part of each body) and Disk bytes in spool files (BodySpool's part). A
// body that finds the memory taken goes to a spool file; one that finds
// the disk taken too is answered 503 with Retry-After, so that clients
// that announce large bodies and send them slowly cannot take the
// server's memory or its disk. Pools given the same BodyBudget share it;
// it is safe for concurrent use.
type BodyBudget struct {
	memory, disk budget
}

// Defaults of NewBodyBudget's limits.
const (
	DefaultBodyMemory = 128 << 20
	DefaultBodyDisk   = 1 << 30
)

// NewBodyBudget returns a budget of memory and disk bytes; zero takes the
// default (DefaultBodyMemory, DefaultBodyDisk).
func NewBodyBudget(memory, disk int64) *BodyBudget {
	b := &BodyBudget{}
	b.memory.left.Store(cmpOr(memory, DefaultBodyMemory))
	b.disk.left.Store(cmpOr(disk, DefaultBodyDisk))
	return b
}

func cmpOr(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

// budget is a count of bytes left, taken and given back without waiting.
type budget struct{ left atomic.Int64 }

// take takes n bytes if that many are left.
func (b *budget) take(n int64) bool {
	for {
		left := b.left.Load()
		if left < n {
			return false
		}
		if b.left.CompareAndSwap(left, left-n) {
			return true
		}
	}
}

func (b *budget) give(n int64) { b.left.Add(n) }

// errBodiesFull: the budget for buffered bodies is spent.
var errBodiesFull = errors.New("the buffered request bodies use all of --body-memory and --body-disk")
