package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	be "encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/torsion-server/torsion/internal/testutil"
)

// TestASGI serves the bundled plain ASGI application: the lifespan
// startup runs before the first request, bodies stream both ways (a 3 MiB
// upload is pulled past the body buffer), requests run concurrently in one
// worker, a mounted copy sees its root_path, and an exception is a 500
// with its traceback in the log.
func TestASGI(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "asgi_hello:app",
		"--mount", "/sub=asgi:asgi_hello:app", "--chdir", "../../examples/asgi", "--python", debianPython,
		"--workers", "1", "--body-buffer", "65536", "--body-spool", "0")
	base := "http://127.0.0.1:" + p.port()
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(method, path string, body []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		method, path string
		body         []byte
		want         string
	}{
		{"GET", "/a/b?x=1", nil, "Hello from ASGI\nGET /a/b 1.1 root= q=x=1 body=0\nend\n"},
		{"POST", "/upload", bytes.Repeat([]byte("x"), 3<<20), "Hello from ASGI\nPOST /upload 1.1 root= q= body=3145728\nend\n"},
		{"GET", "/sub/inner?y=2", nil, "Hello from ASGI\nGET /inner 1.1 root=/sub q=y=2 body=0\nend\n"},
	}
	for _, c := range cases {
		if code, got := do(c.method, c.path, c.body); code != 200 || got != c.want {
			t.Errorf("%s %s: %d %q, want 200 %q", c.method, c.path, code, got, c.want)
		}
	}
	// Ten requests that can only finish together: one worker runs them
	// at once.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if code, got := do("GET", "/together/10", nil); code != 200 || !strings.Contains(got, "GET /together/10") {
				t.Errorf("together: %d %q", code, got)
			}
		})
	}
	wg.Wait()
	if code, _ := do("GET", "/fail", nil); code != 500 {
		t.Errorf("a failing application: %d, want 500", code)
	}
	p.waitLog(`ValueError: the application failed on purpose`)
	p.stopOK()
}

// TestFastAPI serves the bundled FastAPI application: path and query
// parameters, a JSON body validated by pydantic (422 when it is wrong),
// and FastAPI's own 404.
func TestFastAPI(t *testing.T) {
	t.Parallel()
	needPython(t, "fastapi", "websockets")
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "fastapi_hello:app",
		"--chdir", "../../examples/asgi", "--python", debianPython, "--workers", "2")
	base := "http://127.0.0.1:" + p.port()
	curlCases(t, []curlCase{
		{[]string{base + "/"}, `200 {"message":"Hello from FastAPI"}`},
		{[]string{base + "/items/5?q=hi"}, `200 {"item_id":5,"q":"hi"}`},
		{[]string{"-H", "Content-Type: application/json", "-d", `{"name":"pen","price":1.25}`, base + "/items"}, `200 {"name":"pen","double":2.5}`},
		{[]string{"-H", "Content-Type: application/json", "-d", `{"name":"pen"}`, base + "/items"}, `422 {"detail":[{"loc":["body","price"]`},
		{[]string{base + "/nope"}, `404 {"detail":"Not Found"}`},
		{[]string{base + "/stream?n=2"}, "200 line 0\nline 1\n"},
	})
	if got := wsExchange(t, "ws://127.0.0.1:"+p.port()+"/ws", `{"a": 1}`, `[2, "three"]`); got != `{"got": {"a": 1}}`+"\n"+`{"got": [2, "three"]}`+"\n" {
		t.Errorf("FastAPI WebSocket: %q", got)
	}
	p.stopOK()
}

// curlCase is a curl command line and the start of what it should get:
// the status, a space and the body.
type curlCase struct {
	args []string
	want string
}

// curlCases runs each case's curl and checks the status and body.
func curlCases(t *testing.T, cases []curlCase) {
	t.Helper()
	for _, c := range cases {
		got := curl(t, append([]string{"-w", "\n%{http_code}"}, c.args...)...)
		i := strings.LastIndexByte(got, '\n')
		got = got[i+1:] + " " + got[:i]
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("curl %v: %q, want %q...", c.args, got, c.want)
		}
	}
}

// wsExchange sends each message over a WebSocket to url with Python's
// websockets client, and returns the answers, a line each.
func wsExchange(t *testing.T, url string, messages ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := `import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        for m in sys.argv[2:]:
            await ws.send(m)
            print(await ws.recv())
asyncio.run(main())
`
	out, err := exec.CommandContext(ctx, debianPython, append([]string{"-c", client, url}, messages...)...).CombinedOutput()
	if err != nil {
		t.Errorf("websockets client on %s: %v\n%s", url, err, out)
	}
	return string(out)
}

// TestASGIFrameworks: the bundled Quart, Starlette and Django examples run
// unchanged from Debian's packages: pages, path parameters, JSON bodies,
// streamed responses and WebSockets; Starlette beside static files that
// never reach Python, Django's ASGI handler under a mount.
func TestASGIFrameworks(t *testing.T) {
	t.Parallel()
	static, _ := filepath.Abs("../../examples/asgi/static")
	for _, fw := range []struct {
		name, module string
		serve        []string
		cases        []curlCase // URLs relative to the server
		ws           string     // a WebSocket path, or ""
		send, want   string
	}{
		{"quart", "quart", []string{"--asgi", "quart_hello:app"}, []curlCase{
			{[]string{"/"}, "200 Hello from Quart"},
			{[]string{"/greet/ann"}, `200 {"greeting":"Hello, ann"}`},
			{[]string{"-H", "Content-Type: application/json", "-d", `{"numbers":[1,2,3.5]}`, "/sum"}, `200 {"sum":6.5}`},
			{[]string{"/count"}, "200 0\n1\n2\n"},
			{[]string{"/nope"}, "404 "},
		}, "/ws", "hi", "quart: hi\n"},
		{"starlette", "starlette", []string{"--asgi", "starlette_hello:app", "--static", "/static=" + static}, []curlCase{
			{[]string{"/"}, `200 <!doctype html><link rel="stylesheet" href="/static/style.css"><h1>Hello from Starlette`},
			{[]string{"/static/style.css"}, "200 h1 { font-family"},
			{[]string{"/users/bob"}, `200 {"user":"bob","root_path":""}`},
			{[]string{"/ticks"}, "200 tick 0\ntick 1\ntick 2\n"},
		}, "/shout", "hey", "HEY\n"},
		{"django", "django", []string{"--mount", "/dj=asgi:django_asgi:application"}, []curlCase{
			{[]string{"/dj/"}, "200 Hello from Django's ASGI side"},
			{[]string{"-d", "x=1", "/dj/where/"}, `200 {"path": "/dj/where/", "script_name": "/dj", "method": "POST", "body": "x=1"}`},
			{[]string{"/dj/nope"}, "404 "},
		}, "", "", ""},
	} {
		t.Run(fw.name, func(t *testing.T) {
			t.Parallel()
			needPython(t, fw.module, "websockets")
			p := start(t, nil, append([]string{"web", "--port", "tcp:0:interface=127.0.0.1", "--chdir", "../../examples/asgi",
				"--python", debianPython, "--workers", "1"}, fw.serve...)...)
			base := "http://127.0.0.1:" + p.port()
			for i, c := range fw.cases {
				last := len(c.args) - 1
				fw.cases[i].args = append(c.args[:last:last], base+c.args[last])
			}
			curlCases(t, fw.cases)
			if fw.ws != "" {
				if got := wsExchange(t, "ws://127.0.0.1:"+p.port()+fw.ws, fw.send); got != fw.want {
					t.Errorf("WebSocket %s: %q, want %q", fw.ws, got, fw.want)
				}
			}
			p.stopOK()
		})
	}
}

// TestASGIStartErrors: a lifespan startup that fails stops start-up with
// the application's message; an application of the other kind is refused
// naming the option to use.
func TestASGIStartErrors(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "apps.py"), []byte(`
async def failing(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database at db:5432"})

async def asgi_app(scope, receive, send):
    pass

def wsgi_app(environ, start_response):
    start_response("200 OK", [])
    return [b"wsgi"]
`), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--asgi", "apps:failing"}, "lifespan startup failed: no database at db:5432"},
		{[]string{"--wsgi", "apps:asgi_app"}, "is an ASGI application (a coroutine function of scope, receive, send): serve it with --asgi apps:asgi_app"},
		{[]string{"--asgi", "apps:wsgi_app"}, "is a WSGI application (a function of environ, start_response): serve it with --wsgi apps:wsgi_app"},
		{[]string{"--asgi", "apps:nothing"}, "--asgi apps:nothing: module 'apps' has no attribute 'nothing'"},
		{[]string{"--asgi", "apps:asgi_app", "--wsgi", "apps:wsgi_app"}, "--path, --wsgi and --asgi are alternatives"},
	} {
		args := append([]string{"web", "--port", "tcp:0:interface=127.0.0.1", "--chdir", dir, "--python", debianPython, "--workers", "2"}, c.args...)
		out, code := run(t, args...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want an error saying %q:\n%s", c.args, code, c.want, out)
		}
		if n := strings.Count(out, c.want); n > 1 {
			t.Errorf("%v: said %d times:\n%s", c.args, n, out)
		}
	}
}

// TestASGIDisconnect: a client that goes away mid-request reaches the
// application as http.disconnect.
func TestASGIDisconnect(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "gone")
	os.WriteFile(filepath.Join(dir, "waiter.py"), []byte(fmt.Sprintf(`
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await receive()  # the (empty) body
    open(%q, "w").close()
    message = await receive()  # waits for the client to leave
    with open(%q, "w") as f:
        f.write(message["type"])
`, marker+".started", marker)), 0o644)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "waiter:app",
		"--chdir", dir, "--python", debianPython, "--workers", "1")
	c, err := net.Dial("tcp", "127.0.0.1:"+p.port())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	waitUntil(20*time.Second, func() bool { return exists(marker + ".started") },
		func() { t.Fatalf("the request never reached the application; log:\n%s", p.logText()) })
	c.Close()
	waitUntil(20*time.Second, func() bool { return nonEmpty(marker) },
		func() { t.Fatalf("the application never heard that the client left; log:\n%s", p.logText()) })
	if b, _ := os.ReadFile(marker); string(b) != "http.disconnect" {
		t.Errorf("the application received %q after the client left", b)
	}
	p.stop(syscall.SIGTERM)
}

// TestASGIUvloop: --asgi-loop uvloop runs the workers on uvloop (Debian's
// python3-uvloop); a loop torsion does not know is refused.
func TestASGIUvloop(t *testing.T) {
	t.Parallel()
	needPython(t, "uvloop")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "loopname.py"), []byte(`
import asyncio

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    name = type(asyncio.get_running_loop()).__module__
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": name.encode()})
`), 0o644)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "loopname:app", "--asgi-loop", "uvloop",
		"--chdir", dir, "--python", debianPython, "--workers", "1")
	if got := curl(t, "http://127.0.0.1:"+p.port()+"/"); got != "uvloop" {
		t.Errorf("the loop is %q's, want uvloop's", got)
	}
	p.stop(syscall.SIGTERM)
	if out, code := run(t, "web", "--asgi", "loopname:app", "--asgi-loop", "trio"); code != 2 || !strings.Contains(out, `--asgi-loop "trio": want asyncio or uvloop`) {
		t.Errorf("--asgi-loop trio: exit %d: %s", code, out)
	}
}

// TestASGISpec drives an application that checks every scope key, event
// type and event order against the ASGI specification, with requests of
// every shape at once (bodies in one piece, streamed in many, none;
// HTTP/1.1 and h2c), and one that holds the event loop with synchronous
// code, which is reported with its stack.
func TestASGISpec(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "asgi_spec:app", "--h2c",
		"--chdir", "testdata", "--python", debianPython, "--workers", "2", "--body-buffer", "4096", "--body-spool", "0")
	base := "http://127.0.0.1:" + p.port()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, streamed past the 4 KiB buffer
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			var args []string
			var body []byte
			switch i % 4 {
			case 0:
				args = []string{base + "/get?x=1"}
			case 1:
				body = []byte("a small body")
				args = []string{"--data-binary", string(body), base + "/post"}
			case 2:
				body = big
				f := filepath.Join(t.TempDir(), "big")
				os.WriteFile(f, big, 0o644)
				args = []string{"-H", "Transfer-Encoding: chunked", "--data-binary", "@" + f, base + "/stream"}
			case 3:
				args = []string{"--http2-prior-knowledge", base + "/sleep"}
			}
			got := curl(t, append([]string{"-w", " %{http_code}"}, args...)...)
			if want := "ok " + sum(body); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, " 200") {
				t.Errorf("%v: %q, want %q... 200", args, got, want)
			}
			if i%4 == 2 && strings.HasPrefix(got, "ok ") && strings.Fields(got)[2] == "1" {
				t.Errorf("a 1 MiB body streamed past a 4 KiB buffer came in one event: %q", got)
			}
		})
	}
	wg.Wait()
	// http.response.pathsend: torsion sends the file the application
	// names; a relative path is the application's error, a 500.
	want, _ := os.ReadFile("testdata/asgi_spec.py")
	for _, proto := range []string{"--http1.1", "--http2-prior-knowledge"} {
		if got := curl(t, proto, base+"/pathsend"); got != string(want) {
			t.Errorf("pathsend over %s: %d bytes, want the %d of asgi_spec.py", proto, len(got), len(want))
		}
	}
	// http.response.trailers: after the body, over HTTP/1.1 (chunked) and
	// HTTP/2.
	h2cTransport := &http.Transport{Protocols: new(http.Protocols)}
	h2cTransport.Protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: h2cTransport}
	for _, client := range []*http.Client{http.DefaultClient, h2c} {
		resp, err := client.Get(base + "/trailers")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "body then trailers" || resp.Trailer.Get("X-Checksum") != "abc123" || resp.Trailer.Get("X-Count") != "2" ||
			resp.Trailer.Get("Content-Length") != "" {
			t.Errorf("trailers over %s: %q, trailer %v (without Content-Length)", resp.Proto, body, resp.Trailer)
		}
	}
	p.waitLog(`the application sent a trailer field that is not allowed; dropped.*field=content-length`)
	if got := curl(t, "-w", "%{http_code}", "-o", "/dev/null", base+"/pathsend-relative"); got != "500" {
		t.Errorf("pathsend of a relative path: %s, want 500", got)
	}
	p.waitLog(`http.response.pathsend wants an absolute path`)
	if got := curl(t, base+"/block"); !strings.HasPrefix(got, "ok ") {
		t.Errorf("/block: %q", got)
	}
	p.waitLog(`the event loop has been blocked for \d+\.\ds by synchronous code`)
	p.waitLog(`time\.sleep\(3\)`)
	p.stopOK()
}

// TestASGITimeout: a request that runs past --timeout has its task
// cancelled and is answered 504 while the worker's other requests go on;
// a task that synchronous code keeps from being cancelled costs its worker.
func TestASGITimeout(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hangs.py"), []byte(`import asyncio, os, time

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/hang":
        await asyncio.sleep(3600)
    elif scope["path"] == "/block":
        time.sleep(3600)
    elif scope["path"] == "/slow":
        await asyncio.sleep(0.3)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
`), 0o644)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "hangs:app", "--timeout", "1",
		"--chdir", dir, "--python", debianPython, "--workers", "1")
	base := "http://127.0.0.1:" + p.port()
	pid := curl(t, base+"/")
	type answer struct{ code, body string }
	get := func(path string) <-chan answer {
		c := make(chan answer, 1)
		go func() {
			out, _ := exec.Command("curl", "-s", "-w", " %{http_code}", base+path).Output()
			f := strings.Fields(string(out))
			if len(f) == 0 {
				c <- answer{}
				return
			}
			c <- answer{f[len(f)-1], strings.Join(f[:len(f)-1], " ")}
		}()
		return c
	}
	// While /hang runs out its time, requests of 0.3s follow each other
	// on the same worker, so some are in flight as it is cancelled: all
	// are answered, by that worker.
	hang := get("/hang")
	served := 0
	for done := false; !done; {
		select {
		case a := <-hang:
			if a.code != "504" {
				t.Errorf("/hang: %v, want 504", a)
			}
			done = true
		case a := <-get("/slow"):
			if a.code != "200" || a.body != pid {
				t.Errorf("/slow beside /hang: %v, want 200 from the same worker (pid %s)", a, pid)
			}
			served++
		}
	}
	if a := <-get("/"); a.code != "200" || a.body != pid {
		t.Errorf("after the cancellation: %v, want 200 from the same worker (pid %s)", a, pid)
	}
	if served < 2 {
		t.Errorf("only %d requests ran beside /hang", served)
	}
	p.waitLog(`a request ran longer than the timeout; cancelling its task`)
	// Where the task was goes to the log, with the request.
	p.waitLog(`the request's task ran past --timeout and is cancelled; it was at: .*uri=/hang`)
	if !strings.Contains(p.logText(), `hangs.py", line 7, in app`) {
		t.Errorf("the cancelled task's stack does not name its line:\n%s", p.logText())
	}
	if strings.Contains(p.logText(), "killing") {
		t.Errorf("a worker was killed for a task that could be cancelled:\n%s", p.logText())
	}
	// Synchronous code: the cancellation cannot land, and the worker goes.
	if a := <-get("/block"); a.code != "504" {
		t.Errorf("/block: %v, want 504", a)
	}
	p.waitLog(`a task cancelled for the timeout did not end; killing its worker`)
	// The kill's record holds the stack of the code that held the loop.
	waitUntil(10*time.Second, func() bool { return strings.Contains(p.logText(), `hangs.py", line 9 in app`) },
		func() { t.Errorf("the kill's record lacks the blocking line:\n%s", p.logText()) })
	if got := curl(t, base+"/"); got == pid || got == "" {
		t.Errorf("after the kill, answered by %q (the old worker was %s)", got, pid)
	}
	p.stop(syscall.SIGTERM)
}

// TestASGIWebSocket: an ASGI application accepts WebSockets with the
// subprotocol it chooses, echoes text and bytes (a 3 MiB message too, under
// flow control), pushes without being asked, closes with its own code and
// reason, and refuses a handshake with 403; Python's websockets library,
// as a client, talks to it too.
func TestASGIWebSocket(t *testing.T) {
	t.Parallel()
	needPython(t, "websockets")
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "ws_echo:app",
		"--chdir", "../../examples/asgi", "--python", debianPython, "--workers", "1")
	url := "ws://127.0.0.1:" + p.port()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url+"/", &websocket.DialOptions{Subprotocols: []string{"chat", "other"}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	c.SetReadLimit(8 << 20)
	if c.Subprotocol() != "chat" {
		t.Errorf("subprotocol %q, want chat", c.Subprotocol())
	}
	big := bytes.Repeat([]byte{0, 1, 2, 254, 255}, 3<<20/5)
	for _, m := range []struct {
		typ       websocket.MessageType
		send, got []byte
	}{
		{websocket.MessageText, []byte("hello"), []byte("echo: hello")},
		{websocket.MessageText, []byte("héllo ☃"), []byte("echo: héllo ☃")},
		{websocket.MessageBinary, []byte{0, 1, 2, 255}, []byte{0, 1, 2, 255}},
		{websocket.MessageBinary, big, big},
	} {
		if err := c.Write(ctx, m.typ, m.send); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil || typ != m.typ || !bytes.Equal(got, m.got) {
			t.Fatalf("sent %d bytes, got %v %d bytes (%.20q), %v", len(m.send), typ, len(got), got, err)
		}
	}
	c.Write(ctx, websocket.MessageText, []byte("close"))
	_, _, err = c.Read(ctx)
	if code := websocket.CloseStatus(err); code != 4001 {
		t.Errorf("close: %v (status %d), want 4001", err, code)
	}

	push, _, err := websocket.Dial(ctx, url+"/push", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, got, err := push.Read(ctx); err != nil || string(got) != fmt.Sprintf("push %d", i) {
			t.Errorf("push %d: %q %v", i, got, err)
		}
	}
	push.Close(websocket.StatusNormalClosure, "")

	if _, resp, err := websocket.Dial(ctx, url+"/deny", nil); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("/deny: %v, %v; want a 403", err, resp)
	}

	client := `import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        await ws.send("from python")
        print(await ws.recv())
asyncio.run(main())
`
	out, err := exec.CommandContext(ctx, debianPython, "-c", client, url+"/").CombinedOutput()
	if err != nil || string(out) != "echo: from python\n" {
		t.Errorf("python websockets client: %v\n%s", err, out)
	}
	p.waitLog(`"GET /push HTTP/1.1" 101 `)
	p.stopOK()
}

// TestASGIWebSocketNeverReads: a client that never reads what the
// application pushes holds nothing for long: the push waits on the
// client, which --client-timeout then drops, and the application's send
// raises, ending the connection.
func TestASGIWebSocketNeverReads(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ended")
	os.WriteFile(filepath.Join(dir, "pusher.py"), []byte(fmt.Sprintf(`
async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    sent = 0
    try:
        while True:
            await send({"type": "websocket.send", "bytes": b"x" * 65536})
            sent += 1
    except OSError as e:
        with open(%q, "w") as f:
            f.write("%%d %%s" %% (sent, e))
`, marker)), 0o644)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "pusher:app", "--client-timeout", "1",
		"--chdir", dir, "--python", debianPython, "--workers", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+p.port()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	// The file is written whole at the end: wait for its text, not for it.
	waitUntil(20*time.Second, func() bool { return nonEmpty(marker) },
		func() { t.Fatalf("the push to a client that never reads did not end; log:\n%s", p.logText()) })
	b, _ := os.ReadFile(marker)
	var sent int
	fmt.Sscan(string(b), &sent)
	t.Logf("the application pushed %d messages of 64 KiB before the client was dropped: %s", sent, b)
	if sent > 200 { // the window (1 MiB) and the kernel's buffers, not without end
		t.Errorf("%d messages of 64 KiB went to a client that reads nothing", sent)
	}
}

// TestASGIWebSocketHostile: hostile WebSocket clients are each bounded: a
// message over the 16 MiB limit is refused with 1009; a client that floods
// without reading what comes back is slowed by the application's pace,
// then dropped by --client-timeout; one that never answers the server's
// close frame is cut off. The server serves on after each.
func TestASGIWebSocketHostile(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "ws_echo:app", "--client-timeout", "2",
		"--chdir", "../../examples/asgi", "--python", debianPython, "--workers", "1")
	url := "ws://127.0.0.1:" + p.port() + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stillServes := func(what string) {
		t.Helper()
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
		defer c.CloseNow()
		c.Write(ctx, websocket.MessageText, []byte("still"))
		if _, got, err := c.Read(ctx); err != nil || string(got) != "echo: still" {
			t.Fatalf("after %s: %q %v", what, got, err)
		}
	}

	// rawHandshake opens a WebSocket by hand, for a client that then
	// behaves as no library would.
	rawHandshake := func(t *testing.T) (net.Conn, *bufio.Reader) {
		t.Helper()
		conn, err := net.Dial("tcp", "127.0.0.1:"+p.port())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		br := bufio.NewReader(conn)
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		return conn, br
	}

	t.Run("cross-origin handshake", func(t *testing.T) {
		// Go refuses another origin's handshake the application
		// accepted: the client gets the 403 (it once got an empty
		// reply, the worker's close code read as trailers killing the
		// worker), and the worker lives on.
		conn, err := net.Dial("tcp", "127.0.0.1:"+p.port())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("a cross-origin handshake: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "not authorized") {
			t.Errorf("a cross-origin handshake: %d %q, want 403", resp.StatusCode, body)
		}
		stillServes("a cross-origin handshake")
		if strings.Contains(p.logText(), "protocol") {
			t.Errorf("the worker broke the protocol:\n%s", p.logText())
		}
	})

	t.Run("oversized message", func(t *testing.T) {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		c.Write(ctx, websocket.MessageBinary, make([]byte, 17<<20)) // may fail as the server closes
		if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Errorf("a 17 MiB message: %v, want close 1009", err)
		}
		stillServes("an oversized message")
	})

	t.Run("flood without reading", func(t *testing.T) {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		msg := make([]byte, 64<<10)
		var sent int
		began := time.Now()
		for time.Since(began) < 20*time.Second {
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Write(wctx, websocket.MessageBinary, msg)
			wcancel()
			if err != nil {
				break // dropped, or held up
			}
			sent += len(msg)
		}
		t.Logf("the client wrote %d MiB in %v before it was held up or dropped", sent>>20, time.Since(began).Round(time.Millisecond))
		if sent > 256<<20 {
			t.Errorf("the server took %d MiB from a client that reads nothing back", sent>>20)
		}
		stillServes("a flood")
	})

	t.Run("close never answered", func(t *testing.T) {
		conn, br := rawHandshake(t)
		// A masked text frame "close": the application closes with 4001,
		// and this client never sends its close frame back.
		mask := []byte{1, 2, 3, 4}
		frame := []byte{0x81, 0x80 | 5, mask[0], mask[1], mask[2], mask[3]}
		for i, b := range []byte("close") {
			frame = append(frame, b^mask[i%4])
		}
		conn.Write(frame)
		began := time.Now()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := io.Copy(io.Discard, br) // the server's close frame, then its end
		if err != nil {
			t.Fatalf("after %d bytes: %v; want the connection closed by the server", n, err)
		}
		t.Logf("closed %v after the close frame", time.Since(began).Round(time.Millisecond))
		stillServes("an unanswered close")
	})

	// The idle bound on a server of its own: a 17 MiB message arriving
	// slowly on a loaded machine is quiet for as long as it takes.
	p.stopOK()
	p = start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "ws_echo:app",
		"--ws-idle-timeout", "2", "--chdir", "../../examples/asgi", "--python", debianPython, "--workers", "1")
	url = "ws://127.0.0.1:" + p.port() + "/"

	t.Run("silent client", func(t *testing.T) {
		// Handshakes, then neither sends nor answers the server's ping:
		// a client gone without a word. --ws-idle-timeout (2 s) closes it
		// with 1001, its ping first.
		conn, br := rawHandshake(t)
		began := time.Now()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		var ops []byte
		var code uint16
		for {
			var h [2]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				break // the server's end
			}
			payload := make([]byte, h[1]&0x7f) // control frames are short, and unmasked from a server
			io.ReadFull(br, payload)
			ops = append(ops, h[0]&0x0f)
			if h[0]&0x0f == 8 && len(payload) >= 2 {
				code = be.BigEndian.Uint16(payload)
			}
		}
		waited := time.Since(began)
		if !bytes.Equal(ops, []byte{9, 8}) || code != 1001 || waited < 2*time.Second {
			t.Errorf("frames %v, close code %d, after %v; want a ping, then a close with 1001 after 2 s", ops, code, waited)
		}
		p.waitLogs("closing an idle WebSocket", 1)
	})

	t.Run("client that only answers pings", func(t *testing.T) {
		// Sends nothing, but answers the server's pings: once, its pongs
		// counted as activity and it held its place for ever. Only
		// messages count: it is closed with 1001 after the idle timeout.
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		began := time.Now()
		_, _, err = c.Read(ctx) // answers pings while it waits
		if websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("read: %v; want the server's close with 1001", err)
		}
		// The idle clock started at the handshake, a little before began.
		if waited := time.Since(began); waited < 1500*time.Millisecond {
			t.Errorf("closed after %v, before the idle timeout (2 s)", waited)
		}
	})

	t.Run("long message in fragments", func(t *testing.T) {
		// One message whose fragments come for longer than the idle
		// timeout, each well within it: the client is not idle.
		conn, br := rawHandshake(t)
		mask := []byte{1, 2, 3, 4}
		for i := range 6 {
			op := byte(0x0) // continuation
			if i == 0 {
				op = 0x1 // text
			}
			if i == 5 {
				op |= 0x80 // the last fragment
			}
			frame := []byte{op, 0x80 | 5, mask[0], mask[1], mask[2], mask[3]}
			for j, b := range []byte("part ") {
				frame = append(frame, b^mask[j%4])
			}
			if _, err := conn.Write(frame); err != nil {
				t.Fatalf("fragment %d: %v", i+1, err)
			}
			if i < 5 {
				time.Sleep(600 * time.Millisecond) // the client's own pace: 3 s in all
			}
		}
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		var h [2]byte
		var got []byte
		for h[0] == 0 || h[0] == 0x89 { // pings aside
			if _, err := io.ReadFull(br, h[:]); err != nil {
				t.Fatal(err)
			}
			got = make([]byte, h[1]&0x7f)
			io.ReadFull(br, got)
		}
		if h[0] != 0x81 || string(got) != "echo: "+strings.Repeat("part ", 6) {
			t.Fatalf("the answer to a message sent in fragments over 3 s: frame %#x %q; want the echo", h[0], got)
		}
	})
	p.stopOK()

	// WebSockets beside requests: open WebSockets once took every place of
	// a worker, and requests waited behind them.
	p = start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "ws_echo:app", "--threads", "2",
		"--max-websockets", "12", "--chdir", "../../examples/asgi", "--python", debianPython, "--workers", "1")
	url = "ws://127.0.0.1:" + p.port() + "/"
	t.Run("WebSockets take no request's place", func(t *testing.T) {
		// Twelve: more than the worker's places in Python (2) and in Go
		// (--threads+8).
		for i := range 12 {
			c, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				t.Fatalf("WebSocket %d: %v", i+1, err)
			}
			defer c.CloseNow()
			c.Write(ctx, websocket.MessageText, []byte("hi"))
			if _, got, err := c.Read(ctx); err != nil || string(got) != "echo: hi" {
				t.Fatalf("WebSocket %d: %q %v", i+1, got, err)
			}
		}
		client := &http.Client{Timeout: 10 * time.Second}
		for i := range 3 {
			resp, err := client.Get("http://127.0.0.1:" + p.port() + "/")
			if err != nil {
				t.Fatalf("request %d beside twelve open WebSockets: %v", i+1, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("request %d beside twelve open WebSockets: %d", i+1, resp.StatusCode)
			}
		}
		_, resp, err := websocket.Dial(ctx, url, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("a WebSocket over --max-websockets 12: %v %v; want 503", resp, err)
		}
	})
	p.stopOK()
}

// TestASGIWebSocketSpec drives the WebSocket side of the to-the-letter
// application (testdata/asgi_spec.py) with eight connections at once: the
// scope and every event are as the ASGI specification says (the
// application closes with 4000 and what was not, else it answers "ok"),
// the first offered subprotocol and the accept's headers reach the
// client, a close before accept is a 403, the application's close code
// and reason reach the client, and the client's reach the application,
// whose send after the disconnect raises OSError.
func TestASGIWebSocketSpec(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "asgi_spec:app",
		"--chdir", "testdata", "--python", debianPython, "--workers", "2", "--h2c")
	base := "ws://127.0.0.1:" + p.port()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c, resp, err := websocket.Dial(ctx, fmt.Sprintf("%s/ws/echo?i=%d", base, i), &websocket.DialOptions{Subprotocols: []string{"p1", "p2"}})
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer c.CloseNow()
			if c.Subprotocol() != "p1" || resp.Header.Get("X-Spec") != "ok" || resp.Header.Get("X-Http-Version") != "1.1" {
				t.Errorf("subprotocol %q, X-Spec %q, X-Http-Version %q", c.Subprotocol(), resp.Header.Get("X-Spec"), resp.Header.Get("X-Http-Version"))
			}
			for j, m := range []struct {
				typ  websocket.MessageType
				data []byte
			}{{websocket.MessageText, []byte("héllo")}, {websocket.MessageBinary, []byte{0, 1, 2}}, {websocket.MessageText, nil}} {
				if err := c.Write(ctx, m.typ, m.data); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				kind := map[websocket.MessageType]string{websocket.MessageText: "text", websocket.MessageBinary: "bytes"}[m.typ]
				want := fmt.Sprintf("ok %d %s %d", j+1, kind, len(string(m.data)))
				if m.typ == websocket.MessageText {
					want = fmt.Sprintf("ok %d text %d", j+1, len([]rune(string(m.data))))
				}
				if _, got, err := c.Read(ctx); err != nil || string(got) != want {
					t.Errorf("connection %d message %d: %q %v, want %q", i, j+1, got, err, want)
					return
				}
			}
			if i == 0 {
				c.Write(ctx, websocket.MessageText, []byte("close-me"))
				_, _, err := c.Read(ctx)
				var ce websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != 4321 || ce.Reason != "as asked" {
					t.Errorf("the application's close: %v", err)
				}
				return
			}
			c.Close(4100+websocket.StatusCode(i), "bye")
		})
	}
	// Over HTTP/2 (RFC 8441's extended CONNECT, as a browser opens one on
	// an HTTP/2 connection), with the same events.
	h2base := "http://127.0.0.1:" + p.port()
	ws, err := testutil.DialH2WebSocket(ctx, h2base+"/ws/echo?h2", nil, http.Header{"Sec-Websocket-Protocol": {"p1, p2"}})
	if err != nil {
		t.Fatalf("WebSocket over HTTP/2: %v", err)
	}
	if h := ws.Response.Header; h.Get("Sec-Websocket-Protocol") != "p1" || h.Get("X-Spec") != "ok" || h.Get("X-Http-Version") != "2" {
		t.Errorf("over HTTP/2: answer's header %v", h)
	}
	for j, m := range []string{"héllo", "two"} {
		ws.Send(testutil.OpText, []byte(m))
		want := fmt.Sprintf("ok %d text %d", j+1, len([]rune(m)))
		if op, got, err := ws.Recv(); err != nil || op != testutil.OpText || string(got) != want {
			t.Errorf("over HTTP/2, message %d: %d %q %v, want %q", j+1, op, got, err, want)
		}
	}
	ws.Close(4200, "h2 bye")
	if ws, err := testutil.DialH2WebSocket(ctx, h2base+"/ws/refuse", nil, nil); err == nil || ws == nil || ws.Response.StatusCode != http.StatusForbidden {
		t.Errorf("over HTTP/2, close before accept: %v, want a 403", err)
	}
	wg.Wait()
	if _, resp, err := websocket.Dial(ctx, base+"/ws/refuse", nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("close before accept: %v %v, want a 403", err, resp)
	}
	p.waitLogs(`disconnect 410[1-7] 'bye'`, 7)
	p.waitLogs(`disconnect 4200 'h2 bye'`, 1)
	p.waitLogs(`send after disconnect raised OSError`, 8)
	if strings.Contains(p.logText(), "did not raise") || strings.Contains(p.logText(), "without an int code") {
		t.Errorf("log:\n%s", p.logText())
	}

	// A stop closes open WebSockets with 1001 (going away), over HTTP/1.1
	// and HTTP/2, and the applications hear it; before, the stop waited
	// its 30 s for the clients to leave, then cut them off.
	h1, _, err := websocket.Dial(ctx, base+"/ws/echo?stop", nil)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := testutil.DialH2WebSocket(ctx, h2base+"/ws/echo?stop", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One message each: both applications are in their receive loop.
	h1.Write(ctx, websocket.MessageText, []byte("x"))
	h2.Send(testutil.OpText, []byte("x"))
	h1.Read(ctx)
	h2.Recv()
	stopped := make(chan time.Duration)
	go func() {
		t0 := time.Now()
		p.stopOK()
		stopped <- time.Since(t0)
	}()
	if _, _, err := h1.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("HTTP/1.1 WebSocket at the stop: %v, want 1001", err)
	}
	if op, msg, err := h2.Recv(); err != nil || op != testutil.OpClose || len(msg) < 2 || be.BigEndian.Uint16(msg) != 1001 {
		t.Errorf("HTTP/2 WebSocket at the stop: %d %q %v, want a close with 1001", op, msg, err)
	}
	h2.Close(1001, "")
	if d := <-stopped; d > 15*time.Second {
		t.Errorf("the stop took %v", d)
	}
	if n := strings.Count(p.logText(), "disconnect 1001 "); n != 2 {
		t.Errorf("%d applications heard the stop, want 2; log:\n%s", n, p.logText())
	}
}

// TestChromiumWebSocketH2: Chromium, having loaded the WebSocket echo's
// page over HTTP/2 (TLS, ALPN), opens the page's WebSocket on the same
// connection (RFC 8441), as browsers do when the server offers extended
// CONNECT; the application says it came over HTTP/2 and echoes.
func TestChromiumWebSocketH2(t *testing.T) {
	t.Parallel()
	needPython(t)
	cert, key := openssl(t, t.TempDir(), "localhost")
	p := start(t, nil, "web", "--port", "ssl:0:privateKey="+key+":certKey="+cert+":interface=127.0.0.1",
		"--asgi", "ws_echo:app", "--chdir", "../../examples/asgi", "--python", debianPython, "--workers", "1")
	eval := chromium(t, "https://127.0.0.1:"+p.port()+"/", "--ignore-certificate-errors")
	var shown string
	waitUntil(60*time.Second, func() bool {
		shown = eval(`document.getElementById("log").textContent`)
		return strings.Contains(shown, "http_version: ")
	}, func() { t.Fatalf("the page shows %q; log:\n%s", shown, p.logText()) })
	if shown != "echo: hellohttp_version: 2" {
		t.Errorf("the page shows %q, want the echo over HTTP/2", shown)
	}
}

// TestPositionalASGI: an application given as gunicorn takes it,
// MODULE:APP, is served as what it is: an ASGI one as --asgi (it was taken
// as --wsgi, and refused).
func TestPositionalASGI(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "asgi_hello:app", "--chdir", "../../examples/asgi",
		"--python", debianPython, "--workers", "1")
	p.waitLog(`the application is ASGI`)
	p.waitLog(`ASGI application running app=asgi_hello:app workers=1 threads=64`)
	if got := curl(t, "http://127.0.0.1:"+p.port()+"/"); !strings.Contains(got, "Hello") {
		t.Errorf("the positional ASGI application: %q", got)
	}
	p.stopOK()
}
