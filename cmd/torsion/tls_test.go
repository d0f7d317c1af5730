package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// openssl makes a self-signed certificate for name with openssl, as a
// user would, and returns the certificate and key files.
func openssl(t *testing.T, dir, name string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
		"-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN="+name,
		"-addext", "subjectAltName=DNS:"+name).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	return cert, key
}

const environApp = `import json
def application(environ, start_response):
    keys = ["wsgi.url_scheme", "HTTPS", "SERVER_PROTOCOL", "SERVER_PORT", "HTTP_HOST", "SCRIPT_NAME", "PATH_INFO", "REMOTE_ADDR"]
    body = json.dumps({k: environ.get(k) for k in keys}, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
`

// TestTLS serves a WSGI app, static files and a proxy over TLS, checked with
// Python's http.client (HTTP/1.1) and curl (HTTP/2 by ALPN).
func TestTLS(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	cert, key := openssl(t, dir, "localhost")
	os.WriteFile(filepath.Join(dir, "envapp.py"), []byte(environApp), 0o644)
	os.Mkdir(filepath.Join(dir, "static"), 0o755)
	os.WriteFile(filepath.Join(dir, "static", "a.txt"), []byte("static file\n"), 0o644)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend %s proto=%s", r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer backend.Close()

	p := start(t, nil, "web", "--port", "ssl:0:privateKey="+key+":certKey="+cert+":interface=127.0.0.1",
		"--wsgi", "envapp.application", "--chdir", dir, "--python", debianPython, "--workers", "1",
		"--static", "/static="+filepath.Join(dir, "static"), "--mount", "/backend=proxy:"+backend.URL)
	port := p.port()

	// Python's http.client, verifying the certificate.
	script := fmt.Sprintf(`import http.client, ssl, json
ctx = ssl.create_default_context(cafile=%q)
c = http.client.HTTPSConnection("localhost", %s, context=ctx)
c.request("GET", "/x/y")
r = c.getresponse()
print(r.status, r.read().decode())
`, cert, port)
	out, err := exec.Command(debianPython, "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := fmt.Sprintf(`200 {"HTTPS": "on", "HTTP_HOST": "localhost:%s", "PATH_INFO": "/x/y", "REMOTE_ADDR": "127.0.0.1", "SCRIPT_NAME": "", "SERVER_PORT": "%s", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "https"}`, port, port)
	if strings.TrimSpace(string(out)) != want {
		t.Errorf("http.client over TLS:\n got %s\nwant %s", out, want)
	}

	base := "https://localhost:" + port
	tls := []string{"--cacert", cert, "--resolve", "localhost:" + port + ":127.0.0.1"}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--http2", "-w", " %{http_version}", base + "/h2"}, `"SERVER_PROTOCOL": "HTTP/2.0", "wsgi.url_scheme": "https"} 2`},
		{[]string{"--http1.1", "-w", " %{http_version}", base + "/h1"}, `"SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "https"} 1.1`},
		{[]string{"--http2", "-w", " %{http_version}", base + "/static/a.txt"}, "static file\n 2"},
		{[]string{"--http2", "-w", " %{http_version}", base + "/backend/b"}, "backend /b proto=https 2"},
	}
	for _, tt := range tests {
		if got := curl(t, append(tls, tt.args...)...); !strings.Contains(got, tt.want) {
			t.Errorf("curl %v:\n got %q\nwant %q", tt.args, got, tt.want)
		}
	}
	// Plain HTTP on the TLS port is a failed handshake, not a crash.
	if out, err := exec.Command("curl", "-sS", "--max-time", "5", "http://127.0.0.1:"+port+"/").CombinedOutput(); err == nil {
		t.Errorf("plain HTTP on the TLS port answered: %s", out)
	}
	if got := curl(t, append(tls, base+"/")...); !strings.Contains(got, `"wsgi.url_scheme": "https"`) {
		t.Errorf("after a bad client: %q", got)
	}
	p.stopOK()
}

// TestTxSNI chooses certificates by SNI from a directory, checked with
// openssl s_client and curl, and picks up a certificate added later.
func TestTxSNI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	os.Mkdir(certs, 0o755)
	pemFor := func(host, file string) string {
		cert, key := openssl(t, dir, host)
		c, _ := os.ReadFile(cert)
		k, _ := os.ReadFile(key)
		if err := os.WriteFile(filepath.Join(certs, file), append(c, k...), 0o600); err != nil {
			t.Fatal(err)
		}
		return cert
	}
	aCert := pemFor("a.localhost", "a.localhost.pem")
	pemFor("default.localhost", "DEFAULT.pem")
	p := start(t, nil, "web", "--port", "txsni:"+certs+":tcp:0:interface=127.0.0.1", "--path", filepath.Join(dir, "certs"))
	port := p.port()
	subject := func(servername string) string {
		args := []string{"s_client", "-connect", "127.0.0.1:" + port}
		if servername != "" {
			args = append(args, "-servername", servername)
		}
		cmd := exec.Command("openssl", args...)
		cmd.Stdin = strings.NewReader("")
		out, _ := cmd.CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "subject=") {
				return strings.ReplaceAll(strings.TrimPrefix(l, "subject="), " ", "")
			}
		}
		t.Fatalf("openssl s_client -servername %s: no subject in\n%s", servername, out)
		return ""
	}
	for sni, want := range map[string]string{"a.localhost": "CN=a.localhost", "b.localhost": "CN=default.localhost", "": "CN=default.localhost"} {
		if got := subject(sni); got != want {
			t.Errorf("SNI %q: subject %q, want %q", sni, got, want)
		}
	}
	// curl verifies a.localhost's certificate by name.
	if got := curl(t, "--cacert", aCert, "--resolve", "a.localhost:"+port+":127.0.0.1", "-o", "/dev/null", "-w", "%{http_code}",
		"https://a.localhost:"+port+"/a.localhost.pem"); got != "200" {
		t.Errorf("curl a.localhost: %s", got)
	}
	// Added while running: used from the next handshake.
	pemFor("b.localhost", "b.localhost.pem")
	if got := subject("b.localhost"); got != "CN=b.localhost" {
		t.Errorf("added b.localhost.pem: subject %q", got)
	}
	p.stopOK()
}

func TestTLSOptionErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, _ := openssl(t, dir, "localhost")
	_, otherKey := openssl(t, dir, "other")
	tests := []struct {
		port, msg string
	}{
		{"ssl:8443:privateKey=" + dir + "/missing.key", "--port: endpoint \"ssl:8443:privateKey=" + dir + "/missing.key\": open " + dir + "/missing.key: no such file or directory"},
		{"ssl:8443:privateKey=" + otherKey + ":certKey=" + cert, "certificate " + cert + " with key " + otherKey + ": tls: private key does not match public key"},
		{"txsni:" + dir + "/nocerts:tcp:8443", "no such file or directory"},
	}
	for _, tt := range tests {
		out, code := run(t, "web", "--port", tt.port)
		if code != 2 || !strings.Contains(out, tt.msg) {
			t.Errorf("--port %s: exit %d, output %q; want 2 and %q", tt.port, code, out, tt.msg)
		}
	}
}

// TestTLSCipherSuites: openssl s_client gets a TLS 1.2 handshake with an
// AEAD suite, none with CBC suites alone (testssl.sh's "obsolete CBC
// ciphers"), unless --tls-legacy-ciphers is given.
func TestTLSCipherSuites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := openssl(t, dir, "localhost")
	handshake := func(port, cipher string) bool {
		cmd := exec.Command("openssl", "s_client", "-connect", "127.0.0.1:"+port, "-tls1_2", "-cipher", cipher)
		cmd.Stdin = strings.NewReader("")
		out, _ := cmd.CombinedOutput()
		return strings.Contains(string(out), "Cipher is "+cipher)
	}
	for _, legacy := range []bool{false, true} {
		args := []string{"web", "--port", "ssl:0:privateKey=" + key + ":certKey=" + cert + ":interface=127.0.0.1", "--path", dir}
		if legacy {
			args = append(args, "--tls-legacy-ciphers")
		}
		p := start(t, nil, args...)
		for cipher, want := range map[string]bool{
			"ECDHE-ECDSA-AES128-GCM-SHA256": true,
			"ECDHE-ECDSA-CHACHA20-POLY1305": true,
			"ECDHE-ECDSA-AES128-SHA":        legacy,
			"ECDHE-ECDSA-AES256-SHA":        legacy,
		} {
			if got := handshake(p.port(), cipher); got != want {
				t.Errorf("legacy %v: handshake with %s only: %v, want %v", legacy, cipher, got, want)
			}
		}
		p.stopOK()
	}
}

// TestTxSNIWarningsInLog: txsni's warning about a certificate file that no
// longer loads goes to torsion's log in its format (it went to stderr in
// Go's default format, whatever --log-format said).
func TestTxSNIWarningsInLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	os.Mkdir(certs, 0o755)
	cert, key := openssl(t, dir, "a.localhost")
	c, _ := os.ReadFile(cert)
	k, _ := os.ReadFile(key)
	os.WriteFile(filepath.Join(certs, "a.localhost.pem"), append(c, k...), 0o600)
	p := start(t, nil, "--log-format", "json", "web", "--port", "txsni:"+certs+":tcp:0:interface=127.0.0.1", "--path", dir)
	port := p.waitLog(`"msg":"Site starting on (\d+)"`)[1]
	os.WriteFile(filepath.Join(certs, "a.localhost.pem"), []byte("half-written"), 0o600)
	cmd := exec.Command("openssl", "s_client", "-connect", "127.0.0.1:"+port, "-servername", "a.localhost")
	cmd.Stdin = strings.NewReader("")
	cmd.CombinedOutput()
	p.waitLog(`^\{.*"level":"WARN","msg":"txsni: a certificate file no longer loads`)
}
