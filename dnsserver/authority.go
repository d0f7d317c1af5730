// Package dnsserver answers DNS queries from hosts(5) files and RFC 1035
// zone files, over UDP and TCP, as Twisted's names server (twistd dns)
// does: authoritative answers for what the files hold, with NXDOMAIN and
// NODATA carrying the zone's SOA, and REFUSED for names outside them.
package dnsserver

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Authority is what the server knows: the records of its zones, and the
// names of its hosts files. It is read-only once built.
type Authority struct {
	zones map[string]*zone // by origin, fully qualified and lower-case
	hosts map[string][]dns.RR
	// skipped says which lines of the hosts files were skipped, and why.
	skipped []string
}

// Skipped returns the lines of the hosts files that were skipped as
// malformed, each as "FILE:LINE: why", for the log.
func (a *Authority) Skipped() []string { return a.skipped }

// zone is one zone file's records, by owner name.
type zone struct {
	origin string
	soa    *dns.SOA
	names  map[string][]dns.RR
	// above holds every name that has names below it in the zone, so
	// that telling an empty non-terminal (NODATA) from a name that does
	// not exist (NXDOMAIN) costs one lookup, whatever the zone's size.
	above map[string]bool
}

// hostsTTL is the TTL of answers from a hosts file, Twisted's default.
const hostsTTL = 3600

// Load reads hosts files and zone files into an Authority. An error names
// the file and line. A malformed line of a hosts file is skipped (see
// Skipped), as glibc and Twisted skip it, so that one bad line of
// /etc/hosts does not take the server down; zone files stay strict.
func Load(hostsFiles, zoneFiles []string) (*Authority, error) {
	a := &Authority{zones: map[string]*zone{}, hosts: map[string][]dns.RR{}}
	for _, f := range zoneFiles {
		if err := a.loadZone(f); err != nil {
			return nil, err
		}
	}
	for _, f := range hostsFiles {
		if err := a.loadHosts(f); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *Authority) loadZone(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("zone file: %w", err)
	}
	defer f.Close()
	z := &zone{names: map[string][]dns.RR{}}
	zp := dns.NewZoneParser(f, "", path)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		rr.Header().Name = name
		if soa, isSOA := rr.(*dns.SOA); isSOA {
			if z.soa != nil {
				return fmt.Errorf("zone file %s: a second SOA, at %s", path, name)
			}
			z.soa, z.origin = soa, name
		}
		z.names[name] = append(z.names[name], rr)
	}
	if err := zp.Err(); err != nil {
		return fmt.Errorf("zone file: %w", err)
	}
	if z.soa == nil {
		return fmt.Errorf("zone file %s: no SOA record", path)
	}
	z.above = map[string]bool{}
	for name := range z.names {
		if !dns.IsSubDomain(z.origin, name) {
			return fmt.Errorf("zone file %s: %s is outside the zone %s", path, name, z.origin)
		}
		for n := name; n != z.origin; {
			i, _ := dns.NextLabel(n, 0)
			n = n[i:]
			if z.above[n] {
				break // and so are its parents
			}
			z.above[n] = true
		}
	}
	if _, dup := a.zones[z.origin]; dup {
		return fmt.Errorf("zone file %s: zone %s is loaded twice", path, z.origin)
	}
	a.zones[z.origin] = z
	return nil
}

// loadHosts reads a hosts(5) file: an address, then names, per line;
// comments after #. Each name gets an A or AAAA record, and each address a
// PTR record to the line's first name.
func (a *Authority) loadHosts(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("hosts file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		addr, err := netip.ParseAddr(fields[0])
		if err != nil || len(fields) < 2 {
			a.skipped = append(a.skipped, fmt.Sprintf("%s:%d: want an address and names, got %q", path, n, sc.Text()))
			continue
		}
		addr = addr.WithZone("")
		bad := ""
		for _, name := range fields[1:] {
			if _, ok := dns.IsDomainName(dns.Fqdn(name)); !ok {
				bad = name
			}
		}
		if bad != "" {
			a.skipped = append(a.skipped, fmt.Sprintf("%s:%d: %q is not a domain name", path, n, bad))
			continue
		}
		for _, name := range fields[1:] {
			fqdn := dns.Fqdn(strings.ToLower(name))
			hdr := dns.RR_Header{Name: fqdn, Class: dns.ClassINET, Ttl: hostsTTL}
			var rr dns.RR
			if addr.Is4() || addr.Is4In6() {
				hdr.Rrtype = dns.TypeA
				rr = &dns.A{Hdr: hdr, A: addr.Unmap().AsSlice()}
			} else {
				hdr.Rrtype = dns.TypeAAAA
				rr = &dns.AAAA{Hdr: hdr, AAAA: addr.AsSlice()}
			}
			a.hosts[fqdn] = append(a.hosts[fqdn], rr)
		}
		rev, _ := dns.ReverseAddr(addr.Unmap().String())
		if len(a.hosts[rev]) == 0 {
			a.hosts[rev] = []dns.RR{&dns.PTR{
				Hdr: dns.RR_Header{Name: rev, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: hostsTTL},
				Ptr: dns.Fqdn(strings.ToLower(fields[1])),
			}}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("hosts file %s: %w", path, err)
	}
	return nil
}

// zoneOf returns the zone that holds name, the deepest one, or nil.
func (a *Authority) zoneOf(name string) *zone {
	for n := name; ; {
		if z := a.zones[n]; z != nil {
			return z
		}
		i, end := dns.NextLabel(n, 0)
		if end {
			return nil
		}
		n = n[i:]
	}
}

// Answer fills reply (already set up as the reply to q) for one question:
// the answer, or NXDOMAIN or NODATA with the zone's SOA, or REFUSED for a
// name the server does not hold.
func (a *Authority) Answer(q dns.Question, reply *dns.Msg) {
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		reply.Rcode = dns.RcodeRefused // the files hold class IN only (not CH, HS)
		return
	}
	name := strings.ToLower(q.Name)
	if z := a.zoneOf(name); z != nil {
		reply.Authoritative = true
		a.answerZone(z, name, q.Name, q.Qtype, reply, nil)
		return
	}
	rrs, ok := a.hosts[name]
	if !ok {
		reply.Rcode = dns.RcodeRefused
		return
	}
	reply.Authoritative = true
	for _, rr := range rrs {
		if q.Qtype == dns.TypeANY || rr.Header().Rrtype == q.Qtype {
			reply.Answer = append(reply.Answer, withName(rr, q.Name))
		}
	}
}

// answerZone answers from a zone, following CNAMEs within it; name is
// lower-case, owner as the answer writes it (the query's case, RFC 4343),
// and followed holds the names a CNAME chain has passed, so a loop ends.
func (a *Authority) answerZone(z *zone, name, owner string, qtype uint16, reply *dns.Msg, followed []string) {
	rrs, exists := z.names[name]
	if !exists {
		if z.above[name] {
			reply.Ns = append(reply.Ns, soaForNegative(z.soa)) // an empty non-terminal: NODATA
			return
		}
		if len(reply.Answer) == 0 {
			reply.Rcode = dns.RcodeNameError
		}
		reply.Ns = append(reply.Ns, soaForNegative(z.soa))
		return
	}
	found := false
	for _, rr := range rrs {
		if t := rr.Header().Rrtype; qtype == dns.TypeANY || t == qtype {
			reply.Answer = append(reply.Answer, withName(rr, owner))
			found = true
		}
	}
	if found || qtype == dns.TypeCNAME {
		if !found {
			reply.Ns = append(reply.Ns, soaForNegative(z.soa))
		}
		return
	}
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok {
			reply.Answer = append(reply.Answer, withName(c, owner))
			target := strings.ToLower(c.Target)
			followed = append(followed, name)
			if slices.Contains(followed, target) || len(followed) > 8 {
				return // a loop, or a chain too long: the CNAMEs so far
			}
			if tz := a.zoneOf(target); tz != nil {
				a.answerZone(tz, target, c.Target, qtype, reply, followed)
			}
			return
		}
	}
	reply.Ns = append(reply.Ns, soaForNegative(z.soa)) // NODATA
}

// soaForNegative is the SOA of a negative answer, its TTL the minimum of
// its own and its MINIMUM field (RFC 2308).
func soaForNegative(soa *dns.SOA) dns.RR {
	c := dns.Copy(soa).(*dns.SOA)
	c.Hdr.Ttl = min(c.Hdr.Ttl, c.Minttl)
	return c
}

func withName(rr dns.RR, name string) dns.RR {
	c := dns.Copy(rr)
	c.Header().Name = name
	return c
}
