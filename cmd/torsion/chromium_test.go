package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// chromium opens url in Debian's headless Chromium and returns a function
// that evaluates a JavaScript expression in the page (through the DevTools
// protocol) and returns its value as text, so that a test waits for what
// the page shows rather than for a fixed time. Chromium ends with the
// test.
func chromium(t *testing.T, url string, flags ...string) (eval func(expr string) string) {
	t.Helper()
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatalf("chromium is missing (scripts/test installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	// Not t.TempDir: Chromium's helper processes may still write to
	// their profile as the test ends.
	profile, err := os.MkdirTemp("", "chromium")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
		"--user-data-dir=" + profile}, flags...)
	cmd := exec.CommandContext(ctx, "chromium", append(args, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // Chromium and its helpers
		cmd.Wait()
		os.RemoveAll(profile)
	})
	// "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
	listening := regexp.MustCompile(`DevTools listening on ws://([^/]+)/`)
	var host string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			host = m[1]
			break
		}
	}
	if host == "" {
		t.Fatalf("chromium never said where DevTools listen: %v", sc.Err())
	}
	go func() {
		for sc.Scan() { // drain, so Chromium never blocks on its stderr
		}
	}()
	var page string
	waitUntil(60*time.Second, func() bool {
		resp, err := http.Get("http://" + host + "/json/list")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var targets []struct{ Type, URL, WebSocketDebuggerURL string }
		json.NewDecoder(resp.Body).Decode(&targets)
		for _, tg := range targets {
			if tg.Type == "page" && tg.WebSocketDebuggerURL != "" {
				page = tg.WebSocketDebuggerURL
				return true
			}
		}
		return false
	}, func() { t.Fatalf("chromium opened no page for %s", url) })
	c, _, err := websocket.Dial(ctx, page, nil)
	if err != nil {
		t.Fatalf("DevTools: %v", err)
	}
	c.SetReadLimit(16 << 20)
	t.Cleanup(func() { c.CloseNow() })
	id := 0
	return func(expr string) string {
		id++
		req, _ := json.Marshal(map[string]any{"id": id, "method": "Runtime.evaluate",
			"params": map[string]any{"expression": expr, "returnByValue": true}})
		if err := c.Write(ctx, websocket.MessageText, req); err != nil {
			t.Fatalf("DevTools: %v", err)
		}
		for {
			_, msg, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("DevTools: %v", err)
			}
			var resp struct {
				ID     int
				Result struct {
					Result struct{ Value any }
				}
				Error *struct{ Message string }
			}
			json.Unmarshal(msg, &resp)
			if resp.ID != id {
				continue // an event
			}
			if resp.Error != nil {
				t.Fatalf("DevTools: %s", resp.Error.Message)
			}
			if resp.Result.Result.Value == nil {
				return ""
			}
			return strings.TrimSpace(fmt.Sprint(resp.Result.Result.Value))
		}
	}
}
