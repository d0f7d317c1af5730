package httpserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/testutil"
	"github.com/torsion-server/torsion/logging"
)

// h1Server serves h on a loopback port, the server's errors going to log.
func h1Server(t *testing.T, h http.Handler, log *slog.Logger) (*Server, string) {
	t.Helper()
	srv := New(h, Options{ErrorLog: log})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv, ln.Addr().String()
}

// dial connects to addr; reads and writes fail after 3s.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(3 * time.Second))
	return c
}

// framingMux answers with the framings a response can have.
func framingMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(bytes.Repeat([]byte("x"), 20000))
	})
	mux.HandleFunc("/flushed", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "one,")
		w.(http.Flusher).Flush()
		io.WriteString(w, "two")
	})
	mux.HandleFunc("/declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		w.(http.Flusher).Flush()
		io.WriteString(w, "abc")
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if _, err := io.WriteString(w, "x"); err != http.ErrBodyNotAllowed {
			panic("a 204 took a body")
		}
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "data")
		w.Header().Set("X-Sum", "42")
		// Not allowed after the body: dropped.
		w.Header().Set(http.TrailerPrefix+"Content-Length", "999")
		w.Header().Set(http.TrailerPrefix+"Transfer-Encoding", "gzip")
	})
	mux.HandleFunc("/injection", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Evil", "a\r\nSet-Cookie: b=c")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s|%s", b, r.Trailer.Get("X-T"))
	})
	return mux
}

func TestH1Framing(t *testing.T) {
	_, addr := h1Server(t, framingMux(), logging.Discard())
	const h = "Host: x\r\n"
	tests := []struct {
		name, req string
		status    int
		// Framing the answer must have ("Content-Length: 5", "chunked",
		// "close": ends with the connection) and its body.
		framing, body string
		closed        bool
	}{
		{"short body gets a length", "GET /small HTTP/1.1\r\n" + h + "\r\n", 200, "Content-Length: 5", "hello", false},
		{"empty body", "GET /empty HTTP/1.1\r\n" + h + "\r\n", 200, "Content-Length: 0", "", false},
		{"long body is chunked", "GET /big HTTP/1.1\r\n" + h + "\r\n", 200, "chunked", strings.Repeat("x", 20000), false},
		{"long body on HTTP/1.0 ends with the connection", "GET /big HTTP/1.0\r\n\r\n", 200, "close", strings.Repeat("x", 20000), true},
		{"HTTP/1.0 keep-alive", "GET /small HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, "Content-Length: 5", "hello", false},
		{"HTTP/1.0 closes by default", "GET /small HTTP/1.0\r\n\r\n", 200, "Content-Length: 5", "hello", true},
		{"flushed body is chunked", "GET /flushed HTTP/1.1\r\n" + h + "\r\n", 200, "chunked", "one,two", false},
		{"declared length is kept", "GET /declared HTTP/1.1\r\n" + h + "\r\n", 200, "Content-Length: 3", "abc", false},
		{"HEAD gets the length, not the body", "HEAD /small HTTP/1.1\r\n" + h + "\r\n", 200, "Content-Length: 5", "", false},
		{"204 has no body", "GET /nocontent HTTP/1.1\r\n" + h + "\r\n", 204, "", "", false},
		{"client asks to close", "GET /small HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n", 200, "Content-Length: 5", "hello", true},
		{"trailer", "GET /trailer HTTP/1.1\r\n" + h + "\r\n", 200, "chunked", "data", false},
		{"CRLF in a header value", "GET /injection HTTP/1.1\r\n" + h + "\r\n", 200, "Content-Length: 2", "ok", false},
		{"chunked request with a trailer", "POST /echo HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-T: t\r\n\r\n", 200, "Content-Length: 7", "abcde|t", false},
		// As net/http since CVE-2023-39326: chunk overhead far beyond the
		// data it frames ends the request (20 MB of extensions around
		// 5,000 bytes were once read to the end).
		{"chunk extensions far beyond the data", "POST /echo HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;e="+strings.Repeat("x", 3000)+"\r\na\r\n", 10) + "0\r\n\r\n", 400, "", "", true},
		{"chunk extensions within the allowance", "POST /echo HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat("400;e="+strings.Repeat("x", 1000)+"\r\n"+strings.Repeat("a", 1024)+"\r\n", 20) + "0\r\n\r\n", 200, "chunked", strings.Repeat("a", 20480) + "|", false},
		{"missing Host", "GET /small HTTP/1.1\r\n\r\n", 400, "", "", true},
		{"bad Host", "GET /small HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "", "", true},
		{"unknown expectation", "GET /small HTTP/1.1\r\n" + h + "Expect: magic\r\n\r\n", 417, "", "", true},
		{"empty lines before the request line", "\r\n\r\nGET /small HTTP/1.1\r\n" + h + "\r\n", 200, "Content-Length: 5", "hello", false},
		{"endless empty lines", strings.Repeat("\r\n", 40000) + "GET /small HTTP/1.1\r\n" + h + "\r\n", 400, "", "", true},
		{"bare LF empty lines before the request line", "\n\r\n\nGET /small HTTP/1.1\r\n" + h + "\r\n", 200, "Content-Length: 5", "hello", false},
		{"absolute form", "GET http://y/small HTTP/1.1\r\n" + h + "\r\n", 200, "Content-Length: 5", "hello", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			io.WriteString(c, tt.req)
			br := bufio.NewReader(c)
			head, err := readHead(br)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(head, fmt.Sprintf("HTTP/1.1 %d ", tt.status)) {
				t.Fatalf("head %q, want status %d", head, tt.status)
			}
			if strings.Contains(head, "\nSet-Cookie") {
				t.Fatalf("a CRLF in a value started a field: %q", head)
			}
			resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(head), br)), &http.Request{Method: strings.Fields(tt.req)[0]})
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.status == 200 && string(body) != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			switch tt.framing {
			case "chunked":
				if !strings.Contains(head, "Transfer-Encoding: chunked\r\n") {
					t.Errorf("head %q is not chunked", head)
				}
			case "close":
				if strings.Contains(head, "Content-Length") || strings.Contains(head, "chunked") {
					t.Errorf("head %q: want the body to end with the connection", head)
				}
			case "":
			default:
				if !strings.Contains(head, tt.framing+"\r\n") {
					t.Errorf("head %q lacks %q", head, tt.framing)
				}
			}
			if tt.name == "trailer" && (resp.Trailer.Get("X-Sum") != "42" || len(resp.Trailer) != 1) {
				t.Errorf("trailer %v, want X-Sum: 42 alone (Content-Length and Transfer-Encoding are not allowed)", resp.Trailer)
			}
			if !strings.Contains(head, "\r\nDate: ") {
				t.Errorf("head %q has no Date", head)
			}
			// Is the connection still open? A closed one reads EOF at once.
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, err = br.ReadByte()
			var ne net.Error
			closed := err != nil && !(errors.As(err, &ne) && ne.Timeout()) // EOF, or a reset after unread input
			if closed != tt.closed {
				t.Errorf("connection closed: %v, want %v (%v)", closed, tt.closed, err)
			}
		})
	}
}

// readHead reads a response head up to its blank line.
func readHead(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\r\n" {
			return b.String(), nil
		}
	}
}

// TestH1Expect100: a client that asks waits for "100 Continue" before it
// sends the body; a handler that does not read the body answers without
// it, and the connection ends, since the body was never sent.
func TestH1Expect100(t *testing.T) {
	_, addr := h1Server(t, framingMux(), logging.Discard())
	c := dial(t, addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	if line, err := br.ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q, %v; want 100 Continue", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "body")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "body|" {
		t.Fatalf("echo %q", b)
	}

	io.WriteString(c, "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("unread body: %v %v; want 200 and Connection: close", resp, err)
	}
}

// TestH1HeaderOrder: the fields of a head are sorted by name, as net/http
// writes them, so responses read the same every time.
func TestH1HeaderOrder(t *testing.T) {
	_, addr := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"Zeta", "Alpha", "Mu", "X-Beta", "Set-Cookie"} {
			w.Header().Add(k, "1")
		}
		w.Header().Add("Set-Cookie", "2")
		io.WriteString(w, "hello")
	}), logging.Discard())
	c := dial(t, addr)
	br := bufio.NewReader(c)
	for range 5 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		head, err := readHead(br)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, line := range strings.Split(head, "\r\n")[1:] {
			if name, _, ok := strings.Cut(line, ":"); ok {
				names = append(names, name)
			}
		}
		want := []string{"Alpha", "Content-Length", "Content-Type", "Date", "Mu", "Set-Cookie", "Set-Cookie", "X-Beta", "Zeta"}
		if !slices.Equal(names, want) {
			t.Fatalf("fields %q, want %q", names, want)
		}
		if !strings.Contains(head, "Set-Cookie: 1\r\nSet-Cookie: 2\r\n") {
			t.Errorf("the values of a field changed order:\n%s", head)
		}
		io.CopyN(io.Discard, br, 5)
	}
}

// TestH1WriteDeadline: a write deadline a handler sets ends with its
// response; the next response on the connection does not inherit it.
func TestH1WriteDeadline(t *testing.T) {
	_, addr := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/deadline" {
			http.NewResponseController(w).SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		}
		io.WriteString(w, "hello")
	}), logging.Discard())
	c := dial(t, addr)
	br := bufio.NewReader(c)
	for _, path := range []string{"/deadline", "/later"} {
		if path == "/later" {
			time.Sleep(150 * time.Millisecond)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != "hello" {
			t.Fatalf("%s: %q", path, b)
		}
	}
}

// TestH1Pipelined: requests sent together are answered in order.
func TestH1Pipelined(t *testing.T) {
	_, addr := h1Server(t, framingMux(), logging.Discard())
	c := dial(t, addr)
	io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"hello", "hi|", strings.Repeat("x", 20000)} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != want {
			t.Fatalf("got %.20q, want %.20q", b, want)
		}
	}
}

// TestH1Panic: a panicking handler ends its connection, unanswered, and is
// logged with its stack; the server goes on.
func TestH1Panic(t *testing.T) {
	var buf testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "fine")
	})
	_, addr := h1Server(t, h, log)
	for _, path := range []string{"/panic", "/abort"} {
		if resp, err := http.Get("http://" + addr + path); err == nil {
			t.Fatalf("%s: answered %v; want the connection closed", path, resp.Status)
		}
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a panic: %v %v", resp, err)
	}
	resp.Body.Close()
	if s := buf.String(); !strings.Contains(s, "panic serving a request") || !strings.Contains(s, "boom") || !strings.Contains(s, "conn_test.go") {
		t.Errorf("log %q lacks the panic and its stack", s)
	}
	if strings.Count(buf.String(), "panic serving a request") != 1 {
		t.Errorf("ErrAbortHandler was logged: %q", buf.String())
	}
}

// TestH1ClientGone: a client that goes away cancels the context of its
// request, though the server does not read the connection for fast ones:
// on its first request, and on one that follows quick ones (which left
// the watch's timer armed).
func TestH1ClientGone(t *testing.T) {
	for _, quick := range []int{0, 1, 50} {
		t.Run(fmt.Sprintf("after %d quick", quick), func(t *testing.T) {
			canceled, started := make(chan struct{}), make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/quick" {
					io.WriteString(w, "quick")
					return
				}
				close(started)
				select {
				case <-r.Context().Done():
					close(canceled)
				case <-time.After(10 * time.Second):
				}
			})
			_, addr := h1Server(t, h, logging.Discard())
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			for range quick {
				io.WriteString(c, "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			<-started
			c.Close()
			select {
			case <-canceled:
			case <-time.After(5 * time.Second):
				t.Fatal("the request's context was not canceled")
			}
		})
	}
}

// TestRenew: a deadline moves only when the one set is an eighth of its
// timeout or more short of a full timeout from now, or was forgotten.
func TestRenew(t *testing.T) {
	const timeout = 80 * time.Second
	now := time.Now()
	for _, tc := range []struct {
		name  string
		until time.Time
		set   bool
	}{
		{"forgotten", time.Time{}, true},
		{"just set", now.Add(timeout), false},
		{"a little used", now.Add(timeout - 5*time.Second), false},
		{"an eighth used", now.Add(timeout - 11*time.Second), true},
		{"past", now.Add(-time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			until, calls := tc.until, 0
			var got time.Time
			renew(func(d time.Time) error { calls++; got = d; return nil }, &until, timeout)
			if (calls == 1) != tc.set {
				t.Fatalf("set %d times, want set: %v", calls, tc.set)
			}
			if tc.set && (!until.Equal(got) || got.Sub(now) < timeout || got.Sub(now) > timeout+time.Minute) {
				t.Fatalf("set %v, remembered %v; want about a timeout from now", got, until)
			}
		})
	}
}

// TestHeadBuffered: only a whole head in the buffer lets a request skip
// the head's deadline.
func TestHeadBuffered(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HT", true},
		{"GET / HTTP/1.1\r\nHost: x\r\n", false},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r", false},
		{"G", false},
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		br.Peek(1)
		if got := headBuffered(br); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.in, got, tc.want)
		}
	}
}

// gatedListener accepts only once its gate is open.
type gatedListener struct {
	net.Listener
	gate chan struct{}
}

func (l gatedListener) Accept() (net.Conn, error) {
	<-l.gate
	return l.Listener.Accept()
}

func (l gatedListener) SetDeadline(t time.Time) error {
	return l.Listener.(*net.TCPListener).SetDeadline(t)
}

// TestH1ShutdownDrainsQueue: the connections waiting in the accept queue
// when Shutdown begins are served, not reset by the listener's close.
func TestH1ShutdownDrainsQueue(t *testing.T) {
	defer func(w time.Duration) { drainWindow = w }(drainWindow)
	drainWindow = 3 * time.Second // generous: the loop may be slow to run under load
	srv := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "done") }),
		Options{ErrorLog: logging.Discard()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	const n = 100
	var conns []net.Conn
	for range n { // queued: nothing accepts yet
		c := dial(t, ln.Addr().String())
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		conns = append(conns, c)
	}
	gate := make(chan struct{})
	go srv.Serve(gatedListener{ln, gate})
	testutil.WaitUntil(5*time.Second, func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.listeners) == 1
	}, func() { t.Fatal("Serve did not take the listener") })
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Shutdown(context.Background()) }()
	testutil.WaitUntil(5*time.Second, srv.shuttingDown, func() { t.Fatal("Shutdown did not begin") })
	close(gate)
	for i, c := range conns {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, n, err)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != "done" || !resp.Close {
			t.Fatalf("connection %d: %q, close %v; want done, closed", i+1, b, resp.Close)
		}
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestH1ShutdownGraceful: Shutdown closes idle connections at once, lets
// a request in progress finish and then returns.
func TestH1ShutdownGraceful(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	})
	srv, addr := h1Server(t, h, logging.Discard())
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	ibr := bufio.NewReader(idle)
	resp, err := http.ReadResponse(ibr, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Shutdown(context.Background()) }()
	idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: %v, want EOF", err)
	}
	idle.Close()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned %v with a request in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if b := <-got; b != "done" {
		t.Errorf("request in progress got %q", b)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

// TestH1ShutdownNoReset: clients that keep sending requests on kept-alive
// connections while the server shuts down see each connection answered or
// closed, never reset: a request that races the close of an idle
// connection is read and dropped, so the client sees the close it can
// retry on another connection instead of ECONNRESET.
func TestH1ShutdownNoReset(t *testing.T) {
	var answered, closed atomic.Int64
	for round := range 20 {
		srv, addr := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}), logging.Discard())
		var wg sync.WaitGroup
		var under atomic.Int64 // clients with an answer: their connection was accepted
		for range 4 {
			c := dial(t, addr)
			wg.Go(func() {
				first := true
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
					var resp *http.Response
					if err == nil {
						resp, err = http.ReadResponse(br, nil)
					}
					if err == nil {
						_, err = io.ReadAll(resp.Body)
					}
					switch {
					case err == nil:
						answered.Add(1)
						if first {
							first = false
							under.Add(1)
						}
						if resp.Close {
							closed.Add(1)
							return
						}
					case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE):
						closed.Add(1) // EPIPE: written after the FIN, whose read shows EOF
						return
					default:
						t.Errorf("round %d: %v", round, err)
						return
					}
				}
			})
		}
		// Shut down with every client under way. (A connection still in
		// the listen queue when the listener closes is reset by the
		// kernel, whatever the server does: not what this tests.)
		for deadline := time.Now().Add(10 * time.Second); under.Load() < 4 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		srv.Shutdown(context.Background())
		wg.Wait()
	}
	t.Logf("%d answers, %d connections closed", answered.Load(), closed.Load())
}

// TestH1Sendfile: a file goes out whole over plain TCP (sendfile) and
// over a chunked response.
func TestH1Sendfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	data := bytes.Repeat([]byte("0123456789abcdef"), 300000/16)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if r.URL.Path == "/length" {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		}
		io.Copy(w, f)
	})
	_, addr := h1Server(t, h, logging.Discard())
	for _, path := range []string{"/length", "/chunked"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(b, data) {
			t.Errorf("%s: %d bytes, %v; want the file's %d", path, len(b), err, len(data))
		}
		if chunked := len(resp.TransferEncoding) > 0; chunked != (path == "/chunked") {
			t.Errorf("%s: Transfer-Encoding %v", path, resp.TransferEncoding)
		}
	}
}

// TestH1SendTimeout: a client that takes nothing of a response is dropped
// after ClientTimeout, whether the body is written or sent from a file; one
// that reads slowly but steadily is not.
func TestH1SendTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 32<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		switch r.URL.Path {
		case "/write":
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for i := 0; i < 512 && err == nil; i++ {
				_, err = w.Write(chunk)
			}
		case "/file", "/slow":
			f, _ := os.Open(path)
			defer f.Close()
			n := int64(32 << 20)
			if r.URL.Path == "/slow" {
				n = 1 << 20
			}
			w.Header().Set("Content-Length", fmt.Sprint(n))
			_, err = io.CopyN(w, f, n)
		}
		failed <- err
	})
	srv := New(h, Options{ClientTimeout: 300 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for _, path := range []string{"/write", "/file"} {
		c := dial(t, ln.Addr().String())
		c.(*net.TCPConn).SetReadBuffer(16 << 10)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		c.Read(make([]byte, 1024)) // and no more
		select {
		case err := <-failed:
			if err == nil {
				t.Errorf("%s: the whole body went to a client that read none of it", path)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the server still waits on a client that reads nothing", path)
		}
	}
	// 1 MiB at 64 KiB every 100ms: slow, but never 300ms without progress.
	c := dial(t, ln.Addr().String())
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.(*net.TCPConn).SetReadBuffer(16 << 10)
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	for {
		n, err := io.CopyN(io.Discard, resp.Body, 64<<10)
		got += n
		if err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != 1<<20 {
		t.Errorf("slow reader got %d bytes, want %d", got, 1<<20)
	}
	if err := <-failed; err != nil {
		t.Errorf("slow reader: the server gave up: %v", err)
	}
}

// TestH1BodyTimeout: a client that announces more body than it sends is
// dropped after ClientTimeout wherever the body is read: a handler's read
// fails with os.ErrDeadlineExceeded, and a handler that reads none of it
// has its response sent at once (it once waited for the body without end)
// and the connection closed when the rest does not come. A body that does
// come keeps the connection.
func TestH1BodyTimeout(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/read" {
			if _, err := io.ReadAll(r.Body); err != nil {
				http.Error(w, fmt.Sprint(errors.Is(err, os.ErrDeadlineExceeded)), http.StatusRequestTimeout)
				return
			}
		}
		io.WriteString(w, "answered")
	})
	serve := func(timeout time.Duration) string {
		srv := New(h, Options{ClientTimeout: timeout})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	short, long := serve(300*time.Millisecond), serve(time.Minute)
	read := func(br *bufio.Reader) (int, string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// The handler reads: 408 once the body stalls.
	c := dial(t, short)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
	br := bufio.NewReader(c)
	if code, body := read(br); code != 408 || !strings.Contains(body, "true") {
		t.Errorf("stalled body, read by the handler: %d %q", code, body)
	}

	// The handler reads nothing: answered well before the minute's
	// timeout, and the connection carries on once the rest arrives.
	c = dial(t, long)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
	br = bufio.NewReader(c)
	if code, body := read(br); code != 200 || body != "answered" {
		t.Errorf("stalled body, not read: %d %q", code, body)
	}
	io.WriteString(c, "cdefghijGET /again HTTP/1.1\r\nHost: x\r\n\r\n")
	if code, body := read(br); code != 200 || body != "answered" {
		t.Errorf("the next request on the connection: %d %q", code, body)
	}

	// The rest never comes: the connection ends after the timeout.
	c = dial(t, short)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "GET /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
	br = bufio.NewReader(c)
	if code, _ := read(br); code != 200 {
		t.Errorf("stalled body on GET: %d", code)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the body stalled: %v, want the connection closed", err)
	}
}

// TestH1WebSocket upgrades connections with a real WebSocket library on
// the server side (coder/websocket, which calls WriteHeader(101) and then
// Hijack) and Debian's python3-websockets as the client, and exchanges
// messages. Before, the 101 never left and the handshake failed.
func TestH1WebSocket(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import websockets").Run(); err != nil {
		t.Fatalf("python module websockets is missing (scripts/test installs python3-websockets): %v", err)
	}
	h := testutil.WebSocketEcho(nil, func(*http.Request) string { return "echo: " })
	_, addr := h1Server(t, h, logging.Discard())
	client := `import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        for m in ["hello", "world"]:
            await ws.send(m)
            print(await ws.recv())
asyncio.run(main())
`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", client, "ws://"+addr+"/").CombinedOutput()
	if err != nil || string(out) != "echo: hello\necho: world\n" {
		t.Fatalf("python websockets client: %v\n%s", err, out)
	}
}

// TestH1SendfileCap: a file sent past its Content-Length leaves no more
// than was declared (it once sent all 100 bytes under Content-Length: 5,
// a desync), the handler gets http.ErrContentLength, and the connection
// carries the next request.
func TestH1SendfileCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, bytes.Repeat([]byte("0123456789"), 10), 0o644)
	errs := make(chan error, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, _ := os.Open(path)
		defer f.Close()
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "5")
		_, err := io.CopyN(w, f, 100)
		errs <- err
	})
	_, addr := h1Server(t, h, logging.Discard())
	c := dial(t, addr)
	br := bufio.NewReader(c)
	for i := 0; i < 2; i++ {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "01234" {
			t.Errorf("request %d: body %q", i, body)
		}
		if err := <-errs; err != http.ErrContentLength {
			t.Errorf("request %d: the handler's copy returned %v, want ErrContentLength", i, err)
		}
	}
}

// TestErrorLog: the server's own errors go to ErrorLog, with attributes.
func TestErrorLog(t *testing.T) {
	var errs testutil.SyncBuffer
	errorLog, _ := logging.New(&errs, "json", slog.LevelInfo)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	srv := New(h, Options{ErrorLog: errorLog})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	c := dial(t, ln.Addr().String())
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	io.ReadAll(c) // the connection ends after the panic
	srv.Close()
	if s := errs.String(); !strings.Contains(s, `"msg":"http: panic serving a request"`) || !strings.Contains(s, `"panic":"boom"`) {
		t.Errorf("error log: %s", s)
	}
}

// TestH1FullDuplex: a handler that enables full duplex reads the request
// body while it streams its response, line by line, as the client sends.
func TestH1FullDuplex(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(200)
		rc.Flush()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			fmt.Fprintf(w, "echo %s\n", sc.Text())
			rc.Flush()
		}
	})
	_, addr := h1Server(t, h, logging.Discard())
	c := dial(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response head: %v %v", resp, err)
	}
	lines := bufio.NewReader(resp.Body)
	for _, word := range []string{"one", "two"} {
		fmt.Fprintf(c, "%x\r\n%s\n\r\n", len(word)+1, word)
		got, err := lines.ReadString('\n')
		if err != nil || got != "echo "+word+"\n" {
			t.Fatalf("after sending %q: %q %v", word, got, err)
		}
	}
	io.WriteString(c, "0\r\n\r\n")
	if rest, err := io.ReadAll(lines); err != nil || len(rest) != 0 {
		t.Errorf("end of the response: %q %v", rest, err)
	}
}

// TestRegisterOnShutdown: a handler that streams without end ends when
// told that Shutdown began, so Shutdown returns.
func TestRegisterOnShutdown(t *testing.T) {
	ending := make(chan struct{})
	started := make(chan struct{})
	srv, addr := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		for {
			io.WriteString(w, "data: tick\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-ending:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}), logging.Discard())
	srv.RegisterOnShutdown(func() { close(ending) })
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a stream open: %v", err)
	}
}

// TestH1TrailerPrefix: trailers set with http.TrailerPrefix after the
// header was written make the response chunked, as net/http's, so that
// they follow the body, short as it is.
func TestH1TrailerPrefix(t *testing.T) {
	_, addr := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "short")
		w.Header().Set(http.TrailerPrefix+"X-Sum", "abc")
	}), logging.Discard())
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "short" || resp.Trailer.Get("X-Sum") != "abc" || resp.ContentLength != -1 {
		t.Errorf("%q, trailer %v, length %d; want the trailer after a chunked body", body, resp.Trailer, resp.ContentLength)
	}
}

// TestH1CloseAfterUnreadBody: a handler that refuses a body without
// reading it ends the connection; a client still sending it (Go's, which
// gives up on a reset write) must get the answer: the close lingers,
// reading what comes, instead of resetting the connection.
func TestH1CloseAfterUnreadBody(t *testing.T) {
	_, addr := h1Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, "too large")
	}), logging.Discard())
	body := strings.Repeat("x", 512<<10) // more than the sockets hold, less than the linger reads
	for range 5 {
		resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("the answer was lost: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || string(b) != "too large" {
			t.Fatalf("%d %q", resp.StatusCode, b)
		}
	}
}

// TestSetReason: a handler's reason phrase goes on the HTTP/1.x status
// line; one with a control character is refused, and so is one asked
// over HTTP/2, which has none.
func TestSetReason(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		phrase := r.URL.Query().Get("p")
		ok := SetReason(w, phrase)
		w.Header().Set("X-Took", strconv.FormatBool(ok))
		w.WriteHeader(599)
	})
	_, addr := h1Server(t, h, logging.Discard())
	for _, tt := range []struct {
		phrase, line string
		took         bool
	}{
		{"Custom Thing", "HTTP/1.1 599 Custom Thing\r\n", true},
		{"tab\tok", "HTTP/1.1 599 tab\tok\r\n", true},
		{"bad\rX", "HTTP/1.1 599 status code 599\r\n", false},
	} {
		c := dial(t, addr)
		fmt.Fprintf(c, "GET /?p=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", url.QueryEscape(tt.phrase))
		raw, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(raw), tt.line) || !strings.Contains(string(raw), "X-Took: "+strconv.FormatBool(tt.took)) {
			t.Errorf("%q: %.60q; want %q, taken %v", tt.phrase, raw, tt.line, tt.took)
		}
	}
	if status, _ := h2Request(t, h2Server(t, h, Options{}), ":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/?p=Custom"); status != 599 {
		t.Errorf("over HTTP/2: %d", status)
	}
}
