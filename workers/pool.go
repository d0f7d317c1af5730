// Package workers runs a Python application in supervised worker
// processes: it starts them, replaces those that die (with backoff when
// they crash-loop), recycles them after a number of requests or over a
// memory limit, kills those stuck past a timeout, reloads them one at a
// time, and broadcasts control messages to every live worker, replaying
// them to workers that start later. It carries requests to the workers and
// their frames back as calls whose contents it does not read: it knows
// nothing of HTTP. Package wsgi serves HTTP with it, WSGI and ASGI alike.
//
// Each worker runs torsion_worker, a standard-library-only Python package
// embedded in this one, under any Python 3.8+ interpreter. Go and Python talk over
// Unix sockets in the frames of PROTOCOL.md; under load a worker takes
// every queued request in one read, so nobody is woken per request.
package workers

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/torsion-server/torsion/internal/backoff"
)

// workerPkg is the worker program, the Python package torsion_worker,
// which Start writes to a directory of the pool's own.
//
//go:embed torsion_worker/*.py
var workerPkg embed.FS

// Config describes a Python application and how to run its workers. A
// zero field takes DefaultConfig's value; a negative limit turns it off
// (one convention for every field: Timeout, MaxRequests and MaxMemory are
// off by default).
type Config struct {
	// App names the application: "module:attr" (gunicorn's form),
	// "module.attr" (Twisted's form), or "module" for its attribute
	// "application".
	App string
	// Python is the interpreter; empty means $VIRTUAL_ENV/bin/python when
	// VIRTUAL_ENV is set, else the virtualenv's python when torsion itself
	// is in a virtualenv's bin/ (installed there by pip), else python3 on
	// PATH.
	Python string
	// Dir is the workers' working directory, which is also first on the
	// import path; empty means the current directory.
	Dir string
	// PythonPath lists more directories for the import path.
	PythonPath []string
	// Env holds KEY=VALUE pairs added to the workers' environment.
	Env []string
	// Workers is the number of processes; 0 means one per CPU.
	Workers int
	// Threads is the number of threads in each process (ASGI: tasks
	// on its event loop); 0 means 1 for WSGI, 64 for ASGI.
	Threads int
	// Timeout kills a worker that spends longer than this on one request
	// and answers that request 504; 0 means never.
	Timeout time.Duration
	// MaxRequests recycles a worker after it served this many requests,
	// plus a random 0..MaxRequestsJitter; 0 means never.
	MaxRequests, MaxRequestsJitter int
	// DetectInterface serves App as what it is, WSGI or ASGI (ASGI is then
	// ignored): Start asks the interpreter, which imports it once more,
	// and Threads 0 takes the default of the kind found. For an
	// application given as gunicorn takes it, MODULE:APP.
	DetectInterface bool
	// StartTimeout bounds a worker's start-up, the import of the
	// application included (default 60s).
	StartTimeout time.Duration
	// MaxMemory recycles a worker whose resident memory stays above this
	// many bytes for two samples a second apart: it takes no new request,
	// finishes those it holds, and a new worker takes its place. 0 means
	// no limit; it is measured on Linux only.
	MaxMemory int64
	// MaxWorkers, above Workers, lets the pool grow with its load: a
	// worker is added when a request has waited ScaleUpWait for one, at
	// most one per ScaleUpEvery (a burst does not fork a storm), and the
	// newest added worker retires once it has held no request for
	// ScaleDownIdle; the pool never has fewer than Workers or more than
	// MaxWorkers. 0, or Workers: a pool of Workers, always.
	MaxWorkers                               int
	ScaleUpWait, ScaleUpEvery, ScaleDownIdle time.Duration
	// StartWorkers, between Workers and MaxWorkers, is how many workers
	// Start starts (default Workers): a successor in an upgrade starts as
	// many as its predecessor had grown to.
	StartWorkers int
	// MaxLifetime recycles a worker once it has run this long, plus a
	// random 0..MaxLifetimeJitter, after the requests it holds, as
	// MaxRequests does; 0 means never. IdleTimeout recycles a worker that
	// has held no request for this long (for memory that grows while
	// idle); 0 means never. Either recycles one worker at a time: none
	// while another is starting or finishing.
	MaxLifetime, MaxLifetimeJitter, IdleTimeout time.Duration
	// MaxQueue bounds the requests that wait when every worker is busy
	// (each worker holds Threads+8, or Threads in a pool that grows);
	// more get 503 with Retry-After at once. The default, 1024, is what
	// a listen backlog commonly holds:
	// a client waiting behind more than that would be better served by
	// another instance. Negative means no bound.
	MaxQueue int
	// Log receives worker output, wsgi.errors and tracebacks.
	Log *slog.Logger
	// RunAs, if set, is the user and group the workers run as (torsion
	// must be root, or already that user); nil means torsion's own.
	RunAs *syscall.Credential
	// ASGI says App is an ASGI 3 application: each worker runs it on an
	// asyncio event loop, Threads requests at a time (DefaultASGITasks), with
	// the lifespan protocol around them.
	ASGI bool
	// Loop, for ASGI, is the event loop: "asyncio" (the default) or
	// "uvloop", which the interpreter must have.
	Loop string
}

// DefaultConfig returns the defaults a zero Config field takes, stated
// here once: New applies them, and torsion web's options show them.
// Threads is WSGI's (ASGI's is DefaultASGITasks); Workers' default, one
// per CPU, is the machine's.
func DefaultConfig() Config {
	return Config{
		Threads:       1,
		StartTimeout:  60 * time.Second,
		MaxQueue:      1024,
		Loop:          "asyncio",
		ScaleUpWait:   100 * time.Millisecond,
		ScaleUpEvery:  time.Second,
		ScaleDownIdle: 30 * time.Second,
	}
}

// DefaultASGITasks is Threads' default for an ASGI application: the
// requests each worker's event loop runs at once.
const DefaultASGITasks = 64

// Pool runs an application in worker processes. It is a service: Start
// starts the workers, Stop stops them. Its methods are safe for concurrent
// use.
type Pool struct {
	cfg    Config
	log    *slog.Logger
	dir    string // temporary directory holding torsion_worker
	script string
	env    []string
	depth  int // the requests one worker holds at most (depthOf)

	// ctlMu serialises control messages and the enrolment of new workers;
	// it is taken before mu. ctlLog holds the messages applied everywhere.
	ctlMu  sync.Mutex
	ctlLog []ctlEntry
	// handover passes each slot's supervisor the worker that replaces
	// its own in a reload.
	handover []chan handover
	reloadMu sync.Mutex
	scaleMu  sync.Mutex // held while the pool grows or shrinks, and by Reload

	mu      sync.Mutex
	workers []*worker // by slot (MaxWorkers of them), nil while a slot restarts or is not in use
	// active is how many slots are in use, the first ones: Workers, or
	// more while the pool has grown; supervised marks the slots whose
	// supervisor runs, and lastUp is when the pool last grew.
	active     int
	supervised []bool
	lastUp     time.Time
	stopping   bool
	stopped    chan struct{}
	stopCtx    context.Context // ends when Stop begins: abandons start-ups in progress
	stopAll    context.CancelFunc
	waiting    []waiter          // requests waiting for a worker, first come first served
	restarts   map[string]uint64 // workers replaced, by cause (metrics)
	timeouts   atomic.Uint64     // requests past the timeout (metrics)
	waits      waitHist          // how long requests waited for a worker (metrics)
	slots      sync.WaitGroup
	rng        *rand.Rand
	// clock is the time supervision reads and waits on, and rss reads a
	// worker's resident memory: backoff.System and residentBytes, or a
	// test's.
	clock backoff.Clock
	rss   func(pid int) (int64, bool)
	// python describes the interpreter, for start-up errors: asked once,
	// not at every failed start of a crash-looping slot.
	python func() string
}

// New checks the configuration and returns a Pool; Start starts it.
func New(cfg Config) (*Pool, error) {
	if cfg.App == "" {
		return nil, errors.New("no application given")
	}
	if strings.HasSuffix(cfg.App, ":") || strings.HasPrefix(cfg.App, ":") || strings.HasSuffix(cfg.App, ".") {
		return nil, fmt.Errorf("application %q: want MODULE:ATTR, MODULE.ATTR or MODULE", cfg.App)
	}
	if !strings.Contains(cfg.App, ":") && !strings.Contains(cfg.App, ".") {
		cfg.App += ":application" // a module alone: its application, as gunicorn and mod_wsgi take it
	}
	if cfg.Workers < 0 || cfg.Threads < 0 || cfg.MaxRequests < 0 || cfg.MaxRequestsJitter < 0 || cfg.Timeout < 0 || cfg.MaxMemory < 0 ||
		cfg.MaxLifetime < 0 || cfg.MaxLifetimeJitter < 0 || cfg.IdleTimeout < 0 {
		return nil, errors.New("workers, threads, timeout, max-requests, memory limit, lifetime and idle timeout cannot be negative")
	}
	cfg.Workers = cmp.Or(cfg.Workers, runtime.NumCPU())
	if cfg.MaxWorkers != 0 && cfg.MaxWorkers < cfg.Workers {
		return nil, fmt.Errorf("at most %d workers, fewer than the %d there always are", cfg.MaxWorkers, cfg.Workers)
	}
	cfg.MaxWorkers = max(cfg.MaxWorkers, cfg.Workers)
	if !cfg.DetectInterface {
		cfg.Threads = defaultThreads(cfg)
	}
	d := DefaultConfig()
	cfg.StartTimeout = cmp.Or(cfg.StartTimeout, d.StartTimeout)
	cfg.ScaleUpWait = cmp.Or(cfg.ScaleUpWait, d.ScaleUpWait)
	cfg.ScaleUpEvery = cmp.Or(cfg.ScaleUpEvery, d.ScaleUpEvery)
	cfg.ScaleDownIdle = cmp.Or(cfg.ScaleDownIdle, d.ScaleDownIdle)
	cfg.MaxQueue = cmp.Or(cfg.MaxQueue, d.MaxQueue)
	if cfg.MaxQueue < 0 {
		cfg.MaxQueue = math.MaxInt
	}
	if cfg.Python == "" {
		cfg.Python = defaultPython(os.Getenv("VIRTUAL_ENV"), os.Executable)
	}
	py, err := exec.LookPath(cfg.Python)
	if err != nil {
		return nil, fmt.Errorf("python interpreter: %w", err)
	}
	cfg.Python = py
	if cfg.Dir == "" {
		if cfg.Dir, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	if fi, err := os.Stat(cfg.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("working directory %s is not a directory", cfg.Dir)
	}
	env := os.Environ()
	if len(cfg.PythonPath) > 0 {
		paths := make([]string, 0, len(cfg.PythonPath)+1)
		for _, p := range cfg.PythonPath {
			abs, err := filepath.Abs(p)
			if err != nil {
				return nil, err
			}
			paths = append(paths, abs)
		}
		if old := os.Getenv("PYTHONPATH"); old != "" {
			paths = append(paths, old)
		}
		env = append(env, "PYTHONPATH="+strings.Join(paths, string(os.PathListSeparator)))
	}
	for _, kv := range cfg.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("environment %q: want KEY=VALUE", kv)
		}
	}
	env = append(env, cfg.Env...)
	env = append(env, "PYTHONUNBUFFERED=1")
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Pool{
		cfg:    cfg,
		log:    cfg.Log,
		env:    env,
		depth:  depthOf(cfg),
		rng:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))),
		clock:  backoff.System,
		rss:    residentBytes,
		python: sync.OnceValue(func() string { return describePython(cfg.Python) }),
	}, nil
}

// defaultPython is the interpreter of Config.Python's default: the active
// virtualenv's (venv, $VIRTUAL_ENV); else, for a torsion installed in a
// virtualenv's bin/ (pip install of its wheel), that virtualenv's, active
// or not; else python3 on PATH.
func defaultPython(venv string, executable func() (string, error)) string {
	if venv != "" {
		return filepath.Join(venv, "bin", "python")
	}
	if exe, err := executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			bin := filepath.Dir(exe)
			py := filepath.Join(bin, "python")
			if _, err := os.Stat(filepath.Join(filepath.Dir(bin), "pyvenv.cfg")); err == nil && isExecutable(py) {
				return py
			}
		}
	}
	return "python3"
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// depthOf is how many requests one worker holds at most: its Threads and
// 8 more sent ahead, so that under load a worker takes the next requests
// in one read; but in a pool that grows (MaxWorkers), no more than its
// Threads, so that the requests that wait do so in the pool's queue,
// where a worker added for them takes them.
func depthOf(cfg Config) int {
	if cfg.MaxWorkers > cfg.Workers {
		return cfg.Threads
	}
	return cfg.Threads + 8
}

// defaultThreads is cfg.Threads, or when 0 the default of its kind: 64
// tasks at a time for ASGI, DefaultConfig's one thread for WSGI.
func defaultThreads(cfg Config) int {
	if cfg.ASGI {
		return cmp.Or(cfg.Threads, DefaultASGITasks)
	}
	return cmp.Or(cfg.Threads, DefaultConfig().Threads)
}

// detectInterface asks the interpreter whether the application is a WSGI
// or an ASGI one (torsion_worker --probe, which imports it once), for an
// application given without saying (DetectInterface).
func (p *Pool) detectInterface(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.cfg.Python, p.script, "--app", p.cfg.App, "--probe")
	cmd.Dir, cmd.Env = p.cfg.Dir, p.env
	if c := p.cfg.RunAs; c != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.Uid, Gid: c.Gid, NoSetGroups: os.Geteuid() != 0}}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return &StartError{App: p.cfg.App, Status: err.Error(), Output: stderr.String(), Python: p.python()}
	}
	p.cfg.ASGI = strings.TrimSpace(string(out)) == "asgi"
	p.cfg.Threads = defaultThreads(p.cfg)
	p.depth = depthOf(p.cfg)
	p.log.Info("the application is "+p.kind(), "app", p.cfg.App)
	return nil
}

// String names the pool in messages.
func (p *Pool) String() string { return "wsgi " + p.cfg.App }

func (p *Pool) rand(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.IntN(n)
}

func (p *Pool) rand64(n int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Int64N(n)
}

// Stats tells the metrics how the pool is: its live workers, those of
// them with a request, the requests waiting for one, and the workers
// replaced so far by cause (crash, timeout, max-requests, memory, reload).
func (p *Pool) Stats() (workers, busy, queued int, restarts map[string]uint64) {
	p.mu.Lock()
	ws := append([]*worker(nil), p.workers...)
	queued = len(p.waiting)
	restarts = maps.Clone(p.restarts)
	p.mu.Unlock()
	for _, w := range ws {
		if w == nil {
			continue
		}
		if n := w.inflight(); n >= 0 {
			workers++
			if n > 0 {
				busy++
			}
		}
	}
	return workers, busy, queued, restarts
}

// Timeouts counts the requests that ran past the timeout (answered 504, or
// their worker killed).
func (p *Pool) Timeouts() uint64 { return p.timeouts.Load() }

// WaitBuckets are the upper bounds, in seconds, of QueueWaits' buckets.
var WaitBuckets = [...]float64{0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10}

// QueueWaits reports how long requests waited for room in a worker: how
// many waited at most each of WaitBuckets (not cumulative; the last
// count is for longer waits), and in all how many and how long.
func (p *Pool) QueueWaits() (buckets []uint64, count uint64, seconds float64) {
	return p.waits.snapshot()
}

// waitHist counts queue waits by bucket, without a lock.
type waitHist struct {
	counts [len(WaitBuckets) + 1]atomic.Uint64 // the last: longer waits
	nanos  atomic.Uint64
}

func (h *waitHist) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(WaitBuckets) && s > WaitBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.nanos.Add(uint64(d))
}

func (h *waitHist) snapshot() (buckets []uint64, count uint64, seconds float64) {
	buckets = make([]uint64, len(h.counts))
	for i := range h.counts {
		buckets[i] = h.counts[i].Load()
		count += buckets[i]
	}
	return buckets, count, time.Duration(h.nanos.Load()).Seconds()
}

// WorkerStatus is one worker slot of a pool, as Workers reports it.
type WorkerStatus struct {
	Slot int `json:"slot"`
	// PID is the worker's process id; 0 while none runs in the slot.
	PID int `json:"pid"`
	// State is "starting" (no worker ready in the slot), "idle", "busy"
	// or "draining" (finishing its requests before it goes).
	State string `json:"state"`
	// Because says why the worker started: "start" (with the pool),
	// "reload", "scale-up", or the cause its predecessor went for
	// ("crash", "timeout", "max-requests", "memory", "lifetime", "idle").
	Because string `json:"started_because"`
	Served  int    `json:"served"` // requests it has answered
	RSS     int64  `json:"rss_bytes"`
	// Running are the requests it holds, oldest first.
	Running []RunningRequest `json:"running"`
}

// RunningRequest is a request a worker holds.
type RunningRequest struct {
	Method string `json:"method"`
	URI    string `json:"uri"`
	// Seconds it has been running; 0 while it waits in the worker for
	// a free thread.
	Seconds float64 `json:"seconds"`
}

// Workers reports each worker slot of the pool in use, in slot order.
func (p *Pool) Workers() []WorkerStatus {
	ws := p.supervisedWorkers() // the slots in use are the first ones

	out := make([]WorkerStatus, len(ws))
	now := time.Now()
	for i, w := range ws {
		out[i] = WorkerStatus{Slot: i + 1, State: "starting", Running: []RunningRequest{}}
		if w == nil {
			continue
		}
		w.mu.Lock()
		st := &out[i]
		st.PID, st.Served, st.Because = w.pid, w.served, w.because
		switch {
		case w.dead:
		case w.draining:
			st.State = "draining"
		case len(w.calls) > 0:
			st.State = "busy"
		default:
			st.State = "idle"
		}
		running := w.order
		if w.sockets > 0 { // WebSockets are not in order; they run all the same
			running = slices.Clone(running)
			for _, c := range w.calls {
				if c.socket {
					running = append(running, c)
				}
			}
		}
		for _, c := range running {
			run := RunningRequest{Method: c.job.Method, URI: c.job.URI}
			if !c.begun.IsZero() {
				run.Seconds = now.Sub(c.begun).Seconds()
			}
			st.Running = append(st.Running, run)
		}
		w.mu.Unlock()
		if st.PID != 0 {
			st.RSS, _ = residentBytes(st.PID)
		}
	}
	return out
}

func (p *Pool) countRestart(cause string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.restarts == nil {
		p.restarts = map[string]uint64{}
	}
	p.restarts[cause]++
}

// App names the application the pool runs.
func (p *Pool) App() string { return p.cfg.App }

// kind names the application's interface in log lines.
func (p *Pool) kind() string {
	if p.cfg.ASGI {
		return "ASGI"
	}
	return "WSGI"
}

// Start writes the worker program to a temporary directory and starts
// every worker.
// It fails, with the Python traceback, if the application cannot be
// imported.
func (p *Pool) Start(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "torsion-wsgi-")
	if err != nil {
		return err
	}
	p.dir, p.script = dir, filepath.Join(dir, "torsion_worker", "__main__.py")
	if err := writeWorker(dir); err != nil {
		os.RemoveAll(dir)
		return err
	}
	if c := p.cfg.RunAs; c != nil {
		// The workers read the script from a directory only its owner
		// may enter.
		if err := os.Chown(dir, int(c.Uid), int(c.Gid)); err != nil {
			os.RemoveAll(dir)
			return fmt.Errorf("giving the workers' directory to uid %d: %w", c.Uid, err)
		}
	}
	if p.cfg.DetectInterface {
		if err := p.detectInterface(ctx); err != nil {
			os.RemoveAll(dir)
			return err
		}
	}
	p.stopped = make(chan struct{})
	p.stopCtx, p.stopAll = context.WithCancel(context.Background())
	p.workers = make([]*worker, p.cfg.MaxWorkers)
	p.supervised = make([]bool, p.cfg.MaxWorkers)
	p.active = min(max(p.cfg.StartWorkers, p.cfg.Workers), p.cfg.MaxWorkers)
	p.lastUp = time.Now()
	p.handover = make([]chan handover, p.cfg.MaxWorkers)
	for i := range p.handover {
		p.handover[i] = make(chan handover)
	}
	ws := make([]*worker, p.active)
	errs := make([]error, p.active)
	var wg sync.WaitGroup
	for i := range ws {
		wg.Go(func() { ws[i], errs[i] = p.startWorker(ctx, i+1) })
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			continue
		}
		for _, w := range ws {
			if w != nil {
				w.kill()
				<-w.exited
			}
		}
		os.RemoveAll(dir)
		return err // the first failure; the others are alike
	}
	for i, w := range ws {
		p.workers[i] = w
		p.supervised[i] = true
		p.slots.Go(func() { p.supervise(i+1, w) })
	}
	if p.cfg.MaxWorkers > p.cfg.Workers {
		p.slots.Go(p.scale)
	}
	if p.cfg.Timeout > 0 {
		p.slots.Go(p.watchdog)
	}
	if p.cfg.MaxMemory > 0 {
		p.slots.Go(p.memoryWatch)
	}
	if p.cfg.MaxLifetime > 0 || p.cfg.IdleTimeout > 0 {
		p.slots.Go(p.lifeWatch)
	}
	p.log.Info(p.kind()+" application running", "app", p.cfg.App, "workers", p.active, "threads", p.cfg.Threads, "python", ws[0].python)
	for _, w := range ws {
		w.started("start")
	}
	return nil
}

// writeWorker writes the worker program, the package torsion_worker, into
// dir, readable by all (a RunAs user is given dir itself).
func writeWorker(dir string) error {
	files, err := fs.Glob(workerPkg, "torsion_worker/*.py")
	if err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "torsion_worker"), 0o755); err != nil {
		return err
	}
	for _, name := range files {
		b, err := workerPkg.ReadFile(name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startWorker spawns a worker and waits until it has imported the
// application.
func (p *Pool) startWorker(ctx context.Context, slot int) (*worker, error) {
	w, err := p.spawn(slot)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(p.cfg.StartTimeout)
	defer t.Stop()
	select {
	case info := <-w.ready:
		if w.python, err = parseReady([]byte(info)); err != nil {
			w.kill()
			<-w.exited
			return nil, fmt.Errorf("worker %d: %w", slot, err)
		}
		w.goLive()
		return w, nil
	case <-w.exited:
		return nil, &StartError{App: p.cfg.App, Status: w.status, Output: w.tail.String(), Python: p.python()}
	case <-t.C:
		stacks := w.dumpStacks() // where the import hangs
		w.kill()
		<-w.exited
		return nil, fmt.Errorf("worker %d did not start within %v under %s; its threads were at:\n%s\nits output:\n%s", slot, p.cfg.StartTimeout, p.python(), stacks, w.tail)
	case <-ctx.Done():
		w.kill()
		<-w.exited
		return nil, ctx.Err()
	}
}

// StartError reports a worker that exited before it was ready, usually
// because the application could not be imported. Output holds what it
// printed: the traceback.
type StartError struct {
	App    string
	Status string
	Output string
	// Python is the interpreter that ran it, with its version: a module
	// missing from one Python is often installed for another.
	Python string
}

func (e *StartError) Error() string {
	return fmt.Sprintf("worker for %s exited during start-up (%s) under %s:\n%s", e.App, e.Status, e.Python, e.Output)
}

// describePython names an interpreter and its version ("/usr/bin/python3,
// Python 3.11.2"), asking it, for start-up errors.
func describePython(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-c", "import platform; print(platform.python_implementation(), platform.python_version())").Output()
	if err != nil {
		return path
	}
	return path + ", " + strings.TrimSpace(string(out))
}

// defaultBackoff is the restart policy of every slot: a worker that dies
// unexpectedly is replaced at once, as gunicorn does (with one worker,
// every request waits for it), unless the slot crash-loops.
func defaultBackoff() backoff.Policy {
	return backoff.Policy{Min: 100 * time.Millisecond, Max: 10 * time.Second, Healthy: time.Second}
}

// supervise keeps one worker slot filled, restarting crashed workers
// (with backoff when they crash-loop) and recycled ones at once.
func (p *Pool) supervise(slot int, w *worker) {
	bo := defaultBackoff()
	for {
		born := p.clock.Now()
		select {
		case <-w.exited:
		case h := <-p.handover[slot-1]:
			// A reload: the new worker takes the slot, the old one
			// finishes what it holds and exits.
			enrolled, err := p.enroll(slot, h.w)
			if err == nil && !enrolled {
				err = ErrStopping
			}
			if err != nil {
				h.w.kill()
				<-h.w.exited
				h.done <- err
				continue
			}
			w.drain()
			p.countRestart("reload")
			w, bo = h.w, defaultBackoff()
			w.started("reload")
			h.done <- nil
			continue
		}
		p.setWorker(slot, nil)
		if p.Stopping() {
			return
		}
		w.mu.Lock()
		planned, cause := w.draining, w.cause
		w.mu.Unlock()
		if cause == "scale-down" {
			p.countRestart(cause)
			p.mu.Lock()
			p.supervised[slot-1] = false
			p.mu.Unlock()
			w.log.Info("worker retired: the pool shrank", "workers", p.activeSlots())
			return
		}
		if cause == "" {
			cause = "crash"
		}
		p.countRestart(cause)
		wait := time.Duration(0)
		if !planned {
			wait = bo.Exited(p.clock.Now().Sub(born))
			w.log.Error("worker exited unexpectedly; restarting it", "status", w.status, "restart_in", wait)
		}
		for {
			if wait > 0 {
				select {
				case <-p.clock.After(wait):
				case <-p.stopped:
					return
				}
			}
			nw, err := p.startWorker(p.stopCtx, slot)
			if p.Stopping() {
				if err == nil {
					nw.conn.CloseWrite()
					<-nw.exited
				}
				return
			}
			enrolled := false
			if err == nil {
				if enrolled, err = p.enroll(slot, nw); err != nil {
					nw.kill()
					<-nw.exited
				}
			}
			if err == nil && !enrolled { // the pool began to stop
				nw.conn.CloseWrite()
				<-nw.exited
				return
			}
			if err == nil {
				w = nw
				break
			}
			wait = bo.Failed()
			p.log.Error("worker failed to start; retrying", "worker", slot, "retry_in", wait, "err", err)
		}
		w.started(cause)
	}
}

// handover is a new worker for a slot's supervisor to put in place of its
// own; done receives the outcome.
type handover struct {
	w    *worker
	done chan error
}

// Reload replaces the workers one at a time with new ones, which import
// the application anew: each new worker is ready, and has been given the
// kept control messages, before the old one stops taking requests, and the
// old one finishes what it holds. So new application code is served
// without a failed request. If a new worker cannot start (the new code
// does not import), Reload returns its error, with the traceback, and the
// workers not yet replaced go on serving.
func (p *Pool) Reload(ctx context.Context) error {
	p.reloadMu.Lock() // one reload at a time: a signal and a changed file may meet
	defer p.reloadMu.Unlock()
	p.scaleMu.Lock() // the pool neither grows nor shrinks meanwhile
	defer p.scaleMu.Unlock()
	n := p.activeSlots()
	p.log.Info("reloading the workers one at a time", "workers", n)
	for slot := 1; slot <= n; slot++ {
		nw, err := p.startWorker(ctx, slot)
		if err != nil {
			return fmt.Errorf("worker %d: %w", slot, err)
		}
		h := handover{w: nw, done: make(chan error, 1)}
		select {
		case p.handover[slot-1] <- h:
		case <-p.stopped:
			nw.kill()
			<-nw.exited
			return ErrStopping
		case <-ctx.Done():
			nw.kill()
			<-nw.exited
			return ctx.Err()
		}
		if err := <-h.done; err != nil {
			return fmt.Errorf("worker %d: %w", slot, err)
		}
	}
	return nil
}

// Ready reports whether the pool serves: it has started, is not stopping,
// and at least one worker is alive.
func (p *Pool) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return false
	}
	for _, w := range p.workers {
		if w != nil {
			return true
		}
	}
	return false
}

// setWorker fills a slot; it refuses once the pool is stopping.
func (p *Pool) setWorker(slot int, w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w != nil && p.stopping {
		return false
	}
	p.workers[slot-1] = w
	if w != nil {
		p.wakeLocked()
	}
	return true
}

// Stopping reports whether Stop has begun.
func (p *Pool) Stopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// watchdog kills workers stuck in a request for longer than the timeout.
func (p *Pool) watchdog() {
	p.every(min(p.cfg.Timeout/4, time.Second), func(now time.Time) {
		for _, w := range p.supervisedWorkers() {
			if w == nil {
				continue
			}
			var stuck []*Call
			w.mu.Lock()
			for i := 0; i < len(w.order) && i < p.cfg.Threads; i++ {
				if c := w.order[i]; !c.begun.IsZero() && now.Sub(c.begun) > p.cfg.Timeout && !c.long.Load() {
					stuck = append(stuck, c)
				}
			}
			w.mu.Unlock()
			if len(stuck) > 0 {
				p.timedOut(w, stuck, now)
			}
		}
	})
}

// every calls f with the time at each tick of period, until the pool
// stops: the loop of each of the pool's watches.
func (p *Pool) every(period time.Duration, f func(now time.Time)) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-p.stopped:
			return
		case now := <-tick.C:
			f(now)
		}
	}
}

// cancelGrace is how long an ASGI task cancelled for running past
// --timeout may take to end before its worker is killed.
const cancelGrace = 5 * time.Second

// timedOut deals with the calls of w that ran past the timeout. A WSGI
// worker is killed: its thread cannot be interrupted. An ASGI worker is
// asked to cancel each such call's task (the call then ends and is
// answered 504), so its other requests go on; it is killed only if a
// cancelled task has not ended within cancelGrace (synchronous code
// holding its event loop, say). Either kill is explained first
// (killExplained).
func (p *Pool) timedOut(w *worker, stuck []*Call, now time.Time) {
	for _, c := range stuck {
		c.mu.Lock()
		if !c.timeout {
			p.timeouts.Add(1)
		}
		c.timeout = true
		first, since := c.cancelled.IsZero(), now.Sub(c.cancelled)
		if first && p.cfg.ASGI {
			c.cancelled = now
		}
		c.mu.Unlock()
		switch {
		case !p.cfg.ASGI:
			w.setCause("timeout")
			w.killExplained("worker spent longer than the timeout on one request; killing it", c, "timeout", p.cfg.Timeout)
			return
		case first:
			w.log.Warn("a request ran longer than the timeout; cancelling its task", "timeout", p.cfg.Timeout,
				"method", c.job.Method, "uri", c.job.URI, "request_id", c.job.RequestID)
			w.sendFrame(KindCancel, c.id, []byte(cancelTimeout))
		case since > cancelGrace:
			w.setCause("timeout")
			w.killExplained("a task cancelled for the timeout did not end; killing its worker", c, "timeout", p.cfg.Timeout, "grace", cancelGrace)
			return
		}
	}
}

// memoryWatch samples the workers' resident memory every second and
// recycles a worker over MaxMemory twice in a row, so that one spike does
// not cost a worker.
func (p *Pool) memoryWatch() {
	over := map[*worker]int{}
	p.every(time.Second, func(time.Time) {
		seen := map[*worker]int{}
		for _, w := range p.supervisedWorkers() {
			if w == nil {
				continue
			}
			rss, ok := p.rss(w.pid)
			if !ok || rss <= p.cfg.MaxMemory {
				continue
			}
			if seen[w] = over[w] + 1; seen[w] == 2 {
				w.log.Warn("worker uses more memory than the limit; recycling it after its requests", "rss", rss, "limit", p.cfg.MaxMemory)
				w.setCause("memory")
				w.drain()
			}
		}
		over = seen
	})
}

// activeSlots is how many slots are in use.
func (p *Pool) activeSlots() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active
}

// supervisedWorkers returns the workers of the slots that have a
// supervisor, nil for a slot whose worker is starting.
func (p *Pool) supervisedWorkers() []*worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ws []*worker
	for i, w := range p.workers {
		if p.supervised[i] {
			ws = append(ws, w)
		}
	}
	return ws
}

// scale grows the pool towards MaxWorkers while requests wait and
// shrinks it towards Workers while its newest worker idles
// (Config.MaxWorkers).
func (p *Pool) scale() {
	p.every(max(min(p.cfg.ScaleUpWait/2, 50*time.Millisecond), 5*time.Millisecond), func(now time.Time) {
		p.scaleMu.Lock()
		defer p.scaleMu.Unlock()
		p.scaleStep(now)
	})
}

// scaleStep adds a worker if a request has waited ScaleUpWait for a
// thread to run it (in the pool's queue, or sent ahead to a worker) and
// the pool last grew ScaleUpEvery ago or more; else it
// retires the newest worker above Workers if it has been idle for
// ScaleDownIdle and nothing waits. A retired worker finishes what it
// holds; its slot is reused once its supervisor has let it go.
func (p *Pool) scaleStep(now time.Time) {
	// How long the longest-waiting request has waited: for room in a
	// worker, or, sent ahead to one, for one of its threads.
	var waited time.Duration
	for _, w := range p.supervisedWorkers() {
		if w != nil {
			waited = max(waited, w.waitedFor(now))
		}
	}
	p.mu.Lock()
	if len(p.waiting) > 0 {
		waited = max(waited, now.Sub(p.waiting[0].since))
	}
	n := p.active
	if waited >= p.cfg.ScaleUpWait && n < p.cfg.MaxWorkers && now.Sub(p.lastUp) >= p.cfg.ScaleUpEvery && !p.supervised[n] {
		p.active, p.lastUp, p.supervised[n] = n+1, now, true
		p.mu.Unlock()
		p.log.Info("adding a worker: requests wait for one", "worker", n+1, "waited", waited, "workers", n+1)
		p.slots.Go(func() { p.grow(n + 1) })
		return
	}
	var newest *worker
	if n > p.cfg.Workers && waited == 0 {
		newest = p.workers[n-1]
	}
	p.mu.Unlock()
	if newest == nil || newest.idleFor(now) < p.cfg.ScaleDownIdle {
		return
	}
	p.mu.Lock()
	p.active--
	p.mu.Unlock()
	newest.log.Info("retiring a worker: it has been idle", "idle", p.cfg.ScaleDownIdle, "workers", n-1)
	newest.setCause("scale-down")
	newest.drain()
}

// grow starts a worker in a slot the pool has just taken into use, and
// supervises it; if it cannot start, the slot is given up.
func (p *Pool) grow(slot int) {
	w, err := p.startWorker(p.stopCtx, slot)
	if err == nil {
		var enrolled bool
		if enrolled, err = p.enroll(slot, w); err == nil && !enrolled {
			err = ErrStopping
		}
		if err != nil {
			w.kill()
			<-w.exited
		}
	}
	if err != nil {
		p.mu.Lock()
		p.active--
		p.supervised[slot-1] = false
		p.mu.Unlock()
		if !errors.Is(err, ErrStopping) && !errors.Is(err, context.Canceled) {
			p.log.Error("could not add a worker", "worker", slot, "err", err)
		}
		return
	}
	w.started("scale-up")
	p.supervise(slot, w)
}

// lifeWatch recycles workers past MaxLifetime (and their jitter) or idle
// past IdleTimeout, one at a time: while a slot is empty (its worker
// starting) or a worker drains, it waits, so that the pool's capacity
// dips by one worker at most.
func (p *Pool) lifeWatch() {
	period := time.Second
	for _, d := range []time.Duration{p.cfg.MaxLifetime, p.cfg.IdleTimeout} {
		if d > 0 {
			period = min(period, max(d/4, 10*time.Millisecond))
		}
	}
	p.every(period, func(now time.Time) {
		ws := p.supervisedWorkers()
		if slices.Contains(ws, nil) || slices.ContainsFunc(ws, (*worker).isDraining) {
			return
		}
		for _, w := range ws {
			if cause, why := w.outlived(now); cause != "" {
				w.log.Info(why, "lifetime", p.cfg.MaxLifetime, "idle_timeout", p.cfg.IdleTimeout)
				w.setCause(cause)
				w.drain()
				return
			}
		}
	})
}

// release is called when a worker finishes or drops a request: the
// longest-waiting request gets the room.
func (p *Pool) release() {
	p.mu.Lock()
	p.wakeLocked()
	p.mu.Unlock()
}

// waiter is a request waiting for room in a worker: woken on ch; since
// is when it began to wait.
type waiter struct {
	ch    chan struct{}
	since time.Time
}

func (p *Pool) wakeLocked() {
	if len(p.waiting) > 0 {
		p.waiting[0].ch <- struct{}{}
		p.waiting = p.waiting[1:]
	}
}

// Submit sends a request to the least busy worker and returns its call.
// frame is the request's KindRequest frame, whole; its id is set here,
// and Submit is done with it when it returns. When every worker is full,
// requests wait in arrival order, so none waits much longer than the
// others; Submit returns ErrQueueFull when MaxQueue wait already,
// ErrStopping once Stop has begun, and ctx's error if it ends first.
func (p *Pool) Submit(ctx context.Context, frame []byte, j Job) (*Call, error) {
	var arrived time.Time // set once the request has to wait
	front := false        // a woken waiter that finds no room goes back to the front
	for {
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			return nil, ErrStopping
		}
		var best *worker
		if front || len(p.waiting) == 0 { // newcomers do not overtake waiters
			bestLoad := p.depth
			for _, w := range p.workers {
				if w == nil {
					continue
				}
				if n := w.inflight(); n >= 0 && n < bestLoad {
					best, bestLoad = w, n
				}
			}
		}
		if best != nil {
			if front {
				p.wakeLocked() // there may be room for the next one too
			}
			p.mu.Unlock()
			if c, ok := best.submit(frame, j); ok {
				var waited time.Duration
				if !arrived.IsZero() {
					waited = time.Since(arrived)
				}
				p.waits.observe(waited)
				return c, nil
			}
			front = true
			continue
		}
		if !front && len(p.waiting) >= p.cfg.MaxQueue {
			p.mu.Unlock()
			return nil, ErrQueueFull
		}
		if arrived.IsZero() {
			arrived = time.Now()
		}
		ch := make(chan struct{}, 1)
		if front {
			p.waiting = append([]waiter{{ch, arrived}}, p.waiting...)
		} else {
			p.waiting = append(p.waiting, waiter{ch, arrived})
		}
		p.mu.Unlock()
		select {
		case <-ch:
			front = true
		case <-ctx.Done():
			p.mu.Lock()
			if i := slices.IndexFunc(p.waiting, func(w waiter) bool { return w.ch == ch }); i >= 0 {
				p.waiting = slices.Delete(p.waiting, i, i+1)
			} else {
				p.wakeLocked() // we were woken but leave: pass it on
			}
			p.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// ErrStopping is Submit's error once the pool has begun to stop.
var ErrStopping = errors.New("server is shutting down")

// ErrQueueFull is Submit's error for a request that found every worker
// busy and MaxQueue requests waiting already.
var ErrQueueFull = errors.New("every worker is busy and the queue is full")

// Stop waits for requests in flight to finish, then closes the workers'
// sockets so they exit; when ctx ends first, they are killed.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopping = true
	close(p.stopped)
	p.stopAll()
	ws := append([]*worker(nil), p.workers...)
	p.mu.Unlock()
	defer os.RemoveAll(p.dir)
	var err error
	for _, w := range ws {
		if w == nil {
			continue
		}
		for w.inflight() > 0 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		w.conn.CloseWrite()
	}
	done := make(chan struct{})
	go func() { p.slots.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("workers still busy: %w", ctx.Err())
		for _, w := range ws {
			if w != nil {
				w.kill()
			}
		}
		<-done
	}
	return err
}

// Config returns the pool's configuration, its defaults applied; after
// Start, with the interface found if DetectInterface asked.
func (p *Pool) Config() Config { return p.cfg }

// Scale reports the pool's size: the worker slots in use now (target),
// which the pool fills, and its bounds, Workers and MaxWorkers.
func (p *Pool) Scale() (target, least, most int) {
	return p.activeSlots(), p.cfg.Workers, p.cfg.MaxWorkers
}
