package echo

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/protocol"
	"github.com/torsion-server/torsion/service"
)

func startEcho(t *testing.T) (*service.Listener, endpoint.Client) {
	t.Helper()
	l := &service.Listener{Endpoint: endpoint.TCP{Interface: "127.0.0.1"}, Server: &protocol.Server{Factory: Factory}}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	c, err := endpoint.ParseClient("tcp:127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func TestSend(t *testing.T) {
	_, c := startEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := Send(ctx, c, "hello, world", "", "second line")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"hello, world", "", "second line"}; !reflect.DeepEqual(got, want) {
		t.Errorf("echoed %q, want %q", got, want)
	}
}

// TestLargeData sends more than one read buffer and checks every byte comes back.
func TestLargeData(t *testing.T) {
	l, _ := startEcho(t)
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	go func() { conn.Write(data); conn.(*net.TCPConn).CloseWrite() }()
	got, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, data) {
		t.Errorf("echoed %d bytes, not the %d sent", len(got), len(data))
	}
}

// TestShutdownLosesConnections checks that stopping the server closes idle
// connections and that ConnectionLost sees a clean close.
func TestShutdownLosesConnections(t *testing.T) {
	lost, got := make(chan error, 1), make(chan struct{}, 1)
	srv := &protocol.Server{Factory: func(net.Addr) protocol.Protocol {
		return &protocol.LineReceiver{
			OnLine: func(*protocol.LineReceiver, []byte) { got <- struct{}{} },
			OnLost: func(_ *protocol.LineReceiver, err error) { lost <- err },
		}
	}}
	l := &service.Listener{Endpoint: endpoint.TCP{Interface: "127.0.0.1"}, Server: srv}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("x\r\n"))
	<-got // the server holds the connection
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-lost; err != nil {
		t.Errorf("ConnectionLost(%v), want nil", err)
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("client read after shutdown: %v, want EOF", err)
	}
}
