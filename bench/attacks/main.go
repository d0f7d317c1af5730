// Command attacks runs the heavy attacks of the hostile-clients review
// against torsion with its default settings, one at a time, each on a
// fresh server, and prints what each cost the server (the Go process's
// peak resident memory and open descriptors, and the disk its spool
// files took) and how a normal client fared meanwhile (its requests'
// median and slowest answers, and failures). bench/hostile builds torsion
// and runs it.
//
//	attacks -torsion PATH [-d DURATION] [-only NAME,...]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/ssh"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/torsion-server/torsion/amp"
)

var (
	torsion = flag.String("torsion", "torsion", "the torsion binary")
	python  = flag.String("python", "/usr/bin/python3", "the Python of the workers")
	dur     = flag.Duration("d", 20*time.Second, "how long each attack lasts")
	only    = flag.String("only", "", "comma-separated attacks to run (default: all)")
	repo    = flag.String("repo", ".", "the torsion checkout, for its examples")
)

// scenario is one attack: the server it needs and the attack itself,
// which runs until ctx ends; normal is what a normal client asks.
type scenario struct {
	name, what string
	args       func(dir string, port, port2 int) []string
	attack     func(ctx context.Context, port, port2 int, dir string) string // returns a note
	normal     func(port, port2 int, dir string) error
}

func main() {
	flag.Parse()
	abs, err := filepath.Abs(*repo)
	if err != nil {
		fail(err)
	}
	*repo = abs
	fmt.Printf("hostile clients against torsion's defaults, %v each (%d CPUs)\n", *dur, runtimeCPUs())
	fmt.Printf("%-12s %-58s %9s %7s %9s %21s %s\n", "attack", "what", "peak RSS", "fds", "spool", "normal p50/max/fail", "note")
	for _, s := range scenarios {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), s.name) {
			continue
		}
		run(s)
	}
}

func runtimeCPUs() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return max(1, bytes.Count(b, []byte("processor\t:")))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "attacks:", err)
	os.Exit(1)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func run(s scenario) {
	dir, err := os.MkdirTemp("", "hostile-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	port, port2 := freePort(), freePort()
	cmd := exec.Command(*torsion, append([]string{"--logfile", filepath.Join(dir, "torsion.log")}, s.args(dir, port, port2)...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for s.normal(port, port2, dir) != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "torsion.log"))
			fail(fmt.Errorf("%s: the server did not start:\n%s", s.name, log))
		}
		time.Sleep(100 * time.Millisecond)
	}
	disk0 := diskUsed(dir)
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var peakRSS, peakFDs, peakDisk int64
	var lat []time.Duration
	failures := 0
	var firstErr error
	var wg sync.WaitGroup
	wg.Go(func() { // samples and the normal client, every 100 ms
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			peakRSS = max(peakRSS, rss(cmd.Process.Pid))
			peakFDs = max(peakFDs, fds(cmd.Process.Pid))
			peakDisk = max(peakDisk, diskUsed(dir)-disk0)
			began := time.Now()
			if err := s.normal(port, port2, dir); err != nil {
				failures++
				if firstErr == nil {
					firstErr = err
				}
			} else {
				lat = append(lat, time.Since(began))
			}
		}
	})
	note := s.attack(ctx, port, port2, dir)
	<-ctx.Done()
	wg.Wait()
	slices.Sort(lat)
	p50, worst := time.Duration(0), time.Duration(0)
	if len(lat) > 0 {
		p50, worst = lat[len(lat)/2], lat[len(lat)-1]
	}
	if firstErr != nil {
		note += fmt.Sprintf("; the normal client's first failure: %v", firstErr)
	}
	fmt.Printf("%-12s %-58s %6d MiB %7d %5d MiB %8s/%s/%d %s\n", s.name, s.what, peakRSS>>20, peakFDs, max(peakDisk, 0)>>20,
		p50.Round(time.Millisecond), worst.Round(time.Millisecond), failures, note)
}

func rss(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func fds(pid int) int64 {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return int64(len(ents))
}

func diskUsed(dir string) int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return 0
	}
	return int64(st.Blocks-st.Bfree) * int64(st.Bsize)
}

// normalDialer is the normal client's: from 127.0.0.2, another address
// than the attacker's, as it would be.
var normalDialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}

func get(url string) error {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: normalDialer.DialContext}}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func getRoot(port, _ int, _ string) error { return get(fmt.Sprintf("http://127.0.0.1:%d/", port)) }

var scenarios = []scenario{
	{
		name: "h2-stall",
		what: "85 HTTP/2 conns x 250 streams, zero window, 10 MiB file",
		args: func(dir string, port, _ int) []string {
			os.WriteFile(filepath.Join(dir, "big.bin"), bytes.Repeat([]byte("x"), 10<<20), 0o644)
			os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello\n"), 0o644)
			// Loopback is exempt from the per-client limits by default
			// (a proxy in front); the attacker here is not.
			return []string{"web", "--port", fmt.Sprintf("tcp:%d:interface=127.0.0.1", port), "--h2c", "--path", dir, "--client-limit-exempt", ""}
		},
		normal: getRoot,
		attack: func(ctx context.Context, port, _ int, _ string) string {
			var refused, reset, opened atomic.Int64
			var wg sync.WaitGroup
			for range 85 {
				wg.Go(func() {
					c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
					if err != nil {
						return
					}
					defer c.Close()
					io.WriteString(c, http2.ClientPreface)
					fr := http2.NewFramer(c, c)
					fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
					var hb bytes.Buffer
					enc := hpack.NewEncoder(&hb)
					for i := range 250 {
						hb.Reset()
						for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/big.bin"}} {
							enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
						}
						fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
					}
					opened.Add(250)
					go func() { <-ctx.Done(); c.Close() }()
					for {
						f, err := fr.ReadFrame()
						if err != nil {
							return
						}
						switch f := f.(type) {
						case *http2.SettingsFrame:
							if !f.IsAck() {
								fr.WriteSettingsAck()
							}
						case *http2.RSTStreamFrame:
							if f.ErrCode == http2.ErrCodeRefusedStream {
								refused.Add(1)
							} else {
								reset.Add(1)
							}
						case *http2.HeadersFrame:
							if bytes.Contains(f.HeaderBlockFragment(), []byte{0x88}) { // :status 200 (static table)
								continue
							}
							refused.Add(1) // 429
						}
					}
				})
			}
			wg.Wait()
			return fmt.Sprintf("%d streams asked, %d refused (429 or REFUSED_STREAM), %d reset by the server", opened.Load(), refused.Load(), reset.Load())
		},
	},
	{
		name: "uploads",
		what: "400 uploads: 1.1 MB sent of 60 MB announced, then silence",
		args: func(dir string, port, _ int) []string {
			return []string{"web", "--port", fmt.Sprintf("tcp:%d:interface=127.0.0.1", port), "--wsgi", "wsgi_hello",
				"--chdir", filepath.Join(*repo, "examples/wsgi"), "--python", *python, "--workers", "2", "--spool-dir", dir}
		},
		normal: getRoot,
		attack: func(ctx context.Context, port, _ int, _ string) string {
			var refused atomic.Int64
			var wg sync.WaitGroup
			part := bytes.Repeat([]byte("u"), 1100000)
			for range 400 {
				wg.Go(func() {
					c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
					if err != nil {
						return
					}
					defer c.Close()
					fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n")
					c.Write(part)
					go func() { <-ctx.Done(); c.Close() }()
					if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil && resp.StatusCode == 503 {
						refused.Add(1)
					}
				})
			}
			wg.Wait()
			return fmt.Sprintf("%d of 400 answered 503 (the budget spent)", refused.Load())
		},
	},
	{
		name: "websockets",
		what: "200 idle WebSockets on an ASGI app of 2 workers x 64",
		args: func(dir string, port, _ int) []string {
			return []string{"web", "--port", fmt.Sprintf("tcp:%d:interface=127.0.0.1", port), "--asgi", "ws_echo:app",
				"--chdir", filepath.Join(*repo, "examples/asgi"), "--python", *python, "--workers", "2"}
		},
		normal: getRoot,
		attack: func(ctx context.Context, port, _ int, _ string) string {
			var open atomic.Int64
			var wg sync.WaitGroup
			for range 200 {
				wg.Go(func() {
					c, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/", port), nil)
					if err != nil {
						return
					}
					open.Add(1)
					c.Read(ctx) // answers pings, sends nothing
					c.CloseNow()
				})
			}
			wg.Wait()
			return fmt.Sprintf("%d WebSockets opened", open.Load())
		},
	},
	{
		name: "ssh-preauth",
		what: "5,000 SSH connections that never log in",
		args: func(dir string, port, _ int) []string {
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			sshPub, _ := ssh.NewPublicKey(pub)
			os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(sshPub), 0o600)
			signer, _ := ssh.NewSignerFromKey(priv)
			clientKey = signer
			return []string{"conch", "-p", fmt.Sprintf("tcp:%d:interface=127.0.0.1", port), "--authorized-keys", filepath.Join(dir, "authorized_keys"),
				"--host-key", filepath.Join(dir, "host_key")}
		},
		normal: func(port, _ int, _ string) error {
			nc, err := normalDialer.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return err
			}
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			sc, chans, reqs, err := ssh.NewClientConn(nc, "", &ssh.ClientConfig{User: "u", Auth: []ssh.AuthMethod{ssh.PublicKeys(clientKey)},
				HostKeyCallback: ssh.InsecureIgnoreHostKey()})
			if err != nil {
				nc.Close()
				return err
			}
			return ssh.NewClient(sc, chans, reqs).Close()
		},
		attack: func(ctx context.Context, port, _ int, _ string) string {
			var dropped, held atomic.Int64
			var wg sync.WaitGroup
			for range 5000 {
				wg.Go(func() {
					c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
					if err != nil {
						dropped.Add(1)
						return
					}
					defer c.Close()
					go func() { <-ctx.Done(); c.Close() }()
					c.SetReadDeadline(time.Now().Add(*dur))
					if _, err := c.Read(make([]byte, 64)); err != nil {
						dropped.Add(1) // closed before the banner
						return
					}
					held.Add(1)
					io.Copy(io.Discard, c)
				})
			}
			wg.Wait()
			return fmt.Sprintf("%d got the banner and were held, %d dropped (MaxStartups)", held.Load(), dropped.Load())
		},
	},
	{
		name: "amp",
		what: "300,000 AMP commands asked, no answer read",
		args: func(dir string, port, port2 int) []string {
			return []string{"web", "--port", fmt.Sprintf("tcp:%d:interface=127.0.0.1", port), "--amp", fmt.Sprintf("tcp:%d:interface=127.0.0.1", port2),
				"--wsgi", "configure.application", "--chdir", filepath.Join(*repo, "examples/configure"), "--python", *python, "--workers", "1"}
		},
		normal: func(_, port2 int, _ string) error {
			c, err := normalDialer.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port2))
			if err != nil {
				return err
			}
			conn := amp.NewConn(c, nil, nil)
			go conn.Serve()
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = conn.Call(ctx, "GetCapitalize", amp.Box{})
			return err
		},
		attack: func(ctx context.Context, _, port2 int, _ string) string {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port2))
			if err != nil {
				return err.Error()
			}
			defer c.Close()
			go func() { <-ctx.Done(); c.Close() }()
			var sent int
			var buf []byte
			for i := range 300000 {
				buf, _ = amp.AppendBox(buf[:0], amp.Box{amp.KeyCommand: []byte("GetCapitalize"), amp.KeyAsk: []byte(strconv.Itoa(i))})
				c.SetWriteDeadline(time.Now().Add(*dur))
				if _, err := c.Write(buf); err != nil {
					break
				}
				sent++
			}
			return fmt.Sprintf("%d of 300,000 boxes taken before the server stopped reading", sent)
		},
	},
}

// clientKey logs the normal SSH client in.
var clientKey ssh.Signer
