package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestDNS runs torsion dns as the seed runs twistd dns, and asks it with
// Debian's dig over UDP and TCP and with Go's resolver: hosts-file names
// and addresses, zone records, a negative answer with the SOA, REFUSED
// outside its names; SIGHUP reads changed files, and a file that does not
// load keeps the old answers.
func TestDNS(t *testing.T) {
	t.Parallel()
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Fatalf("dig is missing (scripts/test installs dnsutils): %v", err)
	}
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("10.0.0.5 web.test www.test\nfd00::5 web.test\n"), 0o644)
	zone, _ := os.ReadFile("../../examples/dns/example.org.zone")
	zoneFile := filepath.Join(dir, "example.org.zone")
	os.WriteFile(zoneFile, zone, 0o644)
	p := start(t, nil, "dns", "-p", "0", "--interface", "127.0.0.1", "--hosts-file", hosts, "--bindzone", zoneFile)
	port := p.waitLog(`DNS server starting on (\d+)`)[1]
	ask := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(dig, append([]string{"@127.0.0.1", "-p", port, "+time=5", "+tries=2"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"web.test", "A", "+short"}, "10.0.0.5"},
		{[]string{"www.test", "A", "+short", "+tcp"}, "10.0.0.5"},
		{[]string{"web.test", "AAAA", "+short"}, "fd00::5"},
		{[]string{"-x", "10.0.0.5", "+short"}, "web.test."},
		{[]string{"example.org", "MX", "+short", "+tcp"}, "10 mail.example.org."},
		{[]string{"www.example.org", "A", "+short"}, "web.example.org.\n192.0.2.3"},
		{[]string{"nope.example.org", "A", "+noall", "+comments", "+authority"}, "status: NXDOMAIN"},
		{[]string{"example.com", "A", "+noall", "+comments"}, "status: REFUSED"},
	} {
		if got := ask(c.args...); !strings.Contains(got, c.want) {
			t.Errorf("dig %v:\n%s\nwant %q", c.args, got, c.want)
		}
	}
	if got := ask("nope.example.org", "A", "+noall", "+authority"); !strings.Contains(got, "SOA") {
		t.Errorf("no SOA with NXDOMAIN:\n%s", got)
	}
	// Go's resolver, over UDP, as a program would ask.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+port)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if addrs, err := r.LookupHost(ctx, "web.test"); err != nil || strings.Join(addrs, " ") != "10.0.0.5 fd00::5" && strings.Join(addrs, " ") != "fd00::5 10.0.0.5" {
		t.Errorf("Go's resolver: %v %v", addrs, err)
	}

	// SIGHUP: the changed hosts file is read; a broken one is not.
	os.WriteFile(hosts, []byte("10.0.0.6 web.test\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(`DNS files reloaded`)
	if got := ask("web.test", "A", "+short"); got != "10.0.0.6" {
		t.Errorf("after SIGHUP: %q, want 10.0.0.6", got)
	}
	// A malformed line is skipped, named in the log; the rest is read.
	os.WriteFile(hosts, []byte("this is not a hosts file\n10.0.0.7 web.test\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(`skipped a malformed line of a hosts file.*:1: want an address and names`)
	p.waitLogs(`DNS files reloaded`, 2)
	if got := ask("web.test", "A", "+short"); got != "10.0.0.7" {
		t.Errorf("after a reload with a bad line: %q, want 10.0.0.7", got)
	}
	os.Remove(hosts) // files that do not load leave the old answers
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(`The reload failed; what ran before goes on\.`)
	if got := ask("web.test", "A", "+short"); got != "10.0.0.7" {
		t.Errorf("after a failed reload: %q, want the old 10.0.0.7", got)
	}
	p.stopOK()
	if out, code := run(t, "dns", "-p", port, "--interface", "127.0.0.1"); code != 2 || !strings.Contains(out, "give --hosts-file, --bindzone or --recursive") {
		t.Errorf("torsion dns without files: exit %d: %s", code, out)
	}
}

// TestDNSRecursive: a torsion dns with --recursive and --cache in front of
// another as its upstream, asked with dig: it forwards what its own file
// lacks (recursion available, not authoritative), and answers from its
// cache once the upstream has stopped.
func TestDNSRecursive(t *testing.T) {
	t.Parallel()
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Fatalf("dig is missing (scripts/test installs dnsutils): %v", err)
	}
	up := start(t, nil, "dns", "-p", "0", "--interface", "127.0.0.1", "--bindzone", "../../examples/dns/example.org.zone")
	upPort := up.waitLog(`DNS server starting on (\d+)`)[1]
	front := start(t, nil, "dns", "-p", "0", "--interface", "127.0.0.1", "--hosts-file", "../../examples/dns/hosts",
		"--recursive", "--cache", "--upstream", "127.0.0.1:"+upPort)
	frontPort := front.waitLog(`DNS server starting on (\d+)`)[1]
	ask := func(args ...string) string {
		t.Helper()
		out, _ := exec.Command(dig, append([]string{"@127.0.0.1", "-p", frontPort, "+time=5", "+tries=1"}, args...)...).CombinedOutput()
		return string(out)
	}
	got := ask("web.example.org", "A")
	if !strings.Contains(got, "192.0.2.3") || !strings.Contains(got, " ra") || strings.Contains(got, " aa") {
		t.Errorf("forwarded through the front server:\n%s", got)
	}
	if got := ask("web.test", "A", "+short"); strings.TrimSpace(got) != "10.0.0.5" {
		t.Errorf("the front server's own file: %q", got)
	}
	up.stop(syscall.SIGTERM)
	if got := ask("web.example.org", "A", "+short"); strings.TrimSpace(got) != "192.0.2.3" {
		t.Errorf("from the cache, the upstream stopped: %q", got)
	}
	if got := ask("mail.example.org", "A"); !strings.Contains(got, "status: SERVFAIL") {
		t.Errorf("uncached, the upstream stopped:\n%s", got)
	}
	front.stop(syscall.SIGTERM)
}

// resolverAt is Go's resolver asking only the server at addr, over UDP
// (and TCP if an answer is truncated).
func resolverAt(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
}

// digAt asks the server at 127.0.0.1:port with Debian's dig and returns
// the short answer.
func digAt(t *testing.T, port string, args ...string) string {
	t.Helper()
	out, err := exec.Command("dig", append([]string{"@127.0.0.1", "-p", port, "+time=5", "+tries=2", "+short"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestDNSUpgrade: SIGUSR2 upgrades torsion dns in place, as it does web:
// the successor takes over both the TCP and the UDP socket (it once
// failed, "bind: address already in use"), and Go's resolver, asking over
// UDP all along, gets every answer; dig over TCP is answered by the
// successor.
func TestDNSUpgrade(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("10.0.0.5 web.test\n"), 0o644)
	pidfile := filepath.Join(dir, "torsion.pid")
	p := start(t, nil, "--pidfile", pidfile, "dns", "-p", "0", "--interface", "127.0.0.1", "--hosts-file", hosts)
	port := p.waitLog(`DNS server starting on (\d+)`)[1]
	r := resolverAt("127.0.0.1:" + port)
	var asked, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			addrs, err := r.LookupHost(ctx, "web.test")
			cancel()
			if err != nil || len(addrs) != 1 || addrs[0] != "10.0.0.5" {
				failed.Add(1)
				t.Errorf("a lookup during the upgrade: %v %v", addrs, err)
			}
			asked.Add(1)
		}
	})
	stopAsking := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopAsking()
	waitUntil(10*time.Second, func() bool { return asked.Load() > 20 }, func() { t.Fatal("no lookups") })
	first := p.cmd.Process.Pid
	p.cmd.Process.Signal(syscall.SIGUSR2)
	successor, _ := strconv.Atoi(p.waitLog(`Upgrade complete: .* pid=(\d+)`)[1])
	t.Cleanup(func() { syscall.Kill(successor, syscall.SIGKILL) })
	waitUntil(30*time.Second, func() bool { return gone(first) }, func() { t.Fatalf("the first process did not exit:\n%s", p.logText()) })
	after := asked.Load()
	waitUntil(20*time.Second, func() bool { return asked.Load() > after+20 }, func() { t.Fatal("no lookups after the upgrade") })
	if got := digAt(t, port, "web.test", "+tcp"); got != "10.0.0.5" {
		t.Errorf("over TCP after the upgrade: %q", got)
	}
	if b, _ := os.ReadFile(pidfile); strings.TrimSpace(string(b)) != strconv.Itoa(successor) {
		t.Errorf("the pid file says %q, want the successor's %d", b, successor)
	}
	stopAsking()
	if failed.Load() > 0 {
		t.Errorf("%d of %d lookups failed", failed.Load(), asked.Load())
	}
	syscall.Kill(successor, syscall.SIGTERM)
	waitUntil(30*time.Second, func() bool { return gone(successor) }, func() { t.Fatalf("the successor did not stop:\n%s", p.logText()) })
}

// TestDNSSocketActivation: as systemd does for a socket unit with a
// ListenStream= and a ListenDatagram=, the sockets are bound before
// torsion starts and passed to it by name; torsion dns answers on both.
func TestDNSSocketActivation(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	pc, err := net.ListenPacket("udp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tcpFile, _ := ln.(*net.TCPListener).File()
	udpFile, _ := pc.(*net.UDPConn).File()
	defer tcpFile.Close()
	defer udpFile.Close()
	// $LISTEN_PID must be torsion's own pid, known only once it runs: a
	// shell sets it to its own and execs torsion, as systemd sets it
	// between fork and exec.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=dns-tcp:dns-udp exec "$0" "$@"`,
		binary, "dns", "--tcp", "systemd:domain=INET:name=dns-tcp", "--udp", "systemd:domain=INET:name=dns-udp",
		"--hosts-file", "../../examples/dns/hosts")
	cmd.ExtraFiles = []*os.File{tcpFile, udpFile}
	p := startCmd(t, cmd)
	p.waitLog(`DNS server starting on ` + port)
	ln.Close() // torsion holds its own copies now
	pc.Close()
	for _, proto := range []string{"+notcp", "+tcp"} {
		if got := digAt(t, port, "localhost", proto); got != "127.0.0.1" {
			t.Errorf("dig %s: %q\n%s", proto, got, p.logText())
		}
	}
	p.stopOK()
}

// TestDNSOperations: --metrics and --health, offered to every plugin,
// serve for dns: the health check is ready once the server answers, and
// the metrics count its answers by protocol and rcode (and carry no
// HTTP metrics, which dns has none of).
func TestDNSOperations(t *testing.T) {
	t.Parallel()
	local := "tcp:0:interface=127.0.0.1"
	p := start(t, nil, "dns", "-p", "0", "--interface", "127.0.0.1", "--hosts-file", "../../examples/dns/hosts",
		"--metrics", local, "--health", local)
	port := p.waitLog(`DNS server starting on (\d+)`)[1]
	mport, hport := p.waitLog(`Metrics starting on (\d+)`)[1], p.waitLog(`Health starting on (\d+)`)[1]
	waitUntil(10*time.Second, func() bool { return curl(t, "-s", "http://127.0.0.1:"+hport+"/") == "ready\n" },
		func() { t.Fatalf("the health check is not ready:\n%s", p.logText()) })
	digAt(t, port, "localhost")
	digAt(t, port, "localhost", "+tcp")
	digAt(t, port, "example.com") // refused
	families := scrapeMetrics(t, mport)
	got := counters(families, "torsion_dns_queries_total")
	if want := map[string]float64{"udp NOERROR": 1, "tcp NOERROR": 1, "udp REFUSED": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("torsion_dns_queries_total %v, want %v", got, want)
	}
	if f := families["torsion_dns_query_duration_seconds"]; f == nil || f.GetMetric()[0].GetHistogram().GetSampleCount() != 3 {
		t.Errorf("torsion_dns_query_duration_seconds: %v", f)
	}
	if families["torsion_http_requests_total"] != nil || families["process_resident_memory_bytes"] == nil {
		t.Errorf("want the process's metrics and no HTTP ones: %v", slices.Collect(maps.Keys(families)))
	}
	p.stopOK()
}
