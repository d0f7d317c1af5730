package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProxyHeaders runs behind a pretend load balancer: --proxy-headers
// believes the forwarding headers from trusted addresses only.
func TestProxyHeaders(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "envapp.py"), []byte(environApp), 0o644)
	common := []string{"web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "envapp.application", "--chdir", dir,
		"--python", debianPython, "--workers", "1", "--proxy-headers"}
	headers := []string{"-H", "X-Forwarded-For: 203.0.113.7", "-H", "X-Forwarded-Proto: https", "-H", "X-Forwarded-Host: shop.example"}

	trusting := start(t, nil, common...) // 127.0.0.1 is trusted by default
	got := curl(t, append(headers, "http://127.0.0.1:"+trusting.port()+"/")...)
	for _, want := range []string{`"REMOTE_ADDR": "203.0.113.7"`, `"wsgi.url_scheme": "https"`, `"HTTPS": "on"`, `"HTTP_HOST": "shop.example"`, `"SERVER_PORT": "443"`} {
		if !strings.Contains(got, want) {
			t.Errorf("from a trusted proxy: %s lacks %s", got, want)
		}
	}
	trusting.waitLog(`\[access\] 203\.0\.113\.7 - - .*"GET / HTTP/1.1" 200`)

	distrusting := start(t, nil, append(common, "--forwarded-allow-ips", "10.0.0.0/8")...)
	got = curl(t, append(headers, "http://127.0.0.1:"+distrusting.port()+"/")...)
	for _, want := range []string{`"REMOTE_ADDR": "127.0.0.1"`, `"wsgi.url_scheme": "http"`, `"HTTP_HOST": "127.0.0.1:`} {
		if !strings.Contains(got, want) {
			t.Errorf("from an untrusted peer: %s lacks %s", got, want)
		}
	}
	// Believing the address and scheme only: a forwarded host, even a
	// valid one, is not taken.
	partial := start(t, nil, append(common, "--forwarded-fields", "for,proto")...)
	got = curl(t, append(headers, "http://127.0.0.1:"+partial.port()+"/")...)
	for _, want := range []string{`"REMOTE_ADDR": "203.0.113.7"`, `"wsgi.url_scheme": "https"`, `"HTTP_HOST": "127.0.0.1:`} {
		if !strings.Contains(got, want) {
			t.Errorf("with --forwarded-fields for,proto: %s lacks %s", got, want)
		}
	}
	// An invalid forwarded host is not taken either.
	got = curl(t, "-H", "X-Forwarded-For: 203.0.113.7", "-H", "X-Forwarded-Host: <script>x", "http://127.0.0.1:"+trusting.port()+"/")
	if !strings.Contains(got, `"HTTP_HOST": "127.0.0.1:`) || strings.Contains(got, "script") {
		t.Errorf("X-Forwarded-Host: <script>x: %s", got)
	}
	for _, p := range []*proc{trusting, distrusting, partial} {
		p.stopOK()
	}
	for args, msg := range map[string]string{
		"--proxy-headers --forwarded-allow-ips 10.0.0.0/99": `--forwarded-allow-ips: "10.0.0.0/99" is not an address prefix`,
		"--forwarded-allow-ips 10.0.0.1":                    "--forwarded-allow-ips and --forwarded-fields need --proxy-headers",
		"--proxy-headers --forwarded-fields for,port":       `--forwarded-fields: "port" is not one of for, proto, host`,
	} {
		out, code := run(t, append([]string{"web"}, strings.Fields(args)...)...)
		if code != 2 || !strings.Contains(out, msg) {
			t.Errorf("torsion web %s: exit %d, %q; want 2 and %q", args, code, out, msg)
		}
	}
}

// TestHAProxyEndpoint sends PROXY protocol headers as HAProxy does; the
// application and the access log see the client the header names.
func TestHAProxyEndpoint(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "envapp.py"), []byte(environApp), 0o644)
	p := start(t, nil, "web", "--port", "haproxy:tcp:0:interface=127.0.0.1", "--wsgi", "envapp.application",
		"--chdir", dir, "--python", debianPython, "--workers", "1")
	addr := "127.0.0.1:" + p.port()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "PROXY TCP4 198.51.100.20 127.0.0.1 40000 %s\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", p.port())
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"REMOTE_ADDR": "198.51.100.20"`) {
		t.Errorf("REMOTE_ADDR not from the PROXY header: %s", body)
	}
	p.waitLog(`\[access\] 198\.51\.100\.20 - - `)
	// curl speaks PROXY v1 too; a client without the header is refused.
	if got := curl(t, "--haproxy-protocol", "http://"+addr+"/"); !strings.Contains(got, `"REMOTE_ADDR": "127.0.0.1"`) {
		t.Errorf("curl --haproxy-protocol: %s", got)
	}
	if out, err := exec.Command("curl", "-sS", "--max-time", "5", "http://"+addr+"/").CombinedOutput(); err == nil {
		t.Errorf("a request without a PROXY header was answered: %s", out)
	}
	p.stopOK()
}
