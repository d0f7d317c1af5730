package main

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/sched"
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
	t.Parallel()
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
			p.stopOK()
		})
	}
}

func TestWSGIImportFailure(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(dir+"/broken.py", []byte("def application(e, s):\n    return []\nraise ImportError('the app is broken')\n"), 0o644)
	cmd := exec.Command(binary, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "broken.application", "--python", debianPython, "--workers", "2")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	// The error names the interpreter and its version: a module missing
	// from one Python is often installed for another.
	for _, want := range []string{"Traceback (most recent call last)", "ImportError: the app is broken", "exited during start-up",
		"under " + debianPython + ", CPython 3."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestWSGIOptionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"web", "--wsgi", "hello:"}, `--wsgi: application "hello:": want MODULE:ATTR, MODULE.ATTR or MODULE`},
		{[]string{"web", "--wsgi", "a:b", "--python", "/no/python"}, "--wsgi: python interpreter"},
		{[]string{"web", "--wsgi", "a:b", "--path", "."}, "--path, --wsgi and --asgi are alternatives"},
		{[]string{"web", "--wsgi", "a:b", "--workers", "-2"}, "--workers must be at least 1"},
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
	if testing.Short() {
		t.Skip("1,000 slow connections; run without -short")
	}
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
	// Measure once the slow clients are connected and trickling.
	waitUntil(30*time.Second, func() bool { return opened.Load() >= 950 }, func() {
		close(stop)
		wg.Wait()
		t.Fatalf("only %d slow connections opened", opened.Load())
	})
	during := median()
	close(stop)
	wg.Wait()
	t.Logf("median latency: %v alone, %v beside 1000 slow clients", before, during)
	if during > 5*before+20*time.Millisecond {
		t.Errorf("median latency %v beside slow clients, %v without", during, before)
	}
}

// uploadApp answers the size and sha256 of the request body, which it
// reads in pieces.
const uploadApp = `import hashlib
def application(environ, start_response):
    h, n, inp = hashlib.sha256(), 0, environ["wsgi.input"]
    while True:
        chunk = inp.read(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%d %s" % (n, h.hexdigest())).encode()]
`

// TestSlowUploads: with one worker, clients that trickle their bodies
// (each gap far shorter than --client-timeout) and clients that stop sending
// theirs hold no worker: everyone else is served while they upload. A
// stalled body gets 408 after --client-timeout; a trickled one is
// answered in full once it arrives.
func TestSlowUploads(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(dir+"/upload.py", []byte(uploadApp), 0o644)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "upload:application",
		"--chdir", dir, "--python", debianPython, "--workers", "1", "--body-buffer", "1024", "--client-timeout", "5s")
	addr := "127.0.0.1:" + p.port()
	const size = 20000
	body := strings.Repeat("x", size)
	sum := sha256.Sum256([]byte(body))
	want := fmt.Sprintf("%d %x", size, sum)

	// Five trickling uploads, 100 bytes every 200ms: 40s each.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int32
	trickle := make([]net.Conn, 5)
	offsets := make([]int, len(trickle)) // what each has sent, once stopped
	for i := range trickle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		trickle[i] = c
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
		wg.Go(func() {
			for off := 0; off < size-100; off += 100 {
				if _, err := io.WriteString(c, body[off:off+100]); err != nil {
					return
				}
				sent.Add(1)
				offsets[i] = off + 100
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		})
	}
	// Five stalled ones: 2 bytes of 10.
	stalled := make([]net.Conn, 5)
	for i := range stalled {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
		stalled[i] = c
	}
	// Wait until every trickling upload is past the body buffer, so each
	// would be on the worker were its body not spooled.
	waitUntil(60*time.Second, func() bool { return sent.Load() >= 5*15 }, func() { t.Fatal("the slow uploads did not get going") })
	client := &http.Client{Timeout: 20 * time.Second}
	for i := 0; i < 20; i++ {
		resp, err := client.Post("http://"+addr+"/", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("request %d beside the slow uploads: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != want {
			t.Fatalf("request %d beside the slow uploads: %d %q", i, resp.StatusCode, got)
		}
	}
	for i, c := range stalled {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("stalled body %d: %v", i, err)
		}
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("stalled body %d: %d, want 408", i, resp.StatusCode)
		}
	}
	// The trickling uploads were under way all along (they take 40s);
	// now each sends the rest at once and gets its answer.
	if n := int(sent.Load()); n >= 5*(size/100-1) {
		t.Fatalf("the slow uploads had ended (%d pieces) before the others were served", n)
	}
	close(stop)
	wg.Wait()
	for i, c := range trickle {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, body[offsets[i]:])
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("slow upload %d: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(got) != want {
			t.Errorf("slow upload %d: %d %q", i, resp.StatusCode, got)
		}
	}
	p.waitLog(`"POST / HTTP/1.1" 408`)
}

// peakRSS returns a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestLargeUploadStreams uploads 512 MiB, chunked, to an application that
// hashes it in pieces: neither torsion nor the worker may hold it whole.
func TestLargeUploadStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("a 512 MiB upload; run without -short")
	}
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(dir+"/upload.py", []byte(uploadApp), 0o644)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "upload:application",
		"--chdir", dir, "--python", debianPython, "--workers", "1")
	port := p.port()
	const size = 512 << 20
	zeros := sha256.New()
	io.CopyN(zeros, zeroReader{}, size)
	want := fmt.Sprintf("%d %x", size, zeros.Sum(nil))
	// curl streams from a pipe with chunked encoding: nothing is buffered
	// on the client side either.
	cmd := exec.Command("sh", "-c", fmt.Sprintf("head -c %d /dev/zero | curl -sS --max-time 120 -T - -H 'Content-Type: application/octet-stream' http://127.0.0.1:%s/", size, port))
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != want {
		t.Fatalf("upload: %v %q, want %q", err, out, want)
	}
	worker := p.waitLog(`worker started worker=1 pid=(\d+)`)[1]
	workerPid, _ := strconv.Atoi(worker)
	for name, pid := range map[string]int{"torsion": p.cmd.Process.Pid, "worker": workerPid} {
		if rss := peakRSS(t, pid); rss > 150<<20 {
			t.Errorf("%s peaked at %d MiB for a 512 MiB upload", name, rss>>20)
		} else {
			t.Logf("%s peak RSS %d MiB", name, rss>>20)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestSchedPolicy checks that --sched reaches torsion's threads and its
// Python workers: batch by default, normal on request.
func TestSchedPolicy(t *testing.T) {
	needPython(t)
	if _, err := sched.Get(os.Getpid()); err != nil {
		t.Skip(err)
	}
	for _, tt := range []struct {
		args []string
		want sched.Policy
	}{{nil, sched.Batch}, {[]string{"--sched", "normal"}, sched.Normal}} {
		args := append(tt.args, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "wsgi_hello.application",
			"--chdir", "../../examples/wsgi", "--python", debianPython, "--workers", "1")
		p := start(t, nil, args...)
		pid, _ := strconv.Atoi(p.waitLog(`worker started worker=1 pid=(\d+)`)[1])
		p.port()
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			tid, _ := strconv.Atoi(task.Name())
			if got, err := sched.Get(tid); got != tt.want {
				t.Errorf("torsion %v: thread %d has %q (%v), want %q", tt.args, tid, got, err, tt.want)
			}
		}
		if got, err := sched.Get(pid); got != tt.want {
			t.Errorf("torsion %v: the worker has %q (%v), want %q", tt.args, got, err, tt.want)
		}
		p.stop(syscall.SIGTERM)
	}
}

// TestSignalDuringStartup: SIGINT while the application is still being
// imported stops torsion then, not once the import is done (it once took
// 20.9s after Ctrl-C for an import of 20s, and then started serving).
func TestSignalDuringStartup(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "importing")
	os.WriteFile(filepath.Join(dir, "slowimport.py"), []byte(fmt.Sprintf(`import time
open(%q, "w").close()
time.sleep(60)
def application(environ, start_response):
    start_response("200 OK", [])
    return [b"too late"]
`, marker)), 0o644)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "slowimport:application",
		"--chdir", dir, "--python", debianPython, "--workers", "1")
	waitUntil(30*time.Second, func() bool { return exists(marker) },
		func() { t.Fatalf("the import did not begin; log:\n%s", p.logText()) })
	begin := time.Now()
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Errorf("exit %d after SIGINT during start-up; log:\n%s", code, p.logText())
	}
	if waited := time.Since(begin); waited > 20*time.Second {
		t.Errorf("torsion took %v to stop during a 60s import", waited)
	}
	if log := p.logText(); strings.Contains(log, "starting on") || !strings.Contains(log, "during start-up") {
		t.Errorf("log after SIGINT during start-up:\n%s", log)
	}
}

// TestPositionalApp: torsion web -b HOST:PORT MODULE:APP serves the
// application as gunicorn does (the MODULE:APP was an unknown command),
// with WEB_CONCURRENCY workers unless --workers says otherwise.
func TestPositionalApp(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, []string{"WEB_CONCURRENCY=2"}, "web", "-b", "127.0.0.1:0", "wsgi_hello", "--chdir", "../../examples/wsgi", "--python", debianPython)
	p.waitLog(`WSGI application running app=wsgi_hello:application workers=2 `)
	port := p.waitLog(`Site starting on (\d+)`)[1]
	if got := curl(t, "http://127.0.0.1:"+port+"/"); got != "Hello world!\n" {
		t.Errorf("the positional application: %q", got)
	}
	p.stopOK()
}
