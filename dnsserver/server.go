package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/internal/clientaddr"
)

// Server serves an Authority over UDP and TCP; it is a service (Start,
// Stop) and reads its files again on Reload (SIGHUP) and when they change
// on disk.
type Server struct {
	// Addr is the host and port to listen on, both protocols, unless TCP
	// and UDP say otherwise.
	Addr string
	// TCP and UDP, when set, are where to listen instead (sockets systemd
	// passed, say). Without UDP, datagrams are received on TCP's address
	// and port (the port it was given when it asked for 0). Sockets made
	// through endpoint are handed over in an upgrade (SIGUSR2).
	TCP endpoint.Server
	UDP endpoint.PacketServer
	// HostsFiles and ZoneFiles are read at Start and at each Reload.
	HostsFiles, ZoneFiles []string
	// Forward, if set, answers what the files do not (twistd dns
	// --recursive); nil means such names are REFUSED.
	Forward *Forwarder
	// Recursion lists the clients Forward answers (nil: DefaultRecursion,
	// loopback and private networks, so that the server is no open
	// resolver); others are REFUSED what the files do not hold.
	Recursion []netip.Prefix
	// Log receives the start, stop and reload lines; nil means none.
	Log *slog.Logger
	// Answered, if set, is told of each answer sent: over "udp" or
	// "tcp", its rcode, and the time from the query's arrival (for
	// metrics).
	Answered func(network string, rcode int, took time.Duration)

	auth     atomic.Pointer[Authority]
	udp, tcp *dns.Server
	unwatch  context.CancelFunc
	watching sync.WaitGroup
}

// maxUDP is the largest UDP answer sent, whatever EDNS0 offers: larger
// ones fragment, and clients retry over TCP.
const maxUDP = 1232

// Start loads the files and listens.
func (s *Server) Start(ctx context.Context) error {
	auth, err := Load(s.HostsFiles, s.ZoneFiles)
	if err != nil {
		return err
	}
	s.logSkipped(auth)
	s.auth.Store(auth)
	ln, pc, err := s.listen(ctx)
	if err != nil {
		return err // "listen udp 127.0.0.1:53: bind: address already in use"
	}
	s.tcp = &dns.Server{Listener: ln, Handler: s}
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	started := make(chan struct{}, 2)
	s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	go s.tcp.ActivateAndServe()
	go s.udp.ActivateAndServe()
	<-started
	<-started
	var wctx context.Context
	wctx, s.unwatch = context.WithCancel(context.Background())
	if err := s.watch(wctx); err != nil {
		s.log().Warn("the DNS files are not watched for changes; SIGHUP reads them again", "err", err)
	}
	s.log().Info(fmt.Sprintf("DNS server starting on %d", s.Port()), "addr", ln.Addr().String(), "udp", pc.LocalAddr().String(), "zones", len(auth.zones), "hosts", len(auth.hosts))
	return nil
}

// listen opens the TCP listener and the UDP socket.
func (s *Server) listen(ctx context.Context) (net.Listener, net.PacketConn, error) {
	stream := s.TCP
	if stream == nil {
		h, p, err := net.SplitHostPort(s.Addr)
		if err != nil {
			return nil, nil, fmt.Errorf("address %q: %w", s.Addr, err)
		}
		port, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, nil, fmt.Errorf("address %q: the port is not a number from 0 to 65535", s.Addr)
		}
		stream = endpoint.TCP{Port: int(port), Interface: h}
	}
	ln, err := stream.Listen(ctx)
	if err != nil {
		return nil, nil, err
	}
	packet := s.UDP
	if packet == nil {
		a, ok := ln.Addr().(*net.TCPAddr)
		if !ok {
			ln.Close()
			return nil, nil, fmt.Errorf("TCP on %s: say where UDP is received", ln.Addr())
		}
		// The address TCP is bound to; "::", every address, is both
		// families' ("udp:PORT"), as TCP's was.
		iface := a.IP.String()
		if a.IP.Equal(net.IPv6unspecified) {
			iface = ""
		}
		packet = endpoint.UDP{Port: a.Port, Interface: iface}
	}
	pc, err := packet.ListenPacket(ctx)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, pc, nil
}

// Port is the TCP port the server listens on, once started (0 for a
// listener that has none).
func (s *Server) Port() int {
	if s.tcp == nil {
		return 0
	}
	a, _ := s.tcp.Listener.Addr().(*net.TCPAddr)
	if a == nil {
		return 0
	}
	return a.Port
}

// Stop stops both listeners, letting answers in progress finish until ctx
// ends.
func (s *Server) Stop(ctx context.Context) error {
	s.unwatch()
	s.watching.Wait()
	err := errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
	s.log().Info("(DNS server closed)")
	return err
}

// Reload reads the files again; if they do not load, what was loaded
// before goes on answering and the error says why.
func (s *Server) Reload(context.Context) error {
	auth, err := Load(s.HostsFiles, s.ZoneFiles)
	if err != nil {
		return err
	}
	s.logSkipped(auth)
	s.auth.Store(auth)
	s.log().Info("DNS files reloaded", "zones", len(auth.zones), "hosts", len(auth.hosts))
	return nil
}

// logSkipped warns of each hosts-file line Load skipped.
func (s *Server) logSkipped(auth *Authority) {
	for _, line := range auth.Skipped() {
		s.log().Warn("skipped a malformed line of a hosts file", "line", line)
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// DefaultRecursion is who Server.Recursion lets ask names the files do
// not hold by default: loopback and private networks (RFC 1918, RFC 4193,
// link-local), as Unbound answers only its own machine by default.
var DefaultRecursion = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10"),
}

// recursionFor reports whether the client at addr may have names
// forwarded.
func (s *Server) recursionFor(addr net.Addr) bool {
	ip, ok := clientaddr.IP(addr)
	if !ok {
		return true // a local socket
	}
	allowed := s.Recursion
	if allowed == nil {
		allowed = DefaultRecursion
	}
	for _, p := range allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	var began time.Time
	if s.Answered != nil {
		began = time.Now()
	}
	reply := new(dns.Msg)
	reply.SetReply(r)
	recursive := s.Forward != nil && s.recursionFor(w.RemoteAddr())
	reply.RecursionAvailable = false
	switch {
	case r.IsEdns0() != nil && r.IsEdns0().Version() != 0:
		reply.Rcode = dns.RcodeBadVers // RFC 6891 6.1.3: only version 0 is spoken
	case r.Opcode != dns.OpcodeQuery:
		reply.Rcode = dns.RcodeNotImplemented
	case len(r.Question) != 1:
		reply.Rcode = dns.RcodeFormatError
	default:
		s.auth.Load().Answer(r.Question[0], reply)
		if reply.Rcode == dns.RcodeRefused && recursive {
			reply = s.Forward.Forward(r)
			extra := reply.Extra[:0] // the upstream's OPT: ours replaces it
			for _, rr := range reply.Extra {
				if rr.Header().Rrtype != dns.TypeOPT {
					extra = append(extra, rr)
				}
			}
			reply.Extra = extra
		}
	}
	if recursive {
		reply.RecursionAvailable = true
	}
	size := dns.MinMsgSize // 512, without EDNS0
	if opt := r.IsEdns0(); opt != nil {
		size = max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDP))
		reply.SetEdns0(uint16(maxUDP), false)
	}
	_, isTCP := w.RemoteAddr().(*net.TCPAddr)
	if isTCP {
		size = dns.MaxMsgSize
	}
	reply.Truncate(size)  // sets TC when it had to cut: the client asks again over TCP
	reply.Compress = true // also where Truncate found no need (over TCP, a short answer)
	w.WriteMsg(reply)
	if s.Answered != nil {
		network := "udp"
		if isTCP {
			network = "tcp"
		}
		s.Answered(network, reply.Rcode, time.Since(began))
	}
}
