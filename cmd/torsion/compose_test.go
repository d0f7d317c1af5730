package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompose serves the Flask app of examples/compose with its static
// directory beside it, a second app mounted at /blog and on a virtual
// host, and a proxy mount back to the blog, all from one command line.
func TestCompose(t *testing.T) {
	t.Parallel()
	needPython(t, "flask")
	dir, _ := filepath.Abs("../../examples/compose")
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1",
		"--wsgi", "app:app", "--chdir", dir, "--python", debianPython, "--workers", "1",
		"--static", "/static="+filepath.Join(dir, "static"),
		"--mount", "/blog=wsgi:blog.application",
		"--vhost", "blog.localhost=wsgi:blog.application",
		"--vhost", "*.files.localhost=path:"+filepath.Join(dir, "static"),
		"--static-cache-control", "max-age=60")
	port := p.port()
	base := "http://127.0.0.1:" + port
	css, _ := os.ReadFile(filepath.Join(dir, "static", "style.css"))
	resolve := func(host string) []string { return []string{"--resolve", host + ":" + port + ":127.0.0.1"} }
	tests := []struct {
		args []string
		want string
	}{
		{[]string{base + "/"}, `<link rel="stylesheet" href="/static/style.css"><p>Flask at /, scheme http</p>`},
		{[]string{base + "/static/style.css"}, string(css)},
		{[]string{"-D", "-", "-o", "/dev/null", "-H", "Accept-Encoding: gzip", base + "/static/style.css"}, "Content-Encoding: gzip"},
		{[]string{"-D", "-", "-o", "/dev/null", base + "/static/style.css"}, "Cache-Control: max-age=60"},
		{[]string{base + "/whoami"}, "127.0.0.1 127.0.0.1:" + port},
		{[]string{base + "/blog/post/1?x"}, "blog: SCRIPT_NAME='/blog' PATH_INFO='/post/1' HOST='127.0.0.1:" + port + "'\n"},
		{[]string{base + "/blog"}, "blog: SCRIPT_NAME='/blog' PATH_INFO=''"},
		{[]string{base + "/nothing-here", "-o", "/dev/null", "-w", "%{http_code}"}, "404"},
		{append(resolve("blog.localhost"), "http://blog.localhost:"+port+"/post/2"), "blog: SCRIPT_NAME='' PATH_INFO='/post/2' HOST='blog.localhost:" + port + "'\n"},
		{append(resolve("BLOG.localhost"), "http://BLOG.localhost:"+port+"/"), "blog: SCRIPT_NAME='' PATH_INFO='/'"},
		{append(resolve("cdn.files.localhost"), "http://cdn.files.localhost:"+port+"/style.css"), string(css)},
		{append(resolve("other.localhost"), "http://other.localhost:"+port+"/"), "<p>Flask at /, scheme http</p>"},
	}
	for _, tt := range tests {
		if got := curl(t, tt.args...); !strings.Contains(got, tt.want) {
			t.Errorf("curl %v:\n got %q\nwant %q", tt.args, got, tt.want)
		}
	}
	p.stopOK()
}

func TestComposeOptionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"web", "--static", "static=."}, `--static "static=.": want PREFIX=DIR, the prefix starting with /`},
		{[]string{"web", "--static", "/s=/no/such/dir"}, `--static "/s=/no/such/dir": stat /no/such/dir: no such file or directory`},
		{[]string{"web", "--mount", "/a=ftp:x"}, `--mount "/a=ftp:x": "ftp:x": want wsgi:MODULE.ATTR, asgi:MODULE:ATTR, path:DIR or proxy:URL`},
		{[]string{"web", "--mount", "/a=proxy:localhost"}, `want an http:// or https:// URL`},
		{[]string{"web", "--mount", "/a=path:.", "--static", "/a/=."}, `--mount "/a=path:.": /a is already mounted by --static "/a/=."`},
		{[]string{"web", "--path", ".", "--mount", "/=path:."}, `the root is already served`},
		{[]string{"web", "--vhost", "a.example"}, `--vhost "a.example": want HOST=SPEC`},
		{[]string{"web", "--vhost", "a.*.example=path:."}, `virtual host "a.*.example": not a host name`},
		{[]string{"web", "--no-listing"}, "need a directory to serve"},
	}
	for _, tt := range tests {
		out, code := run(t, tt.args...)
		if code != 2 || !strings.Contains(out, tt.msg) {
			t.Errorf("torsion %v: exit %d, output %q; want 2 and %q", tt.args, code, out, tt.msg)
		}
	}
}
