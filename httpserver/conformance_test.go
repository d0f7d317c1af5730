package httpserver

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// conformance is the table of the conformance harness: each handler is
// served by net/http (httptest) and by torsion's HTTP/1 loop, sent the
// same bytes, and the bytes that come back are compared (Date aside).
// Where torsion answers differently on purpose, differs says how and why.
var conformance = []struct {
	name    string
	req     string // sent as is; "/end" follows it on the same connection
	handler func(w http.ResponseWriter, r *http.Request)
	differs string // why torsion's bytes differ from net/http's, if they do
}{
	{name: "small body", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }},
	{name: "empty", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {}},
	{name: "header set after WriteHeader is not sent", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(201)
			w.Header().Set("X-Late", "1")
			io.WriteString(w, "hello")
		}},
	{name: "Content-Length deleted after WriteHeader", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(200)
			w.Header().Del("Content-Length")
			io.WriteString(w, "hello")
		}},
	{name: "value changed in place after WriteHeader", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-A", "before")
			w.WriteHeader(200)
			w.Header()["X-A"][0] = "after"
		}},
	{name: "flush", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "one,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "two")
		}},
	{name: "declared trailer", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			w.WriteHeader(200)
			io.WriteString(w, "data")
			w.Header().Set("X-Sum", "42")
		}},
	{name: "trailer by prefix", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "data")
			w.(http.Flusher).Flush()
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		}},
	{name: "103 Early Hints", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "final")
		}},
	{name: "hijack after 101", req: "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Upgrade", "echo")
			w.Header().Set("Connection", "Upgrade")
			w.WriteHeader(http.StatusSwitchingProtocols)
			c, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			rw.WriteString("upgraded")
			rw.Flush()
		}},
	{name: "hijack before the response", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			c, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nraw")
			rw.Flush()
		}},
	{name: "body shorter than Content-Length", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "hello")
		}},
	{name: "body longer than Content-Length", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			if _, err := io.WriteString(w, "hello, world"); err != http.ErrContentLength {
				panic("a write past Content-Length did not fail")
			}
		}},
	{name: "HEAD", req: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }},
	{name: "204 with a body", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(204)
			io.WriteString(w, "x")
		}},
	{name: "304", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Etag", `"a"`)
			w.WriteHeader(304)
		}},
	{name: "Expect: 100-continue, body read", req: "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		handler: func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		}},
	{name: "Expect: 100-continue, body not read", req: "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "no thanks") }},
	{name: "body left unread", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ignored") }},
	{name: "chunked request body", req: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		}},
	{name: "HTTP/1.0", req: "GET / HTTP/1.0\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "one,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "two")
		},
		differs: http10},
	{name: "HTTP/1.0 keep-alive", req: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") },
		differs: http10},
	{name: "Connection: close", req: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }},
	{name: "handler asks to close", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}},
	{name: "ServeContent with a range", req: "GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=2-5\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "a.txt", time.Unix(1e9, 0), strings.NewReader("0123456789"))
		}},
	{name: "ServeContent with two ranges", req: "GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,4-5\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "a.txt", time.Unix(1e9, 0), strings.NewReader("0123456789"))
		},
		differs: "the multipart boundary is random"},
	{name: "file under its Content-Length", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			f, _ := os.Open(conformanceFile)
			defer f.Close()
			w.Header().Set("Content-Length", "100")
			io.CopyN(w, f, 100)
		}},
	{name: "file past its Content-Length", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			f, _ := os.Open(conformanceFile)
			defer f.Close()
			w.Header().Set("Content-Length", "5")
			if _, err := io.CopyN(w, f, 100); err != http.ErrContentLength {
				panic("a file past Content-Length did not fail")
			}
		}},
	{name: "file past its Content-Length, with a Content-Type", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			f, _ := os.Open(conformanceFile)
			defer f.Close()
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "5")
			if _, err := io.CopyN(w, f, 100); err != http.ErrContentLength {
				panic("a file past Content-Length did not fail")
			}
		},
		differs: "net/http writes a file's first 512 bytes through Write, which refuses all 100 and sends none; torsion, with no Content-Type to sniff, sends the file with sendfile, capped at the 5 bytes declared, and returns ErrContentLength: a whole response"},
	{name: "body between 2 KiB and 8 KiB", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat([]byte("x"), 5000)) },
		differs: "net/http holds back 2 KiB before it chunks, torsion 8 KiB: torsion sends Content-Length"},
	{name: "large body", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat([]byte("x"), 20000)) }},
	{name: "panic before the response", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }},
	{name: "panic after a flush", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}},
}

// http10 is why torsion answers HTTP/1.0 requests differently.
const http10 = "net/http answers an HTTP/1.0 request with HTTP/1.0 in its status line; torsion sends HTTP/1.1, " +
	"as RFC 9110 6.2 asks (the highest minor version the server conforms to), and frames the response for 1.0 all the same"

// conformanceFile is a 1000-byte file the file cases send.
var conformanceFile string

// exchangeRaw sends req and then "GET /end" on one connection, reads
// everything the server sends until it closes the connection, and returns
// it in a canonical form: each response as its status line, its fields
// sorted (Date blanked, framing fields as parsed), its body and trailers;
// then whatever could not be read as a response (after a hijack, say).
// Chunk boundaries and field order carry no meaning and are left out.
func exchangeRaw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	io.WriteString(c, "GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	out, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading: %v after %q", err, out)
	}
	method, _, _ := strings.Cut(req, " ")
	br := bufio.NewReader(bytes.NewReader(out))
	var b strings.Builder
	for n := 0; ; n++ {
		if _, err := br.Peek(1); err != nil {
			break
		}
		if n > 0 {
			method = "GET" // the /end request
		}
		rest, _ := br.Peek(br.Buffered())
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			fmt.Fprintf(&b, "unparsed: %q\n", rest)
			break
		}
		body, err := io.ReadAll(resp.Body)
		fmt.Fprintf(&b, "%s %s\n", resp.Proto, resp.Status)
		resp.Header.Del("Date")
		var fields []string
		for k, vs := range resp.Header {
			fields = append(fields, fmt.Sprintf("%s: %q", k, vs))
		}
		slices.Sort(fields)
		for _, f := range fields {
			b.WriteString(f + "\n")
		}
		fmt.Fprintf(&b, "(framing: length %d, encoding %q, close %v)\n", resp.ContentLength, resp.TransferEncoding, resp.Close)
		fmt.Fprintf(&b, "body %q", body)
		if err != nil {
			fmt.Fprintf(&b, ", cut short: %v", err)
		}
		if len(resp.Trailer) > 0 {
			fmt.Fprintf(&b, ", trailers %q", resp.Trailer)
		}
		b.WriteString("\n\n")
		if resp.StatusCode == http.StatusSwitchingProtocols {
			rest, _ := io.ReadAll(br)
			fmt.Fprintf(&b, "after the switch: %q\n", rest)
			break
		}
	}
	return b.String()
}

// TestConformance runs the table against net/http and torsion's loop.
func TestConformance(t *testing.T) {
	conformanceFile = filepath.Join(t.TempDir(), "f")
	os.WriteFile(conformanceFile, bytes.Repeat([]byte("0123456789"), 100), 0o644)
	for _, tt := range conformance {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/end" {
					io.WriteString(w, "end")
					return
				}
				tt.handler(w, r)
			})
			ref := httptest.NewUnstartedServer(h)
			ref.Config.ErrorLog = nil
			ref.Start()
			defer ref.Close()
			srv := New(h, Options{})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			defer srv.Close()
			want := exchangeRaw(t, ref.Listener.Addr().String(), tt.req)
			got := exchangeRaw(t, ln.Addr().String(), tt.req)
			if tt.differs != "" {
				if got == want {
					t.Errorf("listed as differing (%s), but the bytes are the same now: remove the reason", tt.differs)
				}
				t.Logf("differs on purpose: %s\nnet/http:\n%s\ntorsion:\n%s", tt.differs, want, got)
				return
			}
			if got != want {
				t.Errorf("net/http sends:\n%q\ntorsion sends:\n%q", want, got)
			}
		})
	}
}
