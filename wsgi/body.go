package wsgi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"
)

// reqBody is a request body as a worker gets it: head travels in the R
// frame, and rest, when not nil, is what the worker pulls (r frames) as
// the application reads: the spool file, then whatever the client has not
// sent yet.
type reqBody struct {
	head  []byte
	rest  io.Reader
	spool *os.File
	// what the body holds of the pool's BodyBudget
	budget         *BodyBudget
	memory, onDisk int64
}

func (b *reqBody) close() {
	if b.spool != nil {
		b.spool.Close()
	}
	if b.budget != nil {
		b.budget.memory.give(b.memory)
		b.budget.disk.give(b.onDisk)
	}
}

// errSpool wraps a failure to store a request body in the spool file: the
// server's fault, not the client's.
type errSpool struct{ err error }

func (e errSpool) Error() string { return "spooling the request body: " + e.err.Error() }
func (e errSpool) Unwrap() error { return e.err }

// spoolWriter marks its file's write errors as errSpool, and takes what
// it writes from the disk budget.
type spoolWriter struct {
	f *os.File
	b *reqBody
}

func (w spoolWriter) Write(p []byte) (int, error) {
	if !w.b.budget.disk.take(int64(len(p))) {
		return 0, errBodiesFull
	}
	w.b.onDisk += int64(len(p))
	n, err := w.f.Write(p)
	if err != nil {
		err = errSpool{err}
	}
	return n, err
}

// readBody receives a request body before the request takes a worker, so
// that a slow client holds no worker: up to BodyBuffer bytes in memory,
// then up to BodySpool more in an unlinked temporary file. A body that
// does not fit (announced larger, or chunked and growing past the spool)
// keeps the rest for the application to pull as it reads. Memory grows
// with what arrived, not with what the client announced, and every read
// must get something within ClientTimeout. What all bodies hold together
// is bounded by the BodyBudget: a body that finds the memory spent is
// spooled from its first byte past what it has, and one that finds the
// disk spent too fails with errBodiesFull.
func (p *Pool) readBody(w http.ResponseWriter, r *http.Request) (b reqBody, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return b, nil
	}
	b.budget = p.cfg.Bodies
	body := &timedReader{r: r.Body, rc: http.NewResponseController(w), timeout: p.cfg.ClientTimeout}
	memory := int64(p.cfg.BodyBuffer)
	grow := func(n int64) bool {
		if !b.budget.memory.take(n) {
			return false
		}
		b.memory += n
		return true
	}
	var spent bool
	if b.head, spent, err = readGrowing(body, memory+1, r.ContentLength, grow); err != nil {
		return b, err
	}
	if !spent && int64(len(b.head)) <= memory {
		return b, nil // all of it
	}
	keep := min(int64(len(b.head)), memory)
	rest := io.MultiReader(bytes.NewReader(b.head[keep:]), body)
	b.head = b.head[:keep]
	spool := p.cfg.BodySpool + memory - keep // what memory could not take, the spool does
	if p.cfg.BodySpool <= 0 || r.ContentLength > keep+spool {
		b.rest = rest
		return b, nil
	}
	f, err := os.CreateTemp(p.cfg.SpoolDir, "torsion-body-")
	if err != nil {
		return b, errSpool{err}
	}
	os.Remove(f.Name()) // gone with the descriptor, whatever happens
	b.spool = f
	n, err := io.Copy(spoolWriter{f, &b}, io.LimitReader(rest, spool+1))
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return b, err // closed by the caller's close
	}
	b.rest = f
	if n > spool { // chunked, and longer than the spool: the rest streams
		b.rest = io.MultiReader(f, rest)
	}
	return b, nil
}

// readGrowing reads r to its end, to the announced length (-1: unknown)
// or to limit bytes, into a buffer that starts at the announced length (at
// most 64 KiB; 4 KiB if unknown) and doubles as bytes arrive. Each
// allocation is asked of grow first; spent reports that grow refused one,
// with the buffer full as far as it goes.
func readGrowing(r io.Reader, limit, announced int64, grow func(int64) bool) (buf []byte, spent bool, err error) {
	size := int64(4 << 10)
	if announced > 0 {
		size = min(announced, 64<<10)
	}
	size = min(size, limit)
	if !grow(size) {
		return nil, true, nil
	}
	buf = make([]byte, 0, size)
	for {
		if int64(len(buf)) == announced {
			return buf, false, nil // the body's reader ends it there
		}
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= limit {
				return buf, false, nil
			}
			more := min(int64(cap(buf)), limit-int64(cap(buf)))
			if !grow(more) {
				return buf, true, nil
			}
			// The capacity is what grow was asked for, not what
			// append rounds up to.
			buf = slices.Grow(buf, int(more))[: len(buf) : len(buf)+int(more)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, false, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
}

// timedReader reads a request body, giving the client timeout, from the
// start of each read, to send something (over HTTP/1 and HTTP/2 alike).
type timedReader struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
}

func (t *timedReader) Read(p []byte) (int, error) {
	t.rc.SetReadDeadline(time.Now().Add(t.timeout))
	n, err := t.r.Read(p)
	t.rc.SetReadDeadline(time.Time{})
	return n, err
}

// bodyErrorStatus is the answer to a request whose body could not be read.
func bodyErrorStatus(err error) (int, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", mbe.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout, "The request body did not arrive in time."
	case errors.As(err, new(errSpool)):
		return http.StatusServiceUnavailable, "The server could not store the request body."
	case errors.Is(err, errBodiesFull):
		return http.StatusServiceUnavailable, "The server holds as many request bodies as it may; try again shortly."
	default:
		return http.StatusBadRequest, "The request body was cut short or malformed."
	}
}
