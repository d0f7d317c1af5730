// Package echoserver is the "echo" plugin: the echo protocol of Twisted's
// first examples, served on an endpoint.
package echoserver

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/echo"
	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/logging"
	"github.com/torsion-server/torsion/plugin"
	"github.com/torsion-server/torsion/protocol"
	"github.com/torsion-server/torsion/service"
)

func init() {
	plugin.Register(plugin.Plugin{
		Name:        "echo",
		Description: "An echo server (RFC 862): sends back every byte it receives.",
		Usage: `Example:
  torsion echo --port tcp:8007
  python3 -c "import socket; s = socket.create_connection(('127.0.0.1', 8007)); s.sendall(b'hello\n'); print(s.recv(100))"`,
		Flags: flags,
	})
}

func flags(fs *pflag.FlagSet) plugin.Maker {
	var ports []string
	fs.StringArrayVar(&ports, "port", nil, "endpoint `DESC` to listen on (repeatable; default tcp:8007)")
	return func(env plugin.Env) (service.Service, error) {
		if len(ports) == 0 {
			ports = []string{"tcp:8007"}
		}
		m := service.NewMulti()
		for _, p := range ports {
			ep, err := endpoint.Parse(p)
			if err != nil {
				return nil, fmt.Errorf("--port: %w", err)
			}
			m.Add(&service.Listener{
				Endpoint: ep,
				Server:   &protocol.Server{Factory: echo.Factory},
				Name:     "Echo",
				Log:      env.Log.With(logging.SystemKey, "echo"),
			})
		}
		return m, nil
	}
}
