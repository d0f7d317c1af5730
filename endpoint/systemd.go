package endpoint

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

func init() { Register("systemd", parseSystemd) }

// Systemd listens on a socket that systemd (or systemd-socket-activate)
// opened and handed over, Twisted's "systemd:domain=INET:index=0": socket
// activation, where the service manager owns the port and torsion may
// start on the first connection or be restarted without refusing one.
// Index counts the sockets passed ($LISTEN_FDS, from file descriptor 3);
// name picks one by its FileDescriptorName= ($LISTEN_FDNAMES) instead.
// Domain (INET, INET6 or UNIX) says what the socket must be.
type Systemd struct {
	Domain string
	Index  int    // -1 when Name is used
	Name   string // empty when Index is used
}

func parseSystemd(a Args) (Server, error) {
	p, err := bind(a, "domain", "index", "name")
	if err != nil {
		return nil, err
	}
	s := Systemd{Index: -1}
	s.Domain, _ = p.get("domain")
	switch s.Domain = strings.ToUpper(s.Domain); s.Domain {
	case "INET", "INET6", "UNIX":
	case "":
		return nil, fmt.Errorf("missing domain (INET, INET6 or UNIX)")
	default:
		return nil, fmt.Errorf("domain %q: want INET, INET6 or UNIX", s.Domain)
	}
	index, hasIndex := p.get("index")
	name, hasName := p.get("name")
	switch {
	case hasIndex == hasName:
		return nil, fmt.Errorf("want one of index and name")
	case hasIndex:
		if s.Index, err = strconv.Atoi(index); err != nil || s.Index < 0 {
			return nil, fmt.Errorf("index %q: want a number from 0", index)
		}
	default:
		s.Name = name
	}
	return s, nil
}

// String returns the description in canonical form.
func (s Systemd) String() string {
	if s.Name != "" {
		return "systemd:domain=" + s.Domain + ":name=" + Escape(s.Name)
	}
	return "systemd:domain=" + s.Domain + ":index=" + strconv.Itoa(s.Index)
}

// Listen takes over the socket. It fails if systemd passed none to this
// process, if the index or name matches none, or if the socket is not of
// the domain described.
func (s Systemd) Listen(ctx context.Context) (net.Listener, error) {
	return listenTracked(s.String(), s.take)
}

// ListenPacket takes over a datagram socket (a ListenDatagram= of the
// socket unit), as Listen does a stream one.
func (s Systemd) ListenPacket(ctx context.Context) (net.PacketConn, error) {
	return listenPacketTracked(s.String(), s.takePacket)
}

func (s Systemd) takePacket() (net.PacketConn, error) {
	f, err := s.file()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	if err := s.checkDomain(pc.LocalAddr()); err != nil {
		pc.Close()
		return nil, err
	}
	return pc, nil
}

// checkDomain fails if a socket bound to addr is not of s's domain.
func (s Systemd) checkDomain(addr net.Addr) error {
	var ip net.IP
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	case *net.UnixAddr:
		if s.Domain != "UNIX" {
			return fmt.Errorf("%s: the socket is a Unix socket, not of domain %s", s, s.Domain)
		}
		return nil
	default:
		return nil
	}
	if s.Domain == "UNIX" || s.Domain == "INET6" && ip.To4() != nil || s.Domain == "INET" && ip.To4() == nil && !ip.IsUnspecified() {
		return fmt.Errorf("%s: the socket is %s, not of domain %s", s, addr, s.Domain)
	}
	return nil
}

// file returns the passed socket s names.
func (s Systemd) file() (*os.File, error) {
	fds, names, err := inheritedSockets()
	if err != nil {
		return nil, err
	}
	i := s.Index
	if s.Name != "" {
		i = -1
		for j, n := range names {
			if n == s.Name {
				i = j
				break
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("%s: no socket named %q among $LISTEN_FDNAMES %q", s, s.Name, strings.Join(names, ":"))
		}
	}
	if i >= len(fds) {
		return nil, fmt.Errorf("%s: systemd passed %d sockets", s, len(fds))
	}
	return os.NewFile(uintptr(fds[i]), s.String()), nil
}

func (s Systemd) take() (net.Listener, error) {
	f, err := s.file()
	if err != nil {
		return nil, err
	}
	ln, err := fileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s, err)
	}
	if err := s.checkDomain(ln.Addr()); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

var (
	inheritOnce  sync.Once
	inheritFDs   []int
	inheritNames []string
	inheritErr   error
)

// inheritedSockets reads, once, the sockets systemd passed:
// $LISTEN_FDS of them from descriptor 3, if $LISTEN_PID is this process.
// The variables are then removed, so that processes torsion starts do not
// take the sockets for theirs.
func inheritedSockets() ([]int, []string, error) {
	inheritOnce.Do(func() {
		pid, n := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
		names := os.Getenv("LISTEN_FDNAMES")
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
		if pid == "" || n == "" {
			inheritErr = fmt.Errorf("no sockets were passed by systemd ($LISTEN_FDS is not set)")
			return
		}
		if pid != strconv.Itoa(os.Getpid()) {
			inheritErr = fmt.Errorf("the sockets in $LISTEN_FDS are for process %s, not this one", pid)
			return
		}
		count, err := strconv.Atoi(n)
		if err != nil || count < 1 {
			inheritErr = fmt.Errorf("$LISTEN_FDS %q: want a positive number", n)
			return
		}
		for i := range count {
			inheritFDs = append(inheritFDs, 3+i)
		}
		if names != "" {
			inheritNames = strings.Split(names, ":")
		}
	})
	return inheritFDs, inheritNames, inheritErr
}
