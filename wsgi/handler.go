package wsgi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http/httpguts"

	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/web"
	"github.com/torsion-server/torsion/workers"
)

var reqBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// ServeHTTP runs the request through the application.
func (p *Pool) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.serving.Add(1)
	defer p.serving.Add(-1)
	if r.Method == http.MethodConnect {
		// A WSGI application cannot open a tunnel, and a 2xx answer to
		// CONNECT would tell a proxy in front that the connection is one.
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		web.Error(w, r, http.StatusMethodNotAllowed, "CONNECT is not served here.")
		return
	}
	socket := p.cfg.ASGI && isWebSocket(r)
	if socket {
		if p.wsOpen.Add(1) > int64(p.cfg.MaxWebSockets) {
			p.wsOpen.Add(-1)
			w.Header().Set("Retry-After", "5")
			web.Error(w, r, http.StatusServiceUnavailable, "The application has as many WebSockets open as it may.")
			return
		}
		defer p.wsOpen.Add(-1)
	}
	if p.cfg.MaxBody > 0 { // negative: no limit
		if r.ContentLength > p.cfg.MaxBody {
			web.Error(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", p.cfg.MaxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxBody) // chunked bodies
	}
	// Receive the body, as far as it is buffered, before taking a worker.
	body, err := p.readBody(w, r)
	defer body.close()
	if err != nil {
		code, msg := bodyErrorStatus(err)
		switch {
		case errors.Is(err, errBodiesFull):
			p.log.Warn("request body refused: the budget for buffered bodies is spent", "method", r.Method, "uri", r.URL.RequestURI(), "content_length", r.ContentLength)
			w.Header().Set("Retry-After", "5")
		case code == http.StatusServiceUnavailable:
			p.log.Error("could not store a request body", "method", r.Method, "uri", r.URL.RequestURI(), "err", err)
		}
		w.Header().Set("Connection", "close")
		web.Error(w, r, code, msg)
		return
	}
	if strings.IndexByte(r.URL.Path, 0) >= 0 {
		// No application expects one, and a path cut at the NUL by a
		// file API is an old attack.
		web.Error(w, r, http.StatusBadRequest, "The request path has a NUL character (%00).")
		return
	}
	bp := reqBufs.Get().(*[]byte)
	req := p.requestFrame((*bp)[:0], r, body.head, body.rest != nil)
	defer func() { *bp = req[:0]; reqBufs.Put(bp) }()

	j := workers.Job{Method: r.Method, URI: r.RequestURI, RequestID: web.RequestIDOf(r), Idempotent: idempotent(r), Socket: socket}
	for attempt := 0; ; attempt++ {
		c, err := p.Submit(r.Context(), req, j)
		if err != nil {
			switch {
			case errors.Is(err, workers.ErrStopping):
				web.Error(w, r, http.StatusServiceUnavailable, "The server is shutting down.")
			case errors.Is(err, workers.ErrQueueFull):
				w.Header().Set("Retry-After", "1")
				web.Error(w, r, http.StatusServiceUnavailable, "Every worker is busy and too many requests wait already; retry in a moment.")
			}
			return // or the client went away while waiting
		}
		rs := &response{w: w, r: r, p: p, c: c, body: body.rest, length: -1}
		err = rs.run()
		if rs.ws != nil {
			p.dropSocket(rs.ws)
			close(rs.wsDone)
		}
		if err == nil {
			return
		}
		retry, ran := c.Retry()
		timedOut := c.TimedOut()
		if retry && ran {
			if attempt > 0 || p.Stopping() {
				// Not a third time; and not while stopping, whose
				// workers end on purpose.
				retry = false
			} else {
				p.log.Warn("the worker died under an idempotent request that had sent nothing; trying it on another", "method", r.Method, "uri", r.URL.RequestURI(), "err", err)
			}
		}
		if rs.ws != nil {
			rs.ws.Close(websocket.StatusInternalError, "the application's worker died")
			return
		}
		switch {
		case retry && attempt < 3:
			continue // the worker died before starting it: try another
		case rs.wroteHeader:
			panic(http.ErrAbortHandler) // nothing better to do mid-response
		case timedOut:
			web.Error(w, r, http.StatusGatewayTimeout, fmt.Sprintf("The application took longer than %v.", p.cfg.Timeout))
		case errors.Is(err, workers.ErrDone):
		case r.Context().Err() != nil:
			// The connection is gone (the client left, or a stop ran out
			// of time and closed it): no page could reach anyone, and the
			// access log says so.
			p.log.Error("the worker died under a request whose connection is gone", "method", r.Method, "uri", r.URL.RequestURI(), "err", err)
		default:
			p.log.Error("the worker died under a request", "method", r.Method, "uri", r.URL.RequestURI(), "err", err)
			web.Error(w, r, http.StatusBadGateway, "The application's worker process died.")
		}
		return
	}
}

// idempotent reports whether r may be run twice: a GET or HEAD without a
// body.
func idempotent(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0)
}

// response turns one call's frames into the HTTP response.
type response struct {
	w           http.ResponseWriter
	r           *http.Request
	p           *Pool
	c           *workers.Call
	body        io.Reader // the request body the worker pulls; nil once it ended
	status      int
	wroteHeader bool
	gone        bool // the client went away; discard the rest
	answered    bool // Go answered the client itself (a refused handshake): the rest is the worker's alone
	appErr      string
	unacked     int
	dirty       bool   // body written since the last flush
	held        []byte // the body so far, while the head is not yet committed (holdMax)
	bodyErr     error  // reading the request body failed
	sent        int64  // body bytes written
	length      int64  // the Content-Length the application gave; -1 if none, or HEAD
	deadline    bool   // the client has a write deadline
	ws          *websocket.Conn
	wsReading   atomic.Bool   // a read of the client's next message runs
	wsLast      atomic.Int64  // when a message or pong last passed (UnixNano)
	wsWriting   atomic.Int64  // when the message being written began (UnixNano), or 0
	wsDone      chan struct{} // closed when the WebSocket has ended
}

// keepReading gives the client ClientTimeout, from now, to take what is
// written to it.
func (rs *response) keepReading() {
	rs.deadline = true
	http.NewResponseController(rs.w).SetWriteDeadline(time.Now().Add(rs.p.cfg.ClientTimeout))
}

// streamed is how much of a response may be written before it counts as
// streamed, with a worker that may wait for the client to read it: what
// torsion passes on before it acknowledges, a quarter of the window.
const streamed = ackEvery

// ackEvery is how much torsion passes to the client before it
// acknowledges (KindWindow): a quarter of the worker's window.
const ackEvery = workers.Window / 4

func (rs *response) run() error {
	done := rs.r.Context().Done()
	for {
		// Flush only when no frame is waiting: a body that streams slowly
		// (Server-Sent Events) goes out chunk by chunk, while a response
		// that arrived whole leaves in one write.
		if rs.dirty && rs.c.Idle() {
			rs.commit()
			http.NewResponseController(rs.w).Flush()
			rs.dirty = false
		}
		f, err := rs.c.Next(done)
		if errors.Is(err, workers.ErrDone) {
			rs.clientGone()
			done = nil // keep draining until E
			continue
		}
		if err != nil {
			return err
		}
		if rs.ws != nil {
			if end := rs.wsFrame(f); end {
				return nil
			}
			continue
		}
		switch f.Kind {
		case workers.KindStart:
			if err := rs.start(f.Payload); err != nil {
				rs.c.Abort(err)
				return err
			}
			if rs.status == http.StatusSwitchingProtocols && isWebSocket(rs.r) {
				rs.wsAccept()
				done = nil // the connection is the WebSocket's now
			}
		case workers.KindData:
			rs.data(f.Payload)
		case workers.KindFile:
			rs.file(f.File, f.Payload)
		case workers.KindRead:
			if err := rs.read(f.Payload); err != nil {
				rs.c.Abort(err)
				return err
			}
		case workers.KindError:
			rs.appErr = string(f.Payload)
		case workers.KindEnd:
			// An ASGI response's trailers; after a refused handshake,
			// the WebSocket's close code, which has nowhere to go.
			if len(f.Payload) > 0 && !rs.answered {
				fields, err := parseTrailers(f.Payload)
				if err != nil {
					return err
				}
				h := rs.w.Header()
				for i := 0; i+1 < len(fields); i += 2 {
					if !httpguts.ValidTrailerHeader(fields[i]) {
						// Framing, routing and the like may not come
						// after the body (RFC 9110 6.5.1).
						rs.p.log.Warn("the application sent a trailer field that is not allowed; dropped", "method", rs.r.Method, "uri", rs.r.URL.RequestURI(), "field", fields[i])
						continue
					}
					h.Add(http.TrailerPrefix+http.CanonicalHeaderKey(fields[i]), fields[i+1])
				}
			}
			return rs.end()
		}
	}
}

func (rs *response) start(payload []byte) error {
	status, fields, err := parseHead(payload)
	if err != nil {
		return err
	}
	// torsion_worker has checked the status: three digits, a space, a reason.
	code, err := strconv.Atoi(status[:min(3, len(status))])
	if err != nil {
		code = http.StatusInternalServerError
	}
	rs.status = code
	if phrase := status[min(4, len(status)):]; phrase != "" && phrase != http.StatusText(code) {
		// The application's own phrase, over HTTP/1.x, as gunicorn and
		// Twisted send it.
		httpserver.SetReason(rs.w, phrase)
	}
	h := rs.w.Header()
	ownID := false
	for i := 0; i+1 < len(fields); i += 2 {
		name, value := fields[i], fields[i+1]
		if isHopByHop(name) {
			// The server's to decide (PEP 3333), so not sent on; but an
			// application that asks to close is obeyed, as gunicorn does.
			if strings.EqualFold(name, "Connection") && web.HasToken(value, "close") {
				h.Set("Connection", "close")
				continue
			}
			if _, warned := rs.p.hopWarned.LoadOrStore(strings.ToLower(name), true); !warned {
				rs.p.log.Warn("the application sent a hop-by-hop header field; dropped (said once per name)", "name", name, "uri", rs.r.URL.RequestURI())
			}
			continue
		}
		if !ownID && strings.EqualFold(name, web.RequestIDHeader) {
			// The application's id replaces the one torsion gave the
			// response (RequestID): one header, the application's.
			ownID = true
			h[web.RequestIDHeader] = []string{value}
			continue
		}
		h.Add(name, value)
	}
	if _, ok := h["Content-Type"]; !ok {
		// What the application sent, as WSGI servers send it: no type
		// sniffed from the body (a nil value keeps the server from it).
		h["Content-Type"] = nil
	}
	// torsion_worker has checked that Content-Length is given once, in digits.
	if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && rs.r.Method != http.MethodHead {
		rs.length = n
	}
	return nil
}

func (rs *response) writeHeader() {
	if !rs.wroteHeader {
		rs.wroteHeader = true
		rs.w.WriteHeader(rs.status)
	}
}

// hopByHop are the header fields an application may not send on
// (RFC 9110 7.6.1, PEP 3333).
var hopByHop = [...]string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade"}

// isHopByHop reports whether name, in any case, is one of hopByHop; it
// looks at every header of every response, so it does not allocate.
func isHopByHop(name string) bool {
	for _, h := range hopByHop {
		if len(h) == len(name) && strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// holdMax is how much of a body is held before the head is committed: an
// application that fails after its first small chunk, before anything
// could leave, still gets its client a 500 rather than a cut connection
// (once, an empty reply). A response that arrives whole leaves in one
// write all the same.
const holdMax = 64 << 10

// commit writes the head and the body held so far, once.
func (rs *response) commit() {
	if rs.wroteHeader {
		return
	}
	rs.writeHeader()
	if len(rs.held) > 0 {
		if _, err := rs.w.Write(rs.held); err != nil && !errors.Is(err, http.ErrBodyNotAllowed) {
			rs.clientGone()
		}
		rs.held = nil
	}
}

func (rs *response) data(p []byte) {
	if rs.r.Method == http.MethodHead && !rs.gone && rs.appErr == "" && rs.c.Idle() {
		// A HEAD response has no body, and this one's iterable goes on
		// (nothing follows this chunk yet, not even its end): the head is
		// all there is to send, so the application need not go on.
		rs.commit()
		rs.clientGone()
	}
	n := len(p)
	if !rs.gone && rs.appErr == "" {
		over := rs.length >= 0 && rs.sent+int64(len(p)) > rs.length
		if over {
			// PEP 3333: no more than the Content-Length leaves, and the
			// rest of the iterable is not needed.
			rs.p.log.Warn("the application sent more than its Content-Length; the rest is dropped", "method", rs.r.Method, "uri", rs.r.URL.RequestURI(), "content_length", rs.length)
			p = p[:rs.length-rs.sent]
		}
		if rs.sent += int64(len(p)); rs.sent > streamed {
			// The worker may soon wait for this client to read: it must
			// keep reading. The deadline moves on with every write.
			rs.keepReading()
		}
		switch {
		case !rs.wroteHeader && !over && len(rs.held)+len(p) <= holdMax:
			rs.held = append(rs.held, p...) // the frame's buffer is not ours to keep
			rs.dirty = true
		default:
			rs.commit()
			if _, err := rs.w.Write(p); err != nil && !errors.Is(err, http.ErrBodyNotAllowed) || over {
				rs.clientGone()
			} else {
				rs.dirty = true
			}
		}
	}
	// Acknowledge what left (or was dropped), so the worker may go on.
	rs.unacked += n
	if rs.unacked >= ackEvery || rs.gone {
		rs.c.Send(workers.KindWindow, windowPayload(rs.unacked))
		rs.unacked = 0
	}
}

// logAppErr logs the application's traceback as one record, with the
// request line and the request's id.
func (rs *response) logAppErr() {
	rs.p.log.Error("the application failed", "method", rs.r.Method, "uri", rs.r.URL.RequestURI(),
		"request_id", web.RequestIDOf(rs.r), "traceback", strings.TrimRight(rs.appErr, "\n"))
}

func (rs *response) clientGone() {
	if !rs.gone {
		rs.gone = true
		rs.c.Send(workers.KindCancel, nil)
	}
}

// file sends the file the worker handed over with its F frame.
func (rs *response) file(f *os.File, p []byte) {
	defer f.Close()
	offset, err := parseOffset(p) // readLoop has checked its length
	if err != nil {
		rs.appErr = err.Error()
		return
	}
	if rs.gone || rs.appErr != "" {
		return
	}
	fi, err := f.Stat()
	if err != nil {
		rs.appErr = fmt.Sprintf("wsgi.file_wrapper: %v", err)
		return
	}
	// Go frames the file itself, and the HTTP server ends a connection
	// whose response falls short: the application's count is not needed.
	rs.length = -1
	h := rs.w.Header()
	if rs.status == http.StatusOK && offset == 0 && len(rs.held) == 0 && rs.r.Header.Get("Range") != "" {
		// Let net/http answer the range (and conditional) request.
		var mod time.Time
		if t, err := http.ParseTime(h.Get("Last-Modified")); err == nil {
			mod = t
		}
		rs.wroteHeader = true
		http.ServeContent(rs.w, rs.r, "", mod, f)
		return
	}
	size := fi.Size() - offset
	if cl, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && cl < size {
		size = cl
	} else if h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		rs.appErr = fmt.Sprintf("wsgi.file_wrapper: %v", err)
		return
	}
	rs.commit()
	if rs.r.Method == http.MethodHead {
		return
	}
	if _, err := io.CopyN(rs.w, f, size); err != nil {
		rs.clientGone()
	}
}

// read answers the worker's pull for more request body. A body that
// cannot be read to its end is not passed off as ended: the worker is told
// why (Y), its wsgi.input raises, and the client gets an error status. A
// malformed pull is a protocol error.
func (rs *response) read(p []byte) error {
	want, err := parseMost(p)
	if err != nil {
		return err
	}
	var chunk []byte
	if rs.body != nil {
		chunk = make([]byte, min(want, 1<<20))
		n := 0
		var err error
		for n < len(chunk) && err == nil {
			var m int
			m, err = rs.body.Read(chunk[n:])
			n += m
		}
		chunk = chunk[:n]
		if err != nil {
			rs.body = nil
			if err != io.EOF {
				rs.bodyErr = err
				rs.c.Send(workers.KindBodyErr, []byte(err.Error()))
				return nil
			}
		}
	}
	rs.c.Send(workers.KindBody, chunk)
	return nil
}

func (rs *response) end() error {
	if rs.answered {
		// What the application did after is logged, not sent: the
		// client has its whole answer, which an abort would destroy.
		if rs.appErr != "" {
			rs.logAppErr()
		}
		return nil
	}
	if rs.c.TimedOut() {
		// An ASGI task cancelled for running past the timeout.
		if rs.wroteHeader {
			panic(http.ErrAbortHandler)
		}
		clear(rs.w.Header())
		web.Error(rs.w, rs.r, http.StatusGatewayTimeout, fmt.Sprintf("The application took longer than %v.", rs.p.cfg.Timeout))
		return nil
	}
	if rs.bodyErr != nil && rs.appErr != "" && !rs.wroteHeader {
		// The application's read raised, and it let the error go: its
		// traceback would say no more than this line.
		code, msg := bodyErrorStatus(rs.bodyErr)
		rs.p.log.Warn("the request body was cut short", "method", rs.r.Method, "uri", rs.r.URL.RequestURI(), "err", rs.bodyErr)
		clear(rs.w.Header())
		rs.w.Header().Set("Connection", "close")
		web.Error(rs.w, rs.r, code, msg)
		return nil
	}
	if rs.appErr != "" {
		rs.logAppErr()
		if rs.wroteHeader {
			panic(http.ErrAbortHandler) // the client must not take a cut-short body for the whole
		}
		clear(rs.w.Header())
		web.Error(rs.w, rs.r, http.StatusInternalServerError, "The application failed; the details are in the server log.")
		return nil
	}
	if !rs.gone {
		rs.commit()
		if rs.length >= 0 && rs.sent < rs.length && httpserver.BodyAllowed(rs.status) {
			// The connection ends after this response, so the client
			// sees it cut short rather than wait for the rest.
			rs.p.log.Warn("the application sent less than its Content-Length", "method", rs.r.Method, "uri", rs.r.URL.RequestURI(), "sent", rs.sent, "content_length", rs.length)
		}
		if rs.deadline {
			rs.keepReading() // for the end of the body, however long close() took
		}
	}
	return nil
}
