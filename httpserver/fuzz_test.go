package httpserver

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fuzzConn is a connection whose client sends in, all at once, and then
// closes its side; what the server writes is kept.
type fuzzConn struct {
	mu  sync.Mutex
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *fuzzConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in.Read(p)
}

func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000} }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// seen is what a handler received of one request.
type seen struct {
	method, uri, host, body string
	ok                      bool // the body was read to its end
}

// panicLog fails the fuzz run on any ERROR, which is how the loop reports
// a panic it recovered from.
type panicLog struct {
	slog.Handler
	t *testing.T
}

func (h panicLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.t.Errorf("logged: %s", r.Message)
	}
	return nil
}

// FuzzH1 drives the whole HTTP/1 loop in-process with arbitrary input and
// holds it to net/http's parser as the reference: every request the loop
// hands to a handler, net/http reads at the same place in the stream with
// the same method, target, host and body (the loop may refuse more, never
// read differently), and what the loop writes back is a well-formed
// sequence of responses, one per request it answered.
func FuzzH1(f *testing.F) {
	for _, tt := range hostile {
		f.Add(tt.req)
	}
	for _, req := range []string{
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiPOST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nho\r\n0\r\nX-T: 1\r\n\r\nGET /3 HTTP/1.0\r\n\r\n",
		"GET http://a.example:8080/abs?q HTTP/1.1\r\nHost: x\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: [::1]:80\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
	} {
		f.Add(req)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var mu sync.Mutex
		var got []seen
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			mu.Lock()
			got = append(got, seen{r.Method, r.RequestURI, r.Host, string(body), err == nil})
			mu.Unlock()
			io.WriteString(w, "ok")
		})
		srv := New(h, Options{ErrorLog: slog.New(panicLog{slog.DiscardHandler, t})})
		fc := &fuzzConn{in: bytes.NewReader([]byte(in))}
		done := make(chan struct{})
		go func() { srv.newConn(srv.connContext(context.Background(), fc), fc).serve(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("the loop still runs after 10s on %q:\n%s", in, buf[:runtime.Stack(buf, true)])
		}

		// The reference reading of the same bytes.
		br := bufio.NewReader(strings.NewReader(in))
		for i, s := range got {
			for { // RFC 9112 2.2: empty lines before a request (CRLF, or a bare LF), which net/http's reader does not skip
				p, _ := br.Peek(2)
				if string(p) == "\r\n" {
					br.Discard(2)
				} else if len(p) > 0 && p[0] == '\n' {
					br.Discard(1)
				} else {
					break
				}
			}
			req, err := http.ReadRequest(br)
			if err != nil {
				t.Fatalf("request %d reached the handler as %+v, but net/http refuses it: %v", i, s, err)
			}
			body, berr := io.ReadAll(req.Body)
			ref := seen{req.Method, req.RequestURI, req.Host, string(body), berr == nil}
			if !s.ok {
				// Its body broke off: the connection ends with it. Only
				// the head can be compared.
				if s.method != ref.method || s.uri != ref.uri || s.host != ref.host {
					t.Fatalf("request %d read as %+v, net/http reads %+v", i, s, ref)
				}
				break
			}
			if s != ref {
				t.Fatalf("request %d read as %+v, net/http reads %+v", i, s, ref)
			}
		}

		// The answers: well-formed, at least one per handled request.
		rr := bufio.NewReader(bytes.NewReader(fc.out.Bytes()))
		n := 0
		for {
			if _, err := rr.Peek(1); err == io.EOF {
				break
			}
			resp, err := http.ReadResponse(rr, nil)
			if err != nil {
				t.Fatalf("response %d: %v in %q", n, err, fc.out.Bytes())
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatalf("response %d body: %v in %q", n, err, fc.out.Bytes())
			}
			if resp.StatusCode != http.StatusContinue {
				n++
			}
		}
		if n < len(got) {
			t.Fatalf("%d responses for %d requests: %q", n, len(got), fc.out.Bytes())
		}
	})
}
