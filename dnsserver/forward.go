package dnsserver

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Forwarder asks upstream resolvers the questions the server's files do
// not answer (twistd dns --recursive), with an optional cache that keeps
// answers for as long as their TTLs allow.
type Forwarder struct {
	// Upstreams are resolvers' host:port, asked in turn until one answers.
	Upstreams []string
	// Cache keeps answers (and negative ones, for their SOA's minimum);
	// at most CacheSize of them (default 10,000), and at most CacheBytes
	// of them in wire form, which is how they are kept (default 8 MiB,
	// Unbound's msg-cache-size and rrset-cache-size together): many large
	// answers cannot take the memory.
	Cache      bool
	CacheSize  int
	CacheBytes int
	// Timeout bounds each upstream's answer (default 2s).
	Timeout time.Duration

	mu      sync.Mutex
	entries map[cacheKey]cached
	bytes   int // of the entries' wire forms
}

type cacheKey struct {
	name          string
	qtype, qclass uint16
}

type cached struct {
	wire    []byte // the answer, packed
	stored  time.Time
	expires time.Time
}

// ResolvConf reads the nameservers of a resolv.conf(5) file as host:port.
func ResolvConf(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("--resolv-conf %s: %w", path, err)
	}
	var ups []string
	for _, s := range cc.Servers {
		ups = append(ups, strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")+":"+cc.Port)
	}
	if len(ups) == 0 {
		return nil, fmt.Errorf("--resolv-conf %s: no nameserver", path)
	}
	for i, u := range ups {
		if strings.Count(u, ":") > 1 { // an IPv6 address
			ups[i] = "[" + strings.TrimSuffix(u, ":"+cc.Port) + "]:" + cc.Port
		}
	}
	return ups, nil
}

// Forward answers q from the cache or the upstreams; SERVFAIL when none
// answers.
func (f *Forwarder) Forward(q *dns.Msg) *dns.Msg {
	question := q.Question[0]
	key := cacheKey{strings.ToLower(question.Name), question.Qtype, question.Qclass}
	if f.Cache {
		if m := f.lookup(key); m != nil {
			m.Id = q.Id
			return m
		}
	}
	ask := new(dns.Msg)
	ask.SetQuestion(question.Name, question.Qtype)
	ask.Question[0].Qclass = question.Qclass
	ask.RecursionDesired = true
	ask.SetEdns0(maxUDP, false)
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	for _, up := range f.Upstreams {
		r, _, err := (&dns.Client{Timeout: timeout}).Exchange(ask, up)
		if err == nil && r.Truncated {
			r, _, err = (&dns.Client{Net: "tcp", Timeout: timeout}).Exchange(ask, up)
		}
		if err != nil || r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			continue
		}
		r.Id = q.Id
		r.Authoritative = false
		r.RecursionAvailable = true
		if f.Cache {
			f.store(key, r)
		}
		return r
	}
	fail := new(dns.Msg)
	fail.SetRcode(q, dns.RcodeServerFailure)
	fail.RecursionAvailable = true
	return fail
}

// ttl is how long m may be kept: its records' least TTL, or for a
// negative answer its SOA's (RFC 2308); 0 if it says nothing.
func ttl(m *dns.Msg) uint32 {
	least, any := uint32(0), false
	for _, rr := range append(append([]dns.RR{}, m.Answer...), m.Ns...) {
		t := rr.Header().Ttl
		if soa, ok := rr.(*dns.SOA); ok && len(m.Answer) == 0 {
			t = min(t, soa.Minttl)
		}
		if !any || t < least {
			least, any = t, true
		}
	}
	return least
}

func (f *Forwarder) store(key cacheKey, m *dns.Msg) {
	t := ttl(m)
	if t == 0 || m.Truncated {
		return
	}
	wire, err := m.Pack()
	if err != nil {
		return
	}
	limit, maxBytes := f.CacheSize, f.CacheBytes
	if limit <= 0 {
		limit = 10000
	}
	if maxBytes <= 0 {
		maxBytes = 8 << 20
	}
	if len(wire) > maxBytes/16 {
		return // one answer may take a sixteenth of the cache at most
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.entries == nil {
		f.entries = map[cacheKey]cached{}
	}
	if old, ok := f.entries[key]; ok {
		f.bytes -= len(old.wire)
		delete(f.entries, key)
	}
	now := time.Now()
	for k, e := range f.entries { // full: drop entries at random (map order)
		if len(f.entries) < limit && f.bytes+len(wire) <= maxBytes {
			break
		}
		f.bytes -= len(e.wire)
		delete(f.entries, k)
	}
	f.entries[key] = cached{wire: wire, stored: now, expires: now.Add(time.Duration(t) * time.Second)}
	f.bytes += len(wire)
}

// lookup returns a copy of a cached answer with its TTLs counted down, or
// nil.
func (f *Forwarder) lookup(key cacheKey) *dns.Msg {
	f.mu.Lock()
	e, ok := f.entries[key]
	f.mu.Unlock()
	now := time.Now()
	if !ok || !now.Before(e.expires) {
		return nil
	}
	m := new(dns.Msg)
	if m.Unpack(e.wire) != nil {
		return nil
	}
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl -= min(age, h.Ttl)
			}
		}
	}
	return m
}
