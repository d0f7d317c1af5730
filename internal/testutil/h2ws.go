//lint:file-ignore SA1019 x/net's HTTP/2 transport, deprecated for net/http's, is the one that sends a CONNECT with :protocol (RFC 8441)

package testutil

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/coder/websocket"
	"golang.org/x/net/http2"

	_ "github.com/torsion-server/torsion/internal/xconnect" // the client's extended CONNECT
)

// H2WebSocket is a WebSocket client's end of an HTTP/2 stream opened with
// extended CONNECT (RFC 8441), as a browser opens one on an HTTP/2
// connection, with Go's HTTP/2 client (golang.org/x/net/http2). It writes and reads
// RFC 6455 frames, one at a time, unfragmented.
type H2WebSocket struct {
	// Response is the server's answer to the CONNECT.
	Response *http.Response
	w        *io.PipeWriter
}

// DialH2WebSocket opens a WebSocket to rawURL (https://, or http:// for
// cleartext HTTP/2 with prior knowledge) with the given request header
// fields. A server that answers other than 200 has refused it: the
// answer is returned with an error, its body unread.
func DialH2WebSocket(ctx context.Context, rawURL string, tlsConfig *tls.Config, header http.Header) (*H2WebSocket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	tr := &http2.Transport{TLSClientConfig: tlsConfig}
	if u.Scheme == "http" {
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, rawURL, pr)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set(":protocol", "websocket")
	if req.Header.Get("Sec-WebSocket-Version") == "" {
		req.Header.Set("Sec-WebSocket-Version", "13")
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		pw.Close()
		return nil, err
	}
	ws := &H2WebSocket{Response: resp, w: pw}
	if resp.StatusCode != http.StatusOK {
		pw.Close()
		return ws, fmt.Errorf("WebSocket refused: %s", resp.Status)
	}
	return ws, nil
}

// Opcodes of RFC 6455 frames.
const (
	OpText   = 1
	OpBinary = 2
	OpClose  = 8
)

// Send writes one masked frame, as a client must.
func (ws *H2WebSocket) Send(op byte, payload []byte) error {
	hdr := []byte{0x80 | op, 0x80}
	switch n := len(payload); {
	case n < 126:
		hdr[1] |= byte(n)
	case n < 1<<16:
		hdr[1] |= 126
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr[1] |= 127
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	data := make([]byte, len(payload))
	for i, b := range payload {
		data[i] = b ^ mask[i%4]
	}
	_, err := ws.w.Write(append(hdr, data...))
	return err
}

// Recv reads one frame; a server's frames are unmasked and, here,
// unfragmented.
func (ws *H2WebSocket) Recv() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(ws.Response.Body, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		return 0, nil, errors.New("a fragmented or masked frame from the server")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(ws.Response.Body, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(ws.Response.Body, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if err != nil {
		return 0, nil, err
	}
	if n > 64<<20 {
		return 0, nil, fmt.Errorf("a frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(ws.Response.Body, payload)
	return h[0] & 0x0f, payload, err
}

// Close sends a close frame with code and reason, and ends the stream's
// sending side.
func (ws *H2WebSocket) Close(code uint16, reason string) error {
	err := ws.Send(OpClose, append(binary.BigEndian.AppendUint16(nil, code), reason...))
	ws.w.Close()
	return err
}

// WebSocketEcho is a handler that accepts WebSockets with coder/websocket
// (opts may be nil) and echoes each message back, prefix(r) before it.
func WebSocketEcho(opts *websocket.AcceptOptions, prefix func(r *http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		p := []byte(prefix(r))
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append(p[:len(p):len(p)], msg...)); err != nil {
				return
			}
		}
	})
}
