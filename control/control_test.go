package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torsion-server/torsion/amp"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/protocol"
)

// echoTarget answers a line with itself, upper-cased, or fails on "fail".
type echoTarget struct {
	mu  sync.Mutex
	got []string
}

func (e *echoTarget) Control(ctx context.Context, line []byte) (string, error) {
	e.mu.Lock()
	e.got = append(e.got, string(line))
	e.mu.Unlock()
	if string(line) == "fail" {
		return "", errors.New("worker 1: no\nworker 2: no")
	}
	return strings.ToUpper(string(line)), nil
}

func TestLines(t *testing.T) {
	target := &echoTarget{}
	srv := &protocol.Server{Factory: Lines(target, 16, logging.Discard())}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	for _, tt := range []struct{ send, want string }{
		{"hello\n", "HELLO\r\n"},
		{"crlf\r\n", "CRLF\r\n"},
		{"fail\n", "error: worker 1: no; worker 2: no\r\n"},
		{strings.Repeat("x", 17) + "\n", "error: the line is longer than 16 bytes\r\n"},
		{strings.Repeat("x", 40), "error: the line is longer than 16 bytes\r\n"}, // no end, and too long already
		// One line a connection: what follows is neither applied nor answered.
		{"one\ntwo\nthree\n", "ONE\r\n"},
		// A browser's cross-protocol POST: nothing applied, no answer.
		{"POST / HTTP/1.1\r\nHost: x\r\n\r\nset\n", ""},
		{"Host: x\n", ""},
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, tt.send)
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != tt.want {
			t.Errorf("sent %.20q: got %q, %v; want %q", tt.send, got, err, tt.want)
		}
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	if strings.Join(target.got, ",") != "hello,crlf,fail,one" {
		t.Errorf("the target saw %q; a long line must not reach it", target.got)
	}
}

// ampTarget answers "Echo" with its arguments, refuses "Refuse" with a
// declared error and fails "Crash" as a dead worker would.
type ampTarget struct{}

func (ampTarget) ControlBox(ctx context.Context, wire []byte, key string) ([]byte, error) {
	boxes, err := amp.ParseBoxes(wire)
	if err != nil || len(boxes) != 1 {
		return nil, fmt.Errorf("not one box: %v", err)
	}
	box := boxes[0]
	command := string(box[amp.KeyCommand])
	if key != "amp "+command {
		return nil, fmt.Errorf("key %q for %s", key, command)
	}
	switch command {
	case "Echo":
		delete(box, amp.KeyCommand)
		return amp.AppendBox(nil, box)
	case "Refuse":
		answer, _ := amp.AppendBox(nil, amp.Box{amp.KeyErrorCode: []byte("NOPE"), amp.KeyErrorDescription: []byte("refused")})
		return nil, declaredError(answer)
	}
	return nil, errors.New("worker 1: exited\nworker 2: exited")
}

// declaredError is how a pool reports a declared error (wsgi.DeclaredError).
type declaredError []byte

func (e declaredError) Error() string          { return "declared" }
func (e declaredError) DeclaredAnswer() []byte { return e }

func TestAMP(t *testing.T) {
	srv := &protocol.Server{ServeConn: AMP(ampTarget{}, logging.Discard())}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := amp.NewConn(nc, nil, logging.Discard())
	ended := make(chan error, 1)
	go func() { ended <- client.Serve() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		command, want, code string
	}{
		{"Echo", "hi", ""},
		{"Refuse", "", "NOPE"},
		{"Crash", "", CodeWorkerFailed},
	} {
		r, err := client.Call(ctx, tt.command, amp.Box{"x": []byte("hi")})
		var ae *amp.Error
		switch {
		case tt.code == "" && (err != nil || string(r["x"]) != tt.want):
			t.Errorf("%s: got %q, %v; want x=%q", tt.command, r, err, tt.want)
		case tt.code != "" && (!errors.As(err, &ae) || ae.Code != tt.code):
			t.Errorf("%s: got %v; want the error %s", tt.command, err, tt.code)
		}
	}
	// An AMP client stays connected between commands: Shutdown must close
	// it, not wait for it.
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, protocol.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	select {
	case <-ended:
	case <-ctx.Done():
		t.Fatal("the client's connection outlived Shutdown")
	}
}
