package httpserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
)

type ctxKey string

// TestBaseContext: what BaseContext and ConnContext put in the context
// reaches the handler's requests over HTTP/1.1 and HTTP/2 (prior
// knowledge), beside the server's own values, as under net/http.
func TestBaseContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		local, _ := ctx.Value(http.LocalAddrContextKey).(net.Addr)
		fmt.Fprint(w, r.Proto, " ", ctx.Value(ctxKey("base")), " ", ctx.Value(ctxKey("conn")), " ",
			map[bool]string{true: "local", false: "no-local"}[local != nil && local.String() == ln.Addr().String()])
	})
	srv := New(h, Options{H2C: true,
		BaseContext: func(l net.Listener) context.Context {
			return context.WithValue(context.Background(), ctxKey("base"), "base:"+map[bool]string{true: "mine", false: "other"}[l.Addr() == ln.Addr()])
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey("conn"), "conn")
		},
	})
	go srv.Serve(ln)
	defer srv.Close()
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		if h2 {
			tr.Protocols.SetUnencryptedHTTP2(true)
		} else {
			tr.Protocols.SetHTTP1(true)
		}
		resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2] + " base:mine conn local"
		if string(b) != want {
			t.Errorf("%q, want %q", b, want)
		}
		tr.CloseIdleConnections()
	}
}
