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
	return openChromium(t, url, flags...).eval
}

// devtools is a page of headless Chromium, driven through the DevTools
// protocol.
type devtools struct {
	t   *testing.T
	ctx context.Context
	c   *websocket.Conn
	id  int
}

// openChromium opens url as chromium does, and returns the page.
func openChromium(t *testing.T, url string, flags ...string) *devtools {
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
	return &devtools{t: t, ctx: ctx, c: c}
}

// call sends a DevTools method and returns its result.
func (d *devtools) call(method string, params map[string]any) json.RawMessage {
	d.id++
	req, _ := json.Marshal(map[string]any{"id": d.id, "method": method, "params": params})
	if err := d.c.Write(d.ctx, websocket.MessageText, req); err != nil {
		d.t.Fatalf("DevTools: %v", err)
	}
	for {
		_, msg, err := d.c.Read(d.ctx)
		if err != nil {
			d.t.Fatalf("DevTools: %v", err)
		}
		var resp struct {
			ID     int
			Result json.RawMessage
			Error  *struct{ Message string }
		}
		json.Unmarshal(msg, &resp)
		if resp.ID != d.id {
			continue // an event
		}
		if resp.Error != nil {
			d.t.Fatalf("DevTools %s: %s", method, resp.Error.Message)
		}
		return resp.Result
	}
}

// eval evaluates a JavaScript expression in the page and returns its
// value as text ("" for none).
func (d *devtools) eval(expr string) string {
	var res struct {
		Result struct{ Value any }
	}
	json.Unmarshal(d.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &res)
	if res.Result.Value == nil {
		return ""
	}
	return strings.TrimSpace(fmt.Sprint(res.Result.Value))
}
