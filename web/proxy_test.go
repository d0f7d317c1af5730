package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/internal/testutil"
	"github.com/torsion-server/torsion/logging"
)

func TestProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/slow" {
			time.Sleep(time.Second)
		}
		fmt.Fprintf(w, "path=%s query=%s host=%s xff=%s xfh=%s xfp=%s", r.URL.Path, r.URL.RawQuery, r.Host,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"))
	}))
	defer backend.Close()
	p, err := NewProxy(backend.URL+"/v1", ProxyOptions{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := l.Addr().String()
	l.Close()
	dead, err := NewProxy("http://"+deadAddr, ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := &Resource{}
	root.Mount("/api", p)
	root.Mount("/dead", dead)
	addr := serve(t, root)

	req, _ := http.NewRequest("GET", "http://"+addr+"/api/items?x=1", nil)
	req.Host = "front.example"
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "path=/v1/items query=x=1 host=" + strings.TrimPrefix(backend.URL, "http://") +
		" xff=10.0.0.1, 127.0.0.1 xfh=front.example xfp=http"
	if string(body) != want {
		t.Errorf("proxied:\n got %q\nwant %q", body, want)
	}
	for path, status := range map[string]int{"/dead/x": 502, "/api/slow": 504} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, status)
		}
	}
	for _, bad := range []string{"ftp://x", "localhost:80", "http://", "http://a b"} {
		if _, err := NewProxy(bad, ProxyOptions{}); err == nil {
			t.Errorf("NewProxy(%q) succeeded", bad)
		}
	}
}

// TestProxyRequestChanges: what the proxy changes of a request and a response.
// Only WebSocket upgrades are forwarded (an h2c upgrade became a raw
// tunnel after the backend's 101); torsion's X-Request-Id survives a
// client's Connection naming it; Accept-Encoding goes through as the
// client sent it, and the answer comes back as the backend encoded it
// (Go's transport asked for gzip itself and inflated a 101,941-byte
// answer to 100 MiB).
func TestProxyRequestChanges(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", r.Header.Get("Upgrade"))
			w.WriteHeader(http.StatusSwitchingProtocols)
			return
		}
		if r.URL.Path == "/gz" {
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			gz.Write(bytes.Repeat([]byte("a"), 100000))
			gz.Close()
			return
		}
		fmt.Fprintf(w, "id=%q ae=%q", r.Header.Get(RequestIDHeader), r.Header.Values("Accept-Encoding"))
	}))
	defer backend.Close()
	p, err := NewProxy(backend.URL, ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, RequestID(p, nil))
	exchange := func(req string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		raw, _ := io.ReadAll(c)
		return string(raw)
	}
	if got := exchange("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Errorf("an h2c upgrade through the proxy: %.80q; want a plain 200", got)
	}
	if got := exchange("GET / HTTP/1.1\r\nHost: x\r\nConnection: X-Request-Id, close\r\n\r\n"); !strings.Contains(got, `id="`) || strings.Contains(got, `id=""`) {
		t.Errorf("Connection: X-Request-Id: %q; want the backend to get torsion's id", got)
	}
	if got := exchange("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.Contains(got, `ae=[]`) {
		t.Errorf("no Accept-Encoding from the client: %q; want none at the backend", got)
	}
	if got := exchange("GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\nConnection: close\r\n\r\n"); !strings.Contains(got, `ae=["br"]`) {
		t.Errorf("Accept-Encoding: br: %q; want it unchanged at the backend", got)
	}
	got := exchange("GET /gz HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
	if !strings.Contains(got, "Content-Encoding: gzip") || len(got) > 10000 {
		t.Errorf("a gzip answer: %d bytes, %.200q; want it passed on compressed", len(got), got)
	}
}

// TestProxyDotSegments: a path's dot-segments, plain or percent-encoded,
// are resolved before a mount is chosen, so a proxy: mount never forwards
// a path that leaves its base: /proxy/../admin once reached the backend's
// /admin. What stays within the mount is forwarded resolved.
func TestProxyDotSegments(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend %s", r.URL.EscapedPath())
	}))
	defer backend.Close()
	p, err := NewProxy(backend.URL+"/base", ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := &Resource{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "root %s", r.URL.EscapedPath())
	})}
	root.Mount("/proxy", p)
	addr := serve(t, root)
	for _, tt := range []struct{ target, want string }{
		{"/proxy/../admin", "root /admin"},
		{"/proxy/%2e%2e/admin", "root /admin"},
		{"/proxy/.%2E/admin", "root /admin"},
		{"/proxy/%2E./admin", "root /admin"},
		{"/proxy/./../../admin", "root /admin"},
		{"/proxy/a/../b", "backend /base/b"},
		{"/proxy/a/./b", "backend /base/a/b"},
		{"/proxy/..a/b", "backend /base/..a/b"}, // not a dot-segment
		{"/../proxy/x", "backend /base/x"},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tt.target)
		raw, _ := io.ReadAll(c)
		c.Close()
		_, body, _ := strings.Cut(string(raw), "\r\n\r\n")
		if body != tt.want {
			t.Errorf("%s: %q, want %q", tt.target, body, tt.want)
		}
	}
}

// Behind ProxyHeaders, the chain sent on names the proxy that sent the
// request, not the client twice.
func TestProxyBehindProxyHeaders(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s", r.Header.Get("X-Forwarded-For"))
	}))
	defer backend.Close()
	p, err := NewProxy(backend.URL, ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	trusted, _ := ParseTrusted("127.0.0.1")
	addr := serve(t, ProxyHeaders(p, trusted, ForwardedAll))
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "xff=203.0.113.5, 127.0.0.1"; string(body) != want {
		t.Errorf("got %q, want %q", body, want)
	}
}

// TestProxyWebSocket: a WebSocket reaches a proxied backend through the
// proxy, from a client over HTTP/1.1 and from one over HTTP/2 (RFC 8441),
// the backend seeing an HTTP/1.1 Upgrade either way.
func TestProxyWebSocket(t *testing.T) {
	backend := httptest.NewServer(testutil.WebSocketEcho(&websocket.AcceptOptions{InsecureSkipVerify: true},
		func(r *http.Request) string { return r.Proto + " echo: " }))
	defer backend.Close()
	proxy, err := NewProxy(backend.URL, ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	front := httpserver.New(proxy, httpserver.Options{H2C: true, ErrorLog: logging.Discard()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go front.Serve(ln)
	defer front.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatalf("over HTTP/1.1: %v", err)
	}
	c.Write(ctx, websocket.MessageText, []byte("one"))
	if _, got, err := c.Read(ctx); err != nil || string(got) != "HTTP/1.1 echo: one" {
		t.Errorf("over HTTP/1.1: %q %v", got, err)
	}
	c.Close(websocket.StatusNormalClosure, "")

	ws, err := testutil.DialH2WebSocket(ctx, "http://"+ln.Addr().String()+"/ws", nil, nil)
	if err != nil {
		t.Fatalf("over HTTP/2: %v", err)
	}
	ws.Send(testutil.OpText, []byte("two"))
	if op, got, err := ws.Recv(); err != nil || op != testutil.OpText || string(got) != "HTTP/1.1 echo: two" {
		t.Errorf("over HTTP/2: %d %q %v", op, got, err)
	}
	ws.Close(1000, "")
}
