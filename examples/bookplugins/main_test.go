package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/torsion-server/torsion/cli"
	"github.com/torsion-server/torsion/internal/testutil"
)

// run starts a plugin in-process and returns its address and a stop func.
func run(t *testing.T, args ...string) string {
	t.Helper()
	var log testutil.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- cli.Run(ctx, "bookplugins", args, io.Discard, &log) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d; log:\n%s", code, log.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := regexp.MustCompile(`starting on (\d+)`).FindStringSubmatch(log.String()); m != nil {
			return "127.0.0.1:" + m[1]
		}
	}
	t.Fatalf("%v did not start:\n%s", args, log.String())
	return ""
}

func get(t *testing.T, addr, host, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBookPlugins(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("needs python3")
	}
	common := []string{"--port", "tcp:0:interface=127.0.0.1", "--python", python, "--chdir", "../wsgi", "--static", "static"}
	css, _ := os.ReadFile("static/site.css")
	file, _ := os.ReadFile("a_file.html")
	tests := []struct {
		plugin, host, path string
		code               int
		want               string
	}{
		{"book-vhost", "app.example.org", "/", 200, "Hello world!\n"},
		{"book-vhost", "static.example.org", "/site.css", 200, string(css)},
		{"book-vhost", "localhost", "/", 404, "No site is served for this host."},
		{"book-combined", "", "/", 200, "Hello world!\n"},
		{"book-combined", "", "/anything/else", 200, "Hello world!\n"},
		{"book-combined", "", "/static/site.css", 200, string(css)},
		{"book-static", "", "/", 200, string(file)},
	}
	addrs := map[string]string{}
	for _, tt := range tests {
		addr, ok := addrs[tt.plugin]
		if !ok {
			addr = run(t, append([]string{tt.plugin}, common...)...)
			addrs[tt.plugin] = addr
		}
		code, body := get(t, addr, tt.host, tt.path)
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s%s: %d %q, want %d %q", tt.plugin, tt.host, tt.path, code, body, tt.code, tt.want)
		}
	}
}
