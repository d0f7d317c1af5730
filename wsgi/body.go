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
}

func (b *reqBody) close() {
	if b.spool != nil {
		b.spool.Close()
	}
}

// errSpool wraps a failure to store a request body in the spool file: the
// server's fault, not the client's.
type errSpool struct{ err error }

func (e errSpool) Error() string { return "spooling the request body: " + e.err.Error() }
func (e errSpool) Unwrap() error { return e.err }

// spoolWriter marks its file's write errors as errSpool.
type spoolWriter struct{ f *os.File }

func (w spoolWriter) Write(p []byte) (int, error) {
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
// must get something within ClientTimeout.
func (p *Pool) readBody(w http.ResponseWriter, r *http.Request) (b reqBody, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return b, nil
	}
	body := &timedReader{r: r.Body, rc: http.NewResponseController(w), timeout: p.cfg.ClientTimeout}
	memory := int64(p.cfg.BodyBuffer)
	if b.head, err = readGrowing(body, memory+1, r.ContentLength); err != nil {
		return b, err
	}
	if int64(len(b.head)) <= memory {
		return b, nil // all of it
	}
	rest := io.MultiReader(bytes.NewReader(b.head[memory:]), body)
	b.head = b.head[:memory]
	spool := p.cfg.BodySpool
	if spool <= 0 || r.ContentLength > memory+spool {
		b.rest = rest
		return b, nil
	}
	f, err := os.CreateTemp(p.dir, "body-")
	if err != nil {
		return b, errSpool{err}
	}
	os.Remove(f.Name()) // gone with the descriptor, whatever happens
	b.spool = f
	n, err := io.Copy(spoolWriter{f}, io.LimitReader(rest, spool+1))
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return reqBody{}, err
	}
	b.rest = f
	if n > spool { // chunked, and longer than the spool: the rest streams
		b.rest = io.MultiReader(f, rest)
	}
	return b, nil
}

// readGrowing reads r to its end, to the announced length (-1: unknown)
// or to limit bytes, into a buffer that starts at the announced length (at
// most 64 KiB; 4 KiB if unknown) and doubles as bytes arrive.
func readGrowing(r io.Reader, limit, announced int64) ([]byte, error) {
	size := int64(4 << 10)
	if announced > 0 {
		size = min(announced, 64<<10)
	}
	buf := make([]byte, 0, min(size, limit))
	for {
		if int64(len(buf)) == announced {
			return buf, nil // the body's reader ends it there
		}
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= limit {
				return buf, nil
			}
			buf = slices.Grow(buf, int(min(int64(cap(buf)), limit-int64(cap(buf)))))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
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
	default:
		return http.StatusBadRequest, "The request body was cut short or malformed."
	}
}
