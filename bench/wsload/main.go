// Command wsload is bench/asgi's WebSocket client: it opens -c
// connections to -url and, on each, sends a small text message and waits
// for its echo, again and again for -d; then it prints the echoes per
// second and the 99th percentile of their round trips.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8000/", "the echo server")
	conns := flag.Int("c", 16, "connections")
	dur := flag.Duration("d", 5*time.Second, "how long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *dur+10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var rtts []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	errs := 0
	for range *conns {
		wg.Go(func() {
			c, _, err := websocket.Dial(ctx, *url, nil)
			if err != nil {
				mu.Lock()
				errs++
				mu.Unlock()
				return
			}
			defer c.CloseNow()
			var mine []time.Duration
			for time.Since(start) < *dur {
				t := time.Now()
				if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
					break
				}
				if _, _, err := c.Read(ctx); err != nil {
					break
				}
				mine = append(mine, time.Since(t))
			}
			c.Close(websocket.StatusNormalClosure, "")
			mu.Lock()
			rtts = append(rtts, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(rtts) == 0 {
		fmt.Fprintf(os.Stderr, "wsload: no echo (%d connections failed)\n", errs)
		os.Exit(1)
	}
	slices.Sort(rtts)
	p99 := rtts[len(rtts)*99/100]
	fmt.Printf("echoes/s %.0f p99_ms %.2f failed %d\n", float64(len(rtts))/elapsed.Seconds(), float64(p99.Microseconds())/1000, errs)
}
