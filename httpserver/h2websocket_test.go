package httpserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	xws "golang.org/x/net/websocket"

	"github.com/torsion-server/torsion/internal/testutil"
	"github.com/torsion-server/torsion/logging"
)

// TestH2WebSocket opens WebSockets over HTTP/2 (RFC 8441) with net/http's
// own HTTP/2 client to handlers that know only HTTP/1.1's Upgrade: one
// that answers 101 and then hijacks (coder/websocket), one that hijacks
// and writes its 101 head itself (x/net/websocket), and handlers that do
// not accept. Before, the server did not offer extended CONNECT, and a
// browser's WebSocket on an HTTP/2 connection could not reach either.
func TestH2WebSocket(t *testing.T) {
	protos := make(chan string, 8)
	mux := http.NewServeMux()
	mux.Handle("/coder", testutil.WebSocketEcho(&websocket.AcceptOptions{Subprotocols: []string{"chat"}},
		func(r *http.Request) string { protos <- r.Proto; return "echo: " }))
	mux.Handle("/xnet", xws.Server{Handler: func(c *xws.Conn) {
		var msg string
		for xws.Message.Receive(c, &msg) == nil {
			xws.Message.Send(c, "xnet: "+msg)
		}
	}})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a page") })
	mux.HandleFunc("/deny", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "go away", http.StatusForbidden) })
	srv := New(mux, Options{H2C: true, ErrorLog: logging.Discard()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, tc := range []struct{ path, prefix, proto string }{
		{"/coder", "echo: ", "chat"},
		{"/xnet", "xnet: ", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			h := http.Header{}
			if tc.proto != "" {
				h.Set("Sec-WebSocket-Protocol", tc.proto)
			}
			ws, err := testutil.DialH2WebSocket(ctx, base+tc.path, nil, h)
			if err != nil {
				t.Fatal(err)
			}
			resp := ws.Response
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.proto {
				t.Errorf("subprotocol %q, want %q", got, tc.proto)
			}
			for _, k := range []string{"Sec-WebSocket-Accept", "Upgrade", "Connection"} {
				if v := resp.Header.Get(k); v != "" {
					t.Errorf("HTTP/1.1's %s: %s in an HTTP/2 answer", k, v)
				}
			}
			for _, m := range []string{"hello", strings.Repeat("x", 30000)} {
				if err := ws.Send(testutil.OpText, []byte(m)); err != nil {
					t.Fatal(err)
				}
				op, got, err := ws.Recv()
				if err != nil || op != testutil.OpText || string(got) != tc.prefix+m {
					t.Fatalf("echo: op %d, %d bytes %.20q, %v", op, len(got), got, err)
				}
			}
			ws.Close(1000, "bye")
			// The server answers the close, and the stream ends.
			for {
				op, _, err := ws.Recv()
				if err != nil {
					if err != io.EOF {
						t.Fatalf("after the close: %v, want the stream's end", err)
					}
					break
				}
				if op != testutil.OpClose {
					t.Fatalf("frame %d after the close", op)
				}
			}
		})
	}
	select {
	case p := <-protos:
		if p != "HTTP/2.0" {
			t.Errorf("the handler saw %s, want HTTP/2.0", p)
		}
	default:
		t.Error("the handler never ran")
	}

	for _, tc := range []struct {
		path, protocol string
		code           int
	}{
		{"/plain", "websocket", 400}, // a 200 would accept it
		{"/deny", "websocket", 403},
		{"/coder", "not-websocket", 501},
	} {
		t.Run(fmt.Sprint(tc.path, tc.protocol), func(t *testing.T) {
			code, body := h2Request(t, ln.Addr().String(), ":method", "CONNECT", ":protocol", tc.protocol,
				":scheme", "http", ":path", tc.path, ":authority", "x", "sec-websocket-version", "13")
			if code != tc.code {
				t.Errorf("%s: %d %q, want %d", tc.path, code, body, tc.code)
			}
		})
	}
}
