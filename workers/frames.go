package workers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// This file is the Go side of the worker protocol that PROTOCOL.md
// specifies; torsion_worker is the Python side. The runtime frames every
// message and reads the frames that concern it (K, L, the control
// socket's M and m, C's timeout); an adapter writes and reads the
// payloads of its requests' frames (R, B, Y, C, W, S, D, F, r, X, E).

// protocolVersion is the version of PROTOCOL.md this side speaks; a worker
// announces its own in its K frame.
const protocolVersion = 1

// The kinds of frame of a request's cycle (PROTOCOL.md), which an adapter
// sends with Call.Send and receives from Call.Next.
const (
	// torsion to worker
	KindRequest = 'R' // a request: Pool.Submit's frame
	KindBody    = 'B' // body bytes answering a Read
	KindBodyErr = 'Y' // the body cannot be read to its end, and why
	KindCancel  = 'C' // the client went away
	KindWindow  = 'W' // so much streamed body has reached the client
	// worker to torsion
	KindStart = 'S' // the status and headers
	KindData  = 'D' // body bytes
	KindFile  = 'F' // a file to send, its descriptor in Frame.File
	KindRead  = 'r' // a pull for more request body
	KindError = 'X' // the application's traceback
	KindEnd   = 'E' // the call has ended
)

// The frames the runtime keeps to itself.
const (
	kReady = 'K'
	kLog   = 'L'
	// on the control socket
	kControl       = 'M'
	kControlAnswer = 'm'
)

const (
	// HeaderLen is the length of a frame's header: its kind, request id
	// and payload length.
	HeaderLen = 9
	// MaxPayload bounds a frame from a worker; a longer one means the
	// worker is broken.
	MaxPayload = 16 << 20
	// Window is how much streamed body a worker sends unacknowledged
	// (torsion_worker's WINDOW) before a KindWindow frame lets it go on.
	Window = 1 << 20
)

// Frame is one frame of a call, as Call.Next returns it.
type Frame struct {
	Kind    byte
	Payload []byte
	// File is a KindFile frame's file, passed with SCM_RIGHTS; the
	// receiver closes it.
	File *os.File
}

// AppendFrame appends a frame of kind for request id to b.
func AppendFrame(b []byte, kind byte, id uint32, payload []byte) []byte {
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint32(b, id)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// ErrProtocol is a frame that does not follow PROTOCOL.md.
var ErrProtocol = errors.New("worker protocol error")

// frameHeader reads a frame's header: its kind, request id and payload
// length.
func frameHeader(h []byte) (kind byte, id, n uint32) {
	return h[0], binary.LittleEndian.Uint32(h[1:]), binary.LittleEndian.Uint32(h[5:])
}

// The payloads of the small frames, written and read here only.

// cancelTimeout is the C payload that asks an ASGI worker to cancel the
// task of a request that ran past --timeout.
const cancelTimeout = "timeout"

// controlPayload is an M payload: the control message's kind (ctlLine,
// ctlAMP), then the message. The pool keeps it so, to send again to
// workers that start later.
func controlPayload(kind byte, msg []byte) []byte {
	return append([]byte{kind}, msg...)
}

// parseAnswer reads an m payload: the answer, or the handler's error
// (*HandlerError if it raised, *DeclaredError for a declared error).
func parseAnswer(p []byte) ([]byte, error) {
	if len(p) < 1 {
		return nil, fmt.Errorf("%w: an empty m frame", ErrProtocol)
	}
	switch p[0] {
	case 0:
		return p[1:], nil
	case 2:
		return nil, &DeclaredError{answer: p[1:]}
	}
	return nil, &HandlerError{Traceback: string(p[1:])}
}

// parseReady reads a K payload, "VERSION PID PYTHON_VERSION", and checks
// the version.
func parseReady(p []byte) (python string, err error) {
	f := strings.Fields(string(p))
	if len(f) != 3 {
		return "", fmt.Errorf("%w: K frame %q", ErrProtocol, p)
	}
	if f[0] != strconv.Itoa(protocolVersion) {
		return "", fmt.Errorf("%w: the worker speaks version %s of the worker protocol, torsion speaks %d (is torsion_worker from another torsion?)", ErrProtocol, f[0], protocolVersion)
	}
	return f[2], nil
}
