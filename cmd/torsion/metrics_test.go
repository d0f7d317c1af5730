package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetrics drives known traffic through a WSGI application (answers,
// a 404, a crash, a timeout, a request body), a static mount (a file read
// from disk, then from memory) and a TLS port (a handshake, and one that
// fails), and scrapes --metrics with Prometheus's own text parser: the
// counts are exact, by mount too.
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
    environ["wsgi.input"].read()
    status = "404 Not Found" if path == "/missing" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"hello"]
`), 0o644)
	os.Mkdir(filepath.Join(dir, "files"), 0o755)
	os.WriteFile(filepath.Join(dir, "files", "a.txt"), []byte("static"), 0o644)
	cert, key := openssl(t, dir, "localhost")
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1",
		"--port", "ssl:0:privateKey="+key+":certKey="+cert+":interface=127.0.0.1",
		"--wsgi", "m", "--chdir", dir, "--static", "/files="+filepath.Join(dir, "files"),
		"--python", debianPython, "--workers", "1", "--timeout", "1", "--metrics", "tcp:0:interface=127.0.0.1")
	mport := p.waitLog(`Metrics starting on (\d+)`)[1]
	base := "http://127.0.0.1:" + p.waitLog(`Site starting on (\d+) .*endpoint="?tcp:`)[1]
	sport := p.waitLog(`Site starting on (\d+) .*endpoint="?ssl:`)[1]
	curl(t, "-k", "-o", "/dev/null", "https://127.0.0.1:"+sport+"/")
	if c, err := net.Dial("tcp", "127.0.0.1:"+sport); err == nil { // not TLS: the handshake fails
		io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
		io.Copy(io.Discard, c)
		c.Close()
	}
	for _, path := range []string{"/", "/", "/", "/missing", "/crash", "/hang", "/files/a.txt", "/files/a.txt"} {
		curl(t, "-o", "/dev/null", base+path)
	}
	curl(t, "-o", "/dev/null", "--data-binary", strings.Repeat("x", 1234), base+"/")
	// The first, and after the crashes and the timeout: the GET /crash
	// crashed its worker, was tried once on the next (it had sent
	// nothing) and crashed that one too.
	p.waitLogs(`worker started`, 4)
	var families map[string]*dto.MetricFamily
	scrape := func() bool {
		families = scrapeMetrics(t, mport)
		return families["torsion_tls_handshakes_total"] != nil
	}
	// The sum of the series of name that have labels.
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
		var sum float64
		for _, m := range f.Metric {
			if matches(m, labels) {
				switch {
				case m.Counter != nil:
					sum += m.Counter.GetValue()
				case m.Gauge != nil:
					sum += m.Gauge.GetValue()
				case m.Histogram != nil:
					sum += float64(m.Histogram.GetSampleCount())
				}
			}
		}
		return sum
	}
	// Each answer is counted as it ends, after the client has it: wait for
	// the last ones.
	waitUntil(10*time.Second, func() bool {
		return scrape() && value("torsion_http_request_duration_seconds", nil) == 10 && value("torsion_tls_handshakes_total", nil) == 2
	}, func() {
		t.Errorf("not all answers were counted: %v, handshakes %v", value("torsion_http_request_duration_seconds", nil), value("torsion_tls_handshakes_total", nil))
	})
	app := map[string]string{"app": "m:application"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"torsion_http_requests_total", map[string]string{"method": "GET", "code": "2xx", "mount": "/"}, 4},
		{"torsion_http_requests_total", map[string]string{"method": "GET", "code": "2xx", "mount": "/files"}, 2},
		{"torsion_http_requests_total", map[string]string{"method": "GET", "code": "4xx", "mount": "/"}, 1},
		{"torsion_http_requests_total", map[string]string{"method": "GET", "code": "5xx", "mount": "/"}, 2}, // 502 and 504
		{"torsion_http_requests_total", map[string]string{"method": "POST", "code": "2xx", "mount": "/"}, 1},
		{"torsion_http_requests_total", map[string]string{"mount": "-"}, 0},
		{"torsion_http_request_duration_seconds", map[string]string{"method": "GET"}, 9},
		{"torsion_http_request_bytes_total", nil, 1234},
		{"torsion_http_response_bytes_total", nil, 5*5 + 2*6}, // five 5-byte answers, two 6-byte files; the errors' pages below
		{"torsion_static_files_total", map[string]string{"source": "disk"}, 1},
		{"torsion_static_files_total", map[string]string{"source": "cache"}, 1},
		{"torsion_tls_handshakes_total", map[string]string{"result": "ok"}, 1},
		{"torsion_tls_handshakes_total", map[string]string{"result": "error"}, 1},
		{"torsion_wsgi_timeouts_total", app, 1},
		{"torsion_wsgi_queue_wait_seconds", app, 9}, // every request that reached the pool, and the retry of /crash
		{"torsion_wsgi_worker_restarts_total", map[string]string{"app": "m:application", "cause": "crash"}, 2},
		{"torsion_wsgi_worker_restarts_total", map[string]string{"app": "m:application", "cause": "timeout"}, 1},
		{"torsion_wsgi_worker_restarts_total", map[string]string{"app": "m:application", "cause": "max-requests"}, 0},
		{"torsion_wsgi_workers", app, 1}, // one slot, in one state or another
	} {
		got := value(c.name, c.labels)
		if c.name == "torsion_http_response_bytes_total" {
			if got < c.want {
				t.Errorf("%s = %v, want at least %v", c.name, got, c.want)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	states := map[string]bool{}
	for _, m := range families["torsion_wsgi_workers"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "state" {
				states[l.GetValue()] = true
			}
		}
	}
	if len(states) != 4 || !states["starting"] || !states["idle"] || !states["busy"] || !states["draining"] {
		t.Errorf("worker states %v", states)
	}
	for _, name := range []string{"torsion_http_requests_in_flight", "torsion_wsgi_queued_requests", "go_goroutines", "process_resident_memory_bytes"} {
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

// TestStatusPage checks what a person sees on the --metrics port's status
// page: the workers with their real pids, state, requests served and
// memory, the request one of them is running and for how long, the
// listeners and the version; the page comes with the status rendered from
// it at once (a request line a client chose cannot end its script), and
// /events streams a new status every second.
func TestStatusPage(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "s.py"), []byte(`import time
def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(8)  # long enough to be seen; the stop waits for it
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
`), 0o644)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "s", "--chdir", dir,
		"--python", debianPython, "--workers", "2", "--metrics", "tcp:0:interface=127.0.0.1")
	wport := p.waitLog(`Site starting on (\d+)`)[1]
	mport := p.waitLog(`Metrics starting on (\d+)`)[1]
	mbase := "http://127.0.0.1:" + mport
	for range 3 {
		curl(t, "-o", "/dev/null", "http://127.0.0.1:"+wport+"/")
	}
	slow, err := net.Dial("tcp", "127.0.0.1:"+wport) // a request line no browser would send
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET /slow?</script><b>x HTTP/1.1\r\nHost: x\r\n\r\n")

	var st struct {
		Version   string   `json:"version"`
		Listeners []string `json:"listeners"`
		Uptime    float64  `json:"uptime_seconds"`
		Pools     []struct {
			App     string `json:"app"`
			Workers []struct {
				PID     int    `json:"pid"`
				State   string `json:"state"`
				Served  int    `json:"served"`
				RSS     int64  `json:"rss_bytes"`
				Running []struct {
					Method, URI string
					Seconds     float64
				} `json:"running"`
			} `json:"workers"`
		} `json:"pools"`
	}
	busy := func() bool {
		resp, err := http.Get(mbase + "/status.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&st)
		for _, w := range st.Pools[0].Workers {
			if w.State == "busy" && len(w.Running) == 1 && w.Running[0].Seconds > 0 {
				return true
			}
		}
		return false
	}
	waitUntil(20*time.Second, busy, func() { t.Fatalf("no worker shows the slow request: %+v", st) })
	if !strings.HasPrefix(st.Version, "torsion ") || len(st.Listeners) != 1 || !strings.Contains(st.Listeners[0], "interface=127.0.0.1") {
		t.Errorf("version %q, listeners %q", st.Version, st.Listeners)
	}
	pool := st.Pools[0]
	served := 0
	for _, w := range pool.Workers {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", w.PID))
		if err != nil || !strings.Contains(string(cmdline), "torsion_worker/__main__.py") {
			t.Errorf("worker pid %d is not a worker process: %q %v", w.PID, cmdline, err)
		}
		if w.RSS < 1<<20 {
			t.Errorf("worker %d: RSS %d", w.PID, w.RSS)
		}
		served += w.Served
		if w.State == "busy" && (w.Running[0].Method != "GET" || w.Running[0].URI != "/slow?</script><b>x") {
			t.Errorf("running %+v", w.Running)
		}
	}
	if pool.App != "s:application" || len(pool.Workers) != 2 || served < 3 {
		t.Errorf("pool %q, %d workers, %d served", pool.App, len(pool.Workers), served)
	}

	page := curl(t, mbase+"/")
	if !strings.Contains(page, "<title>torsion status</title>") || !strings.Contains(page, `new EventSource("events")`) ||
		!strings.Contains(page, `/slow?\u003c/script\u003e\u003cb\u003ex`) || strings.Count(page, "</script>") != 1 {
		t.Errorf("the page:\n%s", page)
	}

	resp, err := http.Get(mbase + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("/events: Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var uptimes []float64
	for len(uptimes) < 2 && sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev struct {
				Uptime float64 `json:"uptime_seconds"`
			}
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			uptimes = append(uptimes, ev.Uptime)
		}
	}
	if len(uptimes) != 2 || uptimes[1]-uptimes[0] < 0.5 {
		t.Errorf("two events' uptimes: %v, want about a second apart", uptimes)
	}
	p.stopOK()
}

// TestMetricsWebSockets: torsion_websockets_open counts the WebSockets
// open to an ASGI application, up as they open and down as they close.
func TestMetricsWebSockets(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--asgi", "ws_echo:app",
		"--chdir", "../../examples/asgi", "--python", debianPython, "--workers", "1",
		"--metrics", "tcp:0:interface=127.0.0.1")
	site := p.waitLog(`Site starting on (\d+)`)[1]
	mport := p.waitLog(`Metrics starting on (\d+)`)[1]
	open := func() float64 {
		var n float64
		if f := scrapeMetrics(t, mport)["torsion_websockets_open"]; f != nil {
			for _, m := range f.Metric {
				n += m.GetGauge().GetValue()
			}
		}
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for range 2 {
		c, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+site+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		conns = append(conns, c)
	}
	expect := func(n float64) {
		t.Helper()
		waitUntil(20*time.Second, func() bool { return open() == n }, func() { t.Errorf("torsion_websockets_open %v, want %v", open(), n) })
	}
	expect(2)
	// The status page lists them among what the worker runs, though they
	// take no request's place.
	if st := curl(t, "http://127.0.0.1:"+mport+"/status.json"); strings.Count(st, `"method":"GET","uri":"/"`) != 2 {
		t.Errorf("status.json does not show the two WebSockets running:\n%s", st)
	}
	conns[0].Close(websocket.StatusNormalClosure, "")
	expect(1)
	conns[1].Close(websocket.StatusNormalClosure, "")
	expect(0)
	p.stopOK()
}

// scrapeMetrics reads and parses the metrics served on the --metrics port.
func scrapeMetrics(t *testing.T, port string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + port + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	return families
}

// counters returns the values of the counter family name, by its label
// values joined with spaces ("udp NOERROR"), the labels sorted by name.
func counters(families map[string]*dto.MetricFamily, name string) map[string]float64 {
	got := map[string]float64{}
	if f := families[name]; f != nil {
		for _, m := range f.GetMetric() {
			var values []string
			for _, l := range m.GetLabel() {
				values = append(values, l.GetValue())
			}
			got[strings.Join(values, " ")] = m.GetCounter().GetValue()
		}
	}
	return got
}

// TestMetricsPrivate: the metrics port answers only its own names and
// addresses (a page that rebinds its domain to 127.0.0.1 could read the
// requests in flight), and a private port that other machines can reach
// is warned about.
func TestMetricsPrivate(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--path", t.TempDir(), "--metrics", "tcp:0")
	mport := p.waitLog(`Metrics starting on (\d+)`)[1]
	p.waitLog(`WARN: a private port listens where other machines can reach it.*option=--metrics`)
	for host, want := range map[string]string{"127.0.0.1": "200", "localhost": "200", "rebound.example": "421"} {
		if got := curl(t, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: "+host+":"+mport, "http://127.0.0.1:"+mport+"/metrics"); got != want {
			t.Errorf("Host %s: %s, want %s", host, got, want)
		}
	}
	p.stopOK()
}

// TestMetricsCompose: --metrics with each of the README's ways of
// composing a site, several Python applications among them (two once
// panicked at start-up as a duplicate registration); the last is served,
// and the metrics show each application under its own label.
func TestMetricsCompose(t *testing.T) {
	t.Parallel()
	needPython(t, "flask")
	compose := "../../examples/compose"
	metricsEP := "tcp:0:interface=127.0.0.1"
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"wsgi and static", []string{"--wsgi", "app:app", "--static", "/static=" + compose + "/static"}},
		{"wsgi and a wsgi mount", []string{"--wsgi", "app:app", "--mount", "/blog=wsgi:blog.application"}},
		{"wsgi, a wsgi mount and a proxy", []string{"--wsgi", "app:app", "--mount", "/blog=wsgi:blog.application", "--mount", "/old=proxy:http://127.0.0.1:9"}},
		{"two wsgi vhosts", []string{"--path", "../../examples/site", "--vhost", "blog.example.org=wsgi:blog:application", "--vhost", "app.example.org=wsgi:app:app"}},
		{"a vhost of static files", []string{"--path", "../../examples/site", "--vhost", "*.cdn.example.org=path:" + compose + "/static"}},
		{"the same app mounted twice", []string{"--wsgi", "app:app", "--mount", "/again=wsgi:app:app"}},
		{"asgi and a wsgi mount", []string{"--asgi", "ws_echo:app", "--pythonpath", "../../examples/asgi", "--mount", "/blog=wsgi:blog.application"}},
	} {
		args := append([]string{"--check-config", "web", "--chdir", compose, "--python", debianPython, "--metrics", metricsEP}, tt.args...)
		if out, code := run(t, args...); code != 0 {
			t.Errorf("%s: exit %d:\n%s", tt.name, code, out)
		}
	}
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--chdir", compose, "--python", debianPython, "--workers", "1",
		"--wsgi", "app:app", "--mount", "/blog=wsgi:blog.application", "--metrics", "tcp:0:interface=127.0.0.1")
	mport := p.waitLog(`Metrics starting on (\d+)`)[1]
	body := curl(t, "-s", "http://127.0.0.1:"+mport+"/metrics")
	for _, app := range []string{`torsion_wsgi_queued_requests{app="app:app"}`, `torsion_wsgi_queued_requests{app="blog.application"}`} {
		if !strings.Contains(body, app) {
			t.Errorf("the metrics lack %s", app)
		}
	}
	p.stopOK()
}

// TestChromiumStatusPhone: the status page fits a phone's width (375 CSS
// pixels) in Chromium: neither the page nor a pool's table needs
// scrolling sideways (the table's memory and running columns were out of
// sight).
func TestChromiumStatusPhone(t *testing.T) {
	t.Parallel()
	needPython(t)
	p := start(t, nil, "web", "--port", "tcp:0:interface=127.0.0.1", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "wsgi_hello",
		"--chdir", "../../examples/wsgi", "--python", debianPython, "--workers", "2", "--metrics", "tcp:0:interface=127.0.0.1")
	mport := p.waitLog(`Metrics starting on (\d+)`)[1]
	page := openChromium(t, "http://127.0.0.1:"+mport+"/")
	// A phone's screen (headless Chromium's window is 500 pixels wide at
	// the least).
	page.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 375, "height": 800, "deviceScaleFactor": 2, "mobile": true})
	eval := page.eval
	var fits string
	waitUntil(60*time.Second, func() bool {
		fits = eval(`document.querySelectorAll("table tr").length >= 3 && window.innerWidth <= 400 ? ` +
			`String([...document.querySelectorAll(".scroll")].every(d => d.scrollWidth <= d.clientWidth) && document.documentElement.scrollWidth <= window.innerWidth) : ""`)
		return fits != ""
	}, func() {
		t.Fatalf("the status page never showed its workers at a phone's width: %s rows, window %s",
			eval(`document.querySelectorAll("table tr").length`), eval(`window.innerWidth`))
	})
	if fits != "true" {
		t.Errorf("the status page is wider than a phone: %s", eval(`[...document.querySelectorAll(".scroll")].map(d => d.scrollWidth + ">" + d.clientWidth).join(" ") + " page " + document.documentElement.scrollWidth + " window " + window.innerWidth`))
	}
	p.stopOK()
}
