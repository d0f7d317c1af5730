package control

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

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
	if strings.Join(target.got, ",") != "hello,crlf,fail" {
		t.Errorf("the target saw %q; a long line must not reach it", target.got)
	}
}
