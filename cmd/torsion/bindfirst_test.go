package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowImport is an application whose import takes $IMPORT_SECONDS.
const slowImport = `import os, time

time.sleep(float(os.environ["IMPORT_SECONDS"]))


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`

// TestPortsBoundFirst: torsion binds its ports before the application is
// imported. A port in use fails the start at once, though the import
// would take 20 s; connections made while the import runs wait in the
// listen backlog and are all answered once the workers are ready.
func TestPortsBoundFirst(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slowimport.py"), []byte(slowImport), 0o644)
	app := []string{"--wsgi", "slowimport:app", "--chdir", dir, "--python", debianPython, "--workers", "1"}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	begun := time.Now()
	out, code := runEnv(t, []string{"IMPORT_SECONDS=20"}, append([]string{"web", "--port", "tcp:" + port + ":interface=127.0.0.1"}, app...)...)
	took := time.Since(begun)
	if code != 1 || !strings.Contains(out, "address already in use") {
		t.Errorf("a port in use: exit %d:\n%s", code, out)
	}
	t.Logf("a port in use failed the start in %v", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("a port in use failed the start only after %v: the import ran first", took)
	}

	sock := filepath.Join(dir, "web.sock")
	p := start(t, []string{"IMPORT_SECONDS=3"}, append([]string{"web", "--port", "unix:" + sock}, app...)...)
	waitUntil(10*time.Second, func() bool { return exists(sock) }, func() { t.Fatalf("the socket was not bound:\n%s", p.logText()) })
	const n = 50
	answers := make([]string, n)
	var dialed, wg sync.WaitGroup
	dialed.Add(n)
	for i := range n {
		wg.Go(func() {
			c, err := net.Dial("unix", sock)
			dialed.Done()
			if err != nil {
				answers[i] = err.Error()
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			b, err := io.ReadAll(c)
			answers[i] = string(b)
			if err != nil {
				answers[i] += err.Error()
			}
		})
	}
	dialed.Wait()
	if strings.Contains(p.logText(), "WSGI application running") {
		t.Errorf("the import ended before the %d connections were made; they prove nothing", n)
	}
	wg.Wait()
	for i, a := range answers {
		if !strings.HasPrefix(a, "HTTP/1.1 200 OK") || !strings.HasSuffix(a, "ok") {
			t.Errorf("connection %d made during the import: %q", i, a)
		}
	}
	p.stopOK()
}
