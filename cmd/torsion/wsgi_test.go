package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const debianPython = "/usr/bin/python3"

func needPython(t *testing.T, modules ...string) {
	t.Helper()
	if _, err := os.Stat(debianPython); err != nil {
		t.Skip("needs Debian's python3")
	}
	for _, m := range modules {
		if err := exec.Command(debianPython, "-c", "import "+m).Run(); err != nil {
			t.Fatalf("python module %s is missing (scripts/test installs it): %v", m, err)
		}
	}
}

// TestSeedApplications runs the six applications of the seed, unchanged,
// under the real binary, as "twist web --wsgi" would.
func TestSeedApplications(t *testing.T) {
	tests := []struct {
		app, module, want string
	}{
		{"wsgi_hello.application", "", "Hello world!\n"},
		{"werkzeug_hello.application", "werkzeug", "Hello World!"},
		{"flask_hello.application", "flask", "Hello World!"},
		{"webob_hello.application", "webob", "Hello World!"},
		{"pyramid_hello.application", "pyramid", "Hello World!"},
		{"django_hello.application", "django", "Hello World!"},
		{"flask_hello:app", "flask", "Hello World!"}, // gunicorn's form
	}
	for _, tt := range tests {
		t.Run(tt.app, func(t *testing.T) {
			if tt.module != "" {
				needPython(t, tt.module)
			} else {
				needPython(t)
			}
			p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", tt.app,
				"--chdir", "../../examples/wsgi", "--python", debianPython, "--workers", "1")
			port := p.port()
			if got := curl(t, "http://127.0.0.1:"+port+"/"); got != tt.want {
				t.Errorf("GET / = %q, want %q; log:\n%s", got, tt.want, p.logText())
			}
			p.waitLog(`"GET / HTTP/1.1" 200 `)
			if code := p.stop(syscall.SIGTERM); code != 0 {
				t.Errorf("exit %d; log:\n%s", code, p.logText())
			}
		})
	}
}

func TestWSGIImportFailure(t *testing.T) {
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(dir+"/broken.py", []byte("def application(e, s):\n    return []\nraise ImportError('the app is broken')\n"), 0o644)
	cmd := exec.Command(binary, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "broken.application", "--python", debianPython, "--workers", "2")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{"Traceback (most recent call last)", "ImportError: the app is broken", "exited during start-up"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestWSGIOptionErrors(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"web", "--wsgi", "hello"}, `--wsgi: application "hello": want MODULE:ATTR or MODULE.ATTR`},
		{[]string{"web", "--wsgi", "a:b", "--python", "/no/python"}, "--wsgi: python interpreter"},
		{[]string{"web", "--wsgi", "a:b", "--path", "."}, "--path and --wsgi are alternatives"},
		{[]string{"web", "--wsgi", "a:b", "--workers", "-2"}, "cannot be negative"},
	}
	for _, tt := range tests {
		out, code := run(t, tt.args...)
		if code != 2 || !strings.Contains(out, tt.msg) {
			t.Errorf("torsion %v: exit %d, output %q; want 2 and %q", tt.args, code, out, tt.msg)
		}
	}
}

// TestSlowClients opens 1,000 connections that send a request header a
// byte at a time, as a slowloris attack does, and checks that normal
// clients are served as fast as before: Go holds the slow ones, no worker
// waits for them. (gunicorn's sync worker and waitress stop answering
// under 200 such connections.)
func TestSlowClients(t *testing.T) {
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "wsgi_hello.application",
		"--chdir", "../../examples/wsgi", "--python", debianPython, "--workers", "1")
	addr := "127.0.0.1:" + p.port()
	median := func() time.Duration {
		var ds []time.Duration
		for i := 0; i < 40; i++ {
			start := time.Now()
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				t.Fatalf("normal client: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("normal client: status %d", resp.StatusCode)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	before := median()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var opened atomic.Int32
	for i := 0; i < 1000; i++ {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			opened.Add(1)
			head := "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 200)
			for i := 0; i < len(head); i++ {
				if _, err := c.Write([]byte{head[i]}); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	time.Sleep(time.Second) // all connected and trickling
	during := median()
	close(stop)
	wg.Wait()
	if n := opened.Load(); n < 950 {
		t.Fatalf("only %d slow connections opened", n)
	}
	t.Logf("median latency: %v alone, %v beside 1000 slow clients", before, during)
	if during > 5*before+20*time.Millisecond {
		t.Errorf("median latency %v beside slow clients, %v without", during, before)
	}
}
