package web

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/torsion-server/torsion/internal/timefmt"
	"github.com/torsion-server/torsion/logging"
)

// Answer is what a request got: its status (499 when its connection
// ended before any answer), the bytes of body sent, and when it began;
// and the label of the part of the site that answered (Labeled), or "".
type Answer struct {
	Status int
	Bytes  int64
	Start  time.Time
	Label  string
}

// Observer is told of each request once it has been answered.
type Observer func(r *http.Request, a Answer)

// Observe wraps h so that each observer, in order, learns of each
// request's answer, also when the handler panics (net/http recovers the
// panic and closes the connection; the answer is then a 500).
func Observe(h http.Handler, observers ...Observer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &logWriter{ResponseWriter: w}
		defer func() {
			lw.gone = r.Context().Err() != nil
			p := recover()
			if p != nil && lw.status == 0 {
				lw.status = http.StatusInternalServerError
			}
			a := Answer{Status: lw.code(), Bytes: lw.bytes, Start: start, Label: lw.label}
			for _, o := range observers {
				o(r, a)
			}
			if p != nil {
				panic(p)
			}
		}()
		h.ServeHTTP(lw, r)
	})
}

// AccessLog wraps h so that every request is logged to log as one line in
// the combined log format (Apache's and Twisted's), followed by the
// request's id (RequestID; "-" without one):
//
//	127.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1024 "-" "curl/8.0" "3f9a1c2b7d4e5f60-1a"
//
// Quotes, backslashes and control characters from the client are escaped
// as Apache does, so a line can always be parsed back.
func AccessLog(h http.Handler, log *slog.Logger) http.Handler { return Observe(h, AccessLines(log)) }

// StructuredAccessLog wraps h so that every request is logged to log as a
// record of fields (AccessRecords), for a JSON log.
func StructuredAccessLog(h http.Handler, log *slog.Logger) http.Handler {
	return Observe(h, AccessRecords(log))
}

// AccessLines is the observer of AccessLog: a combined-format line each.
func AccessLines(log *slog.Logger) Observer { return AccessLinesFormat(log, combinedWithID) }

// AccessLinesFormat is AccessLines with lines laid out by f.
func AccessLinesFormat(log *slog.Logger, f AccessFormat) Observer {
	if out, ok := log.Handler().(logging.LineHandler); ok {
		// The line goes to the handler from a reused buffer, never a string.
		return func(r *http.Request, a Answer) {
			if out.Enabled(r.Context(), slog.LevelInfo) {
				bp := lines.Get().(*[]byte)
				*bp = f.AppendLine((*bp)[:0], r, a)
				out.HandleLine(time.Now(), *bp)
				putLine(bp)
			}
		}
	}
	return accessObserver(log, func(r *http.Request, a Answer) slog.Record {
		return slog.NewRecord(time.Now(), slog.LevelInfo, f.Line(r, a), 0)
	})
}

// lines are the buffers access lines are formatted in.
var lines = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// putLine gives a buffer back to lines, unless a client's long header
// made it grow past 16 KiB: the pool keeps no more than lines need.
func putLine(bp *[]byte) {
	if cap(*bp) <= 16<<10 {
		lines.Put(bp)
	}
}

var combinedWithID, _ = ParseAccessFormat(CombinedWithIDFormat)

// AccessRecords is the observer of StructuredAccessLog: message "request",
// and method, uri, proto, status, bytes, duration (seconds), remote,
// referer, user_agent and, when the request has one, request_id.
func AccessRecords(log *slog.Logger) Observer {
	if out, ok := log.Handler().(logging.FieldsHandler); ok {
		// The fields are encoded into a reused buffer, not made slog.Attrs.
		return func(r *http.Request, a Answer) {
			if !out.Enabled(r.Context(), slog.LevelInfo) {
				return
			}
			now := time.Now()
			bp := lines.Get().(*[]byte)
			f := logging.JSONFields((*bp)[:0]).
				String("method", r.Method).
				String("uri", r.RequestURI).
				String("proto", r.Proto).
				Int("status", int64(a.Status)).
				Int("bytes", a.Bytes).
				Float("duration", now.Sub(a.Start).Seconds()).
				String("remote", remoteHost(r)).
				String("referer", headerValue(r, "Referer")).
				String("user_agent", headerValue(r, "User-Agent"))
			if id := RequestIDOf(r); id != "" {
				f = f.String("request_id", id)
			}
			out.HandleFields(now, "request", f)
			*bp = f
			putLine(bp)
		}
	}
	return accessObserver(log, func(r *http.Request, a Answer) slog.Record {
		now := time.Now()
		rec := slog.NewRecord(now, slog.LevelInfo, "request", 0)
		remote := remoteHost(r)
		rec.AddAttrs(
			slog.String("method", r.Method),
			slog.String("uri", r.RequestURI),
			slog.String("proto", r.Proto),
			slog.Int("status", a.Status),
			slog.Int64("bytes", a.Bytes),
			slog.Float64("duration", now.Sub(a.Start).Seconds()),
			slog.String("remote", remote),
			slog.String("referer", r.Header.Get("Referer")),
			slog.String("user_agent", r.Header.Get("User-Agent")),
		)
		if id := RequestIDOf(r); id != "" {
			rec.AddAttrs(slog.String("request_id", id))
		}
		return rec
	})
}

func accessObserver(log *slog.Logger, record func(*http.Request, Answer) slog.Record) Observer {
	out := log.Handler()
	// Records go straight to the handler: Logger.Info would also find the
	// caller's program counter, which no access line shows.
	return func(r *http.Request, a Answer) {
		if out.Enabled(r.Context(), slog.LevelInfo) {
			out.Handle(r.Context(), record(r, a))
		}
	}
}

var stamps = timefmt.New("02/Jan/2006:15:04:05 -0700")

// logWriter must keep ReadFrom: net/http sends files with sendfile(2) through it.
var _ io.ReaderFrom = (*logWriter)(nil)

// logWriter records the status and body size of a response. It passes
// ReadFrom through so that files still go out with sendfile.
type logWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	gone   bool   // the request's connection ended before the handler returned
	label  string // set by Labeled
}

// Labeled wraps h so that the answers it gives carry label (Answer.Label)
// to Observe's observers: the metrics count requests by the part of the
// site that answered (a mount's prefix, a virtual host), a bounded set,
// where a path is not.
func Labeled(label string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lw, ok := w.(*logWriter); ok {
			lw.label = label
		}
		h.ServeHTTP(w, r)
	})
}

// bodyStarted records the implicit 200 that a body sent without
// WriteHeader (or after a 1xx) stands for.
func (w *logWriter) bodyStarted() {
	if w.status == 0 || w.status < 200 {
		w.status = http.StatusOK
	}
}

func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.bodyStarted()
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *logWriter) ReadFrom(r io.Reader) (int64, error) {
	w.bodyStarted()
	n, err := io.Copy(w.ResponseWriter, r)
	w.bytes += n
	return n, err
}

// Flush implements http.Flusher.
func (w *logWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		w.bodyStarted()
		f.Flush()
	}
}

// Hijack implements http.Hijacker when the underlying writer does.
func (w *logWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
	}
	return c, rw, err
}

// code is the response's status: 200 if the handler set none, or 499
// (nginx's "client closed request") if it wrote nothing because the
// connection was gone: nothing was sent.
func (w *logWriter) code() int {
	if w.status == 0 {
		if w.gone {
			return statusConnectionGone
		}
		return http.StatusOK
	}
	return w.status
}

// statusConnectionGone is what the access log shows for a request whose
// connection ended before any answer: nginx's 499.
const statusConnectionGone = 499

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// remoteHost is the host of the request's peer (or client, after
// ProxyHeaders): RemoteAddr without its port.
func remoteHost(r *http.Request) string {
	if !strings.Contains(r.RemoteAddr, ":") {
		return r.RemoteAddr // a Unix socket's peer ("@"): no port, and no error to make
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// headerValue is the first value of the request's header name (in
// canonical form), or "".
func headerValue(r *http.Request, name string) string {
	if v := r.Header[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// headerOrDash is the request's header name (in canonical form: no
// lookup canonicalizes it again), or "-".
func headerOrDash(r *http.Request, name string) string {
	if v := headerValue(r, name); v != "" {
		return v
	}
	return "-"
}

// appendEscaped escapes as Apache's ap_escape_logitem: '"' and '\' get a
// backslash, control and non-ASCII bytes become \xHH.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	plain := 0 // s[plain:i] needs no escape and is not yet appended
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(append(b, s[plain:i]...), '\\', c)
			plain = i + 1
		case c < 0x20 || c >= 0x7f:
			b = append(append(b, s[plain:i]...), '\\', 'x', hex[c>>4], hex[c&0xf])
			plain = i + 1
		}
	}
	return append(b, s[plain:]...)
}
