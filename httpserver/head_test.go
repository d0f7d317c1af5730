package httpserver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// appServer serves an app that reads the whole body, as a WSGI worker's
// front end does, and records the requests that reached it intact.
func appServer(t *testing.T) (addr string, reached func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.Header().Set("Connection", "close")
			http.Error(w, "Could not read the request body.", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, fmt.Sprintf("%s %s %q", r.Method, r.URL.Path, body))
		mu.Unlock()
		fmt.Fprintf(w, "ok %d", len(body))
	})
	srv := New(h, Options{MaxHeaderBytes: 4096, MaxRequestLine: 1024, MaxHeaders: 20})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// exchange sends raw bytes and returns the response statuses read until
// the server closes the connection (or, if max > 0, max were read), and
// whether the server closed it.
func exchange(t *testing.T, addr, req string, max int) (statuses []int, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(c, req)
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return statuses, err == io.EOF || strings.Contains(err.Error(), "connection reset")
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		if max > 0 && len(statuses) == max {
			return statuses, false
		}
		if resp.Close {
			_, err := br.ReadByte()
			return statuses, err != nil && !isTimeout(err)
		}
	}
}

const h = "Host: x\r\n"

// The corpus: requests that servers were caught reading two ways. Each is
// refused with a 4xx, never reaches the application, and the connection
// is closed. Sources: gunicorn GHSA-w3h3-4rj7-4ph4 (CVE-2024-1135) and
// CVE-2024-6827; waitress CVE-2019-16785, CVE-2019-16786, CVE-2019-16789
// and CVE-2022-24761 (GHSA-4f7p-27jc-3c36); Twisted CVE-2022-24801
// (GHSA-c2jg-hw38-jrqq).
var hostile = []struct {
	name   string
	req    string
	status int
}{
	{"CL and TE", "POST / HTTP/1.1\r\n" + h + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE and CL", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
	{"TE twice", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE chunked then identity", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400},
	{"TE gzip, chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE chunked, chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE xchunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
	{"TE with vertical tab", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"CL plus sign", "POST / HTTP/1.1\r\n" + h + "Content-Length: +4\r\n\r\nabcd", 400},
	{"CL minus sign", "POST / HTTP/1.1\r\n" + h + "Content-Length: -4\r\n\r\nabcd", 400},
	{"CL hex", "POST / HTTP/1.1\r\n" + h + "Content-Length: 0x4\r\n\r\nabcd", 400},
	{"CL with space inside", "POST / HTTP/1.1\r\n" + h + "Content-Length: 4 4\r\n\r\nabcd", 400},
	{"CL list", "POST / HTTP/1.1\r\n" + h + "Content-Length: 4, 4\r\n\r\nabcd", 400},
	{"CL twice, same value", "POST / HTTP/1.1\r\n" + h + "Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400},
	{"CL twice, different", "POST / HTTP/1.1\r\n" + h + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400},
	{"CL overflow", "POST / HTTP/1.1\r\n" + h + "Content-Length: 99999999999999999999\r\n\r\n", 400},
	{"chunk size 0x", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0x4\r\nabcd\r\n0\r\n\r\n", 400},
	{"chunk size plus", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n+4\r\nabcd\r\n0\r\n\r\n", 400},
	{"chunk size minus", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n-4\r\nabcd\r\n0\r\n\r\n", 400},
	{"chunk size trailing space", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4 \r\nabcd\r\n0\r\n\r\n", 400},
	{"chunk size space before extension", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4 ;a=b\r\nabcd\r\n0\r\n\r\n", 400},
	{"chunk size leading space", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n 4\r\nabcd\r\n0\r\n\r\n", 400},
	{"chunk size overflow", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabcd\r\n0\r\n\r\n", 400},
	{"chunk size bare LF", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4\nabcd\r\n0\r\n\r\n", 400},
	{"chunk data without CRLF", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcdXX0\r\n\r\n", 400},
	{"chunk data bare LF", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\n0\r\n\r\n", 400},
	{"chunk extension with CTL", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4;a=\x01\r\nabcd\r\n0\r\n\r\n", 400},
	{"chunk extension with bare CR", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4;a\rb\r\nabcd\r\n0\r\n\r\n", 400},
	{"trailer folded", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", 400},
	{"request line bare LF", "GET / HTTP/1.1\n" + h + "\r\n", 400},
	{"header bare LF", "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400},
	{"all bare LF", "GET / HTTP/1.1\nHost: x\n\n", 400},
	{"bare CR in value", "GET / HTTP/1.1\r\n" + h + "X-A: a\rb\r\n\r\n", 400},
	{"obs-fold", "GET / HTTP/1.1\r\n" + h + "X-A: a\r\n b\r\n\r\n", 400},
	{"obs-fold with tab", "GET / HTTP/1.1\r\n" + h + "X-A: a\r\n\tb\r\n\r\n", 400},
	{"space before colon", "POST / HTTP/1.1\r\n" + h + "Content-Length : 4\r\n\r\nabcd", 400},
	{"space in name", "GET / HTTP/1.1\r\n" + h + "X A: b\r\n\r\n", 400},
	{"NUL in value", "GET / HTTP/1.1\r\n" + h + "X-A: a\x00b\r\n\r\n", 400},
	{"CTL in value", "GET / HTTP/1.1\r\n" + h + "X-A: a\x01b\r\n\r\n", 400},
	{"DEL in value", "GET / HTTP/1.1\r\n" + h + "X-A: a\x7fb\r\n\r\n", 400},
	{"empty header name", "GET / HTTP/1.1\r\n" + h + ": b\r\n\r\n", 400},
	{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	{"asterisk on GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"two content types", "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 400},
	{"no host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
	{"method not a token", "GE(T / HTTP/1.1\r\n" + h + "\r\n", 400},
	{"two spaces", "GET  / HTTP/1.1\r\n" + h + "\r\n", 400},
	{"tab separator", "GET\t/ HTTP/1.1\r\n" + h + "\r\n", 400},
	{"control in target", "GET /a\x01b HTTP/1.1\r\n" + h + "\r\n", 400},
	{"unknown version", "GET / HTTP/1.2\r\n" + h + "\r\n", 505},
	{"lower-case version", "GET / http/1.1\r\n" + h + "\r\n", 400},
	{"version HTTP/1.x", "GET / HTTP/1.x\r\n" + h + "\r\n", 400},
	{"version HTTP/11", "GET / HTTP/11\r\n" + h + "\r\n", 400},
	{"version HTTP/2.0", "GET / HTTP/2.0\r\n" + h + "\r\n", 505},
	{"authority form on GET", "GET host:80 HTTP/1.1\r\n" + h + "\r\n", 400},
	{"mailto target", "GET mailto:a@b HTTP/1.1\r\n" + h + "\r\n", 400},
	{"javascript target", "GET javascript:alert(1) HTTP/1.1\r\n" + h + "\r\n", 400},
	{"absolute URI without authority", "GET http:/other.example/abs HTTP/1.1\r\n" + h + "\r\n", 400},
	{"absolute URI, empty authority", "GET http:///abs HTTP/1.1\r\n" + h + "\r\n", 400},
	{"absolute URI, quote in authority", "GET http://a\"b/ HTTP/1.1\r\n" + h + "\r\n", 400},
	{"absolute URI with userinfo", "GET http://user@evil.example/ HTTP/1.1\r\n" + h + "\r\n", 400},
	{"absolute URI, other scheme", "GET ftp://a/ HTTP/1.1\r\n" + h + "\r\n", 400},
	{"CONNECT without port", "CONNECT a.example HTTP/1.1\r\n" + h + "\r\n", 400},
	{"host with userinfo", "GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n", 400},
	{"host with quote", "GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n", 400},
	{"host with two colons", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400},
	{"host port not digits", "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400},
	{"host bad IPv6 literal", "GET / HTTP/1.1\r\nHost: [zz]:80\r\n\r\n", 400},
	{"request line too long", "GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\n" + h + "\r\n", 414},
	{"head too large", "GET / HTTP/1.1\r\n" + h + "X-A: " + strings.Repeat("a", 5000) + "\r\n\r\n", 431},
	{"too many headers", "GET / HTTP/1.1\r\n" + h + strings.Repeat("X-A: b\r\n", 30) + "\r\n", 431},
}

func TestStrictFramingRefuses(t *testing.T) {
	addr, reached := appServer(t)
	for _, tt := range hostile {
		t.Run(tt.name, func(t *testing.T) {
			before := len(reached())
			statuses, closed := exchange(t, addr, tt.req, 0)
			if len(statuses) != 1 || statuses[0] != tt.status {
				t.Errorf("statuses %v, want [%d]", statuses, tt.status)
			}
			if !closed {
				t.Error("connection left open after a refused request")
			}
			if got := reached(); len(got) != before {
				t.Errorf("the application saw %q", got[before:])
			}
		})
	}
}

// Valid requests, some unusual, pass through untouched.
func TestStrictFramingAccepts(t *testing.T) {
	addr, reached := appServer(t)
	tests := []struct {
		name string
		req  string
		n    int    // responses
		last string // what the app saw last
	}{
		{"plain", "GET /a HTTP/1.1\r\n" + h + "\r\n", 1, `GET /a ""`},
		{"content length", "POST /a HTTP/1.1\r\n" + h + "Content-Length: 4\r\n\r\nabcd", 1, `POST /a "abcd"`},
		{"chunked", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nA\r\n0123456789\r\n0\r\n\r\n", 1, `POST /a "abcd0123456789"`},
		{"chunked upper case", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: Chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n", 1, `POST /a "abcd"`},
		{"chunk extension", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4;name=value\r\nabcd\r\n0;last\r\n\r\n", 1, `POST /a "abcd"`},
		{"trailers", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nX-Sum: 1\r\n\r\n", 1, `POST /a "abcd"`},
		{"leading empty line", "\r\nGET /b HTTP/1.1\r\n" + h + "\r\n", 1, `GET /b ""`},
		{"HTTP/1.0", "GET /c HTTP/1.0\r\n\r\n", 1, `GET /c ""`},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" + h + "\r\n", 1, `OPTIONS * ""`},
		{"absolute form", "GET http://a.example:8080/abs?q HTTP/1.1\r\n" + h + "\r\n", 1, `GET /abs ""`},
		{"absolute form, upper-case scheme", "GET HTTPS://a.example HTTP/1.1\r\n" + h + "\r\n", 1, `GET  ""`},
		{"CONNECT authority form", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 1, `CONNECT  ""`},
		{"IPv6 host", "GET /e HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 1, `GET /e ""`},
		{"host with percent-escape and sub-delims", "GET /f HTTP/1.1\r\nHost: a%41b!$&'()*+,;=.example\r\n\r\n", 1, `GET /f ""`},
		{"tab and obs-text in value", "GET /d HTTP/1.1\r\n" + h + "X-A: a\tb\xe9\r\n\r\n", 1, `GET /d ""`},
		{"pipelined", "POST /1 HTTP/1.1\r\n" + h + "Content-Length: 2\r\n\r\nhiPOST /2 HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n2\r\nho\r\n0\r\n\r\nGET /3 HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n", 3, `GET /3 ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			statuses, _ := exchange(t, addr, tt.req, tt.n)
			if len(statuses) != tt.n {
				t.Fatalf("statuses %v, want %d responses", statuses, tt.n)
			}
			for _, s := range statuses {
				if s != 200 {
					t.Errorf("statuses %v", statuses)
				}
			}
			if got := reached(); len(got) == 0 || got[len(got)-1] != tt.last {
				t.Errorf("app saw %q, want last %q", got, tt.last)
			}
		})
	}
}

// A bad request after good pipelined ones: the good ones are answered in
// order, then the error, then the connection closes.
func TestStrictFramingPipelinedRejection(t *testing.T) {
	addr, reached := appServer(t)
	statuses, closed := exchange(t, addr, "GET /1 HTTP/1.1\r\n"+h+"\r\nGET /2 HTTP/1.1\r\n"+h+"X A: b\r\n\r\nGET /3 HTTP/1.1\r\n"+h+"\r\n", 0)
	if fmt.Sprint(statuses) != "[200 400]" || !closed {
		t.Errorf("statuses %v closed %v, want [200 400] and closed", statuses, closed)
	}
	if got := reached(); len(got) != 1 || got[0] != `GET /1 ""` {
		t.Errorf("app saw %q", got)
	}
}

// TestStrictKeepAlive sends requests one after another on one connection,
// idle in between: net/http interrupts its background read with a
// deadline, which must not end the connection.
func TestStrictKeepAlive(t *testing.T) {
	addr, _ := appServer(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the same connection: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("request %d: %d, close %v", i, resp.StatusCode, resp.Close)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FuzzParseHead: no head makes the parser panic, and an accepted head
// holds only token names without underscores and values without control
// characters.
func FuzzParseHead(f *testing.F) {
	for _, tt := range hostile {
		if head, _, ok := strings.Cut(tt.req, "\r\n\r\n"); ok {
			f.Add(head)
		}
	}
	f.Add("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked")
	f.Add("0 0 HTTP/1.0\r\n\r\n") // an empty line inside the head: once an index out of range
	f.Fuzz(func(t *testing.T, head string) {
		h, code, _ := defaultLimits.parseHead(head + "\r\n\r\n")
		if code != 0 {
			return
		}
		for name, vals := range h.header {
			if !isToken(name) || strings.Contains(name, "_") {
				t.Fatalf("accepted name %q", name)
			}
			for _, v := range vals {
				if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
					t.Fatalf("accepted value %q", v)
				}
			}
		}
	})
}

// TestStrictHijack: after a handler hijacks the connection (an Upgrade),
// the bytes that follow are not HTTP and pass through unchecked.
func TestStrictHijack(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		io.Copy(c, rw) // echo until the client closes
	})
	srv := New(h, Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// Not HTTP: a bare LF and control bytes, which the checker would refuse.
	payload := "raw\nbytes\x00\x01 GET / HTTP/9\n\n"
	io.WriteString(c, payload)
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != payload {
		t.Errorf("echoed %q, %v; want %q", got, err, payload)
	}
}

// TestStrictHTTP2: HTTP/2 requests get the header checks parseHead makes
// for HTTP/1 that Go's HTTP/2 server does not make itself.
func TestStrictHTTP2(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "reached") })
	srv := New(h, Options{H2C: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protocols}, Timeout: 3 * time.Second}
	for _, tt := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"plain", http.Header{"X-A": {"1"}, "Content-Type": {"text/plain"}}, 200},
		{"underscore (dropped)", http.Header{"X_a": {"1"}}, 200},
		{"two content types", http.Header{"Content-Type": {"text/plain", "application/json"}}, 400},
	} {
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/", strings.NewReader("{}"))
		req.Header = tt.header
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != tt.want || (tt.want == 200) != (string(body) == "reached") {
			t.Errorf("%s: HTTP/%d %d %q, want HTTP/2 %d", tt.name, resp.ProtoMajor, resp.StatusCode, body, tt.want)
		}
	}
}

// TestH2CShortRequests: with cleartext HTTP/2 on, a request shorter than
// the HTTP/2 preface is answered at once (it once waited for the idle
// timeout), and only the start of a connection may switch to HTTP/2.
func TestH2CShortRequests(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	srv := New(h, Options{H2C: true, IdleTimeout: time.Minute, ReadHeaderTimeout: time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Far below the timeouts: an answer within this is an answer at once.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i, req := range []string{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET / HTTP/1.0\r\n\r\n"} {
		io.WriteString(c, req)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d (%d bytes): %v", i, len(req), err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "HTTP/1.0" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}

	// The preface after a request is not an HTTP/2 connection.
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"+h2Preface)
	br = bufio.NewReader(c2)
	for i, want := range []int{200, 400} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("response %d: %d, want %d", i, resp.StatusCode, want)
		}
	}

	// At the start of a connection, the preface still switches.
	c3, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	c3.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c3, h2Preface)
	fr := http2.NewFramer(c3, c3)
	if f, err := fr.ReadFrame(); err != nil || f.Header().Type != http2.FrameSettings {
		t.Fatalf("after the preface: %v %v, want SETTINGS", f, err)
	}
}

// TestParseHeadEmptyLine: an empty line inside a head (which the reader
// never passes, but the parser must survive) is refused, not a panic.
func TestParseHeadEmptyLine(t *testing.T) {
	if _, code, _ := defaultLimits.parseHead("0 0 HTTP/1.0\r\n\r\n\r\n\r\n"); code != 400 {
		t.Fatalf("code %d, want 400", code)
	}
}

// h2Request sends one HTTP/2 request with the given header fields, in
// order, on a new cleartext connection, and returns the response status
// and body.
func h2Request(t *testing.T, addr string, fields ...string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, h2Preface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	status, body := 0, ""
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			fmt.Sscan(f.Value, &status)
		}
	})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the response: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			dec.Write(f.HeaderBlockFragment())
			if f.StreamEnded() {
				return status, body
			}
		case *http2.DataFrame:
			body += string(f.Data())
			if f.StreamEnded() {
				return status, body
			}
		case *http2.RSTStreamFrame:
			return -int(f.ErrCode), body
		case *http2.GoAwayFrame:
			return -1, body
		}
	}
}

// TestStrictHTTP2Authority: over HTTP/2 the host comes from :authority
// alone. A host field that differs from it is refused (RFC 9113 8.3.1)
// rather than reaching the application, which once saw the host field
// while the request was routed by :authority; an :authority that is not a
// valid Host is refused as it is over HTTP/1.
func TestStrictHTTP2Authority(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %q", r.Host, r.Header.Values("Host"))
	})
	srv := New(h, Options{H2C: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	base := []string{":method", "GET", ":scheme", "http", ":path", "/"}
	for _, tt := range []struct {
		name   string
		fields []string
		status int
		body   string
	}{
		{"authority", []string{":authority", "public.example"}, 200, `public.example []`},
		{"host only", []string{"host", "public.example"}, 200, `public.example []`},
		{"host equal to authority", []string{":authority", "public.example", "host", "public.example"}, 200, `public.example []`},
		{"host differs", []string{":authority", "public.example", "host", "admin.internal"}, 400, ""},
		{"authority with space", []string{":authority", "a b"}, 400, ""},
		{"authority with quote", []string{":authority", `a"b`}, 400, ""},
		{"authority with userinfo", []string{":authority", "user@evil.example"}, 400, ""},
	} {
		status, body := h2Request(t, ln.Addr().String(), append(slices.Clone(base), tt.fields...)...)
		refused := status == 400 || status < 0 // a 400, or Go's HTTP/2 server reset the stream itself
		if tt.status == 200 && (status != 200 || body != tt.body) || tt.status != 200 && !refused {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, body, tt.status, tt.body)
		}
	}
}

// TestUnderscoreHeaders: a header field whose name has an underscore is
// dropped and the request served, as nginx and gunicorn do (torsion once
// refused the whole request with 400), over HTTP/1 and HTTP/2; with
// RefuseUnderscores it is refused. Dropped, Content_Length frames nothing.
func TestUnderscoreHeaders(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%q %q %q", r.Header.Get("X_Forwarded_For"), r.Header.Get("X-Forwarded-For"), body)
	})
	for _, refuse := range []bool{false, true} {
		addr := h2Server(t, h, Options{RefuseUnderscores: refuse})
		want := 200
		if refuse {
			want = 400
		}
		statuses, _ := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 1.2.3.4\r\nConnection: close\r\n\r\n", 1)
		if len(statuses) != 1 || statuses[0] != want {
			t.Errorf("refuse %v, HTTP/1: %v, want %d", refuse, statuses, want)
		}
		status, body := h2Request(t, addr, ":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/", "x_forwarded_for", "1.2.3.4")
		if status != want || !refuse && body != `"" "" ""` {
			t.Errorf("refuse %v, HTTP/2: %d %q, want %d", refuse, status, body, want)
		}
	}
	c := dial(t, h2Server(t, h, Options{}))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent_Length: 4\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(raw), "HTTP/1.1 200 ") || !strings.HasSuffix(string(raw), `"" "" ""`) {
		t.Errorf("Content_Length: %q; want it dropped and no body read", raw)
	}
}

// defaultLimits are the limits of a server with default Options.
var defaultLimits = New(nil, Options{}).lim
