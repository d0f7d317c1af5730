package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAutoscaleBinary: torsion web --workers 1:2, end to end: requests
// that wait add a worker, which status.json counts; once idle it retires,
// and every request is answered. (package workers' TestAutoscale drives
// the ramp.)
func TestAutoscaleBinary(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slow.py"), []byte(`import os, time


def app(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [])
    return [str(os.getpid()).encode()]
`), 0o644)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "slow:app", "--chdir", dir, "--python", debianPython,
		"--workers", "1:2", "--scale-up-wait", "50ms", "--scale-up-interval", "200ms", "--scale-down-idle", "1s",
		"--metrics", "tcp:0:interface=127.0.0.1")
	base := "http://127.0.0.1:" + p.waitLog(`Site starting on (\d+)`)[1]
	status := "http://127.0.0.1:" + p.waitLog(`Metrics starting on (\d+)`)[1] + "/status.json"
	target := func() (int, int, int) {
		var st struct {
			Pools []struct {
				Target int `json:"target_workers"`
				Min    int `json:"min_workers"`
				Max    int `json:"max_workers"`
			} `json:"pools"`
		}
		json.Unmarshal([]byte(curl(t, status)), &st)
		if len(st.Pools) != 1 {
			return -1, -1, -1
		}
		return st.Pools[0].Target, st.Pools[0].Min, st.Pools[0].Max
	}
	if n, least, most := target(); n != 1 || least != 1 || most != 2 {
		t.Errorf("at rest: target %d of %d..%d, want 1 of 1..2", n, least, most)
	}
	var wg sync.WaitGroup
	pids := make([]string, 6)
	for i := range pids {
		wg.Go(func() { pids[i] = curl(t, base+"/?0.5") })
	}
	p.waitLog(`adding a worker: requests wait for one`)
	waitUntil(10*time.Second, func() bool { n, _, _ := target(); return n == 2 }, func() { t.Errorf("status.json does not show two workers") })
	// Once the added worker runs, it says why each worker started.
	waitUntil(10*time.Second, func() bool {
		st := curl(t, status)
		return strings.Contains(st, `"started_because":"start"`) && strings.Contains(st, `"started_because":"scale-up"`)
	}, func() { t.Errorf("status.json does not say why the workers started:\n%s", curl(t, status)) })
	wg.Wait()
	seen := map[string]bool{}
	for _, pid := range pids {
		seen[pid] = true
	}
	if len(seen) != 2 || seen[""] {
		t.Errorf("the six requests were answered by %v, want both workers", pids)
	}
	p.waitLog(`retiring a worker: it has been idle`)
	waitUntil(10*time.Second, func() bool { n, _, _ := target(); return n == 1 }, func() { t.Errorf("status.json does not show the pool back at one") })
	p.stopOK()
}
