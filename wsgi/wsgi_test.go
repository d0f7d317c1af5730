package wsgi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/coder/websocket"
	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/internal/testutil"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/web"
	"github.com/torsion-server/torsion/workers"
)

// python is Debian's interpreter, which has the framework packages.
const python = "/usr/bin/python3"

// appsDir holds the test applications, beside the worker program.
const appsDir = "../workers/testdata"

type testServer struct {
	pool *Pool
	url  string
	addr string
	log  *testutil.SyncBuffer
}

func startPool(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startPoolWith(t, cfg, nil)
}

// startPoolWith is startPool with setup run on the pool before it starts:
// a test's clock, memory reader or random numbers.
func startPoolWith(t *testing.T, cfg Config, setup func(*Pool)) *testServer {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skip("needs Debian's python3")
	}
	logs := &testutil.SyncBuffer{}
	cfg.Log, _ = logging.New(logs, "text", slog.LevelInfo)
	if cfg.Python == "" {
		cfg.Python = python
	}
	if cfg.Dir == "" {
		cfg.Dir = appsDir
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(p)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The application answers at the root and, for SCRIPT_NAME, at /mount.
	root := &web.Resource{Handler: p}
	root.Mount("/mount", p)
	srv := httpserver.New(root, httpserver.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &testServer{pool: p, url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), log: logs}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp, string(b)
}

func TestResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		app     string
		status  int
		body    string // prefix of the body
		headers map[string]string
		log     string // expected in the log
	}{
		{"hello", 200, "Hello, world!\n", map[string]string{"Content-Type": "text/plain", "Content-Length": "14"}, ""},
		{"writer", 200, "written, returned", nil, ""},
		{"lazy_start", 201, "late", map[string]string{"X-Lazy": "yes"}, ""},
		{"exc_info", 500, "replaced", nil, ""},
		{"boom", 500, "<!DOCTYPE html>", nil, "RuntimeError: boom from the app"},
		{"bad_status", 500, "", nil, "invalid status 'OK'"},
		{"bad_header", 500, "", nil, "invalid value for header X-Bad"},
		{"hop_by_hop", 200, "x", map[string]string{"Keep-Alive": ""}, "the application sent a hop-by-hop header field; dropped"},
		{"no_start", 500, "", nil, "did not call start_response"},
		{"returns_str", 500, "", nil, "the application yielded str, not bytes"},
		{"returns_bytes", 500, "", nil, "the application returned bytes, not an iterable of bytes: return [body]"},
		{"log_errors", 200, "logged", nil, "a line for the log"},
	}
	for _, tt := range tests {
		t.Run(tt.app, func(t *testing.T) {
			s := startPool(t, Config{Config: workers.Config{App: "apps:" + tt.app}})
			resp, body := get(t, s.url+"/")
			if resp.StatusCode != tt.status || !strings.HasPrefix(body, tt.body) {
				t.Errorf("GET = %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
			for k, v := range tt.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if resp.Header.Get("Injected") != "" {
				t.Error("header injection reached the client")
			}
			if close := tt.app == "hop_by_hop"; resp.Close != close || slices.Contains(resp.TransferEncoding, "gzip") {
				t.Errorf("connection closed after the response: %v, want %v; Transfer-Encoding %v", resp.Close, close, resp.TransferEncoding)
			}
			if tt.log != "" {
				waitFor(t, func() bool { return strings.Contains(s.log.String(), tt.log) }, "log line %q in:\n%s", tt.log, s.log)
			}
			// The worker keeps serving after a failure.
			if resp, _ := get(t, s.url+"/"); resp.StatusCode != tt.status {
				t.Errorf("second request: %d", resp.StatusCode)
			}
		})
	}
}

// dial connects to the server for a raw exchange of at most 10 seconds.
func (s *testServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// logRecord is the record of the text log whose message is msg, with
// the lines that follow it (a multi-line attribute) up to the next
// record's time.
func logRecord(log, msg string) string {
	var rec []string
	for _, l := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(l, msg):
			rec = []string{l}
		case len(rec) > 0 && !(len(l) > 4 && l[4] == '-' && strings.HasPrefix(l, "20")):
			rec = append(rec, l)
		case len(rec) > 0:
			return strings.Join(rec, "\n")
		}
	}
	return strings.Join(rec, "\n")
}

func waitFor(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	testutil.WaitUntil(10*time.Second, cond, func() { t.Fatalf(format, args...) })
}

func TestEnviron(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps.environ", Threads: 2, Workers: 2}})
	req, _ := http.NewRequest("GET", s.url+"/mount/a%20b/%C3%A9?x=1&y=%20", nil)
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	req.Header.Set("Cookie", "a=1")
	req.Header.Add("Cookie", "b=2")
	req.Header.Set("Proxy", "http://evil")
	req.Host = "example.org:8443"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	want := map[string]any{
		"REQUEST_METHOD":        "GET",
		"SCRIPT_NAME":           "/mount",
		"PATH_INFO":             "/a b/\u00c3\u00a9", // UTF-8 bytes decoded as latin-1 (PEP 3333)
		"QUERY_STRING":          "x=1&y=%20",
		"SERVER_NAME":           "example.org",
		"SERVER_PORT":           "8443",
		"SERVER_PROTOCOL":       "HTTP/1.1",
		"REMOTE_ADDR":           "127.0.0.1",
		"HTTP_X_MULTI":          "one, two",
		"HTTP_COOKIE":           "a=1; b=2",
		"HTTP_HOST":             "example.org:8443",
		"wsgi.url_scheme":       "http",
		"wsgi.multithread":      true,
		"wsgi.multiprocess":     true,
		"wsgi.run_once":         false,
		"wsgi.input":            "Input",
		"wsgi.version":          []any{1.0, 0.0},
		"wsgi.input_terminated": true,
	}
	for k, v := range want {
		if fmt.Sprint(env[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %#v, want %#v", k, env[k], v)
		}
	}
	for _, k := range []string{"HTTP_PROXY", "CONTENT_LENGTH", "CONTENT_TYPE"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s present: %v", k, env[k])
		}
	}
	if _, ok := env["REMOTE_PORT"]; !ok {
		t.Error("no REMOTE_PORT")
	}
}

// TestUploadCutShort: a body that cannot be read to its end makes the
// application's read raise, rather than pass for the whole body, and the
// client gets the status that says why.
// Streamed (no spool), the application's read fails; spooled, Go finds
// out before the request takes a worker.
func TestUploadCutShort(t *testing.T) {
	t.Parallel()
	for _, threads := range []int{1, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) { testUploadCutShort(t, threads, -1) })
	}
	t.Run("spooled", func(t *testing.T) { testUploadCutShort(t, 1, 0) })
}

func testUploadCutShort(t *testing.T, threads int, spool int64) {
	s := startPool(t, Config{Config: workers.Config{App: "apps:upload", Threads: threads}, BodyBuffer: 64 << 10, BodySpool: spool, MaxBody: 1 << 20})
	part := strings.Repeat("a", 200<<10)
	for _, tt := range []struct {
		name, req string
		want      int
		log       string
	}{
		{"client stops sending", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n" + part, 400, `the request body was cut short method=POST uri=/ err="unexpected EOF"`},
		{"chunk framing breaks", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n32000\r\n" + part + "\r\nzz\r\n", 400, `the request body was cut short method=POST uri=/ err="malformed chunked encoding"`},
		{"chunked body over the limit", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("32000\r\n"+part+"\r\n", 6) + "0\r\n\r\n", 413, `the request body was cut short method=POST uri=/ err="http: request body too large"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := s.dial(t)
			io.WriteString(c, tt.req)
			c.(*net.TCPConn).CloseWrite()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d %q, want %d", resp.StatusCode, body, tt.want)
			}
			if spool < 0 {
				waitFor(t, func() bool { return strings.Contains(s.log.String(), tt.log) }, "no %q in the log:\n%s", tt.log, s.log)
			}
		})
	}
	if strings.Contains(s.log.String(), "Traceback") {
		t.Errorf("the application's OSError was logged with its traceback:\n%s", s.log)
	}
	// The worker goes on serving whole bodies.
	resp, err := http.Post(s.url+"/", "application/octet-stream", strings.NewReader(part+part))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), fmt.Sprint(len(part)*2)+" ") {
		t.Errorf("whole body after the cut ones: %q", body)
	}
}

// TestClientTimeout: a client that stops reading a streamed response, or
// stops sending a body the application reads, holds the worker only for
// ClientTimeout; then the worker closes the iterable and serves others.
func TestClientTimeout(t *testing.T) {
	s := startPool(t, Config{Config: workers.Config{App: "apps:tracked"}, ClientTimeout: 500 * time.Millisecond})
	mark := filepath.Join(t.TempDir(), "closed")
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s.addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(16 << 10)
	fmt.Fprintf(c, "GET /?%s HTTP/1.1\r\nHost: x\r\n\r\n", mark)
	c.Read(make([]byte, 1<<10)) // and no more: the stream stalls
	waitFor(t, func() bool { _, err := os.Stat(mark); return err == nil }, "a stalled reader still holds the worker")

	up := startPool(t, Config{Config: workers.Config{App: "apps:upload"}, BodyBuffer: 4096, ClientTimeout: 500 * time.Millisecond})
	c2 := up.dial(t)
	io.WriteString(c2, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("a", 10000))
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil) // the rest never comes
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled upload: %d, want 408", resp.StatusCode)
	}
	if r, body := get(t, up.url+"/"); r.StatusCode != 200 || body != "0 "+hex.EncodeToString(sha256.New().Sum(nil)) {
		t.Errorf("after the stalled upload: %d %q", r.StatusCode, body)
	}
}

// TestClientTimeoutPause: a stream that pauses longer than ClientTimeout,
// and a close() that does, do not cut off a client that reads.
func TestClientTimeoutPause(t *testing.T) {
	s := startPool(t, Config{Config: workers.Config{App: "apps:pausing"}, ClientTimeout: 300 * time.Millisecond})
	resp, body := get(t, s.url+"/?0.8")
	if resp.StatusCode != 200 || len(body) != 5*65536+3 || !strings.HasSuffix(body, "end") {
		t.Errorf("GET = %d, %d bytes ending %q", resp.StatusCode, len(body), body[max(0, len(body)-3):])
	}
}

// TestContentLengthMismatch: PEP 3333 says no more than the declared
// Content-Length leaves, and a body that falls short ends the connection;
// a Content-Length that is not one number is an application error.
func TestContentLengthMismatch(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:length_mismatch"}})
	c := s.dial(t)
	br := bufio.NewReader(c)
	for range 2 { // the connection goes on after a long body, cut
		io.WriteString(c, "GET /long HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(resp.Body); string(b) != "more " || err != nil {
			t.Errorf("/long: %q, %v; want the declared 5 bytes", b, err)
		}
	}
	io.WriteString(c, "GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if string(b) != "only ten b" || err != io.ErrUnexpectedEOF {
		t.Errorf("/short: %q, %v; want 10 bytes and the connection closed", b, err)
	}
	for _, path := range []string{"/twice", "/bad"} {
		if resp, _ := get(t, s.url+path); resp.StatusCode != 500 {
			t.Errorf("%s: %d, want 500", path, resp.StatusCode)
		}
	}
	for _, want := range []string{
		"the application sent more than its Content-Length; the rest is dropped method=GET uri=/long content_length=5",
		"the application sent less than its Content-Length method=GET uri=/short sent=10 content_length=100",
		"Content-Length given twice",
		"invalid Content-Length '5x'",
	} {
		waitFor(t, func() bool { return strings.Contains(s.log.String(), want) }, "no %q in the log:\n%s", want, s.log)
	}
}

// TestWorkerForgetsEndedRequests: acknowledgements that arrive after a
// streamed response ended leave nothing behind in the worker.
func TestWorkerForgetsEndedRequests(t *testing.T) {
	for _, threads := range []int{1, 3} {
		s := startPool(t, Config{Config: workers.Config{App: "apps:big_stream", Threads: threads}})
		for range 30 {
			if resp, body := get(t, s.url+"/"); resp.StatusCode != 200 || len(body) != 640<<10 {
				t.Fatalf("stream: %d, %d bytes", resp.StatusCode, len(body))
			}
		}
		if _, body := get(t, s.url+"/state"); body != "inbox=0 cancelled=0 live=1" {
			t.Errorf("threads=%d: after 30 streams, %s; want inbox=0 cancelled=0 live=1", threads, body)
		}
	}
}

// TestHeadStopsStream: HEAD on an endless stream answers with the head and
// stops the application, so a kept-alive client can go on.
func TestHeadStopsStream(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:tracked"}})
	c := s.dial(t)
	br := bufio.NewReader(c)
	for i := range 2 {
		mark := filepath.Join(t.TempDir(), "closed")
		fmt.Fprintf(c, "HEAD /?%s HTTP/1.1\r\nHost: x\r\n\r\n", mark)
		resp, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
		if err != nil {
			t.Fatalf("HEAD %d: %v", i, err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("HEAD %d: %d %v", i, resp.StatusCode, resp.Header)
		}
		waitFor(t, func() bool { _, err := os.Stat(mark); return err == nil }, "HEAD %d: the endless iterable was not closed", i)
	}
}

// TestEnvironNUL: a NUL in the decoded path would split the environ block
// and let the client add variables of its choosing (REMOTE_USER, say); such
// a request gets 400 and never reaches the application.
func TestEnvironNUL(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps.environ", Workers: 1}})
	for _, path := range []string{"/x%00REMOTE_USER%00admin", "/x%00", "/%00%00"} {
		resp, body := get(t, s.url+path)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "NUL") || strings.Contains(body, "REMOTE_USER") {
			t.Errorf("GET %s: %d %q, want 400 about the NUL", path, resp.StatusCode, body)
		}
	}
	resp, body := get(t, s.url+"/x?q=%00")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"QUERY_STRING": "q=%00"`) {
		t.Errorf("%%00 in the query string (which stays encoded): %d %q", resp.StatusCode, body)
	}
}

// TestConnect: CONNECT never reaches a WSGI application, whose 2xx would
// tell a proxy in front that the connection became a tunnel.
func TestConnect(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:hello"}})
	c := s.dial(t)
	io.WriteString(c, "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("CONNECT: %d, want 405", resp.StatusCode)
	}
}

// TestEnvironSingle checks wsgi.multithread and wsgi.multiprocess are false
// with one worker of one thread.
func TestEnvironSingle(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps.environ", Workers: 1, Threads: 1}})
	_, body := get(t, s.url+"/")
	var env map[string]any
	json.Unmarshal([]byte(body), &env)
	if env["wsgi.multithread"] != false || env["wsgi.multiprocess"] != false {
		t.Errorf("multithread %v, multiprocess %v; want false, false", env["wsgi.multithread"], env["wsgi.multiprocess"])
	}
}

// TestUpload sends bodies in memory, spooled, streamed, and spooled then
// streamed (chunked, longer than the spool), by length and chunked.
func TestUpload(t *testing.T) {
	t.Parallel()
	for _, spool := range []int64{0, 1 << 20, -1} {
		t.Run(fmt.Sprintf("spool=%d", spool), func(t *testing.T) { testUpload(t, spool) })
	}
}

func testUpload(t *testing.T, spool int64) {
	s := startPool(t, Config{Config: workers.Config{App: "apps:upload"}, BodyBuffer: 64 << 10, BodySpool: spool})
	for _, size := range []int{0, 10, 64 << 10, 64<<10 + 1, 5 << 20} {
		data := bytes.Repeat([]byte("0123456789abcdefg"), size/17+1)[:size]
		sum := sha256.Sum256(data)
		want := fmt.Sprintf("%d %s", size, hex.EncodeToString(sum[:]))
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d chunked=%v", size, chunked), func(t *testing.T) {
				var body io.Reader = bytes.NewReader(data)
				if chunked {
					body = io.MultiReader(body) // hides the length: chunked encoding
				}
				resp, err := http.Post(s.url+"/", "application/octet-stream", body)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(got) != want {
					t.Errorf("upload = %q, want %q", got, want)
				}
			})
		}
	}
}

func TestReadline(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:lines"}, BodyBuffer: 4})
	resp, err := http.Post(s.url+"/", "text/plain", strings.NewReader("first line\nsecond line\nthird\nfourth"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	want := []string{"first line\n", "secon", "d l", "ine\n", "third\n", "fourth"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

// TestStreaming checks that a generator's chunks reach the client as they
// are produced (Server-Sent Events), in chunked encoding.
func TestStreaming(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:stream"}})
	resp, err := http.Get(s.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("transfer encoding %v, want chunked", resp.TransferEncoding)
	}
	r := bufio.NewReader(resp.Body)
	start := time.Now()
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: 0") {
		t.Fatalf("first event %q, %v", line, err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("first event took %v: not streamed", d)
	}
	rest, _ := io.ReadAll(r)
	if !strings.Contains(string(rest), "data: 2") {
		t.Errorf("rest = %q", rest)
	}
}

func TestHead(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:hello"}})
	resp, err := http.Head(s.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != 0 || resp.Header.Get("Content-Length") != "14" {
		t.Errorf("HEAD = %d, %q, length %q", resp.StatusCode, b, resp.Header.Get("Content-Length"))
	}
}

func TestFileWrapper(t *testing.T) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("torsion-test-file-%d.bin", os.Getpid()))
	data := bytes.Repeat([]byte("file wrapper "), 100000)
	os.WriteFile(path, data, 0o644)
	defer os.Remove(path)
	s := startPool(t, Config{Config: workers.Config{App: "apps:file_wrapper"}})
	if resp, body := get(t, s.url+"/"); resp.StatusCode != 200 || body != string(data) {
		t.Errorf("GET = %d, %d bytes, want %d", resp.StatusCode, len(body), len(data))
	}
	req, _ := http.NewRequest("GET", s.url+"/", nil)
	req.Header.Set("Range", "bytes=5-11")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || string(b) != "wrapper" {
		t.Errorf("range = %d %q, want 206 \"wrapper\"", resp.StatusCode, b)
	}
	// The file's bytes count toward its Content-Length: no warning that
	// the application sent less than it declared.
	if strings.Contains(s.log.String(), "its Content-Length") {
		t.Errorf("a false warning:\n%s", s.log)
	}
}

// TestValidator runs an application wrapped in wsgiref.validate, which
// raises on any breach of PEP 3333 by the server.
func TestValidator(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:validated"}})
	for _, tc := range []struct {
		method, path string
		body         io.Reader
		want         string
	}{
		{"GET", "/", nil, "GET 0"},
		{"POST", "/", strings.NewReader("hello"), "POST 5"},
		{"POST", "/", io.MultiReader(strings.NewReader("chunked body")), "POST 12"},
		{"HEAD", "/", nil, ""},
		{"GET", "/stream", nil, "one two three"},
	} {
		req, _ := http.NewRequest(tc.method, s.url+tc.path, tc.body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != tc.want {
			t.Errorf("%s %s = %d %q, want 200 %q; log:\n%s", tc.method, tc.path, resp.StatusCode, b, tc.want, s.log)
		}
	}
	if strings.Contains(s.log.String(), "Error") {
		t.Errorf("validator complained:\n%s", s.log)
	}
}

// TestClientGoneClosesIterable checks close() is called when the client
// disconnects mid-response, and that the worker is free again.
func TestClientGoneClosesIterable(t *testing.T) {
	s := startPool(t, Config{Config: workers.Config{App: "apps:tracked"}})
	mark := filepath.Join(t.TempDir(), "closed")
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /?%s HTTP/1.1\r\nHost: x\r\n\r\n", mark)
	buf := make([]byte, 1<<16)
	c.Read(buf) // the response has begun
	c.Close()
	waitFor(t, func() bool { b, _ := os.ReadFile(mark); return string(b) == "closed" }, "close() was not called")
	// The only worker serves again, and this second iterable is closed
	// too when its client leaves (waited for, so that close() does not
	// write into the temporary directory while the test removes it).
	second := filepath.Join(t.TempDir(), "second")
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(s.url + "/?" + second)
		if err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("worker still busy after the client left")
	}
	waitFor(t, func() bool { b, _ := os.ReadFile(second); return string(b) == "closed" }, "the second iterable was not closed")
}

// TestCrashedWorkerIsReplaced: a worker that crashes is replaced, at once
// (a first crash gets no backoff; TestCrashLoop covers crash loops).
func TestCrashedWorkerIsReplaced(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:crash"}})
	resp, _ := get(t, s.url+"/")
	if resp.StatusCode != 502 {
		t.Errorf("crash = %d, want 502", resp.StatusCode)
	}
	waitFor(t, func() bool { return strings.Contains(s.log.String(), "exited unexpectedly") }, "no crash log line:\n%s", s.log)
	if line := `status="exit status 7" restart_in=0s`; !strings.Contains(s.log.String(), line) {
		t.Errorf("no %q in the log:\n%s", line, s.log)
	}
	waitFor(t, func() bool { return strings.Count(s.log.String(), "worker started worker=1") == 2 }, "worker not restarted:\n%s", s.log)
}

// TestCrashLeavingChild: a worker that dies while a process it started
// still holds its output pipe is replaced all the same.
func TestCrashLeavingChild(t *testing.T) {
	s := startPool(t, Config{Config: workers.Config{App: "apps:crash_leaving_child"}})
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(string(b)); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	if resp, _ := get(t, s.url+"/crash?"+pidFile); resp.StatusCode != 502 {
		t.Errorf("crash = %d, want 502", resp.StatusCode)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(s.url + "/")
	if err != nil {
		t.Fatalf("no worker after the crash: %v\n%s", err, s.log)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "alive" {
		t.Errorf("after the crash: %d %q", resp.StatusCode, body)
	}
	if !strings.Contains(s.log.String(), `worker exited unexpectedly; restarting it worker=1 pid=`) {
		t.Errorf("no crash log line:\n%s", s.log)
	}
}

// TestCrashLosesNoOtherRequest crashes one worker while others are queued
// behind it: they are retried and answered.
func TestCrashLosesNoOtherRequest(t *testing.T) {
	s := startPool(t, Config{Config: workers.Config{App: "apps:slow", Workers: 2}})
	// Find the workers' pids, then queue requests and kill one worker.
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	for i := 0; i < 20; i++ {
		wg.Go(func() {
			resp, err := http.Get(s.url + "/?0.05")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	waitFor(t, func() bool { _, busy, queued, _ := s.pool.Stats(); return busy == 2 && queued > 0 }, "the requests did not queue")
	syscall.Kill(s.pool.Workers()[0].PID, syscall.SIGKILL)
	wg.Wait()
	close(codes)
	var ok, failed int
	for c := range codes {
		if c == 200 {
			ok++
		} else {
			failed++
		}
	}
	// Only the request running on the killed worker may fail.
	if failed > 1 {
		t.Errorf("%d of 20 requests failed when one worker died, want at most 1", failed)
	}
}

// TestIdempotentRetry: a worker killed under a request that has sent
// nothing: a GET is tried once more on another worker, as HAProxy's
// retry-on does (it was 502), with a log line; a POST stays 502.
func TestIdempotentRetry(t *testing.T) {
	s := startPool(t, Config{Config: workers.Config{App: "apps:slow", Workers: 2}})
	for _, tt := range []struct {
		method string
		want   int
	}{{"GET", 200}, {"POST", 502}} {
		done := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest(tt.method, s.url+"/?1.5", strings.NewReader(map[string]string{"GET": "", "POST": "x=1"}[tt.method]))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		victim := 0
		waitFor(t, func() bool {
			for _, w := range s.pool.Workers() {
				if len(w.Running) > 0 {
					victim = w.PID
					return true
				}
			}
			return false
		}, "the %s never reached a worker", tt.method)
		syscall.Kill(victim, syscall.SIGKILL)
		if got := <-done; got != tt.want {
			t.Errorf("%s whose worker was killed: %d, want %d", tt.method, got, tt.want)
		}
		// Both workers back before the next case.
		waitFor(t, func() bool { w, _, _, _ := s.pool.Stats(); return w == 2 }, "the killed worker was not replaced")
	}
	if !strings.Contains(s.log.String(), "trying it on another") {
		t.Errorf("no log line for the retry:\n%s", s.log)
	}
}

// TestTimeout: a request past the timeout gets 504, and its worker is
// killed after one error record that names the request and holds the
// Python stack of the line it hung on (faulthandler, asked by SIGUSR1):
// a blocking sleep, and an endless loop in Python.
func TestTimeout(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ app, target string }{
		{"slow", "/?30"}, // a blocking sleep
		{"spin", "/"},    // an endless loop in Python
	} {
		t.Run(tt.app, func(t *testing.T) {
			t.Parallel()
			s := startPool(t, Config{Config: workers.Config{App: "apps:" + tt.app, Timeout: 300 * time.Millisecond}})
			start := time.Now()
			resp, body := get(t, s.url+tt.target)
			if resp.StatusCode != 504 {
				t.Errorf("hung request = %d %q, want 504", resp.StatusCode, body)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("504 took %v", d)
			}
			waitFor(t, func() bool { return strings.Count(s.log.String(), "worker started worker=1") == 2 }, "worker not replaced:\n%s", s.log)
			record := logRecord(s.log.String(), "worker spent longer than the timeout on one request; killing it")
			// The frame of the application's function, at the line it
			// was on (a loop's test or its body).
			want := regexp.MustCompile(`apps\.py", line \d+ in ` + tt.app + "\n")
			if !want.MatchString(record) || !strings.Contains(record, "method=GET uri="+tt.target+" ") {
				t.Errorf("the kill's record lacks the request or %s:\n%s\nlog:\n%s", want, record, s.log)
			}
			if resp, _ := get(t, s.url+"/?0"); tt.app == "slow" && resp.StatusCode != 200 {
				t.Errorf("after the timeout: %d", resp.StatusCode)
			}
		})
	}
}

func TestImportFailure(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(python); err != nil {
		t.Skip("needs Debian's python3")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.py"), []byte("import nonexistent_module_xyz\n"), 0o644)
	for _, tc := range []struct{ app, want string }{
		{"broken:application", "ModuleNotFoundError: No module named 'nonexistent_module_xyz'"},
		{"missing_module:app", "No module named 'missing_module'"},
		{"apps:nothing_here", "has no attribute 'nothing_here'"},
	} {
		cfgDir := dir
		if strings.HasPrefix(tc.app, "apps") {
			cfgDir = appsDir
		}
		p, err := New(Config{Config: workers.Config{App: tc.app, Python: python, Dir: cfgDir, Workers: 2}})
		if err != nil {
			t.Fatal(err)
		}
		err = p.Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%s) = %v, want %q", tc.app, err, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no application"},
		{Config{Config: workers.Config{App: "hello:"}}, "want MODULE:ATTR, MODULE.ATTR or MODULE"},
		{Config{Config: workers.Config{App: "a:b", Python: "/no/such/python"}}, "python interpreter"},
		{Config{Config: workers.Config{App: "a:b", Dir: "/no/such/dir"}}, "not a directory"},
		{Config{Config: workers.Config{App: "a:b", Workers: -1}}, "cannot be negative"},
		{Config{Config: workers.Config{App: "a:b"}, BodyBuffer: -1}, "cannot be negative"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestPyPy runs the worker under PyPy: requests, streamed uploads and
// responses, file_wrapper, the validator and a crash.
func TestPyPy(t *testing.T) {
	if testing.Short() {
		t.Skip("PyPy starts slowly; run without -short")
	}
	const pypy = "/usr/bin/pypy3"
	if _, err := os.Stat(pypy); err != nil {
		t.Skip("needs Debian's pypy3 (scripts/test installs it)")
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("torsion-test-file-%d.bin", os.Getpid()))
	os.WriteFile(path, []byte("from a file"), 0o644)
	defer os.Remove(path)
	tests := []struct {
		app, method string
		body        io.Reader
		status      int
		want        string
	}{
		{"hello", "GET", nil, 200, "Hello, world!\n"},
		{"upload", "POST", io.MultiReader(strings.NewReader(strings.Repeat("y", 3<<20))), 200, "3145728 "},
		{"stream", "GET", nil, 200, "data: 0"},
		{"file_wrapper", "GET", nil, 200, "from a file"},
		{"validated", "POST", strings.NewReader("abc"), 200, "POST 3"},
		{"boom", "GET", nil, 500, "<!DOCTYPE html>"},
		{"crash", "GET", nil, 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.app, func(t *testing.T) {
			s := startPool(t, Config{Config: workers.Config{App: "apps:" + tt.app, Python: pypy}, BodyBuffer: 1 << 20})
			req, _ := http.NewRequest(tt.method, s.url+"/", tt.body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.HasPrefix(string(b), tt.want) {
				t.Errorf("%s = %d %.60q, want %d %q; log:\n%s", tt.app, resp.StatusCode, b, tt.status, tt.want, s.log)
			}
		})
	}
}

func TestMaxBody(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:upload"}, MaxBody: 1000})
	for _, tc := range []struct {
		name string
		body io.Reader
		want int
	}{
		{"small", strings.NewReader("ok"), 200},
		{"declared too large", strings.NewReader(strings.Repeat("x", 1001)), 413},
		{"chunked too large", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))), 413},
	} {
		resp, err := http.Post(s.url+"/", "text/plain", tc.body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}

// TestThreaded runs concurrent uploads, streams and disconnects on one
// worker with four threads: the reader thread routes body, window and
// cancel frames to the right request.
func TestThreaded(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:upload", Threads: 4}, BodyBuffer: 4096})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte('a' + i)}, 200_000+i)
			sum := sha256.Sum256(data)
			want := fmt.Sprintf("%d %s", len(data), hex.EncodeToString(sum[:]))
			resp, err := http.Post(s.url+"/", "application/octet-stream", io.MultiReader(bytes.NewReader(data)))
			if err != nil {
				t.Error(err)
				return
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != want {
				t.Errorf("upload %d = %q, want %q", i, got, want)
			}
		})
	}
	wg.Wait()

	tr := startPool(t, Config{Config: workers.Config{App: "apps:tracked", Threads: 4}})
	var marks []string
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		mark := filepath.Join(t.TempDir(), "closed")
		marks = append(marks, mark)
		c, err := net.Dial("tcp", tr.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /?%s HTTP/1.1\r\nHost: x\r\n\r\n", mark)
		c.Read(make([]byte, 1<<16))
		conns = append(conns, c)
	}
	// A big streamed response to a client that reads it all goes through
	// the window while three others stall and then leave.
	resp, err := http.Get(tr.url + "/?" + filepath.Join(t.TempDir(), "full"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.CopyN(io.Discard, resp.Body, 8<<20)
	resp.Body.Close()
	if n != 8<<20 {
		t.Errorf("streamed %d bytes, want 8 MiB", n)
	}
	for i, m := range marks {
		// Still connected: close() comes only once the client leaves.
		if b, _ := os.ReadFile(m); string(b) == "closed" {
			t.Fatalf("iterable %d closed while its client was connected", i)
		}
		conns[i].Close()
		waitFor(t, func() bool { b, _ := os.ReadFile(m); return string(b) == "closed" }, "iterable %d not closed after its client left", i)
	}
}

// TestReasonPhrases: the application's own reason phrase reaches an
// HTTP/1.x client, as under gunicorn and Twisted; torsion once replaced
// it ("599 Custom" with "599 status code 599", "200 Fine Thanks" with
// "200 OK", exc_info's "500 Oops" with "500 Internal Server Error").
func TestReasonPhrases(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:reason"}})
	for _, status := range []string{"599 Custom", "200 Fine Thanks", "404 Not Found", "201 Created"} {
		resp, err := http.Get(s.url + "/?" + strings.ReplaceAll(status, " ", "+"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Status != status {
			t.Errorf("the application's %q came as %q", status, resp.Status)
		}
	}
	s2 := startPool(t, Config{Config: workers.Config{App: "apps:exc_info"}})
	resp, err := http.Get(s2.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Status != "500 Oops" {
		t.Errorf("exc_info's 500 Oops came as %q", resp.Status)
	}
}

// TestNoContentType: an application that sends no Content-Type gets none
// added, as WSGI servers do; torsion once sniffed text/html from the body.
func TestNoContentType(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:no_type"}})
	c := s.dial(t)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(raw), "HTTP/1.1 200 ") || strings.Contains(strings.ToLower(string(raw)), "content-type") {
		t.Errorf("response %q; want a 200 without Content-Type", raw)
	}
}

// TestFailureAfterFirstChunk: an application that fails just after its
// first small chunk (an exception in its iterable, or exc_info after the
// headers) gets its client either a 500, when nothing had left yet, or
// what had left and a cut connection; never an empty reply, which it got
// 8 times in 12 while the access log said 200, and never a response that
// looks whole.
func TestFailureAfterFirstChunk(t *testing.T) {
	t.Parallel()
	for _, app := range []string{"boom_midway", "exc_info_late"} {
		t.Run(app, func(t *testing.T) {
			s := startPool(t, Config{Config: workers.Config{App: "apps:" + app}})
			for i := range 12 {
				resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(s.url + "/")
				if err != nil {
					t.Fatalf("try %d: no answer at all: %v", i+1, err)
				}
				body, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 500 && rerr == nil && strings.Contains(string(body), "<!DOCTYPE html>"):
				case resp.StatusCode == 200 && rerr != nil && !strings.Contains(string(body), "never sent"):
				default:
					t.Fatalf("try %d: %d %q (read error %v); want a 500, or a cut-off 200", i+1, resp.StatusCode, body, rerr)
				}
			}
			waitFor(t, func() bool { return strings.Contains(s.log.String(), "Error: ") }, "no traceback:\n%s", s.log)
		})
	}
}

// TestStopDuringRestart stops the pool while a crashed worker is being
// replaced by one whose import is slow: Stop must not wait for it.
func TestStopDuringRestart(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "slow")
	t.Setenv("TORSION_TEST_SLOW_IMPORT", marker)
	if _, err := os.Stat(python); err != nil {
		t.Skip("needs Debian's python3")
	}
	p, err := New(Config{Config: workers.Config{App: "apps:crash", Python: python, Dir: appsDir, Workers: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(marker, nil, 0o644)
	srv := httptest.NewServer(p)
	defer srv.Close()
	// A POST, not tried again on another worker (a GET would wait for the
	// slow restart).
	if resp, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("x")); err == nil {
		resp.Body.Close() // the worker crashed: 502, and a slow restart begins
	}
	waitFor(t, func() bool { _, err := os.Stat(marker + ".importing"); return err == nil }, "the restart did not begin")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	p.Stop(ctx)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Stop took %v while a worker was starting", d)
	}
}

// TestReadGrowing: the buffer for a body grows with what arrives, not with
// what was announced.
func TestReadGrowing(t *testing.T) {
	for _, tt := range []struct {
		name             string
		data             string
		limit, announced int64
		want             string
		maxCap           int
	}{
		{"announced, all arrived", "hello", 100, 5, "hello", 5},
		{"announced 1 MiB, 2 bytes arrived", "ab", 1 << 20, 1 << 20, "ab", 64 << 10},
		{"unknown length", strings.Repeat("x", 10000), 1 << 20, -1, strings.Repeat("x", 10000), 24 << 10},
		{"over the limit", strings.Repeat("x", 100), 10, -1, strings.Repeat("x", 10), 10},
	} {
		var asked int
		got, spent, err := readGrowing(iotest.HalfReader(strings.NewReader(tt.data)), tt.limit, tt.announced, func(n int64) bool { asked += int(n); return true })
		if err != nil || spent || string(got) != tt.want || cap(got) > tt.maxCap || asked != cap(got) {
			t.Errorf("%s: %d bytes (cap %d, %d asked), %v; want %d bytes, cap at most %d", tt.name, len(got), cap(got), asked, err, len(tt.want), tt.maxCap)
		}
	}
}

// TestBodyBudget: the bodies buffered before their requests take a worker
// hold at most the BodyBudget's memory and disk together. Once, 400
// clients that each sent 1.1 MB of an announced 60 MB held 700 MiB, and
// 40 that stalled within 45 MB bodies held 1.9 GB of spool files. A body
// that finds the memory spent goes to the spool; one that finds the disk
// spent is answered 503 with Retry-After; what a body held comes back when
// its request ends, and then bodies are served again.
func TestBodyBudget(t *testing.T) {
	const memory, disk = 100 << 10, 1 << 20
	budget := NewBodyBudget(memory, disk)
	s := startPool(t, Config{Config: workers.Config{App: "apps:upload"}, BodyBuffer: 64 << 10, BodySpool: 2 << 20, Bodies: budget, SpoolDir: t.TempDir()})
	stalled := func(announce, send int) net.Conn {
		c := s.dial(t)
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", announce, strings.Repeat("a", send))
		return c
	}
	a := stalled(1500<<10, 800<<10)
	waitFor(t, func() bool { return budget.disk.left.Load() <= disk-(800<<10)+(64<<10) }, "the first body is not on disk: %d bytes of the disk budget left", budget.disk.left.Load())
	if left := budget.memory.left.Load(); left < 0 || left > memory-(64<<10) {
		t.Errorf("memory budget left with one body of 64 KiB in memory: %d", left)
	}
	b := stalled(1500<<10, 400<<10)
	b.SetDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(b), nil)
	if err != nil {
		t.Fatalf("a body past the disk budget: %v", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a body past the disk budget got %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if left := budget.disk.left.Load(); left < 0 {
		t.Errorf("the disk budget went below zero: %d", left)
	}
	a.Close()
	b.Close()
	waitFor(t, func() bool { return budget.memory.left.Load() == memory && budget.disk.left.Load() == disk },
		"the stalled bodies did not give back what they held: memory %d of %d, disk %d of %d", budget.memory.left.Load(), memory, budget.disk.left.Load(), disk)
	resp, err = http.Post(s.url+"/", "application/octet-stream", strings.NewReader(strings.Repeat("b", 500<<10)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), fmt.Sprint(500<<10)+" ") {
		t.Errorf("an upload after the stalled ones: %d %q", resp.StatusCode, body)
	}
}

// TestTimeoutKillsChildren: a worker killed for its timeout takes the
// processes it started with it (they once survived it).
func TestTimeoutKillsChildren(t *testing.T) {
	s := startPool(t, Config{Config: workers.Config{App: "apps:hang_with_child", Timeout: 300 * time.Millisecond}})
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	if resp, _ := get(t, s.url+"/?"+pidFile); resp.StatusCode != 504 {
		t.Errorf("hung request = %d, want 504", resp.StatusCode)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(string(b))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	waitFor(t, func() bool {
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return true
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err != nil || strings.Contains(string(stat), ") Z ") // gone, or a zombie not yet reaped
	}, "the worker's child %d outlived the worker", pid)
}

// TestHugeFrame: a worker announcing a frame over workers.MaxPayload is killed as
// broken, instead of torsion allocating what it announced; the client gets
// 502 and the next request a new worker.
func TestHugeFrame(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:huge_frame"}})
	if resp, _ := get(t, s.url+"/"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("GET = %d, want 502", resp.StatusCode)
	}
	waitFor(t, func() bool { return strings.Contains(s.log.String(), "the worker broke the protocol") }, "no protocol error in the log:\n%s", s.log)
	waitFor(t, func() bool { return strings.Count(s.log.String(), "worker started worker=1") == 2 }, "worker not replaced:\n%s", s.log)
}

// TestMaxQueue: with every worker busy and MaxQueue requests waiting, the
// next request gets 503 with Retry-After at once; those waiting are
// served.
func TestMaxQueue(t *testing.T) {
	s := startPool(t, Config{Config: workers.Config{App: "apps:slow", MaxQueue: 2}})
	depth := s.pool.Config().Threads + 8 // requests one worker holds (Config.MaxQueue)
	codes := make(chan int, depth+2)
	for range depth + 2 {
		go func() {
			resp, err := http.Get(s.url + "/?0.2")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	waitFor(t, func() bool { _, _, queued, _ := s.pool.Stats(); return queued == 2 }, "the queue did not fill")
	resp, body := get(t, s.url+"/?0")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "too many requests wait") {
		t.Errorf("over the queue: %d %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	for range depth + 2 {
		if c := <-codes; c != 200 {
			t.Errorf("a request that was let in: %d", c)
		}
	}
}

// TestMaxMemory: a worker whose memory stays over the limit is recycled
// after its requests, with a log line giving its size; its replacement
// serves.
func TestMaxMemory(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:hog", MaxMemory: 100 << 20}})
	_, before := get(t, s.url+"/hog")
	waitFor(t, func() bool { return strings.Contains(s.log.String(), "worker uses more memory than the limit") }, "no recycling:\n%s", s.log)
	waitFor(t, func() bool { return strings.Count(s.log.String(), "worker started worker=1") == 2 }, "not replaced:\n%s", s.log)
	if _, after := get(t, s.url+"/"); after == before {
		t.Errorf("the worker over the limit (pid %s) still serves", before)
	}
}

// TestErrorsLines: what an application writes to wsgi.errors is logged a
// line at a time: print() makes one line (not a second, empty one),
// writes are joined until a newline, and an unfinished line is logged when
// the request ends.
func TestErrorsLines(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "apps:log_errors"}})
	get(t, s.url+"/")
	waitFor(t, func() bool { return strings.Contains(s.log.String(), "and an unfinished one") }, "no unfinished line:\n%s", s.log)
	var lines []string
	for _, l := range strings.Split(s.log.String(), "\n") {
		if strings.Contains(l, "[wsgi.errors]") {
			lines = append(lines, l)
		}
	}
	want := []string{"a line for the log", "joined by print", "a line in two writes", "and an unfinished one"}
	if len(lines) != len(want) {
		t.Fatalf("wsgi.errors lines:\n%s\nwant %q in\n%s", strings.Join(lines, "\n"), want, s.log)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], "WARN: "+w+" ") {
			t.Errorf("line %d: %q, want %q", i, lines[i], w)
		}
	}
}

// TestWebSocketPool drives a WebSocket through a pool directly (so the
// race detector sees the reader beside the frame loop): messages both
// ways at once, a client that sends more than the limit, and a client that
// leaves.
func TestWebSocketPool(t *testing.T) {
	s := startPool(t, Config{Config: workers.Config{App: "ws_echo:app", ASGI: true, Dir: "../examples/asgi"}})
	url := "ws://" + s.addr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 50 {
			if err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "m%d", i)); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
	})
	for i := range 50 {
		if _, got, err := c.Read(ctx); err != nil || string(got) != fmt.Sprintf("echo: m%d", i) {
			t.Fatalf("read %d: %q %v", i, got, err)
		}
	}
	wg.Wait()
	// More than a message may hold: the connection is closed with 1009.
	c.Write(ctx, websocket.MessageBinary, make([]byte, wsMaxMessage+1))
	_, _, err = c.Read(ctx)
	if code := websocket.CloseStatus(err); code != websocket.StatusMessageTooBig {
		t.Errorf("an oversized message: %v (status %d), want 1009", err, code)
	}
	// A client that leaves: the worker's slot comes back.
	for range 3 {
		c, _, err := websocket.Dial(ctx, url+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.CloseNow()
	}
	inflight := func() bool {
		for _, w := range s.pool.Workers() {
			if len(w.Running) > 0 {
				return false
			}
		}
		return true
	}
	waitFor(t, inflight, "WebSocket calls still held:\n%s", s.log)
}

// TestConfigDefaults: a zero field takes DefaultConfig's value, and a
// negative one stays off.
func TestConfigDefaults(t *testing.T) {
	p, err := New(Config{Config: workers.Config{App: "apps:hello", Python: python, Dir: appsDir}})
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if p.cfg.MaxBody != d.MaxBody || p.cfg.BodyBuffer != d.BodyBuffer || p.cfg.BodySpool != d.BodySpool || p.cfg.Threads != d.Threads ||
		p.cfg.ClientTimeout != d.ClientTimeout || p.cfg.WebSocketIdle != d.WebSocketIdle || p.cfg.MaxWebSockets != d.MaxWebSockets ||
		p.cfg.StartTimeout != d.StartTimeout || p.cfg.MaxQueue != d.MaxQueue {
		t.Errorf("zero fields became %+v, want DefaultConfig's %+v", p.cfg, d)
	}
	p, err = New(Config{Config: workers.Config{App: "apps:hello", Python: python, Dir: appsDir}, MaxBody: -1, WebSocketIdle: -1, BodySpool: -1})
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.MaxBody != -1 || p.cfg.WebSocketIdle != -1 || p.cfg.BodySpool != -1 {
		t.Errorf("negative fields became max-body %d, ws-idle %v, body-spool %d; want them off", p.cfg.MaxBody, p.cfg.WebSocketIdle, p.cfg.BodySpool)
	}
}

// TestDetectedWebSocket: an application whose interface the pool finds
// at Start (DetectInterface, as torsion web MODULE:APP runs it) is served
// as what it is: an ASGI one takes WebSockets, as many as MaxWebSockets
// allows, beside its requests.
func TestDetectedWebSocket(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{Config: workers.Config{App: "ws_echo:app", DetectInterface: true, Dir: "../examples/asgi"}, MaxWebSockets: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+s.addr+"/", nil)
	if err != nil {
		t.Fatalf("a WebSocket to a detected ASGI application: %v\n%s", err, s.log)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte("hi"))
	if _, got, err := c.Read(ctx); err != nil || string(got) != "echo: hi" {
		t.Errorf("read %q %v", got, err)
	}
	if _, resp, err := websocket.Dial(ctx, "ws://"+s.addr+"/", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a WebSocket over MaxWebSockets: %v, want 503", err)
	}
}
