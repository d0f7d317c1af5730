package dnsserver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/miekg/dns"

	"github.com/torsion-server/torsion/dnsserver"
)

// A DNS server for a hosts file, asked over UDP.
func ExampleServer() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("10.0.0.5 web.test\n"), 0o644)

	s := &dnsserver.Server{Addr: "127.0.0.1:0", HostsFiles: []string{hosts}}
	if err := s.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer s.Stop(context.Background())

	q := new(dns.Msg)
	q.SetQuestion("web.test.", dns.TypeA)
	r, err := dns.Exchange(q, fmt.Sprintf("127.0.0.1:%d", s.Port()))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Answer[0].(*dns.A).A)
	// Output: 10.0.0.5
}
