package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
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
