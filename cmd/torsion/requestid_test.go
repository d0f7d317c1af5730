package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRequestID: every request gets an id that the application sees in
// its environ, the response carries and the access log shows; a trusted
// proxy's (--proxy-headers, from 127.0.0.1) is kept, anyone else's
// replaced.
func TestRequestID(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rid.py"), []byte(`def application(environ, start_response):
    body = environ.get("HTTP_X_REQUEST_ID", "none").encode()
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    if environ["PATH_INFO"] == "/own":
        headers.append(("X-Request-ID", "the-app-s-own"))
    start_response("200 OK", headers)
    return [body]
`), 0o644)
	made := regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-f]+$`)
	for _, tc := range []struct {
		name  string
		flags []string
		sent  string
		kept  bool
	}{
		{"none sent", nil, "", false},
		{"from a client", nil, "client-chose-this", false},
		{"from a trusted proxy", []string{"--proxy-headers"}, "lb-7f3a:42", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, nil, append([]string{"web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "rid.application",
				"--chdir", dir, "--python", debianPython}, tc.flags...)...)
			args := []string{"-i", "http://127.0.0.1:" + p.port() + "/"}
			if tc.sent != "" {
				args = append(args, "-H", "X-Request-ID: "+tc.sent)
			}
			out := strings.ReplaceAll(curl(t, args...), "\r\n", "\n")
			head, body, _ := strings.Cut(out, "\n\n")
			m := regexp.MustCompile(`(?mi)^X-Request-Id: (.*)$`).FindStringSubmatch(head)
			if m == nil {
				t.Fatalf("no X-Request-ID in the response:\n%s", out)
			}
			id := m[1]
			if tc.kept && id != tc.sent || !tc.kept && !made.MatchString(id) {
				t.Errorf("id %q; sent %q, kept: %v", id, tc.sent, tc.kept)
			}
			if body != id {
				t.Errorf("the application saw %q, the client got %q", body, id)
			}
			p.waitLog(`"GET / HTTP/1.1" 200 \d+ "-" "curl/[^"]*" "` + regexp.QuoteMeta(id) + `"`)
			// An application that sets its own: one header, the
			// application's (there were two).
			own := strings.ReplaceAll(curl(t, "-i", "http://127.0.0.1:"+p.port()+"/own"), "\r\n", "\n")
			head, _, _ = strings.Cut(own, "\n\n")
			if ids := regexp.MustCompile(`(?mi)^X-Request-Id: (.*)$`).FindAllStringSubmatch(head, -1); len(ids) != 1 || ids[0][1] != "the-app-s-own" {
				t.Errorf("the application's own X-Request-ID: %q", ids)
			}
			p.stopOK()
		})
	}
}
