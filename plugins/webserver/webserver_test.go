package webserver

import (
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/torsion-server/torsion/httpserver"
	"github.com/torsion-server/torsion/wsgi"
)

// checked returns the options the command line args give, after check.
func checkedOptions(t *testing.T, args ...string) *options {
	t.Helper()
	o := newOptions(pflag.NewFlagSet("web", pflag.ContinueOnError))
	if err := o.fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if _, err := o.check(); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return o
}

// TestDefaultsOnce: the options' defaults are the libraries' own
// (wsgi.DefaultConfig, httpserver.DefaultOptions), and the command line's
// 0 ("no limit", "never", "none") reaches wsgi.Config as its negative
// "off", not as its 0, which would take the default.
func TestDefaultsOnce(t *testing.T) {
	o, wd, hd := checkedOptions(t), wsgi.DefaultConfig(), httpserver.DefaultOptions()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"threads", o.wsgi.Threads, wd.Threads},
		{"body-buffer", o.wsgi.BodyBuffer, wd.BodyBuffer},
		{"body-spool", o.wsgi.BodySpool, wd.BodySpool},
		{"max-body", o.wsgi.MaxBody, wd.MaxBody},
		{"max-queue", o.wsgi.MaxQueue, wd.MaxQueue},
		{"client-timeout", o.wsgi.ClientTimeout, wd.ClientTimeout},
		{"ws-idle-timeout", o.wsgi.WebSocketIdle, wd.WebSocketIdle},
		{"max-websockets", o.wsgi.MaxWebSockets, wd.MaxWebSockets},
		{"asgi-loop", o.wsgi.Loop, wd.Loop},
		{"startup-timeout", o.wsgi.StartTimeout, wd.StartTimeout},
		{"scale-up-wait", o.wsgi.ScaleUpWait, wd.ScaleUpWait},
		{"scale-up-interval", o.wsgi.ScaleUpEvery, wd.ScaleUpEvery},
		{"scale-down-idle", o.wsgi.ScaleDownIdle, wd.ScaleDownIdle},
		{"header-timeout", o.headerTimeout, hd.ReadHeaderTimeout},
		{"idle-timeout", o.idleTimeout, hd.IdleTimeout},
		{"max-header-bytes", o.maxHeaderBytes, hd.MaxHeaderBytes},
		{"max-request-line", o.maxRequestLine, hd.MaxRequestLine},
		{"max-headers", o.maxHeaders, hd.MaxHeaders},
		{"max-streams", o.maxStreams, hd.MaxConcurrentStreams},
		{"max-client-conns", o.clientConns, hd.MaxClientConns},
		{"max-client-streams", o.clientStreams, hd.MaxClientStreams},
	} {
		if c.got != c.want {
			t.Errorf("--%s defaults to %v, the library's default is %v", c.name, c.got, c.want)
		}
	}
	off := checkedOptions(t, "--max-body", "0", "--ws-idle-timeout", "0", "--body-spool", "0", "--max-queue", "0")
	if off.wsgi.MaxBody != -1 || off.wsgi.WebSocketIdle != -time.Duration(1) || off.wsgi.BodySpool != -1 || off.wsgi.MaxQueue != -1 {
		t.Errorf("the command line's 0 reached wsgi.Config as max-body %d, ws-idle-timeout %v, body-spool %d, max-queue %d; want -1 (off)",
			off.wsgi.MaxBody, off.wsgi.WebSocketIdle, off.wsgi.BodySpool, off.wsgi.MaxQueue)
	}
}
