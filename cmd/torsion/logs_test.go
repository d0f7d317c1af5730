package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/testutil"
)

// TestLogDestinations: --access-logfile sends the access log to its own
// file (fields in JSON), or nowhere with none; --log-level drops what is
// less severe; bad values exit 2 naming the option.
func TestLogDestinations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hi"), 0o644)
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return string(b)
	}
	// waitFor waits until file name holds want.
	waitFor := func(name, want string) {
		t.Helper()
		waitUntil(20*time.Second, func() bool { return strings.Contains(read(name), want) },
			func() { t.Fatalf("%s never held %q:\n%s", name, want, read(name)) })
	}
	cases := []struct {
		name   string
		args   []string
		main   string // the main log's file
		access string // the access log's file, or "" for none
		json   bool
		quiet  bool // --log-level warn: no start line in the main log
	}{
		{"separate files", []string{"--access-logfile", "a1.log"}, "m1.log", "a1.log", false, false},
		{"no access log", []string{"--access-logfile", "none"}, "m2.log", "", false, false},
		{"json fields", []string{"--log-format", "json", "--access-logfile", "a3.log"}, "m3.log", "a3.log", true, false},
		{"log level", []string{"--log-level", "warn"}, "m4.log", "m4.log", false, true},
		{"gunicorn's names", []string{"--error-logfile", "e5.log", "--access-logfile", "a5.log"}, "e5.log", "a5.log", false, false},
		{"gunicorn's layout", []string{"--access-logfile", "a6.log", "web", "--access-logformat", `%(m)s %(U)s %(s)s %(b)s %(a)s %({X-Missing}i)s`}, "m6.log", "a6.log", false, false},
	}
	combined := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /index\.html HTTP/1\.1" 200 2 "-" "probe/1"$`)
	started := regexp.MustCompile(`Site starting on (\d+)`)
	for _, c := range cases {
		args := c.args
		if !slices.Contains(args, "--error-logfile") {
			args = append([]string{"--logfile", filepath.Join(dir, c.main)}, args...)
		}
		for i, a := range args {
			if strings.HasSuffix(a, ".log") && !filepath.IsAbs(a) {
				args[i] = filepath.Join(dir, a)
			}
		}
		if !slices.Contains(args, "web") {
			args = append(args, "web")
		}
		port := "0" // read from the start line; with no start line, one picked before
		if c.quiet {
			port = freePort(t)
		}
		args = append(args, "--port", "tcp:"+port+":interface=127.0.0.1", "--path", dir)
		p := start(t, nil, args...)
		waitUntil(20*time.Second, func() bool {
			if m := started.FindStringSubmatch(read(c.main)); m != nil {
				port = m[1]
			}
			return port != "0" && listening("127.0.0.1:"+port)
		}, func() { t.Fatalf("%s: never served; log:\n%s", c.name, read(c.main)) })
		if got := curl(t, "-A", "probe/1", "http://127.0.0.1:"+port+"/index.html"); got != "hi" {
			t.Fatalf("%s: %q", c.name, got)
		}
		if code := p.stop(syscall.SIGTERM); code != 0 {
			t.Fatalf("%s: exit %d", c.name, code)
		}
		main := read(c.main)
		switch {
		case c.quiet && strings.Contains(main, "Site starting"):
			t.Errorf("%s: an info line passed --log-level warn:\n%s", c.name, main)
		case !c.quiet && !strings.Contains(main, "Site starting"):
			t.Errorf("%s: the main log lacks the start line:\n%s", c.name, main)
		}
		if c.access != c.main && strings.Contains(main, "probe/1") {
			t.Errorf("%s: an access line in the main log:\n%s", c.name, main)
		}
		if c.access == "" || c.quiet {
			continue // none, or an info line under --log-level warn
		}
		waitFor(c.access, "probe/1")
		line := strings.TrimSpace(read(c.access))
		if c.name == "gunicorn's layout" {
			if line != "GET /index.html 200 2 probe/1 -" {
				t.Errorf("%s: access line %q, want the layout's", c.name, line)
			}
			continue
		}
		if c.json {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%s: %v: %q", c.name, err, line)
			}
			if rec["uri"] != "/index.html" || rec["status"] != 200.0 || rec["user_agent"] != "probe/1" || rec["system"] != "access" {
				t.Errorf("%s: record %v", c.name, rec)
			}
		} else if !strings.Contains(line, `"GET /index.html HTTP/1.1" 200 2 "-" "probe/1"`) {
			t.Errorf("%s: access line %q", c.name, line)
		} else if c.access != c.main && !combined.MatchString(line) {
			// A file of its own holds Apache's combined format alone, as
			// goaccess and awstats read it: no time or [access] before
			// the line, no request id after it.
			t.Errorf("%s: access line %q is not plain combined format", c.name, line)
		}
	}
	if out, code := run(t, "--log-level", "loud", "web"); code != 2 || !strings.Contains(out, "--log-level") {
		t.Errorf("--log-level loud: exit %d: %s", code, out)
	}
	if out, code := run(t, "--access-logfile", filepath.Join(dir, "no/such/dir/a.log"), "web"); code != 2 || !strings.Contains(out, "--access-logfile") {
		t.Errorf("--access-logfile in a missing directory: exit %d: %s", code, out)
	}
}

// TestImportErrorOnce: an application that cannot be imported is reported
// once, whatever the number of workers, from its own frames on.
func TestImportErrorOnce(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.py"), []byte("x = 1\nimport no_such_module_here\n"), 0o644)
	out, code := run(t, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "broken", "--chdir", dir,
		"--python", debianPython, "--workers", "3")
	if code == 0 {
		t.Fatalf("exit 0:\n%s", out)
	}
	if n := strings.Count(out, "ModuleNotFoundError: No module named 'no_such_module_here'"); n != 1 {
		t.Errorf("the error is reported %d times:\n%s", n, out)
	}
	if !strings.Contains(out, `broken.py", line 2, in <module>`) || strings.Contains(out, "torsion_worker") || strings.Contains(out, "importlib") {
		t.Errorf("the traceback should start at the application's frames:\n%s", out)
	}
}

// TestAccessLogNothingSent: a request whose connection ends before any
// answer — its client gave up, or a stop ran out of time and closed it —
// is logged as 499 with no bytes, not as the 200 or 502 nobody received.
func TestAccessLogNothingSent(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sleepy.py"), []byte(`import os, time
def application(environ, start_response):
    open(os.path.join(`+"%q"+`, environ["PATH_INFO"].strip("/")), "w").close()
    time.sleep(1 if environ["PATH_INFO"] == "/left" else 30)
    start_response("200 OK", [])
    return [b"late"]
`), 0o644)
	src, _ := os.ReadFile(filepath.Join(dir, "sleepy.py"))
	os.WriteFile(filepath.Join(dir, "sleepy.py"), []byte(strings.Replace(string(src), "%q", fmt.Sprintf("%q", dir), 1)), 0o644)
	p := start(t, nil, "--shutdown-timeout", "1", "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "sleepy",
		"--chdir", dir, "--python", debianPython, "--workers", "2")
	base := "http://127.0.0.1:" + p.port()
	started := func(name string) {
		t.Helper()
		waitUntil(20*time.Second, func() bool { return exists(filepath.Join(dir, name)) },
			func() { t.Fatalf("%s never reached the application; log:\n%s", name, p.logText()) })
	}
	// A client that gives up.
	c, err := net.Dial("tcp", "127.0.0.1:"+p.port())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /left HTTP/1.1\r\nHost: x\r\n\r\n")
	started("left")
	c.Close()
	p.waitLog(`"GET /left HTTP/1.1" 499 - `)
	// A request cut by the end of --shutdown-timeout.
	go exec.Command("curl", "-s", base+"/cut").Run()
	started("cut")
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait()
	if log := p.logText(); !strings.Contains(log, `"GET /cut HTTP/1.1" 499 - `) {
		t.Errorf("the cut request is not logged as 499:\n%s", log)
	}
}

// TestJSONLogs: under --log-format json, every record of a run that logs
// a start, requests, an application's failure, a traceback written to
// wsgi.errors and a worker killed for --timeout is one JSON object without
// a repeated key (17 of 27 had "system" twice), durations are seconds
// ("timeout": 1, not 1000000000), and a traceback is one record at ERROR
// with the request line and id, not a WARN record per line.
func TestJSONLogs(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "jl.py"), []byte(`import logging, sys, time
log = logging.getLogger("jl")

def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/logged":
        handler = logging.StreamHandler(environ["wsgi.errors"])
        log.addHandler(handler)
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("division failed")
        log.removeHandler(handler)
    if path == "/slow":
        time.sleep(5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`), 0o644)
	logfile := filepath.Join(dir, "log.json")
	p := start(t, nil, "--log-format", "json", "--logfile", logfile, "web", "--port", "tcp:0:interface=127.0.0.1",
		"--wsgi", "jl", "--chdir", dir, "--python", debianPython, "--workers", "1", "--timeout", "1")
	read := func() string { b, _ := os.ReadFile(logfile); return string(b) }
	var port string
	waitUntil(20*time.Second, func() bool {
		m := regexp.MustCompile(`"msg":"Site starting on (\d+)"`).FindStringSubmatch(read())
		if m != nil {
			port = m[1]
		}
		return m != nil
	}, func() { t.Fatalf("no start line:\n%s", read()) })
	base := "http://127.0.0.1:" + port
	curl(t, base+"/")
	curl(t, base+"/logged")
	curl(t, base+"/boom")
	curl(t, base+"/slow")
	waitUntil(20*time.Second, func() bool { return strings.Contains(read(), "killing it") }, func() { t.Fatalf("no timeout record:\n%s", read()) })
	p.stopOK()
	var tracebacks int
	var errorsID, accessID any // the request ids of /logged's traceback and of its access record
	for _, line := range strings.Split(strings.TrimSpace(read()), "\n") {
		dups, err := testutil.DuplicateKeys([]byte(line))
		if err != nil || len(dups) > 0 {
			t.Errorf("record %s: duplicate keys %v, %v", line, dups, err)
		}
		var rec map[string]any
		json.Unmarshal([]byte(line), &rec)
		if v, ok := rec["timeout"]; ok && v != 1.0 {
			t.Errorf("record %s: timeout %v, want 1 (seconds)", line, v)
		}
		if rec["system"] == "access" && rec["uri"] == "/logged" {
			accessID = rec["request_id"]
		}
		if rec["system"] == "wsgi.errors" {
			errorsID = rec["request_id"]
			if rec["level"] != "ERROR" || rec["msg"] != "division failed" || rec["uri"] != "/logged" ||
				!strings.Contains(fmt.Sprint(rec["text"]), "ZeroDivisionError") {
				t.Errorf("the wsgi.errors traceback: %s; want one ERROR record with the request", line)
			}
			tracebacks++
		}
	}
	if tracebacks != 1 {
		t.Errorf("the wsgi.errors traceback came as %d records, want 1:\n%s", tracebacks, read())
	}
	if id, _ := errorsID.(string); id == "" || errorsID != accessID {
		t.Errorf("the traceback's request_id %v, the access record's %v: want the same id", errorsID, accessID)
	}
}
