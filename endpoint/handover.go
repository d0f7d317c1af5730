package endpoint

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/torsion-server/torsion/internal/handover"
)

// Sockets made by the tcp, ssl, sni, unix, udp and systemd kinds (and the
// kinds wrapping them) are recorded in a process-wide table (package
// internal/handover), so that an upgrade in place (SIGUSR2) hands them to
// the successor, which, started with the same command line, takes each
// where it would have listened, under its canonical description. A
// program that embeds endpoint and never upgrades pays a map entry per
// socket.

// inheritedListener returns the listener the predecessor handed over
// under key, or nil if it handed none.
func inheritedListener(key string) (net.Listener, error) {
	f := handover.Take(key)
	if f == nil {
		return nil, nil
	}
	ln, err := fileListener(f)
	if err != nil {
		return nil, fmt.Errorf("the socket handed over for %s: %w", key, err)
	}
	return ln, nil
}

// fileListener makes a listener of a socket a process was given, and
// closes f: the listener has a close-on-exec copy, which workers do not
// inherit.
func fileListener(f *os.File) (net.Listener, error) {
	defer f.Close()
	return net.FileListener(f)
}

// listenPacketTracked is listenTracked for a datagram socket. The
// socket itself is returned, not a wrapper (a DNS server reads a
// *net.UDPConn's destination addresses); HandOver skips it once closed.
func listenPacketTracked(key string, listen func() (net.PacketConn, error)) (net.PacketConn, error) {
	var pc net.PacketConn
	f := handover.Take(key)
	if f != nil {
		defer f.Close()
		var err error
		if pc, err = net.FilePacketConn(f); err != nil {
			return nil, fmt.Errorf("the socket handed over for %s: %w", key, err)
		}
	} else {
		var err error
		if pc, err = listen(); err != nil {
			return nil, err
		}
	}
	if sc, ok := pc.(syscall.Conn); ok {
		handover.Remember(key, handover.SocketFile(sc, key))
	}
	return pc, nil
}

// listenTracked takes the socket the predecessor handed over under key, or
// else makes one with listen; either way it is tracked, to be handed over
// in turn.
func listenTracked(key string, listen func() (net.Listener, error)) (net.Listener, error) {
	ln, err := inheritedListener(key)
	if err == nil && ln == nil {
		ln, err = listen()
	}
	if err != nil {
		return nil, err
	}
	return track(key, ln), nil
}

// tracked is a listener remembered for handing over until it is closed.
type tracked struct {
	net.Listener
	key string
	raw handover.Filer
}

func track(key string, ln net.Listener) net.Listener {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return ln
	}
	raw := handover.SocketFile(sc, key)
	handover.Remember(key, raw)
	return &tracked{Listener: ln, key: key, raw: raw}
}

// SetDeadline sets the accept deadline.
func (t *tracked) SetDeadline(d time.Time) error { return setDeadline(t.Listener, d) }

func (t *tracked) Close() error {
	handover.Forget(t.key, t.raw)
	return t.Listener.Close()
}
