package service_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/torsion-server/torsion/endpoint"
	"github.com/torsion-server/torsion/service"
)

// A web site and a timer in one tree, as in the seed's "scheduled" plugin:
// children start in order and stop in reverse.
func ExampleMulti() {
	site := &service.Listener{
		Endpoint: endpoint.TCP{Interface: "127.0.0.1"},
		Server: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello")
		})},
	}
	ticks := make(chan struct{}, 10)
	timer := &service.Timer{Interval: time.Hour, Func: func(context.Context) { ticks <- struct{}{} }}
	app := service.NewMulti(site, timer)

	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	<-ticks // TimerService calls at once when started
	resp, err := http.Get("http://" + site.Addr().String() + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))
	fmt.Println(app.Stop(ctx))
	// Output:
	// hello
	// <nil>
}
