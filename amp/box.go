// Package amp speaks AMP, the Asynchronous Messaging Protocol of Twisted's
// twisted.protocols.amp, on the wire as Twisted does: boxes of key/value
// pairs, each prefixed by a 2-byte big-endian length, a box ended by an
// empty key; commands asked with _command and _ask, answered with _answer
// or _error, _error_code and _error_description; many calls in flight on
// one connection, in either direction.
//
// Conn runs a connection as a client, a server or both; Locator answers
// commands declared in Go with typed arguments (Integer, Float, String,
// Unicode, Boolean, ListOf, AmpList, DateTime, Decimal), as Twisted's
// CommandLocator does.
package amp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// The limits of a box, Twisted's MAX_KEY_LENGTH and MAX_VALUE_LENGTH.
const (
	MaxKeyLength   = 0xff
	MaxValueLength = 0xffff
	// MaxBoxBytes bounds the bytes of one box a Decoder accepts, so that
	// memory grows with what a peer may send, not without end.
	MaxBoxBytes = 4 << 20
)

// Box is one AMP box: keys to values.
type Box map[string][]byte

// ErrMalformed is a box that breaks the wire format or its limits.
var ErrMalformed = errors.New("amp: malformed box")

// AppendBox appends the wire form of b to dst, its keys sorted as Twisted
// sorts them. It fails for an empty key, a key over MaxKeyLength or a
// value over MaxValueLength bytes.
func AppendBox(dst []byte, b Box) ([]byte, error) {
	keys := make([]string, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := b[k]
		switch {
		case k == "":
			return dst, fmt.Errorf("%w: an empty key", ErrMalformed)
		case len(k) > MaxKeyLength:
			return dst, fmt.Errorf("%w: key %.20q... is %d bytes, over %d", ErrMalformed, k, len(k), MaxKeyLength)
		case len(v) > MaxValueLength:
			return dst, fmt.Errorf("%w: the value of %q is %d bytes, over %d", ErrMalformed, k, len(v), MaxValueLength)
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(v)))
		dst = append(dst, v...)
	}
	return append(dst, 0, 0), nil
}

// Decoder reads boxes from a stream.
type Decoder struct {
	r *bufio.Reader
}

// NewDecoder returns a Decoder reading r.
func NewDecoder(r io.Reader) *Decoder { return &Decoder{r: bufio.NewReader(r)} }

// Decode reads the next box. It returns io.EOF at the end of the stream
// between boxes, io.ErrUnexpectedEOF inside one, and an error wrapping
// ErrMalformed for a key over MaxKeyLength or a box over MaxBoxBytes.
func (d *Decoder) Decode() (Box, error) {
	b := Box{}
	total := 0
	for first := true; ; first = false {
		k, err := d.field(MaxKeyLength)
		if err != nil {
			if err == io.EOF && !first {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(k) == 0 {
			return b, nil
		}
		v, err := d.field(MaxValueLength)
		if err != nil {
			return nil, noEOF(err)
		}
		if total += 4 + len(k) + len(v); total > MaxBoxBytes {
			return nil, fmt.Errorf("%w: a box over %d bytes", ErrMalformed, MaxBoxBytes)
		}
		b[string(k)] = v
	}
}

// field reads a length-prefixed field of at most max bytes.
func (d *Decoder) field(max int) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(d.r, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n > max { // only a key can be too long: a value's length fits 16 bits
		return nil, fmt.Errorf("%w: a key of %d bytes, over %d", ErrMalformed, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(d.r, buf); err != nil {
		return nil, noEOF(err)
	}
	return buf, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ParseBoxes reads the boxes data holds, one after another (the wire form
// of an AmpList).
func ParseBoxes(data []byte) ([]Box, error) {
	d := NewDecoder(bytes.NewReader(data))
	var boxes []Box
	for {
		b, err := d.Decode()
		if err == io.EOF {
			return boxes, nil
		}
		if err != nil {
			return nil, err
		}
		boxes = append(boxes, b)
	}
}
