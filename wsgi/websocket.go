package wsgi

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/torsion-server/torsion/web"
	"github.com/torsion-server/torsion/workers"
)

// WebSocket messages between torsion and an ASGI worker (PROTOCOL.md):
// after the worker accepts with S "101", each D frame is one message, its
// first byte wsText or wsBinary; torsion passes the client's next message
// when the worker asks with r, as a B frame of the same form, or wsClose
// with the close code (2 bytes, big-endian) and reason when the client
// closed; E ends the connection, its payload the close code and reason.
const (
	wsText   = 1
	wsBinary = 2
	wsClose  = 8
	// wsMaxMessage is the largest message either side may send: a frame's
	// payload limit, less the type byte.
	wsMaxMessage = workers.MaxPayload - 1
)

// isWebSocket reports whether r asks to become a WebSocket (RFC 6455).
func isWebSocket(r *http.Request) bool {
	return r.Method == http.MethodGet && web.HeaderHasToken(r.Header, "Connection", "upgrade") && web.HeaderHasToken(r.Header, "Upgrade", "websocket")
}

// wsAccept completes the handshake the application accepted (S with 101
// and its headers; Sec-WebSocket-Protocol names the subprotocol it chose).
func (rs *response) wsAccept() {
	h := rs.w.Header()
	var opts websocket.AcceptOptions
	if p := h.Get("Sec-WebSocket-Protocol"); p != "" {
		opts.Subprotocols = []string{p}
		h.Del("Sec-WebSocket-Protocol") // Accept writes the one it negotiated
	}
	rs.wroteHeader = true
	c, err := websocket.Accept(rs.w, rs.r, &opts)
	if err != nil {
		// Accept has answered the client (403 for another origin, 400 or
		// 426); the application hears that the client left.
		rs.answered = true
		rs.clientGone()
		return
	}
	c.SetReadLimit(wsMaxMessage)
	rs.ws = c
	rs.p.addSocket(c)
	// Open for as long as both ends like: --timeout is for requests.
	rs.c.Untimed()
	rs.wsDone = make(chan struct{})
	rs.wsTouch()
	go rs.wsWatch(rs.p.cfg.WebSocketIdle, rs.p.cfg.ClientTimeout)
}

// wsTouch notes that the WebSocket is alive: a message passed, or a pong.
func (rs *response) wsTouch() { rs.wsLast.Store(time.Now().UnixNano()) }

// wsWatch bounds a WebSocket in time, on one goroutine and without a
// timer per message:
//   - a message the client has not taken within stall (--client-timeout)
//     ends the connection, as a stalled response does;
//   - with idle > 0, once no message has passed for half of idle, it
//     pings the client (for the proxies and NATs on the way; a pong does
//     not count); once none has for idle, it closes the connection with
//     1001, so that a client gone without a word, or one that only holds
//     its connection open and answers pings, does not stay for ever.
//
// It looks four times per the shorter bound, so each acts up to a quarter
// of it late.
func (rs *response) wsWatch(idle, stall time.Duration) {
	period := stall
	if idle > 0 {
		period = min(period, idle/2)
	}
	t := time.NewTicker(max(period/4, 10*time.Millisecond))
	defer t.Stop()
	var pinged int64 // the last activity a ping followed
	for {
		select {
		case <-rs.wsDone:
			return
		case <-t.C:
		}
		now := time.Now()
		if began := rs.wsWriting.Load(); began != 0 && now.Sub(time.Unix(0, began)) >= stall {
			rs.ws.CloseNow() // the write returns, and the application hears the client left
			return
		}
		if idle <= 0 {
			continue
		}
		last := rs.wsLast.Load()
		quiet := now.Sub(time.Unix(0, last))
		switch {
		case quiet >= idle:
			rs.p.log.Info("closing an idle WebSocket", "uri", rs.r.URL.RequestURI(), "idle", idle)
			rs.ws.Close(websocket.StatusGoingAway, "idle for too long")
			return
		case quiet >= idle/2 && pinged != last:
			pinged = last
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), idle-quiet)
				defer cancel()
				rs.ws.Ping(ctx)
			}()
		}
	}
}

// wsMessage reads the client's next message, as websocket.Conn.Read does,
// noting each part as it arrives: a long message sent in fragments is
// activity while it comes, not idleness until it ends.
func (rs *response) wsMessage() (websocket.MessageType, []byte, error) {
	typ, r, err := rs.ws.Reader(context.Background())
	if err != nil {
		return 0, nil, err
	}
	msg := make([]byte, 0, 512)
	for {
		if len(msg) == cap(msg) {
			msg = append(msg, 0)[:len(msg)]
		}
		n, err := r.Read(msg[len(msg):cap(msg)])
		msg = msg[:len(msg)+n]
		if n > 0 {
			rs.wsTouch()
		}
		if err == io.EOF {
			return typ, msg, nil
		}
		if err != nil {
			return 0, nil, err
		}
	}
}

// wsFrame handles a frame from the worker once the WebSocket is open; it
// reports whether the connection has ended.
func (rs *response) wsFrame(f workers.Frame) (end bool) {
	switch f.Kind {
	case workers.KindData:
		if len(f.Payload) > 0 && !rs.gone {
			typ := websocket.MessageText
			if f.Payload[0] == wsBinary {
				typ = websocket.MessageBinary
			}
			rs.wsWriting.Store(time.Now().UnixNano()) // wsWatch bounds it
			err := rs.ws.Write(context.Background(), typ, f.Payload[1:])
			rs.wsWriting.Store(0)
			if err != nil {
				rs.clientGone()
			} else {
				rs.wsTouch()
			}
		}
		// Acknowledged as bodies are, a quarter window at a time: a W
		// for each message would wake the worker for nothing.
		rs.unacked += len(f.Payload)
		if rs.unacked >= ackEvery || rs.gone {
			rs.c.Send(workers.KindWindow, windowPayload(rs.unacked))
			rs.unacked = 0
		}
	case workers.KindRead:
		if !rs.gone && rs.wsReading.CompareAndSwap(false, true) {
			go rs.wsRead()
		}
	case workers.KindError:
		rs.appErr = string(f.Payload)
		rs.logAppErr()
	case workers.KindEnd:
		code, reason := websocket.StatusNormalClosure, ""
		if len(f.Payload) >= 2 {
			code, reason = websocket.StatusCode(binary.BigEndian.Uint16(f.Payload)), string(f.Payload[2:])
		}
		if rs.appErr != "" {
			code, reason = websocket.StatusInternalError, ""
		}
		rs.ws.Close(code, reason)
		rs.ws.CloseNow()
		return true
	}
	return false
}

// wsRead reads the client's next message for the worker. It runs beside
// run, so that the application may send while it waits to receive.
func (rs *response) wsRead() {
	typ, msg, err := rs.wsMessage()
	var b []byte
	switch {
	case err == nil:
		rs.wsTouch()
		t := byte(wsText)
		if typ == websocket.MessageBinary {
			t = wsBinary
		}
		b = append([]byte{t}, msg...)
	default:
		code := websocket.CloseStatus(err)
		if code == -1 {
			code = websocket.StatusAbnormalClosure // 1006: no close frame
		}
		var ce websocket.CloseError
		reason := ""
		if errors.As(err, &ce) {
			reason = ce.Reason
		}
		b = binary.BigEndian.AppendUint16([]byte{wsClose}, uint16(code))
		b = append(b, reason...)
	}
	rs.wsReading.Store(false) // the worker asks again only after this answer
	rs.c.Send(workers.KindBody, b)
}

// openSockets are the WebSockets open to a pool's applications;
// goingAway is set once CloseWebSockets has run.
type openSockets struct {
	mu        sync.Mutex
	m         map[*websocket.Conn]struct{}
	goingAway bool
}

// CloseWebSockets closes the WebSockets open to the pool's applications,
// and any opened later, with 1001 (going away), as the server stops
// (httpserver.Server.RegisterOnShutdown): each application hears its
// websocket.disconnect, and the stop does not wait for clients to leave.
func (p *Pool) CloseWebSockets() {
	s := &p.sockets
	s.mu.Lock()
	s.goingAway = true
	open := slices.Collect(maps.Keys(s.m))
	s.mu.Unlock()
	for _, c := range open {
		go c.Close(websocket.StatusGoingAway, "the server is shutting down")
	}
}

// addSocket notes an open WebSocket until dropSocket; after
// CloseWebSockets, it closes it instead.
func (p *Pool) addSocket(c *websocket.Conn) {
	s := &p.sockets
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.goingAway {
		go c.Close(websocket.StatusGoingAway, "the server is shutting down")
		return
	}
	if s.m == nil {
		s.m = map[*websocket.Conn]struct{}{}
	}
	s.m[c] = struct{}{}
}

// WebSockets returns how many WebSockets are open to the pool's
// applications.
func (p *Pool) WebSockets() int {
	p.sockets.mu.Lock()
	defer p.sockets.mu.Unlock()
	return len(p.sockets.m)
}

func (p *Pool) dropSocket(c *websocket.Conn) {
	p.sockets.mu.Lock()
	delete(p.sockets.m, c)
	p.sockets.mu.Unlock()
}
