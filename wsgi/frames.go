package wsgi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file is the Go side of the worker protocol that PROTOCOL.md
// specifies; worker.py is the Python side.

// protocolVersion is the version of PROTOCOL.md this side speaks; a worker
// announces its own in its K frame.
const protocolVersion = 1

// Frame kinds.
const (
	// torsion to worker
	kRequest = 'R'
	kBody    = 'B'
	kBodyErr = 'Y'
	kCancel  = 'C'
	kWindow  = 'W'
	// worker to torsion
	kReady = 'K'
	kStart = 'S'
	kData  = 'D'
	kFile  = 'F'
	kRead  = 'r'
	kError = 'X'
	kEnd   = 'E'
	kLog   = 'L'
	// on the control socket
	kControl       = 'M'
	kControlAnswer = 'm'
)

const (
	headerLen = 9
	// maxPayload bounds a frame from a worker; a longer one means the
	// worker is broken.
	maxPayload = 16 << 20
	// window is how much streamed body a worker sends unacknowledged
	// (worker.py's WINDOW); ackEvery is how much torsion passes to the
	// client before it acknowledges (W).
	window   = 1 << 20
	ackEvery = window / 4
)

// frameHeader reads a frame's header: its kind, request id and payload
// length.
func frameHeader(h []byte) (kind byte, id, n uint32) {
	return h[0], binary.LittleEndian.Uint32(h[1:]), binary.LittleEndian.Uint32(h[5:])
}

// The payloads of the small frames, written and read here only.

// cancelTimeout is the C payload that asks an ASGI worker to cancel the
// task of a request that ran past --timeout.
const cancelTimeout = "timeout"

// windowPayload is a W payload: count more bytes of streamed body have
// gone to the client.
func windowPayload(count int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(count)) }

// parseOffset reads an F payload: where in the file to start.
func parseOffset(p []byte) (int64, error) {
	if len(p) != 8 {
		return 0, fmt.Errorf("%w: an F frame of %d bytes", errProtocol, len(p))
	}
	return int64(binary.LittleEndian.Uint64(p)), nil
}

// parseMost reads an r payload: at most how many bytes of body the
// worker wants.
func parseMost(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("%w: an r frame of %d bytes", errProtocol, len(p))
	}
	return int(binary.LittleEndian.Uint32(p)), nil
}

// controlFrame is the M frame of control message seq: its kind (ctlLine,
// ctlAMP), then the message.
func controlFrame(seq uint32, kind byte, msg []byte) []byte {
	return appendFrame(nil, kControl, seq, append([]byte{kind}, msg...))
}

// parseAnswer reads an m payload: the answer, or the handler's error
// (*HandlerError if it raised, *DeclaredError for a declared error).
func parseAnswer(p []byte) ([]byte, error) {
	if len(p) < 1 {
		return nil, fmt.Errorf("%w: an empty m frame", errProtocol)
	}
	switch p[0] {
	case 0:
		return p[1:], nil
	case 2:
		return nil, &DeclaredError{answer: p[1:]}
	}
	return nil, &HandlerError{Traceback: string(p[1:])}
}

func appendFrame(b []byte, kind byte, id uint32, payload []byte) []byte {
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint32(b, id)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// errProtocol is a frame that does not follow PROTOCOL.md.
var errProtocol = errors.New("worker protocol error")

// parseHead reads an S payload: the status line, then header names and
// values.
func parseHead(p []byte) (status string, fields []string, err error) {
	fields, err = parseFields(p, 'S')
	if err == nil && len(fields)%2 != 1 {
		err = fmt.Errorf("%w: S frame with %d fields", errProtocol, len(fields))
	}
	if err != nil {
		return "", nil, err
	}
	return fields[0], fields[1:], nil
}

// parseTrailers reads the payload of an HTTP response's E frame: trailer
// names and values, as S encodes its headers.
func parseTrailers(p []byte) ([]string, error) {
	fields, err := parseFields(p, 'E')
	if err == nil && len(fields)%2 != 0 {
		err = fmt.Errorf("%w: E frame with %d fields", errProtocol, len(fields))
	}
	return fields, err
}

// parseFields reads a payload of fields (S's, E's): their count, their
// lengths, then the fields.
func parseFields(p []byte, kind byte) ([]string, error) {
	if len(p) < 4 {
		return nil, fmt.Errorf("%w: %c frame of %d bytes", errProtocol, kind, len(p))
	}
	n := int(binary.LittleEndian.Uint32(p))
	if n < 0 || 4+4*n > len(p) {
		return nil, fmt.Errorf("%w: %c frame with %d fields in %d bytes", errProtocol, kind, n, len(p))
	}
	data := p[4+4*n:]
	fields := make([]string, n)
	for i := range n {
		l := int(binary.LittleEndian.Uint32(p[4+4*i:]))
		if l > len(data) {
			return nil, fmt.Errorf("%w: %c frame field %d is longer than the frame", errProtocol, kind, i)
		}
		fields[i], data = string(data[:l]), data[l:]
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%w: %c frame has %d bytes after its fields", errProtocol, kind, len(data))
	}
	return fields, nil
}

// parseReady reads a K payload, "VERSION PID PYTHON_VERSION", and checks
// the version.
func parseReady(p []byte) (python string, err error) {
	f := strings.Fields(string(p))
	if len(f) != 3 {
		return "", fmt.Errorf("%w: K frame %q", errProtocol, p)
	}
	if f[0] != strconv.Itoa(protocolVersion) {
		return "", fmt.Errorf("%w: the worker speaks version %s of the worker protocol, torsion speaks %d (is worker.py from another torsion?)", errProtocol, f[0], protocolVersion)
	}
	return f[2], nil
}
