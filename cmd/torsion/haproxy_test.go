package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago, for a
// program other than torsion that must be given a port to bind (HAProxy,
// ssh -L), or a fixed port in a README command; torsion itself binds
// tcp:0, and a test reads the port from its "starting on" line.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// TestHAProxy runs the seed's HAProxy recipe (examples/haproxy) with
// Debian's haproxy in front of three instances: all three serve, and
// stopping one (gracefully) and killing another (SIGKILL) under load loses
// no request, HAProxy taking them out of rotation by their health checks
// and retrying what died under it.
func TestHAProxy(t *testing.T) {
	t.Parallel()
	needPython(t)
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy is missing (scripts/test installs it): %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pidapp.py"), []byte(`import os
def application(environ, start_response):
    start_response("200 OK", [])
    return [str(os.getppid()).encode()]
`), 0o644)
	cfg, err := os.ReadFile("../../examples/haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	front := freePort(t)
	conf := strings.Replace(string(cfg), "127.0.0.1:8000", "127.0.0.1:"+front, 1)
	// Logging to stderr makes HAProxy say when it takes a server down.
	conf = strings.Replace(conf, "global\n", "global\n    log stderr format raw local0\n", 1)
	var ps []*proc
	for i := 1; i <= 3; i++ {
		p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--health", "tcp:0:interface=127.0.0.1",
			"--wsgi", "pidapp:application", "--chdir", dir, "--python", debianPython, "--workers", "1")
		site, health := p.waitLog(`Site starting on (\d+)`)[1], p.waitLog(`Health starting on (\d+)`)[1]
		conf = strings.Replace(conf, fmt.Sprintf("127.0.0.1:800%d check port 900%d", i, i), "127.0.0.1:"+site+" check port "+health, 1)
		ps = append(ps, p)
	}
	cfgFile := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(cfgFile, []byte(conf), 0o644)
	hp := startCmd(t, exec.Command(haproxy, "-db", "-f", cfgFile))
	url := "http://127.0.0.1:" + front + "/"
	client := &http.Client{Timeout: 30 * time.Second}
	get := func() (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return string(b), nil
	}
	// All three up (their checks must pass twice).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		seen := map[string]bool{}
		for range 30 {
			if b, err := get(); err == nil {
				seen[b] = true
			}
		}
		if len(seen) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every instance served through HAProxy: %v\n%s", seen, hp.logText())
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served, failed atomic.Int64
	var firstErr atomic.Value
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := get(); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					served.Add(1)
				}
			}
		})
	}
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt() // on every way out, a failed wait too
	// more waits until another n requests have been served, so each step
	// happens under load however slow the machine is.
	more := func(n int64, what string) {
		want := served.Load() + n
		waitUntil(60*time.Second, func() bool { return served.Load() >= want }, func() {
			t.Fatalf("%s: %d requests served, %d failed, the first: %v\n%s", what, served.Load(), failed.Load(), firstErr.Load(), hp.logText())
		})
	}
	more(100, "load before")
	ps[0].cmd.Process.Signal(syscall.SIGTERM) // a graceful stop
	ps[0].wait()
	hp.waitLog(`Server torsion/torsion1 is DOWN`)
	more(100, "load after the graceful stop")
	ps[1].cmd.Process.Kill() // and a crash
	ps[1].wait()
	more(100, "load after the crash")
	hp.waitLog(`Server torsion/torsion2 is DOWN`)
	more(100, "load on the last instance")
	halt()
	t.Logf("%d requests through HAProxy while two of three instances went away, %d failed", served.Load(), failed.Load())
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed; the first: %v\n%s", n, firstErr.Load(), hp.logText())
	}
}
