package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/testutil"
)

var binary string

func TestMain(m *testing.M) {
	// When the tests run as root (as CI does), every run would warn that
	// it runs as root; TestRunAs checks what happens without this.
	os.Setenv("TORSION_ALLOW_ROOT", "1")
	dir, err := os.MkdirTemp("", "torsion-test")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // other users run it too (TestConchUsers' SFTP, TestRunAs)
	binary = filepath.Join(dir, "torsion")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building torsion: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running torsion whose log is collected line by line.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  []string
	seen chan struct{} // pinged on every new line
	done chan error
}

// start runs torsion with args, and env added to the environment.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, cmd)
}

// startCmd starts cmd, collecting its standard error as the log.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, seen: make(chan struct{}, 1), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
			select {
			case p.seen <- struct{}{}:
			default:
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

// waitLog waits for a log line matching re and returns its submatches.
func (p *proc) waitLog(re string) []string {
	p.t.Helper()
	return p.waitLogs(re, 1)[0]
}

// waitLogs waits for n log lines matching re and returns their submatches.
func (p *proc) waitLogs(re string, n int) [][]string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(10 * time.Second)
	for {
		var ms [][]string
		p.mu.Lock()
		for _, l := range p.log {
			if m := rx.FindStringSubmatch(l); m != nil {
				ms = append(ms, m)
			}
		}
		p.mu.Unlock()
		if len(ms) >= n {
			return ms
		}
		select {
		case <-p.seen:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			p.t.Fatalf("no %d log lines matching %q in:\n%s", n, re, p.logText())
		}
	}
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// waitFileLogs waits, 90 seconds at most, until re has matched n lines of
// the log file at path (a server whose successors in an upgrade write to
// it too), and returns the submatches of the nth; text says, on failure,
// what to show beside the log.
func waitFileLogs(t *testing.T, path, re string, n int, text func() string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m [][]string
	waitUntil(90*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		m = rx.FindAllStringSubmatch(string(b), -1)
		return len(m) >= n
	}, func() { t.Fatalf("no %d lines matching %q; log:\n%s", n, re, text()) })
	return m[n-1]
}

// port waits for the "starting on" line and returns the bound port.
func (p *proc) port() string {
	return p.waitLog(`starting on (\d+)`)[1]
}

// stop sends sig and returns the exit status.
func (p *proc) stop(sig syscall.Signal) int {
	p.t.Helper()
	p.cmd.Process.Signal(sig)
	return p.wait()
}

// stopOK stops the server with SIGTERM, as its user would, and fails the
// test, with the server's log, unless it exits 0.
func (p *proc) stopOK() {
	p.t.Helper()
	if code := p.stop(syscall.SIGTERM); code != 0 {
		p.t.Errorf("exit %d; log:\n%s", code, p.logText())
	}
}

// waitUntil polls cond every 10 ms until it holds; if it does not within
// d, fail is called (to fail the test, saying what never happened).
func waitUntil(d time.Duration, cond func() bool, fail func()) { testutil.WaitUntil(d, cond, fail) }

// gone reports whether process pid has exited, whoever reaps it (a
// zombie counts as gone).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// listening reports whether something accepts connections at addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// nonEmpty reports whether the file at path holds something.
func nonEmpty(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() > 0
}

func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Fatalf("torsion did not exit; log:\n%s", p.logText())
	}
	return p.cmd.ProcessState.ExitCode()
}

func curl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runEnv(t, nil, args...)
}

// runEnv is run with env added to the environment.
func runEnv(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.Run()
	return buf.String(), cmd.ProcessState.ExitCode()
}

func TestHelp(t *testing.T) {
	t.Parallel()
	out, code := run(t, "--help")
	if code != 0 {
		t.Errorf("--help exit %d", code)
	}
	for _, want := range []string{"web ", "A web server for files and Python applications, WSGI and ASGI", "echo ", "An echo server", "--logfile", "--log-format", "--pidfile", "--shutdown-timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("torsion --help lacks %q:\n%s", want, out)
		}
	}
	out, _ = run(t, "web", "--help")
	for _, want := range []string{"--port", "--path", "--index", "--no-listing", "--allow-symlinks", "--header-timeout", "$PORT"} {
		if !strings.Contains(out, want) {
			t.Errorf("torsion web --help lacks %q:\n%s", want, out)
		}
	}
}

// TestGunicornHabits: options as gunicorn users type them: durations in
// bare seconds, -w and -t, a module without an attribute; and --version.
func TestGunicornHabits(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "--shutdown-timeout", "10", "web", "-b", "127.0.0.1:0", "--listen", "tcp:0:interface=127.0.0.1",
		"-w", "2", "-t", "30", "--client-timeout", "0.5", "--wsgi", "wsgi_hello", "--chdir", "../../examples/wsgi", "--python", debianPython,
		"--env", "TORSION_TEST_GREETING=bonjour")
	other := p.waitLogs(`Site starting on (\d+)`, 2)
	for _, m := range other {
		if got := curl(t, "http://127.0.0.1:"+m[1]+"/"); !strings.Contains(got, "Hello") {
			t.Errorf("--wsgi wsgi_hello on %s: %q", m[1], got)
		}
	}
	pid, _ := strconv.Atoi(p.waitLog(`worker started worker=1 pid=(\d+)`)[1])
	if env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); !strings.Contains(string(env), "TORSION_TEST_GREETING=bonjour\x00") {
		t.Error("--env did not reach the worker's environment")
	}
	p.waitLog(`WSGI application running app=wsgi_hello:application workers=2`)
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, code := run(t, args...)
		if code != 0 || !strings.HasPrefix(out, "torsion ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("torsion %v: exit %d, %q", args, code, out)
		}
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad endpoint", []string{"web", "--port", "tcp:80:interfac=x"}, 2, `endpoint "tcp:80:interfac=x": unknown parameter "interfac"`},
		{"host:port as --port", []string{"web", "--port", "127.0.0.1:8000"}, 2, `host:port is not an endpoint description: for 127.0.0.1:8000, write tcp:8000:interface=127.0.0.1`},
		{"bare port out of range", []string{"web", "--port", "70000"}, 2, `port "70000" is not a number from 0 to 65535`},
		{"bad bind", []string{"web", "-b", "nowhere:80"}, 2, `--bind: bind "nowhere:80": the host must be an IP address (or localhost)`},
		{"negative workers", []string{"web", "--workers", "-3", "--wsgi", "x:y"}, 2, "--workers must be at least 1"},
		{"zero workers", []string{"web", "-w", "0", "--wsgi", "x:y"}, 2, "--workers must be at least 1"},
		{"zero threads", []string{"web", "--threads", "0", "--wsgi", "x:y"}, 2, "--threads must be at least 1"},
		{"bad env", []string{"web", "--env", "NOVALUE", "--wsgi", "x:y"}, 2, `environment "NOVALUE": want KEY=VALUE`},
		{"unknown flag", []string{"web", "--prot", "80"}, 2, "unknown flag: --prot"},
		{"unknown plugin", []string{"wbe"}, 2, `unknown command "wbe"`},
		{"missing path", []string{"web", "--path", "/nonexistent/dir"}, 2, "--path: stat /nonexistent/dir: no such file or directory"},
		{"path is a file", []string{"web", "--path", binary}, 2, "not a directory"},
		{"stray argument", []string{"web", "tcp:8000"}, 2, `"tcp:8000" is not an application, MODULE:APP; endpoints go in --port or -b`},
		{"two applications", []string{"web", "a:app", "b:app"}, 2, `give one application, MODULE:APP`},
		{"an application and --path", []string{"web", "--path", "/tmp", "a:app"}, 2, `the root is given already`},
		// gunicorn's and uvicorn's options: the same under torsion's
		// name, or a pointer to it; a misspelt one, the nearest.
		{"gunicorn's --certfile", []string{"web", "--certfile", "c.pem"}, 2, `unknown flag: --certfile: the certificate goes in the endpoint: --port ssl:8443:privateKey=KEY.pem:certKey=CERT.pem`},
		{"uvicorn's --uds", []string{"web", "--uds", "/tmp/s"}, 2, `give --port unix:PATH`},
		{"a misspelt option", []string{"web", "--idle-timout", "5"}, 2, `unknown flag: --idle-timout (did you mean --idle-timeout?)`},
		{"bad WEB_CONCURRENCY", []string{"--check-config", "web", "--wsgi", "x:y"}, 2, `$WEB_CONCURRENCY "many": want a number of workers`},
		{"bad log format", []string{"--log-format", "xml", "web"}, 2, `log format "xml": want text or json`},
		{"bad timeout", []string{"--shutdown-timeout", "soon", "web"}, 2, `invalid argument "soon" for "--shutdown-timeout" flag: "soon" is not a duration: give seconds (30) or Go's form (30s, 1m30s, 250ms)`},
		{"negative seconds", []string{"web", "-t", "-5"}, 2, `invalid argument "-5" for "-t, --timeout" flag: -5 seconds is out of range`},
		{"port in use", []string{"web", "--port", "tcp:" + busyPort + ":interface=127.0.0.1"}, 1, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var env []string
			if tt.name == "bad WEB_CONCURRENCY" {
				env = []string{"WEB_CONCURRENCY=many"}
			}
			out, code := runEnv(t, env, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.msg) {
				t.Errorf("torsion %v: exit %d, output:\n%s\nwant exit %d and %q", tt.args, code, out, tt.code, tt.msg)
			}
			if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
				t.Errorf("stack trace in output:\n%s", out)
			}
		})
	}
}

func TestWebServesAndShutsDown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from disk\n"), 0o644)
	// Big enough that the server is still writing after loopback's socket
	// buffers are full.
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB
	os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644)
	pidfile := filepath.Join(t.TempDir(), "torsion.pid")

	p := start(t, nil, "--pidfile", pidfile, "web", "--port", "tcp:0:interface=127.0.0.1", "--path", dir)
	port := p.port()
	base := "http://127.0.0.1:" + port
	if got := curl(t, base+"/hello.txt"); got != "hello from disk\n" {
		t.Errorf("GET /hello.txt = %q", got)
	}
	pid, _ := os.ReadFile(pidfile)
	if strings.TrimSpace(string(pid)) != strconv.Itoa(p.cmd.Process.Pid) {
		t.Errorf("pid file holds %q, want %d", pid, p.cmd.Process.Pid)
	}
	p.waitLog(`\[access\] 127\.0\.0\.1 - - \[[^]]+\] "GET /hello\.txt HTTP/1\.1" 200 16 "-" "curl/`)

	// A slow download is in flight when SIGTERM arrives: it must finish,
	// while new connections are refused at once.
	out := filepath.Join(t.TempDir(), "big.bin")
	dl := exec.Command("curl", "-sS", "--limit-rate", "40M", "-o", out, base+"/big.bin")
	if err := dl.Start(); err != nil {
		t.Fatal(err)
	}
	// SIGTERM once the download has begun.
	waitUntil(20*time.Second, func() bool { return nonEmpty(out) }, func() { t.Fatal("the download did not begin") })
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(`Received SIGTERM, shutting down\.`)
	// The listener closes as the stop begins: new connections are refused
	// while the download goes on.
	waitUntil(5*time.Second, func() bool { return !listening("127.0.0.1:" + port) },
		func() { t.Fatal("new connections accepted during graceful shutdown") })
	if dl.ProcessState != nil {
		t.Error("the download ended before the listener closed")
	}
	if err := dl.Wait(); err != nil {
		t.Errorf("in-flight download failed: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, big) {
		t.Errorf("in-flight download got %d bytes, want %d", len(got), len(big))
	}
	if code := p.wait(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; log:\n%s", code, p.logText())
	}
	p.waitLog(`\(TCP Port \d+ Closed\)`)
	p.waitLog(`Server Shut Down\.`)
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

func TestShutdownTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A sparse 256 MiB file: the server is still sending it when the
	// timeout ends.
	f, err := os.Create(filepath.Join(dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(256 << 20)
	f.Close()
	p := start(t, nil, "--shutdown-timeout", "300ms", "web", "--port", "tcp:0:interface=127.0.0.1", "--path", dir)
	port := p.port()
	// A download that has begun and reads no more: in flight at the stop.
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:"+port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(64 << 10)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	io.WriteString(c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: %v %v", resp, err)
	}
	begin := time.Now()
	code := p.stop(syscall.SIGTERM)
	if waited := time.Since(begin); waited > 5*time.Second {
		t.Errorf("shutdown took %v with a 300ms timeout", waited)
	}
	if code != 1 {
		t.Errorf("exit status %d after a cut-short shutdown, want 1", code)
	}
	p.waitLog(`graceful stop cut short`)
	if n, err := io.Copy(io.Discard, resp.Body); err == nil || n >= 256<<20 {
		t.Errorf("download of %d bytes ended with %v, although the shutdown cut it short", n, err)
	}
}

func TestPortEnvironment(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	p := start(t, []string{"PORT=" + port}, "web")
	if got := p.port(); got != port {
		t.Fatalf("listening on %s, want $PORT %s", got, port)
	}
	if body := curl(t, "http://127.0.0.1:"+port+"/"); !strings.Contains(body, "Hello from torsion") {
		t.Errorf("demo page = %q", body)
	}
	if code := p.stop(syscall.SIGINT); code != 0 {
		t.Errorf("exit %d after SIGINT", code)
	}
	p.waitLog(`Received SIGINT, shutting down\.`)
}

func TestJSONLogFile(t *testing.T) {
	t.Parallel()
	logfile := filepath.Join(t.TempDir(), "torsion.log")
	p := start(t, nil, "--log-format", "json", "--logfile", logfile, "web", "--port", "tcp:0:interface=127.0.0.1")
	var port string
	for deadline := time.Now().Add(10 * time.Second); port == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(logfile)
		if m := regexp.MustCompile(`starting on (\d+)`).FindSubmatch(b); m != nil {
			port = string(m[1])
		}
	}
	if port == "" {
		t.Fatal("no start line in the log file")
	}
	curl(t, "http://127.0.0.1:"+port+"/")
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d", code)
	}
	b, _ := os.ReadFile(logfile)
	var access bool
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec["system"] == "access" && rec["msg"] == "request" && rec["method"] == "GET" && rec["uri"] == "/" && rec["status"] == 200.0 {
			access = true
		}
	}
	if !access {
		t.Errorf("no access record in:\n%s", b)
	}
}

func TestPidfileOfLiveProcess(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "pid")
	os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())), 0o644)
	out, code := run(t, "--pidfile", pidfile, "web", "--port", "tcp:0:interface=127.0.0.1")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("another server is running with pid %d", os.Getpid())) {
		t.Errorf("exit %d, output %q", code, out)
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "echo", "--port", "tcp:0:interface=127.0.0.1")
	port := p.port()
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello, echo\n")
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "hello, echo\n" {
		t.Errorf("echo = %q, %v", got, err)
	}
	p.stopOK()
	// Shutting down closed our connection.
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after shutdown: %v, want EOF", err)
	}
}

// TestRequestLimits checks the limits are options and answer 414 and 431.
func TestRequestLimits(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--max-request-line", "100", "--max-headers", "5")
	base := "http://127.0.0.1:" + p.port()
	if got := curl(t, "-o", "/dev/null", "-w", "%{http_code}", base+"/"+strings.Repeat("a", 200)); got != "414" {
		t.Errorf("long request line: %s, want 414", got)
	}
	args := []string{"-o", "/dev/null", "-w", "%{http_code}"}
	for i := 0; i < 6; i++ {
		args = append(args, "-H", fmt.Sprintf("X-H%d: v", i))
	}
	if got := curl(t, append(args, base+"/")...); got != "431" {
		t.Errorf("too many headers: %s, want 431", got)
	}
	if got := curl(t, "-o", "/dev/null", "-w", "%{http_code}", base+"/"); got != "200" {
		t.Errorf("plain request: %s, want 200", got)
	}
	// Refused requests are in the access log, with their status.
	p.waitLog(`\[access\] 127\.0\.0\.1 - - .* 414 `)
	p.waitLog(`\[access\] 127\.0\.0\.1 - - .*"GET / HTTP/1.1" 431 `)
}
