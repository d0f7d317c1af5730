package echo_test

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/torsion-server/torsion/echo"
	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/protocol"
	"github.com/torsion-server/torsion/service"
)

// An echo server on an endpoint, and the echo client talking to it.
func Example() {
	server := &service.Listener{
		Endpoint: endpoint.TCP{Interface: "127.0.0.1"},
		Server:   &protocol.Server{Factory: echo.Factory},
	}
	ctx := context.Background()
	if err := server.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer server.Stop(ctx)

	client, _ := endpoint.ParseClient("tcp:host=127.0.0.1:port=" + strconv.Itoa(server.Addr().(*net.TCPAddr).Port))
	lines, err := echo.Send(ctx, client, "hello, world", "goodbye")
	fmt.Println(lines, err)
	// Output: [hello, world goodbye] <nil>
}
