package httpserver_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

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
