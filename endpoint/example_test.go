package endpoint_test

import (
	"context"
	"fmt"

	"github.com/torsion-server/torsion/endpoint"
)

func ExampleParse() {
	ep, err := endpoint.Parse(`tcp6:port=8080:interface=\:\:1`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%#v\n", ep)
	fmt.Println(ep)

	_, err = endpoint.Parse("tcp:80:interfac=127.0.0.1")
	fmt.Println(err)
	// Output:
	// endpoint.TCP{Port:8080, Interface:"::1", Backlog:0, ReusePort:false, IPv6:true}
	// tcp6:8080:interface=\:\:1
	// endpoint "tcp:80:interfac=127.0.0.1": unknown parameter "interfac" (known: port, interface, backlog, reuseport)
}

// A package adds an endpoint kind by registering a parser for its prefix.
// Wrappers such as "haproxy:tcp:8000" parse Args.Rest with Parse.
func ExampleRegister() {
	endpoint.Register("loopback", func(a endpoint.Args) (endpoint.Server, error) {
		if len(a.Positional) != 1 || len(a.Named) != 0 {
			return nil, fmt.Errorf("want loopback:PORT")
		}
		return endpoint.Parse("tcp:" + a.Positional[0] + ":interface=127.0.0.1")
	})
	ep, _ := endpoint.Parse("loopback:0")
	ln, err := ep.Listen(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	fmt.Println(ep)
	// Output: tcp:0:interface=127.0.0.1
}
