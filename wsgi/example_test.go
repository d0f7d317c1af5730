package wsgi_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/workers"
	"github.com/torsion-server/torsion/wsgi"
)

// A pool of Python workers serving a WSGI application, mounted on an
// httpserver.Server as any http.Handler is. The pool is a service: Start
// before serving, Stop after the server has stopped; CloseWebSockets,
// registered on the server's shutdown, tells ASGI applications' WebSockets
// that the server goes away, so that the stop does not wait for them.
func ExamplePool() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "hello.py"), []byte(`
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello from ", environ["PATH_INFO"].encode()]
`), 0o644)

	pool, err := wsgi.New(wsgi.Config{Config: workers.Config{App: "hello:application", Dir: dir, Python: "python3", Workers: 2}})
	if err != nil {
		panic(err)
	}
	if err := pool.Start(context.Background()); err != nil {
		panic(err) // a *wsgi.StartError carries the traceback
	}
	srv := httpserver.New(pool, httpserver.Options{})
	srv.RegisterOnShutdown(pool.CloseWebSockets)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)

	resp, err := http.Get("http://" + ln.Addr().String() + "/world")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, string(body))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	pool.Stop(ctx)
	// Output: 200 OK Hello from /world
}
