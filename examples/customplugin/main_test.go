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
	testutil.WaitUntil(5*time.Second, func() bool {
		if m := regexp.MustCompile(`starting on (\d+)`).FindStringSubmatch(log.String()); m != nil {
			port = m[1]
		}
		return port != ""
	}, func() { t.Fatalf("server did not start:\n%s", log.String()) })
	// The page counts the timer's calls: it must keep firing.
	fired := ""
	testutil.WaitUntil(10*time.Second, func() bool {
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
		fired = string(m[1])
		n, _ := strconv.Atoi(fired)
		return n >= 3
	}, func() { t.Fatalf("the timer fired %s times in 10s at 20ms", fired) })
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d; log:\n%s", code, log.String())
	}
}
