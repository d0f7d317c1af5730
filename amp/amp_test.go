package amp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/testutil"
	"github.com/torsion-server/torsion/protocol"
)

// The module docstring of twisted.protocols.amp: "sum" asked with tag
// ef639e5c892ccb54 and a=13, b=81, on the wire (keys sorted, as Twisted
// writes them).
var sumBox = Box{"_command": []byte("sum"), "_ask": []byte("ef639e5c892ccb54"), "a": []byte("13"), "b": []byte("81")}

const sumWire = "\x00\x04_ask\x00\x10ef639e5c892ccb54\x00\x08_command\x00\x03sum\x00\x01a\x00\x0213\x00\x01b\x00\x0281\x00\x00"

func TestBoxWire(t *testing.T) {
	got, err := AppendBox(nil, sumBox)
	if err != nil || string(got) != sumWire {
		t.Fatalf("AppendBox = %q, %v; want %q", got, err, sumWire)
	}
	b, err := NewDecoder(strings.NewReader(sumWire)).Decode()
	if err != nil || fmt.Sprint(b) != fmt.Sprint(sumBox) {
		t.Fatalf("Decode = %v, %v", b, err)
	}
	for _, tt := range []struct {
		name string
		box  Box
	}{
		{"empty key", Box{"": []byte("x")}},
		{"long key", Box{strings.Repeat("k", 256): nil}},
		{"long value", Box{"k": make([]byte, 65536)}},
	} {
		if _, err := AppendBox(nil, tt.box); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tt.name, err)
		}
	}
	for _, tt := range []struct {
		name, wire string
		want       error
	}{
		{"end of stream", "", io.EOF},
		{"cut in a key", "\x00\x04_a", io.ErrUnexpectedEOF},
		{"cut after a key", "\x00\x01a", io.ErrUnexpectedEOF},
		{"cut before the end", "\x00\x01a\x00\x01b", io.ErrUnexpectedEOF},
		{"key over 255 bytes", "\x01\x00" + strings.Repeat("k", 256), ErrMalformed},
	} {
		if _, err := NewDecoder(strings.NewReader(tt.wire)).Decode(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// A box past MaxBoxBytes is refused, whatever its values' sizes.
	var big bytes.Buffer
	for i := 0; big.Len() <= MaxBoxBytes; i++ {
		b, _ := AppendBox(nil, Box{fmt.Sprint(i): make([]byte, 60000)})
		big.Write(b[:len(b)-2])
	}
	if _, err := NewDecoder(&big).Decode(); !errors.Is(err, ErrMalformed) {
		t.Errorf("a box of %d bytes: %v", MaxBoxBytes, err)
	}
}

// FuzzDecode: no input makes the decoder panic, and what it decodes
// encodes back to a box that decodes the same.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(sumWire))
	f.Add([]byte("\x00\x01a\x00\x00\x00\x00"))
	f.Add([]byte("\x00\x01a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data))
		for {
			b, err := d.Decode()
			if err != nil {
				return
			}
			wire, err := AppendBox(nil, b)
			if err != nil {
				if _, empty := b[""]; empty {
					return // Decode ends a box at an empty key: cannot happen
				}
				t.Fatalf("a decoded box does not encode: %v", err)
			}
			again, err := NewDecoder(bytes.NewReader(wire)).Decode()
			if err != nil || fmt.Sprint(again) != fmt.Sprint(b) {
				t.Fatalf("%v decodes back as %v, %v", b, again, err)
			}
		}
	})
}

// The commands of the interop tests, as testdata/commands.py declares them.
var (
	sumCmd    = Command{Name: "Sum", Arguments: []Param{{Name: "a", Type: Integer}, {Name: "b", Type: Integer}}, Response: []Param{{Name: "total", Type: Integer}}}
	divideCmd = Command{Name: "Divide", Arguments: []Param{{Name: "numerator", Type: Integer}, {Name: "denominator", Type: Integer}},
		Response: []Param{{Name: "result", Type: Float}}, Errors: map[string]string{"ZERO_DIVISION": "division by zero"}}
	echoTypes = []Param{{Name: "words", Type: ListOf(Unicode)}, {Name: "flag", Type: Boolean}, {Name: "when", Type: DateTime},
		{Name: "amount", Type: Decimal}, {Name: "rows", Type: AmpList(Param{Name: "x", Type: Integer}, Param{Name: "name", Type: Unicode})},
		{Name: "blob", Type: String}, {Name: "ratio", Type: Float}}
	echoCmd    = Command{Name: "Echo", Arguments: echoTypes, Response: echoTypes}
	missingCmd = Command{Name: "Missing"}
)

func locator() *Locator {
	l := &Locator{}
	l.Handle(sumCmd, func(ctx context.Context, args map[string]any) (map[string]any, error) {
		return map[string]any{"total": args["a"].(int64) + args["b"].(int64)}, nil
	})
	l.Handle(divideCmd, func(ctx context.Context, args map[string]any) (map[string]any, error) {
		if args["denominator"].(int64) == 0 {
			return nil, &Error{Code: "ZERO_DIVISION", Description: "division by zero"}
		}
		return map[string]any{"result": float64(args["numerator"].(int64)) / float64(args["denominator"].(int64))}, nil
	})
	l.Handle(echoCmd, func(ctx context.Context, args map[string]any) (map[string]any, error) { return args, nil })
	return l
}

// serve answers AMP on a loopback port with h until the test ends.
func serve(t *testing.T, h Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &protocol.Server{ServeConn: func(c net.Conn) { NewConn(c, h, nil).Serve() }}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// dialConn connects a client Conn to addr.
func dialConn(t *testing.T, addr string) *Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(nc, nil, nil)
	go c.Serve()
	t.Cleanup(func() { c.Close() })
	return c
}

// exercise calls the test commands on c, as testdata/client.py does.
func exercise(t *testing.T, c *Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := sumCmd.Call(ctx, c, map[string]any{"a": 13, "b": 81})
	if err != nil || r["total"] != int64(94) {
		t.Errorf("Sum = %v, %v", r, err)
	}
	_, err = divideCmd.Call(ctx, c, map[string]any{"numerator": 1, "denominator": 0})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != "ZERO_DIVISION" {
		t.Errorf("Divide by zero: %v", err)
	}
	when := time.Date(2026, 12, 2, 10, 30, 0, 123456000, time.UTC)
	args := map[string]any{"words": []any{"h\u00e9llo", "world"}, "flag": true, "when": when, "amount": "1.25",
		"rows": []map[string]any{{"x": int64(1), "name": "one"}, {"x": int64(2), "name": "two"}},
		"blob": bytes.Repeat([]byte{0, 0xff}, 32767), "ratio": 0.5}
	r, err = echoCmd.Call(ctx, c, args)
	if err != nil {
		t.Fatalf("Echo: %v", err)
	}
	got := fmt.Sprintf("%v %v %v %v %v %v", r["words"], r["flag"], r["amount"], r["rows"], len(r["blob"].([]byte)), r["ratio"])
	if want := "[héllo world] true 1.25 [map[name:one x:1] map[name:two x:2]] 65534 0.5"; got != want || !r["when"].(time.Time).Equal(when) {
		t.Errorf("Echo = %s, %v; want %s, %v", got, r["when"], want, when)
	}
	if _, err := missingCmd.Call(ctx, c, nil); !errors.As(err, &ae) || ae.Code != CodeUnhandled {
		t.Errorf("Missing: %v", err)
	}
	var wg sync.WaitGroup
	totals := make([]int64, 50)
	for i := range totals {
		wg.Go(func() {
			if r, err := sumCmd.Call(ctx, c, map[string]any{"a": i, "b": i}); err == nil {
				totals[i] = r["total"].(int64)
			}
		})
	}
	wg.Wait()
	var sum int64
	for _, n := range totals {
		sum += n
	}
	if sum != 2450 {
		t.Errorf("50 concurrent calls add up to %d, want 2450", sum)
	}
	if _, err := c.Call(ctx, "Echo", Box{"blob": make([]byte, 65536)}); !errors.Is(err, ErrMalformed) {
		t.Errorf("a value over 65535 bytes: %v", err)
	}
}

func TestGoClientGoServer(t *testing.T) {
	exercise(t, dialConn(t, serve(t, locator())))
}

// twisted runs a testdata program under Debian's python3 with Twisted.
func twisted(t *testing.T, script string, args ...string) *exec.Cmd {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import twisted.protocols.amp").Run(); err != nil {
		t.Fatalf("Twisted is missing (scripts/test installs python3-twisted): %v", err)
	}
	cmd := exec.Command("/usr/bin/python3", append([]string{script}, args...)...)
	cmd.Dir = "testdata"
	return cmd
}

// TestTwistedClient: Twisted's AMP client calls a Go server.
func TestTwistedClient(t *testing.T) {
	addr := serve(t, locator())
	_, port, _ := net.SplitHostPort(addr)
	out, err := twisted(t, "client.py", port).CombinedOutput()
	want := "sum 94\ndivide ZeroDivisionError\necho ['héllo', 'world'] True True 1.25 [{'x': 1, 'name': 'one'}, {'x': 2, 'name': 'two'}] 65534 0.5\nmissing UnhandledCommand\nconcurrent 2450\n"
	if err != nil || string(out) != want {
		t.Errorf("Twisted client: %v\n%s\nwant\n%s", err, out, want)
	}
}

// TestTwistedServer: a Go client calls Twisted's AMP server.
func TestTwistedServer(t *testing.T) {
	cmd := twisted(t, "server.py")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	port, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the Twisted server said no port: %v", err)
	}
	exercise(t, dialConn(t, "127.0.0.1:"+strings.TrimSpace(port)))
}

// TestServeBounds: a connection runs at most MaxInFlight commands at once
// and reads no more boxes meanwhile, and a peer that reads none of its
// answers is dropped after WriteTimeout. Once 300,000 small boxes not read
// back took 2.87 GiB: a goroutine each, answers written without end.
func TestServeBounds(t *testing.T) {
	var running, most atomic.Int32
	release := make(chan struct{})
	big := bytes.Repeat([]byte("x"), 60000)
	h := HandlerFunc(func(ctx context.Context, cmd string, args Box) (Box, error) {
		if cmd == "Big" {
			return Box{"v": big}, nil
		}
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		return Box{}, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 4)
	srv := &protocol.Server{ServeConn: func(c net.Conn) {
		conn := NewConn(c, h, nil)
		conn.MaxInFlight, conn.WriteTimeout = 4, 300*time.Millisecond
		served <- conn.Serve()
	}}
	go srv.Serve(ln)
	defer srv.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var boxes []byte
	for i := range 100 {
		boxes, _ = AppendBox(boxes, Box{KeyCommand: []byte("Hold"), KeyAsk: []byte(fmt.Sprint(i))})
	}
	go c.Write(boxes)
	testutil.WaitUntil(20*time.Second, func() bool { return running.Load() >= 4 }, func() { t.Fatalf("%d commands running", running.Load()) })
	// An absence: were they not held back, more would start meanwhile.
	time.Sleep(200 * time.Millisecond)
	if m := most.Load(); m != 4 {
		t.Errorf("%d commands ran at once, want MaxInFlight, 4", m)
	}
	close(release)
	d := NewDecoder(c)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := range 100 {
		if _, err := d.Decode(); err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
	}

	// A peer that asks and reads nothing back.
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	go func() {
		for i := 0; ; i++ {
			b, _ := AppendBox(nil, Box{KeyCommand: []byte("Big"), KeyAsk: []byte(fmt.Sprint(i))})
			if _, err := c2.Write(b); err != nil {
				return
			}
		}
	}()
	// The first connection is still open: what ends is the second.
	select {
	case <-served:
	case <-time.After(30 * time.Second):
		t.Fatal("a peer that reads no answers is still served")
	}
}
