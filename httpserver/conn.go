package httpserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/torsion-server/torsion/internal/timefmt"
)

// This file is torsion's own HTTP/1.x server loop. net/http's costs a
// read(2) per request for its background read (to notice clients that
// go away), and parses every head a second time after the strict check.
// Here a head is read and checked once, and a request is watched for a
// departed client only once it has run for watchAfter: a fast request
// costs no system call beyond reading it and writing its answer.

const (
	// watchAfter is how long a request runs before its connection is
	// watched for a client that goes away (which cancels r.Context()).
	watchAfter = 20 * time.Millisecond
	// holdBack is how much response body is kept back before the header
	// is sent, so a short response gets a Content-Length and leaves in
	// one write.
	holdBack = 8 << 10
	// maxDiscard is how much unread request body is read and thrown
	// away to keep a connection; more closes it.
	maxDiscard = 256 << 10
)

// lingerTimeout bounds how long closeGently waits for the client's end.
const lingerTimeout = 2 * time.Second

// closeGently prepares a connection's end so that the client sees it
// closed, not reset: after an answer that ends the connection, or for an
// idle connection at shutdown. It sends FIN, then reads and discards what
// the client may still send (a body the handler did not read, a request
// racing the close), at most 1 MiB, until the client closes its end too
// or lingerTimeout passes. Closing a
// socket with unread data sends RST, which clients report as an error,
// where a connection closed while idle is one they retry on another.
func (c *h1conn) closeGently() {
	c.pokeMu.Lock()
	c.lingering = true // Shutdown no longer interrupts it
	c.pokeMu.Unlock()
	c.idle.Store(false)
	cw, ok := c.rwc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.rwc.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.Copy(io.Discard, io.LimitReader(c.rwc, 1<<20))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// interruptIdle makes a connection waiting for a request stop waiting,
// unless it is lingering (closeGently).
func (c *h1conn) interruptIdle() {
	c.pokeMu.Lock()
	defer c.pokeMu.Unlock()
	if !c.lingering && c.idle.Load() {
		c.rwc.SetReadDeadline(aLongTimeAgo)
	}
}

// aLongTimeAgo is a deadline that interrupts a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// h2Preface starts a cleartext HTTP/2 connection ("prior knowledge").
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h1conn is one HTTP/1.x connection.
type h1conn struct {
	srv    *Server
	rwc    net.Conn      // as accepted: *tls.Conn over TLS
	tcp    io.ReaderFrom // rwc when sendfile(2) can write to it directly
	tls    *tls.ConnectionState
	remote string
	client *client // its client's count, nil once handed on
	ctx    context.Context
	cr     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	hold   []byte      // response body held back, reused
	header http.Header // response header, reused
	sent   http.Header // its snapshot at WriteHeader, reused
	vals   []string    // backs sent's values
	num    [20]byte    // formats chunk sizes
	idle   atomic.Bool // waiting for a request: Shutdown may interrupt the wait
	asked  atomic.Bool // a request has come
	// pokeMu orders Shutdown's interruptions of an idle wait with
	// closeGently: once lingering, the connection is never interrupted,
	// so its last reads run to their own deadline.
	pokeMu    sync.Mutex
	lingering bool
	// more: the next write is followed at once by more data (a file), so
	// the kernel may hold it back to send both together.
	more bool
	// writeDeadline, readDeadline: the handler set a deadline of its own,
	// which replaces the client timeout until its response is complete.
	writeDeadline, readDeadline bool
	// idleUntil and sendUntil are the idle read deadline and the send
	// deadline last set, while no other deadline replaced them (else
	// zero): one is moved only when it would move by more than an eighth
	// of its timeout (renew), not on every request and write.
	idleUntil, sendUntil time.Time

	// The client-gone watch of the request in progress. A request arms
	// the timer when it is not armed already; when it fires, a request
	// it found running before (from its arming or its last firing) gets
	// the watch, and a newer one is looked at again watchAfter later. So
	// a request gets the watch after running watchAfter to twice that,
	// and most requests cost no timer operation.
	timer    *time.Timer
	wmu      sync.Mutex
	armed    bool          // the timer is set
	seq      uint64        // counts requests
	timedSeq uint64        // the request the timer last found running
	inReq    bool          // a handler is running
	bodyDone bool          // its body was read to the end
	wantSee  bool          // the timer fired before the body was read
	watching bool          // the watch read is in progress
	seen     chan struct{} // closed when the watch read returns
	cancel   context.CancelFunc
	gone     bool // the watch saw the client go away
}

// connReader reads the connection, first giving back the byte that a
// watch read took.
type connReader struct {
	c       net.Conn
	byteBuf [1]byte
	hasByte bool
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasByte && len(p) > 0 {
		p[0], r.hasByte = r.byteBuf[0], false
		return 1, nil
	}
	return r.c.Read(p)
}

var (
	brPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	bwPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func (s *Server) newConn(ctx context.Context, rwc net.Conn) *h1conn {
	c := &h1conn{srv: s, rwc: rwc, remote: rwc.RemoteAddr().String()}
	if tc, ok := rwc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tls = &st
	} else if rf, ok := rwc.(io.ReaderFrom); ok {
		c.tcp = rf
	}
	c.ctx = ctx
	c.cr.c = rwc
	c.br = brPool.Get().(*bufio.Reader)
	c.br.Reset(&c.cr)
	c.bw = bwPool.Get().(*bufio.Writer)
	c.bw.Reset(sendWriter{c})
	c.header, c.sent = make(http.Header), make(http.Header)
	return c
}

// serve reads and answers requests until the connection ends. It reports
// whether the connection was handed on (hijacked by a handler, or given to
// the HTTP/2 server), so that it must stay open.
func (c *h1conn) serve() (hijacked bool) {
	defer func() {
		if c.timer != nil {
			c.timer.Stop()
		}
		if !hijacked {
			c.rwc.Close()
			c.br.Reset(nil)
			brPool.Put(c.br)
		}
		c.bw.Reset(nil)
		bwPool.Put(c.bw)
	}()
	defer func() {
		// A panic outside a handler (reading or checking a head) ends
		// this connection, not the server.
		if v := recover(); v != nil {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.log.Error("http: panic reading a request", "remote", c.remote, "panic", fmt.Sprint(v), "stack", string(buf))
			hijacked = false
		}
	}()
	for first := true; ; first = false {
		// Wait for the next request; Shutdown interrupts the wait.
		c.idle.Store(true)
		if !first && c.srv.shuttingDown() {
			c.closeGently()
			return false
		}
		if first {
			// A new connection owes its first request at once: it has
			// the head's time, not an idle connection's.
			c.setReadDeadline(time.Now().Add(c.srv.opts.ReadHeaderTimeout))
		} else if c.br.Buffered() == 0 {
			renew(c.rwc.SetReadDeadline, &c.idleUntil, c.srv.opts.IdleTimeout)
		}
		if _, err := c.br.Peek(1); err != nil {
			if c.srv.shuttingDown() && isTimeout(err) {
				c.closeGently()
			}
			return false
		}
		c.idle.Store(false)
		c.asked.Store(true)
		if !headBuffered(c.br) {
			c.setReadDeadline(time.Now().Add(c.srv.opts.ReadHeaderTimeout))
		}
		if first && c.srv.opts.H2C && c.tls == nil && startsH2(c.br) {
			c.rwc.SetReadDeadline(time.Time{})
			c.srv.handOff(&prefixConn{Conn: c.rwc, r: c.br}, h2conn{c.client, c.ctx})
			c.client = nil
			return true
		}
		req, code, msg, err := c.readRequest()
		if err != nil {
			if c.srv.shuttingDown() && isTimeout(err) {
				c.closeGently() // Shutdown's interruption came as the request did
			}
			return false // the client left, or took too long: nothing to answer
		}
		// The head's deadline stays: whatever reads the connection next
		// (a body, the watch, the next head) sets its own.
		if code != 0 {
			c.rejectRequest(req, code, msg)
			c.closeGently() // what the client still sends must not reset the answer
			return false
		}
		keep, hijacked := c.serveRequest(req)
		if hijacked {
			return true
		}
		if !keep {
			// A body left unread (refused as too large, say) would make
			// the close a reset, which can destroy the answer in the
			// client's buffer before it is read.
			c.closeGently()
			return false
		}
	}
}

// rejectRequest answers a request whose head was refused, with
// Options.Refuse, and the connection ends after the answer.
func (c *h1conn) rejectRequest(req *http.Request, code int, msg string) {
	req.Header = http.Header{}
	req.Body = http.NoBody
	req.Close = true
	req = req.WithContext(c.ctx)
	w := &h1resp{c: c, req: req, header: c.header, cl: -1, closeAfter: true}
	clear(c.header)
	c.srv.opts.Refuse(w, req, code, msg)
	w.finish()
}

// serveRequest runs the handler for one request and completes its
// response. keep reports whether the connection may carry another.
func (c *h1conn) serveRequest(req *http.Request) (keep, hijacked bool) {
	ctx, cancel := context.WithCancel(c.ctx)
	req = req.WithContext(ctx)
	clear(c.header)
	w := &h1resp{c: c, req: req, header: c.header, cl: -1, closeAfter: req.Close || c.srv.shuttingDown()}
	if b, ok := req.Body.(*body); ok {
		b.w, b.req = w, req
	}
	c.wmu.Lock()
	c.inReq, c.bodyDone, c.wantSee, c.gone, c.cancel = true, req.Body == http.NoBody, false, false, cancel
	c.seq++
	if !c.armed {
		c.armed, c.timedSeq = true, c.seq // found running from the start
		if c.timer == nil {
			c.timer = time.AfterFunc(watchAfter, c.watch)
		} else {
			c.timer.Reset(watchAfter)
		}
	}
	c.wmu.Unlock()
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			c.endWatch()
			keep = false
			if w.hijacked {
				hijacked = true
			} else if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.srv.log.Error("http: panic serving a request", "remote", c.remote, "panic", fmt.Sprint(v), "stack", string(buf))
			}
		}
	}()
	c.srv.handler.ServeHTTP(w, req)
	if w.hijacked {
		return false, true
	}
	c.endWatch()
	w.finish()
	return !w.closeAfter && w.err == nil && !c.gone, false
}

// watch is the timer's: it starts the watch read of a request it finds
// running a second time, once the body has been read, so a request that
// runs watchAfter or longer gets its client-gone detection.
func (c *h1conn) watch() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.inReq {
		c.armed = false
		return
	}
	if c.timedSeq != c.seq {
		c.timedSeq = c.seq // started since the last firing: look again later
		c.timer.Reset(watchAfter)
		return
	}
	c.armed = false
	if c.watching {
		return
	}
	if !c.bodyDone {
		c.wantSee = true // the body reader starts it at the body's end
		return
	}
	c.startWatchLocked()
}

func (c *h1conn) startWatchLocked() {
	if c.br.Buffered() > 0 {
		return // the next request is here already: the client is not gone
	}
	c.watching = true
	c.seen = make(chan struct{})
	// The watch read must not time out (endWatch forgets the idle
	// deadline: this runs on the timer's goroutine).
	c.rwc.SetReadDeadline(time.Time{})
	go func() {
		n, err := c.rwc.Read(c.cr.byteBuf[:])
		c.wmu.Lock()
		if n == 1 {
			c.cr.hasByte = true
		} else if err != nil && c.inReq {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				c.gone = true
				c.cancel()
			}
		}
		c.wmu.Unlock()
		close(c.seen)
	}()
}

// bodyEOF is told by the body reader that the body was read to the end.
func (c *h1conn) bodyEOF() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.bodyDone = true
	if c.wantSee && c.inReq && !c.watching {
		c.startWatchLocked()
	}
}

// endWatch stops the watch of the request that ends.
func (c *h1conn) endWatch() {
	c.wmu.Lock()
	c.inReq = false
	watching, seen := c.watching, c.seen
	c.watching = false
	c.wmu.Unlock()
	if watching {
		c.rwc.SetReadDeadline(aLongTimeAgo)
		<-seen
		c.setReadDeadline(time.Time{})
	}
}

// setReadDeadline sets the connection's read deadline, other than the
// idle one.
func (c *h1conn) setReadDeadline(t time.Time) {
	c.idleUntil = time.Time{}
	c.rwc.SetReadDeadline(t)
}

// renew sets a deadline timeout from now with set, unless the one last
// set (*until, zero when another replaced it) is at most an eighth of the
// timeout short of that: an operation then gets between seven eighths of
// the timeout and all of it, and a connection's deadline moves a few
// times per timeout, not on every request or write.
func renew(set func(time.Time) error, until *time.Time, timeout time.Duration) {
	now := time.Now()
	if !until.IsZero() && until.Sub(now) > timeout-timeout/8 {
		return
	}
	*until = now.Add(timeout)
	set(*until)
}

// headBuffered reports whether a whole request head is in br's buffer
// already, so reading it cannot wait on the client.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n"))
}

// readRequest reads and checks one request head. A refused head comes back
// as a request carrying only what is needed to log it, with the status to
// answer and why.
func (c *h1conn) readRequest() (req *http.Request, code int, msg string, err error) {
	lim := c.srv.lim
	var head []byte
	lineStart := 0 // where the line being read starts in head
	skipped := 0   // empty lines before the request line
	for {
		frag, err := c.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return nil, 0, "", err
		}
		if len(head) == 0 && err == nil && (len(frag) == 2 && frag[0] == '\r' || len(frag) == 1) {
			// RFC 9112 2.2: empty lines before a request line are ignored,
			// but not without end. A bare LF is one too here, before
			// anything was read (a probe such as openssl s_client sends
			// one): no framing depends on it.
			if skipped += len(frag); skipped > lim.MaxHeaderBytes {
				return c.refused(nil, http.StatusBadRequest, "Too many empty lines.")
			}
			continue
		}
		head = append(head, frag...)
		firstLine := lineStart == 0
		if err == bufio.ErrBufferFull {
			if firstLine && len(head) > lim.MaxRequestLine {
				return c.refused(head, http.StatusRequestURITooLong, "The request line is too long.")
			}
			if len(head) > lim.MaxHeaderBytes {
				return c.refused(head, http.StatusRequestHeaderFieldsTooLarge, "The request headers are too large.")
			}
			continue
		}
		line := head[lineStart:]
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return c.refused(head, http.StatusBadRequest, "Lines must end with CRLF.")
		}
		if firstLine && len(line)-2 > lim.MaxRequestLine {
			return c.refused(head, http.StatusRequestURITooLong, "The request line is too long.")
		}
		if len(head) > lim.MaxHeaderBytes {
			return c.refused(head, http.StatusRequestHeaderFieldsTooLarge, "The request headers are too large.")
		}
		if len(line) == 2 && !firstLine {
			break
		}
		lineStart = len(head)
	}
	h, code, msg := lim.parseHead(string(head))
	if code != 0 {
		return c.refused(head, code, msg)
	}
	if h.dropped > 0 {
		c.srv.log.Debug("dropped header fields with underscores", "remote", c.remote, "count", h.dropped)
	}
	req = &http.Request{
		Method:        h.method,
		RequestURI:    h.target,
		Proto:         h.proto,
		ProtoMajor:    1,
		ProtoMinor:    h.minor,
		Header:        h.header,
		ContentLength: h.length,
		Host:          h.host,
		RemoteAddr:    c.remote,
		TLS:           c.tls,
		Close:         h.close,
		Body:          http.NoBody,
	}
	if h.chunked {
		req.TransferEncoding = []string{"chunked"}
		req.ContentLength = -1
	}
	rawurl, authority := h.target, h.method == http.MethodConnect && !strings.HasPrefix(h.target, "/")
	if authority {
		rawurl = "http://" + rawurl
	}
	if req.URL, err = url.ParseRequestURI(rawurl); err != nil {
		return c.refused(head, http.StatusBadRequest, "Malformed request target.")
	}
	if authority {
		req.URL.Scheme = ""
	}
	if req.URL.Host != "" {
		req.Host = req.URL.Host // RFC 9112 3.2.2: the absolute form's authority wins
	}
	if h.expect != "" && !strings.EqualFold(h.expect, "100-continue") {
		return c.refused(head, http.StatusExpectationFailed, "Only Expect: 100-continue is understood.")
	}
	if h.chunked || h.length > 0 {
		req.Body = &body{c: c, remain: h.length, chunked: h.chunked, req: req,
			expect: h.expect != "" && h.minor == 1}
	}
	return req, 0, "", nil
}

// refused returns the stand-in for a refused head: its method, target and
// protocol when the request line can be split, for the access log.
func (c *h1conn) refused(head []byte, code int, msg string) (*http.Request, int, string, error) {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	f := strings.Fields(string(bytes.TrimRight(line[:min(len(line), 1024)], "\r")))
	req := &http.Request{Method: "-", RequestURI: "-", Proto: "-", URL: &url.URL{Path: "/"},
		ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: c.remote, TLS: c.tls}
	if len(f) == 3 {
		req.Method, req.RequestURI, req.Proto = f[0], f[1], f[2]
	}
	return req, code, msg, nil
}

// startsH2 reports whether br starts with HTTP/2's connection preface. It
// reads only while what arrived still matches the preface, so a short
// HTTP/1 request ("GET / HTTP/1.0", 18 bytes) is not held waiting for the
// preface's 24.
func startsH2(br *bufio.Reader) bool {
	for n := 1; ; n++ {
		p, err := br.Peek(min(max(n, br.Buffered()), len(h2Preface)))
		if err != nil || string(p) != h2Preface[:len(p)] {
			return false
		}
		if len(p) == len(h2Preface) {
			return true
		}
		n = len(p)
	}
}

// prefixConn is a connection whose first bytes were read into r.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// body reads a request body, Content-Length or strictly checked chunked.
type body struct {
	c        *h1conn
	req      *http.Request
	w        *h1resp
	remain   int64 // body or chunk bytes left
	chunked  bool
	inChunk  bool // reading a chunk's data
	expect   bool // 100 Continue is owed before the first read
	done     bool // read to the end
	closed   bool
	err      error
	trailers int
	excess   int64 // chunk overhead beyond its allowance
}

// errBodyClosed is a read after the handler closed the body.
var errBodyClosed = errors.New("http: invalid Read on closed Body")

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.expect {
		b.expect = false
		if b.w != nil && !b.w.sentHeader {
			b.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := b.c.bw.Flush(); err != nil {
				b.err = err
				return 0, err
			}
		}
	}
	b.c.recvDeadline()
	n, err := b.read(p)
	if err == io.EOF {
		b.done = true
		b.c.bodyEOF()
	} else if err != nil {
		b.err = err
	}
	return n, err
}

// recvDeadline gives the client the client timeout, from now, to send
// more of a request body, unless the handler set a read deadline itself.
func (c *h1conn) recvDeadline() {
	if !c.readDeadline {
		c.setReadDeadline(time.Now().Add(c.srv.opts.ClientTimeout))
	}
}

func (b *body) read(p []byte) (int, error) {
	br := b.c.br
	if !b.chunked {
		if len(p) == 0 {
			return 0, nil
		}
		n, err := br.Read(p[:min(int64(len(p)), b.remain)])
		b.remain -= int64(n)
		if b.remain == 0 {
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	for !b.inChunk {
		line, err := readLine(br)
		if err != nil {
			return 0, err
		}
		size, ok := chunkSize(line)
		if !ok {
			return 0, errFraming
		}
		// Chunk overhead (size lines, extensions) beyond 16 bytes a
		// chunk plus twice its data counts against the sender, as in
		// net/http since CVE-2023-39326: megabytes of extensions around
		// a few data bytes end the request.
		b.excess = max(b.excess+int64(len(line))+2-16-2*min(size, 1<<40), 0)
		if b.excess > 16<<10 {
			return 0, errFraming
		}
		if size == 0 {
			return 0, b.readTrailer()
		}
		b.remain, b.inChunk = size, true
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := br.Read(p[:min(int64(len(p)), b.remain)])
	b.remain -= int64(n)
	if b.remain == 0 {
		b.inChunk = false
		var crlf [2]byte
		if _, err := io.ReadFull(br, crlf[:]); err != nil {
			return n, noEOF(err)
		}
		if crlf != [2]byte{'\r', '\n'} {
			return n, errFraming
		}
		return n, nil
	}
	return n, noEOF(err)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readLine reads a CRLF-terminated line of at most 4 KiB, without the CRLF.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, errFraming
	}
	if err != nil {
		return nil, noEOF(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errFraming
	}
	return line[:len(line)-2], nil
}

// readTrailer reads the trailer fields after the last chunk into
// r.Trailer, and returns io.EOF at its end.
func (b *body) readTrailer() error {
	for {
		line, err := readLine(b.c.br)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return io.EOF
		}
		name, value, ok := checkField(line)
		if b.trailers++; !ok || b.trailers > 100 {
			return errFraming
		}
		if b.req.Trailer == nil {
			b.req.Trailer = make(http.Header)
		}
		b.req.Trailer.Add(string(name), string(value))
	}
}

func (b *body) Close() error {
	b.closed = true
	return nil
}

// discard reads what the handler left of the body, up to maxDiscard and
// within one client timeout in all, and reports whether the body ended (so
// the connection can carry on).
func (b *body) discard() bool {
	if b.done {
		return true
	}
	if b.err != nil || b.expect {
		return false // broken, or the client still waits for 100 Continue
	}
	b.c.setReadDeadline(time.Now().Add(b.c.srv.opts.ClientTimeout))
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	for n := 0; n < maxDiscard; {
		m, err := b.read((*buf)[:min(len(*buf), maxDiscard-n)])
		n += m
		if err == io.EOF {
			b.done = true
			break
		}
		if err != nil {
			b.err = err
			break
		}
	}
	return b.done
}

// h1resp is the http.ResponseWriter of an HTTP/1.x request.
type h1resp struct {
	c           *h1conn
	req         *http.Request
	header      http.Header // the handler's
	sent        http.Header // header as it was at WriteHeader: what is sent
	status      int
	reason      string // the status line's phrase, if not the standard one (SetReason)
	wroteHeader bool   // the status is decided
	sentHeader  bool   // the head is in c.bw
	written     int64  // body bytes written by the handler
	cl          int64  // Content-Length the handler declared; -1 if none
	chunked     bool
	noBody      bool // the status or method has no body
	closeAfter  bool // the connection ends after this response
	hijacked    bool
	err         error // a write failed: the connection is done
}

func (w *h1resp) Header() http.Header { return w.header }

func (w *h1resp) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response goes out at once.
		bw := w.c.bw
		bw.WriteString("HTTP/1.1 ")
		bw.WriteString(statusLine(code))
		writeFields(bw, w.header)
		bw.WriteString("\r\n")
		if err := bw.Flush(); err != nil {
			w.err = err
		}
		if code == http.StatusContinue {
			if b, ok := w.req.Body.(*body); ok {
				b.expect = false
			}
		}
		return
	}
	w.wroteHeader, w.status = true, code
	// As net/http does, the header is taken as it is now: later changes
	// are not sent (but trailers are read at the end).
	w.sent = w.c.snapshot(w.header)
	if cl := w.sent.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			w.c.srv.log.Warn("http: invalid Content-Length from a handler", "value", cl)
			w.sent.Del("Content-Length")
		}
	}
	w.noBody = !BodyAllowed(code)
	if strings.EqualFold(w.sent.Get("Connection"), "close") {
		w.closeAfter = true
	}
}

// snapshot copies h into c.sent, reusing its map and the values' backing
// array, so that a handler's changes after WriteHeader are not sent.
func (c *h1conn) snapshot(h http.Header) http.Header {
	s, vals := c.sent, c.vals[:0]
	clear(s)
	for k, v := range h {
		start := len(vals)
		vals = append(vals, v...)
		s[k] = vals[start:len(vals):len(vals)] // an Add reallocates, sparing the next key's values
	}
	c.vals = vals
	return s
}

// BodyAllowed reports whether a response with this status may have a body
// (RFC 9110: not 1xx, 204 or 304).
func BodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

func (w *h1resp) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.req.Method == http.MethodHead {
		if w.written == 0 && len(p) > 0 {
			w.sniff(p) // the Content-Type a GET would get
		}
		w.written += int64(len(p))
		return len(p), nil
	}
	w.written += int64(len(p))
	if !w.sentHeader {
		if len(w.c.hold)+len(p) <= holdBack {
			w.c.hold = append(w.c.hold, p...)
			return len(p), nil
		}
		if len(w.c.hold) < sniffLen {
			w.sniff(append(w.c.hold, p[:min(len(p), sniffLen-len(w.c.hold))]...))
		}
		w.sendHeader(false)
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// sniffLen is how much of a body DetectContentType looks at.
const sniffLen = 512

// sniff sets the Content-Type from the first bytes of the body when the
// handler set none, as net/http does.
func (w *h1resp) sniff(first []byte) {
	if _, ok := w.sent["Content-Type"]; !ok && !w.noBody && len(first) > 0 {
		w.sent["Content-Type"] = []string{http.DetectContentType(first)}
	}
}

func (w *h1resp) writeBody(p []byte) {
	if len(p) == 0 || w.err != nil {
		return
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(w.c.num[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, w.err = bw.WriteString("\r\n")
		return
	}
	_, w.err = bw.Write(p)
}

// hasTrailers reports whether the response has trailers declared, or set
// with http.TrailerPrefix by now: as net/http does, such a response is
// chunked, not given a Content-Length, so that they can follow it.
func (w *h1resp) hasTrailers() bool {
	if _, ok := w.sent["Trailer"]; ok {
		return true
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// sendHeader writes the response head into c.bw, then the body held back.
// final says the handler has returned: all of the body is held back, so
// its length is known.
func (w *h1resp) sendHeader(final bool) {
	w.sentHeader = true
	h := w.sent
	hold := w.c.hold
	switch {
	case w.cl >= 0 || w.noBody:
	case final && !w.hasTrailers() && (w.written > 0 || w.req.Method != http.MethodHead):
		w.cl = w.written
		h.Set("Content-Length", strconv.FormatInt(w.written, 10))
	case w.req.Method == http.MethodHead:
	case w.req.ProtoMinor == 1:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}
	if w.chunked {
		h.Set("Transfer-Encoding", "chunked")
		h.Del("Content-Length")
	} else {
		h.Del("Transfer-Encoding")
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{httpDate()}
	}
	w.sniff(hold)
	switch {
	case w.status == http.StatusSwitchingProtocols: // Connection: Upgrade is the handler's
	case w.closeAfter:
		h.Set("Connection", "close")
	case w.req.ProtoMinor == 0:
		h.Set("Connection", "keep-alive")
	}
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 ")
	if w.reason != "" {
		bw.WriteString(strconv.Itoa(w.status))
		bw.WriteByte(' ')
		bw.WriteString(w.reason)
		bw.WriteString("\r\n")
	} else {
		bw.WriteString(statusLine(w.status))
	}
	writeFields(bw, h)
	bw.WriteString("\r\n")
	w.c.hold = hold[:0]
	w.writeBody(hold)
}

// writeFields writes the header fields sorted by name, as net/http does,
// each value on one line: CR and LF, which would let a value start a new
// field, become spaces.
func writeFields(bw *bufio.Writer, h http.Header) {
	var buf [16]string
	keys := buf[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !isToken(k) || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range h[k] {
			bw.WriteString(k)
			bw.WriteString(": ")
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			bw.WriteString(strings.TrimSpace(v))
			bw.WriteString("\r\n")
		}
	}
}

var statusLines sync.Map // int -> string

// SetReason sets the reason phrase of the status line w sends over
// HTTP/1.x, in place of the standard one ("599 Custom", "200 Fine
// Thanks"), as a WSGI application's start_response asks; call it before
// WriteHeader. It reports whether w takes it: HTTP/2 has no reason phrase,
// and one with a control character (RFC 9112: tab, space and visible
// characters only) is refused. Wrappers of w are looked through by their
// Unwrap method, as http.ResponseController does.
func SetReason(w http.ResponseWriter, phrase string) bool {
	for i := 0; i < len(phrase); i++ {
		if c := phrase[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	for {
		switch x := w.(type) {
		case *h1resp:
			if x.wroteHeader {
				return false
			}
			x.reason = phrase
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
}

// statusLine is "CODE Reason\r\n".
func statusLine(code int) string {
	if s, ok := statusLines.Load(code); ok {
		return s.(string)
	}
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	s := strconv.Itoa(code) + " " + text + "\r\n"
	statusLines.Store(code, s)
	return s
}

var dates = timefmt.NewUTC(http.TimeFormat)

// httpDate is the Date header's value, formatted once a second.
func httpDate() string { return dates.Format(time.Now()) }

// Flush sends what was written so far.
func (w *h1resp) Flush() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		w.sendHeader(false)
	}
	if err := w.c.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
}

// ReadFrom sends a file with sendfile(2) when the response has a
// Content-Length and the connection is plain TCP. No more than the
// Content-Length leaves: if the file holds more, ReadFrom sends what was
// declared and returns http.ErrContentLength, as a Write past it does.
func (w *h1resp) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	f, limit := fileOf(src)
	if w.c.tcp == nil || w.cl < 0 || w.noBody || w.req.Method == http.MethodHead || f == nil {
		buf := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(buf)
		return io.CopyBuffer(plainWriter{w}, src, *buf)
	}
	var sniffed int64
	if _, ok := w.sent["Content-Type"]; !ok && !w.sentHeader {
		// The Content-Type comes from the first bytes, which go through
		// Write, as with net/http; the rest leaves with sendfile.
		n, err := io.CopyN(plainWriter{w}, src, sniffLen)
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return n, err
		}
		sniffed = n
		f, limit = fileOf(src)
	}
	if !w.sentHeader {
		w.sendHeader(false)
	}
	left := w.cl - w.written
	capped := limit < 0 || limit > left
	if capped {
		limit = left
	}
	if w.err == nil {
		// What is buffered (the head) leaves with the start of the file,
		// as with nginx's tcp_nopush, unless there is no file to follow.
		w.c.more = limit != 0
		w.err = w.c.bw.Flush()
		w.c.more = false
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.c.sendFile(f, limit)
	w.written += n
	if lr, ok := src.(*io.LimitedReader); ok {
		lr.N -= n
	}
	if err != nil {
		w.err = err
		return sniffed + n, err
	}
	if capped && n == left {
		var b [1]byte
		if m, _ := src.Read(b[:]); m > 0 {
			return sniffed + n, http.ErrContentLength
		}
	}
	return sniffed + n, nil
}

// fileOf returns the file src reads, and how much of it src may read (-1:
// to the end), for a file or an io.LimitedReader of one; or nil.
func fileOf(src io.Reader) (*os.File, int64) {
	limit := int64(-1)
	if lr, ok := src.(*io.LimitedReader); ok {
		src, limit = lr.R, max(lr.N, 0)
	}
	f, _ := src.(*os.File)
	return f, limit
}

// sendWriter writes to the connection, each write bounded by the
// server's send timeout unless the handler set a deadline of its own.
type sendWriter struct{ c *h1conn }

func (s sendWriter) Write(p []byte) (int, error) {
	s.c.sendDeadline()
	if s.c.more {
		if sc, ok := s.c.rwc.(syscall.Conn); ok {
			return writeMore(sc, p)
		}
	}
	return s.c.rwc.Write(p)
}

func (c *h1conn) sendDeadline() {
	if !c.writeDeadline {
		renew(c.rwc.SetWriteDeadline, &c.sendUntil, c.srv.opts.ClientTimeout)
	}
}

// sendChunk is how much of a file one sendfile call may take: the send
// timeout applies to each, so a client must take this much per timeout.
const sendChunk = 256 << 10

// sendFile sends n bytes of f (-1: to its end) with sendfile(2), in
// chunks, each under the send timeout.
func (c *h1conn) sendFile(f *os.File, left int64) (int64, error) {
	var total int64
	for left != 0 {
		chunk := int64(sendChunk)
		if left > 0 {
			chunk = min(chunk, left)
		}
		c.sendDeadline()
		n, err := c.tcp.ReadFrom(&io.LimitedReader{R: f, N: chunk})
		total += n
		if left > 0 {
			left -= n
		}
		if err != nil || n == 0 {
			return total, err
		}
	}
	return total, nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// plainWriter hides ReadFrom, so io.Copy does not call it back.
type plainWriter struct{ io.Writer }

// Hijack hands the connection to the handler.
func (w *h1resp) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.c.endWatch()
	if w.wroteHeader && !w.sentHeader {
		// A status the handler decided (101 Switching Protocols, say) goes
		// out first, with what it held back, as net/http does.
		w.sendHeader(false)
	}
	if err := w.c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	w.c.rwc.SetDeadline(time.Time{})
	return w.c.rwc, bufio.NewReadWriter(w.c.br, bufio.NewWriter(w.c.rwc)), nil
}

// SetReadDeadline sets the connection's read deadline, in place of the
// client timeout on reads of the request body, until the response is
// complete; the zero time gives the client timeout back.
func (w *h1resp) SetReadDeadline(t time.Time) error {
	w.c.readDeadline = !t.IsZero()
	w.c.idleUntil = time.Time{}
	return w.c.rwc.SetReadDeadline(t)
}

// EnableFullDuplex serves http.ResponseController: this loop always lets
// a handler read the request body after its response has begun (it reads
// the connection only through the body), so there is nothing to enable.
func (w *h1resp) EnableFullDuplex() error { return nil }

// SetWriteDeadline sets the connection's write deadline, until the
// response is complete.
func (w *h1resp) SetWriteDeadline(t time.Time) error {
	w.c.writeDeadline = !t.IsZero()
	w.c.sendUntil = time.Time{}
	return w.c.rwc.SetWriteDeadline(t)
}

// finish completes the response after the handler returned. What the
// handler left of the request body is read and dropped after the response
// has left, so a client that announced more body than it sends has its
// answer at once; if the rest does not come (within maxDiscard and the
// client timeout), the connection ends.
func (w *h1resp) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	b, _ := w.req.Body.(*body)
	if b != nil && !b.done && (b.err != nil || b.expect) {
		w.closeAfter = true // the rest of the body cannot be read: say so
	}
	if w.c.readDeadline {
		w.c.setReadDeadline(time.Time{})
		w.c.readDeadline = false
	}
	if !w.sentHeader {
		w.sendHeader(true)
	}
	if w.chunked && w.err == nil {
		bw := w.c.bw
		bw.WriteString("0\r\n")
		w.writeTrailers()
		bw.WriteString("\r\n")
	}
	if w.cl >= 0 && w.written < w.cl && !w.noBody && w.req.Method != http.MethodHead {
		// The handler wrote less than it declared: the client, waiting
		// for the rest, learns it will not come when the connection ends.
		w.closeAfter = true
	}
	if w.err == nil {
		w.err = w.c.bw.Flush()
	}
	if w.c.writeDeadline { // the handler's, which must not outlive its response
		w.c.rwc.SetWriteDeadline(time.Time{})
		w.c.writeDeadline = false
	}
	if b != nil && !w.closeAfter && w.err == nil && !b.discard() {
		w.closeAfter = true
	}
}

// writeTrailers writes the trailer fields the handler declared in
// "Trailer" or set with http.TrailerPrefix.
func (w *h1resp) writeTrailers() {
	t := http.Header{}
	for _, v := range w.sent.Values("Trailer") {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if vs, ok := w.header[k]; ok {
				t[k] = vs
			}
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			t[http.CanonicalHeaderKey(name)] = vs
		}
	}
	for k := range t {
		if !httpguts.ValidTrailerHeader(k) {
			delete(t, k) // framing, routing and the like (RFC 9110 6.5.1)
		}
	}
	writeFields(w.c.bw, t)
}
