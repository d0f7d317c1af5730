package httpserver

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/torsion-server/torsion/internal/testutil"
)

// h2Client is a raw HTTP/2 client on a cleartext connection, for clients
// that misbehave: a zero window, a body that never comes.
type h2Client struct {
	t  *testing.T
	c  net.Conn
	fr *http2.Framer
}

func dialH2(t *testing.T, addr string, settings ...http2.Setting) *h2Client {
	t.Helper()
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(20 * time.Second)) // slow streams are the point here
	io.WriteString(c, h2Preface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(settings...)
	return &h2Client{t: t, c: c, fr: fr}
}

// request opens stream id with a GET (or a POST whose body never comes
// when end is false) for path.
func (h *h2Client) request(id uint32, method, path string, end bool) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", method}, {":scheme", "http"}, {":authority", "example.org"}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		h.t.Fatal(err)
	}
}

// until reads frames until one for stream id ends it (END_STREAM or
// RST_STREAM), and returns the status, the data and the reset code (-1
// for none).
func (h *h2Client) until(id uint32) (status int, data string, reset int) {
	h.t.Helper()
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			status = atoiOr(f.Value)
		}
	})
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("stream %d: reading: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				h.fr.WritePing(true, f.Data)
			}
		case *http2.HeadersFrame:
			if f.StreamID == id {
				dec.Write(f.HeaderBlockFragment())
				if f.StreamEnded() {
					return status, data, -1
				}
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				data += string(f.Data())
				if f.StreamEnded() {
					return status, data, -1
				}
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return status, data, int(f.ErrCode)
			}
		case *http2.GoAwayFrame:
			h.t.Fatalf("stream %d: GOAWAY %v", id, f.ErrCode)
		}
	}
}

func atoiOr(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func h2Server(t *testing.T, h http.Handler, opts Options) string {
	t.Helper()
	opts.H2C = true
	srv := New(h, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestH2StalledStreams: an HTTP/2 client that takes nothing of a response
// (a zero flow-control window) or sends nothing of a body being read has
// its stream reset after ClientTimeout, and the handler's Write or Read
// fails, as over HTTP/1; once stalled streams held a descriptor and a
// goroutine each for as long as the client liked. A handler that thinks
// between writes while the client keeps up is not cut off.
func TestH2StalledStreams(t *testing.T) {
	const timeout = 700 * time.Millisecond
	handlerErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/large":
			chunk := bytes.Repeat([]byte("x"), 16<<10)
			for range 64 {
				if _, err := w.Write(chunk); err != nil {
					handlerErr <- err
					return
				}
			}
			handlerErr <- nil
		case "/small": // held by net/http after the handler returns
			w.Write([]byte("small"))
		case "/upload":
			_, err := io.Copy(io.Discard, r.Body)
			handlerErr <- err
		case "/thinking":
			for range 3 {
				w.Write([]byte("tick "))
				w.(http.Flusher).Flush()
				time.Sleep(2 * timeout) // the client is not to blame
			}
		}
	})
	addr := h2Server(t, h, Options{ClientTimeout: timeout})
	zero := http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}
	for _, tt := range []struct {
		name, method, path string
		end                bool
		handlerFails       bool
	}{
		{"large response, zero window", "GET", "/large", true, true},
		{"small response, zero window", "GET", "/small", true, false},
		{"body that never comes", "POST", "/upload", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := dialH2(t, addr, zero)
			began := time.Now()
			h.request(1, tt.method, tt.path, tt.end)
			_, _, reset := h.until(1)
			if reset < 0 && tt.path != "/upload" {
				t.Fatalf("the stream ended normally through a zero window")
			}
			if waited := time.Since(began); waited < timeout*3/4 {
				t.Errorf("the stream ended after %v, before the client timeout", waited)
			}
			if tt.handlerFails {
				select {
				case err := <-handlerErr:
					if err == nil {
						t.Errorf("the handler's wait on the client did not fail")
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the handler still waits on the client")
				}
			}
		})
	}
	t.Run("handler thinking between writes", func(t *testing.T) {
		h := dialH2(t, addr)
		h.request(1, "GET", "/thinking", true)
		status, data, reset := h.until(1)
		if reset >= 0 || status != 200 || data != strings.Repeat("tick ", 3) {
			t.Fatalf("status %d, reset %d, data %q; want the whole response", status, reset, data)
		}
	})
}

// TestClientLimits: one client address may hold MaxClientConns
// connections and MaxClientStreams HTTP/2 requests in flight; beyond them
// a connection is closed and a stream answered 429, while the address's
// other requests are served, and its share comes back as they end.
// Exempt addresses are not counted.
func TestClientLimits(t *testing.T) {
	release, held := make(chan struct{}), make(chan struct{}, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	addr := h2Server(t, h, Options{MaxClientConns: 2, MaxClientStreams: 2})
	a := dialH2(t, addr)
	b := dialH2(t, addr)
	a.request(1, "GET", "/hold", true)
	b.request(1, "GET", "/hold", true)
	<-held
	<-held
	a.request(3, "GET", "/", true)
	if status, _, _ := a.until(3); status != http.StatusTooManyRequests {
		t.Fatalf("a third stream in flight got %d, want 429", status)
	}
	// A third connection is closed at once.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a third connection was kept (read %d, %v)", n, err)
	}
	c.Close()
	close(release)
	for _, c := range []*h2Client{a, b} {
		if status, data, _ := c.until(1); status != 200 || data != "ok" {
			t.Errorf("a held stream got %d %q", status, data)
		}
	}
	a.request(5, "GET", "/", true)
	if status, _, _ := a.until(5); status != 200 {
		t.Errorf("after the held streams ended, a new one got %d", status)
	}
	// Once a connection closes, the address may open another.
	b.c.Close()
	waitFor(t, "a new connection served after one closed", func() bool { return h2Get(addr) == nil })

	// HTTP/1 connections count, and give their share back as they close.
	addr = h2Server(t, h, Options{MaxClientConns: 1})
	for i := range 3 {
		waitFor(t, fmt.Sprintf("HTTP/1 connection %d served", i+1), func() bool {
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}).Get("http://" + addr + "/")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}

	// An exempt address is not counted.
	addr = h2Server(t, h, Options{MaxClientConns: 1, ClientLimitExempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	for range 3 {
		dialH2(t, addr)
	}
	if err := h2Get(addr); err != nil {
		t.Errorf("an exempt address's fourth connection: %v", err)
	}
}

// TestFirstRequestTimeout: a new connection that sends nothing is closed
// after ReadHeaderTimeout, not held for the IdleTimeout of a connection
// between requests.
func TestFirstRequestTimeout(t *testing.T) {
	addr := h2Server(t, http.NotFoundHandler(), Options{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	began := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read: %v; want the server to close the connection", err)
	}
	if waited := time.Since(began); waited < 200*time.Millisecond {
		t.Errorf("closed after %v, before the head timeout", waited)
	}
}

// h2Get makes a GET on a new cleartext HTTP/2 connection; nil when it
// is answered 200.
func h2Get(addr string) error {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// waitFor waits until cond holds, for at most 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitUntil(20*time.Second, cond, func() { t.Fatalf("timed out waiting for %s", what) })
}
