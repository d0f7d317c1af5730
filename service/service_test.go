package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/internal/testutil"
)

// recorder is a service that notes its starts and stops in a shared log.
type recorder struct {
	name     string
	log      *[]string
	startErr error
	stopErr  error
}

func (r *recorder) String() string { return r.name }
func (r *recorder) Start(context.Context) error {
	*r.log = append(*r.log, "start "+r.name)
	return r.startErr
}
func (r *recorder) Stop(context.Context) error {
	*r.log = append(*r.log, "stop "+r.name)
	return r.stopErr
}

func TestMulti(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		fail    map[string]error // start errors
		stopErr map[string]error
		log     []string
		err     string
	}{
		{
			name: "order",
			log:  []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"},
		},
		{
			name: "failed start stops the started ones",
			fail: map[string]error{"c": boom},
			log:  []string{"start a", "start b", "start c", "stop b", "stop a"},
			err:  "starting c: boom",
		},
		{
			name:    "every child is stopped even if one fails",
			stopErr: map[string]error{"b": boom},
			log:     []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"},
			err:     "stopping b: boom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			m := NewMulti()
			for _, n := range []string{"a", "b", "c"} {
				m.Add(&recorder{name: n, log: &log, startErr: tt.fail[n], stopErr: tt.stopErr[n]})
			}
			err := m.Start(context.Background())
			if err == nil {
				err = m.Stop(context.Background())
			}
			if !reflect.DeepEqual(log, tt.log) {
				t.Errorf("log = %q, want %q", log, tt.log)
			}
			if (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
			if err != nil && !errors.Is(err, boom) {
				t.Errorf("err %v does not wrap the cause", err)
			}
		})
	}
}

// TestTimer: a timer calls at once, then at each interval, and never
// after Stop has returned.
func TestTimer(t *testing.T) {
	var n atomic.Int32
	var stopped atomic.Bool
	first := make(chan time.Time, 1)
	late := make(chan struct{}, 1)
	tm := &Timer{Interval: 20 * time.Millisecond, Func: func(ctx context.Context) {
		if n.Add(1) == 1 {
			first <- time.Now()
		}
		if stopped.Load() {
			select {
			case late <- struct{}{}:
			default:
			}
		}
	}}
	start := time.Now()
	if err := tm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-first
	testutil.WaitUntil(10*time.Second, func() bool { return n.Load() >= 4 }, func() { t.Fatalf("%d calls", n.Load()) })
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("four calls in %v at a 20 ms interval", d)
	}
	if err := tm.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped.Store(true)
	select { // a call after Stop would come within an interval or two
	case <-late:
		t.Error("timer kept calling after Stop")
	case <-time.After(100 * time.Millisecond):
	}
	if err := (&Timer{}).Start(context.Background()); err == nil {
		t.Error("zero interval accepted")
	}
	// An hourly timer's first call comes at once, not an hour later.
	hourly := &Timer{Interval: time.Hour, Func: func(context.Context) { first <- time.Now() }}
	hourly.Start(context.Background())
	defer hourly.Stop(context.Background())
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Error("an hourly timer's first call did not come at once")
	}
}

func TestTimerStopCancelsCall(t *testing.T) {
	tm := &Timer{Interval: time.Hour, Func: func(ctx context.Context) { <-ctx.Done() }}
	tm.Start(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func listen(t *testing.T, srv Server) *Listener {
	t.Helper()
	l := &Listener{Endpoint: endpoint.TCP{Interface: "127.0.0.1"}, Server: srv}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestListenerGracefulStop(t *testing.T) {
	inHandler := make(chan struct{})
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-release
		io.WriteString(w, "finished")
	})}
	l := listen(t, srv)
	url := "http://" + l.Addr().String() + "/"
	result := make(chan string)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-inHandler
	stopped := make(chan error)
	go func() { stopped <- l.Stop(context.Background()) }()
	// The listener closes at once: new connections are refused while the
	// in-flight request is still running.
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after Stop")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if got := <-result; got != "finished" {
		t.Errorf("in-flight request got %q, want it to finish", got)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Stop = %v", err)
	}
}

func TestListenerStopTimeout(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})}
	l := listen(t, srv)
	go http.Get("http://" + l.Addr().String() + "/")
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := l.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want deadline exceeded", err)
	}
}

func TestListenerStartError(t *testing.T) {
	l1 := listen(t, &http.Server{})
	defer l1.Stop(context.Background())
	port := l1.Addr().(*net.TCPAddr).Port
	l2 := &Listener{Endpoint: endpoint.TCP{Interface: "127.0.0.1", Port: port}, Server: &http.Server{}}
	err := l2.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("listening on tcp:%d:interface=127.0.0.1", port)) {
		t.Errorf("Start on a used port = %v", err)
	}
}

// dyingServer's Serve fails on its own.
type dyingServer struct{}

func (d *dyingServer) Serve(l net.Listener) error         { return errors.New("accept: too many open files") }
func (d *dyingServer) Shutdown(ctx context.Context) error { return nil }

func TestRunStopsOnFailure(t *testing.T) {
	l := &Listener{Endpoint: endpoint.TCP{Interface: "127.0.0.1"}, Server: &dyingServer{}}
	err := Run(context.Background(), NewMulti(l), RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "too many open files") {
		t.Errorf("Run = %v, want the server's failure", err)
	}
}

func TestRunStopsOnContext(t *testing.T) {
	var log []string
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := Run(ctx, &recorder{name: "a", log: &log}, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(log, []string{"start a", "stop a"}) {
		t.Errorf("log = %q", log)
	}
}

// startProbe is a service whose Start runs probe, to see what the tree
// holds at that moment.
type startProbe struct{ probe func() }

func (s *startProbe) Start(context.Context) error { s.probe(); return nil }
func (s *startProbe) Stop(context.Context) error  { return nil }

// TestMultiBindsFirst: a Multi binds the listeners of its whole tree,
// nested ones too, before it starts any child, so a port in use fails the
// start before anything starts, and the listeners bound by then are let
// go; a listener bound first serves once started.
func TestMultiBindsFirst(t *testing.T) {
	later := &Listener{Endpoint: endpoint.TCP{Interface: "127.0.0.1"}, Server: &http.Server{}}
	var seen net.Addr
	probe := &startProbe{probe: func() { seen = later.Addr() }}
	m := NewMulti(probe, NewMulti(later))
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if seen == nil {
		t.Errorf("the nested listener was not bound when the first child started")
	}
	if _, err := http.Get("http://" + later.Addr().String() + "/"); err != nil {
		t.Errorf("the listener bound first does not serve once started: %v", err)
	}
	m.Stop(context.Background())

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := &Listener{Endpoint: endpoint.TCP{Interface: "127.0.0.1"}, Server: &http.Server{}}
	taken := &Listener{Endpoint: endpoint.TCP{Interface: "127.0.0.1", Port: busy.Addr().(*net.TCPAddr).Port}, Server: &http.Server{}}
	started := false
	m = NewMulti(&startProbe{probe: func() { started = true }}, free, taken)
	if err := m.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("a port in use: %v", err)
	}
	if started {
		t.Errorf("a child started though a port of the tree was in use")
	}
	if free.Addr() != nil {
		t.Errorf("the listener bound before the failure was not let go: %v", free.Addr())
	}
}
