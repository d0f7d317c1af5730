// Package metrics holds torsion's Prometheus metrics
// (prometheus/client_golang) and its live status page, and serves them:
// Go's runtime and the process for every plugin, the collectors a plugin
// registers (DNS queries, mail sessions), and for web (EnableHTTP) HTTP
// requests by method, status class and mount with their latency and
// bytes, requests in flight, TLS handshakes, static files from cache or
// disk, each WSGI or ASGI pool's workers by state, queue, queue wait,
// timeouts and restarts. Labels are bounded: methods outside the standard
// ones are "other", statuses are classes, mounts are the configured ones,
// paths never appear.
package metrics

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/torsion-server/torsion/internal/buildinfo"
	"github.com/torsion-server/torsion/web"
	"github.com/torsion-server/torsion/workers"
)

// Registry is one process's metrics, and its status page.
type Registry struct {
	// Listeners are the addresses the status page says the server
	// listens on; set them before serving Handler.
	Listeners []string

	started   time.Time
	version   string // the build, read once
	pools     []namedPool
	ending    chan struct{} // closed by EndStreams
	endOnce   sync.Once
	inFlightN atomic.Int64
	answered  atomic.Uint64

	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    prometheus.Counter
	reqBytes prometheus.Counter
	inFlight prometheus.Gauge
	tls      *prometheus.CounterVec
	tlsOK    prometheus.Counter
	tlsErr   prometheus.Counter
	// The children of every label set, made once: a request costs no
	// label hashing. counted is by mount (AddMount; "" for answers from
	// no mount, shown as "-").
	counted  map[string]*[len(methods)][len(classes)]prometheus.Counter
	observed [len(methods)]prometheus.Observer
	statics  *staticCollector
}

// methods and classes are the label values; each last one is "other".
var (
	methods = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace, "other"}
	classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "499", "other"}
)

// New returns a Registry with Go's and the process's metrics; EnableHTTP
// adds the HTTP ones.
func New() *Registry {
	m := &Registry{
		started: time.Now(),
		version: buildinfo.Version("torsion"),
		ending:  make(chan struct{}),
		reg:     prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torsion_http_requests_total",
			Help: "HTTP requests answered, by method and status class (499: the connection ended before any answer).",
		}, []string{"method", "code", "mount"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "torsion_http_request_duration_seconds",
			Help: "Time from a request's head to the end of its answer, by method.",
			// From a 200 µs hello to a 10 s report.
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"method"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "torsion_http_response_bytes_total",
			Help: "Bytes of response bodies sent.",
		}),
		reqBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "torsion_http_request_bytes_total",
			Help: "Bytes of request bodies read.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "torsion_http_requests_in_flight",
			Help: "Requests being answered now.",
		}),
		tls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torsion_tls_handshakes_total",
			Help: "TLS handshakes on the web ports, by result: ok or error.",
		}, []string{"result"}),
		counted: map[string]*[len(methods)][len(classes)]prometheus.Counter{},
	}
	m.tlsOK, m.tlsErr = m.tls.WithLabelValues("ok"), m.tls.WithLabelValues("error")
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for i, method := range methods {
		m.observed[i] = m.duration.WithLabelValues(method)
	}
	return m
}

// EnableHTTP exports the HTTP metrics (requests, latency, bytes, in
// flight, TLS handshakes), which a plugin serving HTTP counts through
// Observer, InFlight, AddMount and TLSHandshake; without it, none of
// them is exported. Call it once, before serving Handler.
func (m *Registry) EnableHTTP() {
	m.reg.MustRegister(m.requests, m.duration, m.bytes, m.reqBytes, m.inFlight, m.tls)
	m.AddMount("")
}

// Register exports a plugin's own collectors (torsion_dns_queries_total,
// say). Register them before serving Handler; it fails on a name
// registered twice.
func (m *Registry) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// AddMount counts the answers labelled mount (web.Labeled) apart, as
// torsion_http_requests_total's mount label: a mount's prefix or a
// virtual host, a bounded set. Add every mount before serving.
func (m *Registry) AddMount(mount string) {
	if m.counted[mount] != nil {
		return
	}
	name := mount
	if name == "" {
		name = "-"
	}
	var t [len(methods)][len(classes)]prometheus.Counter
	for i, method := range methods {
		for j, class := range classes {
			t[i][j] = m.requests.WithLabelValues(method, class, name)
		}
	}
	m.counted[mount] = &t
}

// TLSHandshake counts a TLS handshake, failed if err is not nil (for
// httpserver.Options.TLSHandshake).
func (m *Registry) TLSHandshake(err error) {
	if err != nil {
		m.tlsErr.Inc()
	} else {
		m.tlsOK.Inc()
	}
}

// Handler serves the metrics in Prometheus's text format at /metrics,
// and the status page for people at /: each pool's workers with their
// pid, state, requests served, memory and the requests they hold,
// updated every second by server-sent events from /events (each the
// JSON of Status, also at /status.json).
func (m *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /{$}", m.page)
	mux.HandleFunc("GET /status.json", m.statusJSON)
	mux.HandleFunc("GET /events", m.events)
	return mux
}

// InFlight wraps h so that the requests it is answering are counted, and
// the bytes of request body they read.
func (m *Registry) InFlight(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inFlight.Inc()
		m.inFlightN.Add(1)
		defer func() {
			m.inFlight.Dec()
			m.inFlightN.Add(-1)
		}()
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		// A copy: the server still finds its own body in r, to read what
		// the handler left of it.
		r2 := *r
		r2.Body = &countedBody{ReadCloser: r.Body, n: m.reqBytes}
		h.ServeHTTP(w, &r2)
	})
}

// countedBody counts the request body read, as it is read.
type countedBody struct {
	io.ReadCloser
	n prometheus.Counter
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.n.Add(float64(n))
	}
	return n, err
}

// Observer counts each answered request (for web.Observe, beside the
// access log).
func (m *Registry) Observer() web.Observer {
	return func(r *http.Request, a web.Answer) {
		i := methodIndex(r.Method)
		t := m.counted[a.Label]
		if t == nil {
			t = m.counted[""]
		}
		t[i][classIndex(a.Status)].Inc()
		m.observed[i].Observe(time.Since(a.Start).Seconds())
		m.bytes.Add(float64(a.Bytes))
		m.answered.Add(1)
	}
}

// PoolStats is what a worker pool tells of itself, as a wsgi.Pool does.
type PoolStats interface {
	Stats() (workers, busy, queued int, restarts map[string]uint64)
	Workers() []workers.WorkerStatus
	Scale() (target, least, most int)
	Timeouts() uint64
	QueueWaits() (buckets []uint64, count uint64, seconds float64)
	WebSockets() int
}

type namedPool struct {
	app string
	p   PoolStats
}

// AddPool exports a pool's workers (by state), queue and restarts (by
// cause) under the label app, and shows its workers on the status page.
// Add the pools before serving Handler.
func (m *Registry) AddPool(app string, p PoolStats) {
	if len(m.pools) == 0 {
		// One collector for every pool: a second collector of the same
		// metrics is a duplicate registration to Prometheus, which
		// panicked with two applications.
		m.reg.MustRegister(poolCollector{m})
	}
	m.pools = append(m.pools, namedPool{app, p})
}

var (
	workersDesc  = prometheus.NewDesc("torsion_wsgi_workers", "Worker slots of a pool, by state: starting (no worker ready), idle, busy (with a request) or draining (finishing before it goes).", []string{"app", "state"}, nil)
	targetDesc   = prometheus.NewDesc("torsion_wsgi_workers_target", "Workers a pool keeps now: its --workers, or more while it has grown with the load (--workers MIN:MAX).", []string{"app"}, nil)
	queuedDesc   = prometheus.NewDesc("torsion_wsgi_queued_requests", "Requests waiting for a worker.", []string{"app"}, nil)
	waitDesc     = prometheus.NewDesc("torsion_wsgi_queue_wait_seconds", "How long requests waited for room in a worker.", []string{"app"}, nil)
	timeoutsDesc = prometheus.NewDesc("torsion_wsgi_timeouts_total", "Requests that ran past --timeout (answered 504, or their worker killed).", []string{"app"}, nil)
	socketsDesc  = prometheus.NewDesc("torsion_websockets_open", "WebSockets open to an ASGI application, over HTTP/1.1 and HTTP/2.", []string{"app"}, nil)
	restartsDesc = prometheus.NewDesc("torsion_wsgi_worker_restarts_total", "Workers replaced or retired, by cause: crash, timeout, max-requests, memory, lifetime, idle, reload, scale-down.", []string{"app", "cause"}, nil)
)

// workerStates are the states torsion_wsgi_workers counts.
var workerStates = []string{"starting", "idle", "busy", "draining"}

// poolCollector collects the pools of a Registry, each under its app.
type poolCollector struct{ m *Registry }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- workersDesc
	ch <- targetDesc
	ch <- queuedDesc
	ch <- waitDesc
	ch <- timeoutsDesc
	ch <- restartsDesc
	ch <- socketsDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.m.pools {
		collectPool(ch, p)
	}
}

func collectPool(ch chan<- prometheus.Metric, c namedPool) {
	_, _, queued, restarts := c.p.Stats()
	states := map[string]int{}
	for _, w := range c.p.Workers() {
		states[w.State]++
	}
	for _, s := range workerStates {
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(states[s]), c.app, s)
	}
	target, _, _ := c.p.Scale()
	ch <- prometheus.MustNewConstMetric(targetDesc, prometheus.GaugeValue, float64(target), c.app)
	ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(queued), c.app)
	buckets, count, sum := c.p.QueueWaits()
	cumulative := map[float64]uint64{}
	var n uint64
	for i, bound := range workers.WaitBuckets {
		n += buckets[i]
		cumulative[bound] = n
	}
	ch <- prometheus.MustNewConstHistogram(waitDesc, count, sum, cumulative, c.app)
	ch <- prometheus.MustNewConstMetric(timeoutsDesc, prometheus.CounterValue, float64(c.p.Timeouts()), c.app)
	ch <- prometheus.MustNewConstMetric(socketsDesc, prometheus.GaugeValue, float64(c.p.WebSockets()), c.app)
	for _, cause := range []string{"crash", "timeout", "max-requests", "memory", "reload"} {
		ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(restarts[cause]), c.app, cause)
	}
}

func methodIndex(m string) int {
	for i, name := range methods[:len(methods)-1] {
		if m == name {
			return i
		}
	}
	return len(methods) - 1
}

func classIndex(status int) int {
	switch {
	case status == 499:
		return 5
	case status < 100 || status > 599:
		return len(classes) - 1
	}
	return status/100 - 1
}

// CacheCounts is what a static directory tells of its file cache
// (web.Static).
type CacheCounts interface {
	CacheCounts() (hits, misses uint64)
}

var staticDesc = prometheus.NewDesc("torsion_static_files_total", "Static files served, by source: cache (memory) or disk.", []string{"source"}, nil)

// AddStatic counts the files a static directory serves, from its cache or
// from disk, with those of the other directories.
func (m *Registry) AddStatic(s CacheCounts) {
	if m.statics == nil {
		m.statics = &staticCollector{}
		m.reg.MustRegister(m.statics)
	}
	m.statics.dirs = append(m.statics.dirs, s)
}

type staticCollector struct{ dirs []CacheCounts }

func (c *staticCollector) Describe(ch chan<- *prometheus.Desc) { ch <- staticDesc }

func (c *staticCollector) Collect(ch chan<- prometheus.Metric) {
	var hits, misses uint64
	for _, d := range c.dirs {
		h, m := d.CacheCounts()
		hits, misses = hits+h, misses+m
	}
	ch <- prometheus.MustNewConstMetric(staticDesc, prometheus.CounterValue, float64(hits), "cache")
	ch <- prometheus.MustNewConstMetric(staticDesc, prometheus.CounterValue, float64(misses), "disk")
}
