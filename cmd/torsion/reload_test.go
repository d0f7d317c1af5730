package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReload sends 10 SIGHUPs to a Flask application with two workers
// while four clients keep requesting it: no request fails, and after each
// reload the new code answers. New code that does not import is logged
// and the old workers go on serving.
func TestReload(t *testing.T) {
	t.Parallel()
	needPython(t, "flask")
	dir := t.TempDir()
	app := filepath.Join(dir, "reloadapp.py")
	write := func(version string) {
		t.Helper()
		src := fmt.Sprintf("from flask import Flask\napplication = Flask(__name__)\n\n@application.route('/')\ndef index():\n    return %q\n", version)
		if err := os.WriteFile(app, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("version 0")
	// No .pyc: a rewrite within the same second, of the same size, must
	// not be taken for the old code.
	p := start(t, []string{"PYTHONDONTWRITEBYTECODE=1"}, "web", "--port", "tcp:0:interface=127.0.0.1",
		"--wsgi", "reloadapp:application", "--chdir", dir, "--python", debianPython, "--workers", "2")
	site := "http://127.0.0.1:" + p.port() + "/"

	load := startLoad(site, 4)
	for i := 1; i <= 10; i++ {
		version := fmt.Sprintf("version %d", i)
		write(version)
		p.cmd.Process.Signal(syscall.SIGHUP)
		p.waitLogs(`Reload complete\.`, i)
		if got := curl(t, site); got != version {
			t.Fatalf("after reload %d: %q", i, got)
		}
	}
	// New code that does not import: the reload fails, the old serves.
	os.WriteFile(app, []byte("def broken(:\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(`The reload failed; what ran before goes on\.`)
	if got := curl(t, site); got != "version 10" {
		t.Errorf("after a failed reload: %q", got)
	}
	load.check(t, "10 reloads")
	if !strings.Contains(p.logText(), "SyntaxError") {
		t.Errorf("the failed reload's traceback is not in the log:\n%s", p.logText())
	}
	p.stopOK()
}

// load is clients that keep requesting a URL, counting what was served
// and what failed, until check stops them.
type load struct {
	stop           chan struct{}
	wg             sync.WaitGroup
	served, failed atomic.Int64
	firstErr       atomic.Value
}

// startLoad starts n clients looping on url.
func startLoad(url string, n int) *load {
	l := &load{stop: make(chan struct{})}
	for range n {
		l.wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
				} else {
					l.served.Add(1)
				}
			}
		})
	}
	return l
}

// check stops the clients and fails t if any request failed during what.
func (l *load) check(t *testing.T, what string) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("%d requests served during %s, %d failed", l.served.Load(), what, l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed during %s; the first: %v", n, what, l.firstErr.Load())
	}
}

// TestSignals: SIGUSR1 reopens the log file after logrotate moved it;
// SIGTTIN and SIGTTOU do not stop the server.
func TestSignals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logfile := filepath.Join(dir, "torsion.log")
	p := start(t, nil, "--logfile", logfile, "web", "--port", "tcp:0:interface=127.0.0.1", "--path", dir)
	var port string
	for deadline := time.Now().Add(10 * time.Second); port == ""; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(logfile)
		if i := strings.Index(string(b), "Site starting on "); i >= 0 {
			port = strings.Fields(string(b)[i+len("Site starting on "):])[0]
		} else if time.Now().After(deadline) {
			t.Fatalf("no port in the log:\n%s", b)
		}
	}
	if err := os.Rename(logfile, logfile+".1"); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR1} {
		p.cmd.Process.Signal(sig)
	}
	waitUntil(10*time.Second, func() bool {
		b, _ := os.ReadFile(logfile)
		return strings.Contains(string(b), "log reopened")
	}, func() {
		b, _ := os.ReadFile(logfile + ".1")
		t.Fatalf("no new log file after SIGUSR1; the old one says:\n%s", b)
	})
	if got := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:"+port+"/"); got != "200" {
		t.Errorf("after SIGTTIN, SIGTTOU and SIGUSR1: %s", got)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestHealth: the health endpoint answers 503 while the application
// imports, 200 once it serves, and 503 again as soon as a graceful stop
// begins, while a request is still being finished.
func TestHealth(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	importing, inflight := filepath.Join(dir, "importing"), filepath.Join(dir, "inflight")
	os.WriteFile(filepath.Join(dir, "slowapp.py"), []byte(fmt.Sprintf(`import time
open(%q, "w").close()
time.sleep(2)
def application(environ, start_response):
    if environ["QUERY_STRING"]:
        open(%q, "w").close()
        time.sleep(float(environ["QUERY_STRING"]))
    start_response("200 OK", [])
    return [b"done"]
`, importing, inflight)), 0o644)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--health", "tcp:0:interface=127.0.0.1",
		"--wsgi", "slowapp:application", "--chdir", dir, "--python", debianPython, "--workers", "1")
	health := "http://127.0.0.1:" + p.waitLog(`Health starting on (\d+)`)[1] + "/"
	status := func() string { return curl(t, "-o", "/dev/null", "-w", "%{http_code}", health) }
	waitFile := func(path string) {
		t.Helper()
		waitUntil(30*time.Second, func() bool { return exists(path) }, func() { t.Fatalf("no %s", filepath.Base(path)) })
	}
	waitFile(importing)
	if got := status(); got != "503" {
		t.Errorf("while the application imports: %s, want 503", got)
	}
	site := "http://127.0.0.1:" + p.waitLog(`Site starting on (\d+)`)[1] + "/"
	waitUntil(30*time.Second, func() bool { return status() == "200" }, func() { t.Fatal("never ready") })
	// A request of 10s is in flight when SIGTERM comes: while it
	// finishes, the health check already says 503.
	slow := make(chan string, 1)
	go func() { slow <- curl(t, "--max-time", "60", site+"?10") }()
	waitFile(inflight)
	p.cmd.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(8 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got := status(); got == "503" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("during the graceful stop: %s, want 503", got)
		}
	}
	if got := <-slow; got != "done" {
		t.Errorf("the request in flight at the stop: %q", got)
	}
	if code := p.wait(); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestReloadOnChange: with --reload, saving a .py file reloads the
// workers, with one line naming the file; a file that does not import
// logs its traceback and the old workers go on serving.
func TestReloadOnChange(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	app := filepath.Join(dir, "devapp.py")
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile(app, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	body := func(s string) string {
		return fmt.Sprintf("def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b%q]\n", s)
	}
	write(body("first"))
	p := start(t, []string{"PYTHONDONTWRITEBYTECODE=1"}, "web", "--port", "tcp:0:interface=127.0.0.1", "--reload",
		"--wsgi", "devapp:application", "--chdir", dir, "--python", debianPython, "--workers", "2")
	site := "http://127.0.0.1:" + p.port() + "/"
	if got := curl(t, site); got != "first" {
		t.Fatalf("before: %q", got)
	}
	write(body("second"))
	p.waitLog(`code changed; reloading the workers file=.*devapp\.py`)
	p.waitLog(`workers reloaded`)
	if got := curl(t, site); got != "second" {
		t.Errorf("after saving: %q", got)
	}
	write("def application(:\n")
	p.waitLog(`the reload failed; the old workers go on serving`)
	if got := curl(t, site); got != "second" {
		t.Errorf("after saving broken code: %q", got)
	}
	if !strings.Contains(p.logText(), "SyntaxError") {
		t.Errorf("no traceback for the broken code:\n%s", p.logText())
	}
	if n := strings.Count(p.logText(), "code changed; reloading the workers"); n < 2 {
		t.Errorf("%d reloads for two saves:\n%s", n, p.logText())
	}
}
