// Package timefmt formats the times of log lines and Date headers to the
// second, once a second: a request's line costs a copy, not a format.
package timefmt

import (
	"sync/atomic"
	"time"
)

// Seconds formats times with a layout that shows nothing finer than a
// second, remembering the last second it formatted. It is safe for
// concurrent use.
type Seconds struct {
	layout string
	utc    bool
	last   atomic.Pointer[entry]
}

type entry struct {
	unix int64
	loc  *time.Location
	text string
}

// New returns a Seconds for layout, in each time's own location.
func New(layout string) *Seconds { return &Seconds{layout: layout} }

// NewUTC returns a Seconds for layout that shows times in UTC.
func NewUTC(layout string) *Seconds { return &Seconds{layout: layout, utc: true} }

// Format returns t in the layout.
func (s *Seconds) Format(t time.Time) string {
	if s.utc {
		t = t.UTC()
	}
	u, loc := t.Unix(), t.Location()
	if e := s.last.Load(); e != nil && e.unix == u && e.loc == loc {
		return e.text
	}
	e := &entry{u, loc, t.Format(s.layout)}
	s.last.Store(e)
	return e.text
}

// Append appends t in the layout to b.
func (s *Seconds) Append(b []byte, t time.Time) []byte { return append(b, s.Format(t)...) }
