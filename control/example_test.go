package control_test

import (
	"context"
	"log/slog"

	"github.com/torsion-server/torsion/control"
	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/protocol"
	"github.com/torsion-server/torsion/service"
	"github.com/torsion-server/torsion/workers"
	"github.com/torsion-server/torsion/wsgi"
)

// The seed's makeService in Go: a WSGI application in a site on port
// 8000, and a control port on 8001 where each line goes to every worker's
// torsion.control handler; the pool starts first and stops last.
func ExampleLines() {
	log := slog.Default()
	pool, err := wsgi.New(wsgi.Config{Config: workers.Config{App: "control:application", Dir: "examples/control", Workers: 3, Log: log}})
	if err != nil {
		panic(err)
	}
	site, _ := endpoint.Parse("tcp:8000")
	ctl, _ := endpoint.Parse("tcp:8001:interface=127.0.0.1")
	s := service.NewMulti(
		pool,
		&service.Listener{Endpoint: site, Server: httpserver.New(pool, httpserver.Options{ErrorLog: log}), Name: "Site", Log: log},
		&service.Listener{Endpoint: ctl, Server: &protocol.Server{Factory: control.Lines(pool, protocol.DefaultMaxLineLength, log)}, Name: "Control", Log: log},
	)
	service.Run(context.Background(), s, service.RunOptions{Log: log})
}
