package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torsion-server/torsion/cli"
	"github.com/torsion-server/torsion/internal/testutil"
)

func TestScheduledPlugin(t *testing.T) {
	var out testutil.SyncBuffer
	cli.Run(context.Background(), "customplugin", []string{"--help"}, &out, &out)
	for _, want := range []string{"scheduled", "web", "echo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}

	var log testutil.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- cli.Run(ctx, "customplugin", []string{"scheduled", "--port", "tcp:0:interface=127.0.0.1", "--interval", "20ms"}, io.Discard, &log)
	}()
	var port string
	for deadline := time.Now().Add(5 * time.Second); port == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := regexp.MustCompile(`starting on (\d+)`).FindStringSubmatch(log.String()); m != nil {
			port = m[1]
		}
	}
	if port == "" {
		t.Fatalf("server did not start:\n%s", log.String())
	}
	// The page counts the timer's calls: it must keep firing.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://127.0.0.1:" + port + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`fired (\d+) times`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("page = %q", body)
		}
		if n, _ := strconv.Atoi(string(m[1])); n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timer fired %s times in 10s at 20ms", m[1])
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d; log:\n%s", code, log.String())
	}
}
