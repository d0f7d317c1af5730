// Package echo is the echo protocol of Twisted's first examples (RFC 862):
// the server sends back whatever it receives; the client sends lines and
// collects what comes back.
package echo

import (
	"context"
	"fmt"
	"net"

	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/protocol"
)

// Echo is the server protocol: every byte received is written back.
type Echo struct {
	t protocol.Transport
}

// ConnectionMade implements protocol.Protocol.
func (e *Echo) ConnectionMade(t protocol.Transport) { e.t = t }

// DataReceived implements protocol.Protocol.
func (e *Echo) DataReceived(data []byte) { e.t.Write(data) }

// ConnectionLost implements protocol.Protocol.
func (e *Echo) ConnectionLost(error) {}

// Factory makes an Echo for every connection.
func Factory(net.Addr) protocol.Protocol { return &Echo{} }

// Send connects to an echo server, sends each line and returns the lines
// echoed back, as Twisted's echoclient example does.
func Send(ctx context.Context, ep endpoint.Client, lines ...string) ([]string, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	got := make(chan string, len(lines))
	lost := make(chan error, 1)
	r := &protocol.LineReceiver{
		Delimiter: []byte("\n"),
		OnConnect: func(r *protocol.LineReceiver) {
			for _, l := range lines {
				r.SendLine([]byte(l))
			}
		},
		OnLine: func(r *protocol.LineReceiver, line []byte) {
			got <- string(line)
			if len(got) == len(lines) {
				r.Transport().LoseConnection()
			}
		},
		OnLost: func(_ *protocol.LineReceiver, err error) { lost <- err },
	}
	c, err := protocol.Connect(ctx, ep, r)
	if err != nil {
		return nil, err
	}
	select {
	case err = <-lost:
	case <-ctx.Done():
		c.LoseConnection()
		<-c.Done()
		err = ctx.Err()
	}
	close(got)
	var out []string
	for l := range got {
		out = append(out, l)
	}
	if err == nil && len(out) < len(lines) {
		err = fmt.Errorf("connection closed after %d of %d lines", len(out), len(lines))
	}
	return out, err
}
