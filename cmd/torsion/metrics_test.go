package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetrics drives known traffic through a WSGI application (answers,
// a 404, a crash, a timeout) and scrapes --metrics with Prometheus's own
// text parser: the counts are exact.
func TestMetrics(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "m.py"), []byte(`import os, time
def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/crash":
        os._exit(1)
    if path == "/hang":
        time.sleep(60)
    status = "404 Not Found" if path == "/missing" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"hello"]
`), 0o644)
	mport := freePort(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "m", "--chdir", dir,
		"--python", debianPython, "--workers", "1", "--timeout", "1", "--metrics", "tcp:"+mport+":interface=127.0.0.1")
	base := "http://127.0.0.1:" + p.waitLog(`Site starting on (\d+)`)[1]
	p.waitLog(`Metrics starting on ` + mport)
	for _, path := range []string{"/", "/", "/", "/missing", "/crash", "/hang"} {
		curl(t, "-o", "/dev/null", base+path)
	}
	p.waitLogs(`worker started`, 3) // the first, and after the crash and the timeout: both restarts counted
	resp, err := http.Get("http://127.0.0.1:" + mport + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := families[name]
		if f == nil {
			var names []string
			for n := range families {
				names = append(names, n)
			}
			t.Fatalf("no %s among %v", name, names)
		}
		for _, m := range f.Metric {
			if matches(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
		return 0
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"torsion_http_requests_total", map[string]string{"method": "GET", "code": "2xx"}, 3},
		{"torsion_http_requests_total", map[string]string{"method": "GET", "code": "4xx"}, 1},
		{"torsion_http_requests_total", map[string]string{"method": "GET", "code": "5xx"}, 2}, // 502 and 504
		{"torsion_http_request_duration_seconds", map[string]string{"method": "GET"}, 6},
		{"torsion_http_response_bytes_total", nil, 0}, // checked below: more than none
		{"torsion_wsgi_worker_restarts_total", map[string]string{"app": "m:application", "cause": "crash"}, 1},
		{"torsion_wsgi_worker_restarts_total", map[string]string{"app": "m:application", "cause": "timeout"}, 1},
		{"torsion_wsgi_worker_restarts_total", map[string]string{"app": "m:application", "cause": "max-requests"}, 0},
	} {
		got := value(c.name, c.labels)
		if c.name == "torsion_http_response_bytes_total" {
			if got < 15 {
				t.Errorf("%s = %v, want at least the three 5-byte bodies", c.name, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"torsion_http_requests_in_flight", "torsion_wsgi_workers", "torsion_wsgi_queued_requests", "go_goroutines", "process_resident_memory_bytes"} {
		if families[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	for name := range families {
		if !model.LegacyValidation.IsValidMetricName(name) || strings.Contains(name, "/") {
			t.Errorf("metric name %q", name)
		}
	}
	p.stop(syscall.SIGTERM)
}

func matches(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		found := false
		for _, l := range m.Label {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
