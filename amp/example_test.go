package amp_test

import (
	"context"
	"fmt"
	"net"

	"github.com/torsion-server/torsion/amp"
)

// The "sum" command of Twisted's AMP documentation, answered by a Go
// Locator and called by a Go client over one connection.
func ExampleCommand_Call() {
	sum := amp.Command{
		Name:      "Sum",
		Arguments: []amp.Param{{Name: "a", Type: amp.Integer}, {Name: "b", Type: amp.Integer}},
		Response:  []amp.Param{{Name: "total", Type: amp.Integer}},
	}
	loc := &amp.Locator{}
	loc.Handle(sum, func(ctx context.Context, args map[string]any) (map[string]any, error) {
		return map[string]any{"total": args["a"].(int64) + args["b"].(int64)}, nil
	})
	server, client := net.Pipe()
	go amp.NewConn(server, loc, nil).Serve()
	c := amp.NewConn(client, nil, nil)
	go c.Serve()
	defer c.Close()

	r, err := sum.Call(context.Background(), c, map[string]any{"a": 13, "b": 81})
	fmt.Println(r["total"], err)
	// Output: 94 <nil>
}
