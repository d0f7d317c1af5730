package httpserver_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/coder/websocket"

	"github.com/torsion-server/torsion/httpserver"
)

// A server for any http.Handler; Options bound what clients may send and
// how long they may take.
func ExampleNew() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello from %s", r.Proto) })
	srv := httpserver.New(h, httpserver.Options{MaxHeaders: 50})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello from HTTP/1.1
}

// A WebSocket handler written for HTTP/1.1 (here with coder/websocket,
// which answers 101 and hijacks the connection) serves HTTP/1.1 clients
// and, unchanged, HTTP/2 clients, whose WebSockets arrive as extended
// CONNECT streams (RFC 8441): the handler sees r.Proto say which.
func ExampleServer_webSocket() {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		c.Write(r.Context(), typ, fmt.Appendf(nil, "%s over %s", msg, r.Proto))
		c.Close(websocket.StatusNormalClosure, "")
	})
	srv := httpserver.New(echo, httpserver.Options{H2C: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		panic(err)
	}
	c.Write(ctx, websocket.MessageText, []byte("hello"))
	_, msg, _ := c.Read(ctx)
	fmt.Println(string(msg))
	c.CloseNow()
	// Output: hello over HTTP/1.1
}
