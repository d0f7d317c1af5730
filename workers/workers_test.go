package workers

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/testutil"
	"github.com/torsion-server/torsion/logging"
)

// These tests drive the runtime itself, with request frames made here and
// no HTTP: supervision on a clock, a memory reader and random numbers the
// tests hold, the order of the queue, control messages. Package wsgi tests
// what HTTP makes of it.

// python is Debian's interpreter, which has the framework packages.
const python = "/usr/bin/python3"

type testPool struct {
	pool *Pool
	log  *testutil.SyncBuffer
}

// startPool starts a pool of the application in testdata, one worker
// unless cfg says, with setup run on it before it starts: a test's clock,
// memory reader or random numbers.
func startPool(t *testing.T, cfg Config, setup func(*Pool)) *testPool {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skip("needs Debian's python3")
	}
	logs := &testutil.SyncBuffer{}
	cfg.Log, _ = logging.New(logs, "text", slog.LevelInfo)
	cfg.Python = python
	cfg.Dir = "testdata"
	cfg.Workers = max(cfg.Workers, 1)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(p)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &testPool{pool: p, log: logs}
}

// request is the R frame of a request without a body: an environ with what
// the test applications read.
func request(method, target string) []byte {
	path, query, _ := strings.Cut(target, "?")
	str := func(b []byte, s string) []byte {
		b = append(b, 'a')
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		return append(b, s...)
	}
	p := []byte{0, 0, 0, 0, 0, '{'} // no more body, none in the frame
	for _, kv := range [][2]string{{"REQUEST_METHOD", method}, {"SCRIPT_NAME", ""}, {"PATH_INFO", path}, {"QUERY_STRING", query},
		{"SERVER_PROTOCOL", "HTTP/1.1"}, {"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"}, {"REMOTE_ADDR", "127.0.0.1"}} {
		p = str(str(p, kv[0]), kv[1])
	}
	return AppendFrame(nil, KindRequest, 0, append(p, '0'))
}

// do runs a request through the pool and returns its status line and
// body, or the error that ended its call.
func (s *testPool) do(ctx context.Context, method, target string) (status, body string, err error) {
	c, err := s.pool.Submit(ctx, request(method, target), Job{Method: method, URI: target})
	if err != nil {
		return "", "", err
	}
	for {
		f, err := c.Next(nil)
		if err != nil {
			return status, body, err
		}
		switch f.Kind {
		case KindStart: // the status line is the first field
			n := 4 + 4*int(binary.LittleEndian.Uint32(f.Payload))
			status = string(f.Payload[n : n+int(binary.LittleEndian.Uint32(f.Payload[4:]))])
		case KindData:
			body += string(f.Payload)
		case KindRead:
			c.Send(KindBody, nil)
		case KindError:
			return status, body, fmt.Errorf("the application failed:\n%s", f.Payload)
		case KindEnd:
			return status, body, nil
		}
	}
}

// get is do of a GET that must succeed.
func (s *testPool) get(t *testing.T, target string) string {
	t.Helper()
	status, body, err := s.do(context.Background(), "GET", target)
	if err != nil || status != "200 OK" {
		t.Fatalf("GET %s: %q %q %v\n%s", target, status, body, err, s.log)
	}
	return body
}

func waitFor(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	testutil.WaitUntil(10*time.Second, cond, func() { t.Fatalf(format, args...) })
}

// pidOf is the worker's pid that controlled.py's answer begins with.
func pidOf(answer string) string { return strings.Fields(answer)[0] }

// TestCrashLoop drives a slot's supervisor on a clock the test holds (on
// which no worker lives any time): a worker that dies at once is replaced
// at once the first time, then after waits that double; a replacement
// that cannot even start is retried after waits that go on doubling; once
// it can, it serves.
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	mark := filepath.Join(t.TempDir(), "mark")
	clock := &testutil.StillClock{}
	s := startPool(t, Config{App: "flaky:application", Env: []string{"FLAKY_MARK=" + mark}},
		func(p *Pool) { p.clock = clock })
	ms := time.Millisecond
	crash := func() {
		if _, _, err := s.do(context.Background(), "POST", "/"); !errors.Is(err, ErrWorkerDied) {
			t.Fatalf("a request that crashes its worker: %v", err)
		}
	}
	for range 4 {
		crash()
	}
	waitFor(t, func() bool { return strings.Count(s.log.String(), "worker started worker=1") == 5 }, "not restarted four times:\n%s", s.log)
	if got, want := clock.Waits(), []time.Duration{100 * ms, 200 * ms, 400 * ms}; !slices.Equal(got, want) {
		t.Errorf("waits after four quick crashes %v, want %v", got, want)
	}
	os.WriteFile(mark, nil, 0o644)
	crash()
	waitFor(t, func() bool { return len(clock.Waits()) >= 6 }, "failed starts not retried: waits %v\n%s", clock.Waits(), s.log)
	if got, want := clock.Waits()[3:6], []time.Duration{800 * ms, 1600 * ms, 3200 * ms}; !slices.Equal(got, want) {
		t.Errorf("waits between failed starts %v, want %v", got, want)
	}
	if !strings.Contains(s.log.String(), "worker failed to start; retrying") {
		t.Errorf("no log line for a failed start:\n%s", s.log)
	}
	os.Remove(mark)
	waitFor(t, func() bool { return strings.Count(s.log.String(), "worker started worker=1") == 6 }, "not started once it could be:\n%s", s.log)
}

// TestMaxRequests: a worker is recycled after exactly MaxRequests
// requests, plus the jitter drawn for it (here the largest, from random
// numbers the test holds): each worker serves that many, no more, no
// fewer.
func TestMaxRequests(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		max, jitter, want int
	}{{3, 0, 3}, {1, 2, 3}} {
		s := startPool(t, Config{App: "controlled:application", MaxRequests: tt.max, MaxRequestsJitter: tt.jitter},
			func(p *Pool) { p.rng = rand.New(highest{}) })
		var order []string // the pid serving each request
		for range 3 * tt.want {
			order = append(order, pidOf(s.get(t, "/")))
		}
		for i := range order {
			if order[i] != order[i/tt.want*tt.want] || i > 0 && i%tt.want == 0 && order[i] == order[i-1] {
				t.Errorf("max %d jitter %d: pids %v, want a new worker every %d requests", tt.max, tt.jitter, order, tt.want)
				break
			}
		}
	}
}

// highest is a random source whose every draw is the largest: IntN(n)
// gives n-1.
type highest struct{}

func (highest) Uint64() uint64 { return ^uint64(0) }

// TestNoOvertaking: a request that arrives while others wait does not
// take a worker that has room before them, even when it finds one free
// (as it may between a release and the woken waiter taking its place):
// it waits behind them, and is served once they are.
func TestNoOvertaking(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{App: "controlled:application"}, nil)
	// A waiter that is woken but leaves, passing its turn on.
	early := make(chan struct{}, 1)
	s.pool.mu.Lock()
	s.pool.waiting = append(s.pool.waiting, waiter{ch: early, since: time.Now()})
	s.pool.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, _, err := s.do(context.Background(), "GET", "/")
		done <- err
	}()
	waitFor(t, func() bool { _, _, queued, _ := s.pool.Stats(); return queued == 2 }, "the newcomer did not queue behind the waiting request")
	select {
	case err := <-done:
		t.Fatalf("the newcomer was served (%v) before the request waiting ahead of it", err)
	default:
	}
	s.pool.release() // wakes the early waiter
	<-early
	s.pool.release() // which leaves, waking the next
	if err := <-done; err != nil {
		t.Errorf("the newcomer, once its turn came: %v", err)
	}
}

// TestMaxQueue: with every worker busy and MaxQueue requests waiting, the
// next request fails with ErrQueueFull at once; those waiting are served.
func TestMaxQueue(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{App: "apps:slow", MaxQueue: 2}, nil)
	depth := s.pool.depth // requests one worker holds
	errs := make(chan error, depth+2)
	for range depth + 2 {
		go func() {
			_, _, err := s.do(context.Background(), "GET", "/?0.2")
			errs <- err
		}()
	}
	waitFor(t, func() bool { _, _, queued, _ := s.pool.Stats(); return queued == 2 }, "the queue did not fill")
	if _, _, err := s.do(context.Background(), "GET", "/?0"); !errors.Is(err, ErrQueueFull) {
		t.Errorf("over the queue: %v, want ErrQueueFull", err)
	}
	for range depth + 2 {
		if err := <-errs; err != nil {
			t.Errorf("a request that was let in: %v", err)
		}
	}
}

// TestMemorySpikes: a worker is recycled only when two samples in a row
// are over MaxMemory, not for spikes between which it comes back under;
// samples are taken by a reader the test holds.
func TestMemorySpikes(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	samples := []int64{200, 50, 200, 50, 300, 300} // bytes, against a limit of 100
	s := startPool(t, Config{App: "controlled:application", MaxMemory: 100}, func(p *Pool) {
		p.rss = func(int) (int64, bool) {
			if i := n.Add(1); int(i) <= len(samples) {
				return samples[i-1], true
			}
			return 50, true
		}
	})
	const recycled = "worker uses more memory than the limit"
	// The fifth sample is taken after the fourth was judged; it is the
	// first of two over the limit, so the worker is recycled on the sixth.
	waitFor(t, func() bool { return n.Load() >= 5 }, "only %d samples taken", n.Load())
	if strings.Contains(s.log.String(), recycled) {
		t.Fatalf("recycled for a spike:\n%s", s.log)
	}
	waitFor(t, func() bool { return n.Load() > 6 }, "only %d samples taken", n.Load())
	if !strings.Contains(s.log.String(), "rss=300 limit=100") {
		t.Errorf("not recycled after two samples over the limit:\n%s", s.log)
	}
}

// TestLongOutputLine: a worker that prints a line longer than the log
// takes is still read to the end of it, so it never blocks in print.
func TestLongOutputLine(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{App: "apps:long_line"}, nil)
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, body, err := s.do(ctx, "GET", "/")
		cancel()
		if err != nil || body != "printed" {
			t.Fatalf("the worker hangs after printing a long line: %q %v", body, err)
		}
	}
	want := fmt.Sprintf("[and %d more bytes of this line]", 3<<20-maxOutputLine)
	waitFor(t, func() bool { return strings.Count(s.log.String(), want) == 2 }, "log without %q twice", want)
}

// TestKnowsNoHTTP: the runtime imports no net/http, directly or through
// another package; HTTP is its adapters' (ARCHITECTURE.md).
func TestKnowsNoHTTP(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "net/http" || strings.HasPrefix(dep, "net/http/") {
			t.Errorf("package workers depends on %s", dep)
		}
	}
}

// TestDefaultPython: the interpreter by default is the active
// virtualenv's, else that of the virtualenv torsion runs from (a pip
// install puts it in its bin/, beside python; a symlink to it counts as
// the file), else python3.
func TestDefaultPython(t *testing.T) {
	venv := t.TempDir()
	bin := filepath.Join(venv, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte("home = /usr/bin\n"), 0o644)
	os.WriteFile(filepath.Join(bin, "python"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "torsion"), nil, 0o755)
	link := filepath.Join(t.TempDir(), "torsion")
	os.Symlink(filepath.Join(bin, "torsion"), link)
	plain := t.TempDir()
	os.WriteFile(filepath.Join(plain, "torsion"), nil, 0o755)
	os.WriteFile(filepath.Join(plain, "python"), []byte("#!/bin/sh\n"), 0o755) // no pyvenv.cfg above it
	exe := func(p string) func() (string, error) { return func() (string, error) { return p, nil } }
	for _, tt := range []struct {
		name, active, exe, want string
	}{
		{"active virtualenv", "/srv/venv", filepath.Join(bin, "torsion"), "/srv/venv/bin/python"},
		{"installed in a virtualenv", "", filepath.Join(bin, "torsion"), filepath.Join(bin, "python")},
		{"through a symlink", "", link, filepath.Join(bin, "python")},
		{"not in a virtualenv", "", filepath.Join(plain, "torsion"), "python3"},
	} {
		if got := defaultPython(tt.active, exe(tt.exe)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestStartupHang: an application whose import never ends fails the
// start after StartTimeout, and the error says where it hung: the stack
// of the import's line, asked of the worker before it is killed.
func TestStartupHang(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(python); err != nil {
		t.Skip("needs Debian's python3")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hangs.py"), []byte("import time\ntime.sleep(3600)\n"), 0o644)
	p, err := New(Config{App: "hangs:app", Python: python, Dir: dir, Workers: 1, StartTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = p.Start(context.Background())
	if err == nil {
		p.Stop(context.Background())
		t.Fatal("a hanging import started")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the start failed after %v, want about 1s", d)
	}
	if !strings.Contains(err.Error(), "did not start within 1s") || !strings.Contains(err.Error(), `hangs.py", line 2 in <module>`) {
		t.Errorf("the error does not say where the import hangs: %v", err)
	}
}

// TestLifetime: a worker is recycled once it has lived MaxLifetime plus
// the jitter drawn for it (the largest, from random numbers the test
// holds), not before, and only after the request it holds: that request
// is answered by the old worker, the next by the new one.
func TestLifetime(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		life, jitter time.Duration
		request      string // the first request: one that outlives the lifetime, or a short one
	}{
		{700 * time.Millisecond, 0, "/?1.5"},
		{300 * time.Millisecond, 600 * time.Millisecond, "/?0"},
	} {
		begun := time.Now()
		s := startPool(t, Config{App: "apps:slow", MaxLifetime: tt.life, MaxLifetimeJitter: tt.jitter},
			func(p *Pool) { p.rng = rand.New(highest{}) })
		_, old, err := s.do(context.Background(), "GET", tt.request)
		if err != nil {
			t.Fatal(err)
		}
		var fresh string
		waitFor(t, func() bool { fresh = s.get(t, "/?0"); return fresh != old }, "not recycled:\n%s", s.log)
		if d := time.Since(begun); d < tt.life+tt.jitter {
			t.Errorf("life %v jitter %v: recycled after %v", tt.life, tt.jitter, d)
		}
		if !strings.Contains(s.log.String(), "worker lived its lifetime; recycling it after its requests") {
			t.Errorf("no log line for the lifetime:\n%s", s.log)
		}
		if _, _, _, restarts := s.pool.Stats(); restarts["lifetime"] != 1 {
			t.Errorf("restarts %v, want one for its lifetime", restarts)
		}
	}
}

// TestIdleRecycle: a worker that holds no request for IdleTimeout is
// recycled; one kept busy is not.
func TestIdleRecycle(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{App: "apps:slow", IdleTimeout: 800 * time.Millisecond}, nil)
	busy := s.get(t, "/?0")
	for range 4 { // 1.2s of requests 0.3s apart: never idle for 0.8s
		if got := s.get(t, "/?0.3"); got != busy {
			t.Fatalf("a busy worker was recycled (pid %s, then %s):\n%s", busy, got, s.log)
		}
	}
	// Left alone, it is recycled.
	lastEnd := time.Now()
	waitFor(t, func() bool {
		return strings.Contains(s.log.String(), "worker was idle past the idle timeout; recycling it")
	},
		"the idle worker was not recycled:\n%s", s.log)
	if d := time.Since(lastEnd); d < 800*time.Millisecond {
		t.Errorf("recycled %v after its last request, before the idle timeout", d)
	}
	waitFor(t, func() bool { return strings.Count(s.log.String(), "worker started worker=1") == 2 }, "not replaced:\n%s", s.log)
	if got := s.get(t, "/?0"); got == busy {
		t.Errorf("the idle worker (pid %s) still serves", busy)
	}
}

// TestRecycleOneAtATime: workers whose lifetimes end together are
// recycled one after the other, never two at once.
func TestRecycleOneAtATime(t *testing.T) {
	t.Parallel()
	s := startPool(t, Config{App: "apps:slow", Workers: 3, MaxLifetime: 300 * time.Millisecond}, nil)
	// Each worker holds a request past its lifetime, so that one
	// recycled finishes slowly while the others' lifetimes run out too.
	for range 3 {
		go s.do(context.Background(), "GET", "/?1")
	}
	most := 0
	waitFor(t, func() bool {
		workers, _, _, restarts := s.pool.Stats()
		most = max(most, 3-workers)
		return restarts["lifetime"] >= 3
	}, "the workers were not all recycled:\n%s", s.log)
	if most > 1 {
		t.Errorf("%d workers were away at once", most)
	}
}

// TestAutoscale drives the pool with a load ramp of clients that each
// send one 0.1 s request after another: 1 client, then 4, then 8, then
// none. With one client nothing waits and the pool stays at Workers; as
// requests wait it grows, one worker per ScaleUpEvery at most, up to
// MaxWorkers and never past it; once the load is gone it shrinks back to
// Workers; and no request fails on the way. The timeline is logged.
func TestAutoscale(t *testing.T) {
	t.Parallel()
	const every = 300 * time.Millisecond
	s := startPool(t, Config{App: "apps:slow", Workers: 1, MaxWorkers: 3,
		ScaleUpWait: 50 * time.Millisecond, ScaleUpEvery: every, ScaleDownIdle: 600 * time.Millisecond}, nil)
	begun := time.Now()
	var (
		mu       sync.Mutex
		timeline []string
		ups      []time.Duration // when the target grew
		most     int
	)
	sample := func(step string) {
		live, _, _, _ := s.pool.Stats()
		target := s.pool.activeSlots()
		at := time.Since(begun).Round(10 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if n := len(timeline); n == 0 || !strings.HasSuffix(timeline[n-1], fmt.Sprintf("target %d live %d", target, live)) {
			timeline = append(timeline, fmt.Sprintf("%6v %-9s target %d live %d", at, step, target, live))
			if len(ups) < target-1 {
				ups = append(ups, at)
			}
		}
		most = max(most, target, live)
	}
	var failed atomic.Int64
	run := func(step string, clients int, d time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for ctx.Err() == nil {
					if _, body, err := s.do(context.Background(), "GET", "/?0.1"); err != nil || body == "" {
						failed.Add(1)
					}
				}
			})
		}
		for ctx.Err() == nil {
			sample(step)
			time.Sleep(10 * time.Millisecond)
		}
		wg.Wait()
	}
	run("1 client", 1, 800*time.Millisecond)
	mu.Lock()
	grewEarly := most > 1
	mu.Unlock()
	if grewEarly {
		t.Errorf("the pool grew with one client, whose requests never wait")
	}
	run("4 clients", 4, 1500*time.Millisecond)
	run("8 clients", 8, time.Second)
	waitFor(t, func() bool {
		sample("idle")
		live, _, _, _ := s.pool.Stats()
		return s.pool.activeSlots() == 1 && live == 1
	},
		"the pool did not shrink back to one worker:\n%s", strings.Join(timeline, "\n"))
	// And it stays there: never below Workers, however long it idles.
	for end := time.Now().Add(3 * 600 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		sample("idle")
		if s.pool.activeSlots() < 1 {
			t.Fatalf("the pool shrank below Workers:\n%s", strings.Join(timeline, "\n"))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("timeline (elapsed, load, target and live workers):\n%s", strings.Join(timeline, "\n"))
	if most > 3 {
		t.Errorf("the pool had %d workers, over MaxWorkers 3", most)
	}
	if len(ups) != 2 {
		t.Errorf("the target grew %d times, want 2 (1 to 3)", len(ups))
	}
	for i := 1; i < len(ups); i++ {
		if gap := ups[i] - ups[i-1]; gap < every-20*time.Millisecond {
			t.Errorf("the pool grew twice within %v, less than ScaleUpEvery %v", gap, every)
		}
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d requests failed", n)
	}
	waitFor(t, func() bool { _, _, _, restarts := s.pool.Stats(); return restarts["scale-down"] == 2 },
		"the retired workers are not counted: %v", func() map[string]uint64 { _, _, _, r := s.pool.Stats(); return r }())
}
