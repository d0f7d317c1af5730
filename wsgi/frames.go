package wsgi

import (
	"encoding/binary"
	"fmt"

	"github.com/torsion-server/torsion/workers"
)

// This file holds the payloads of the frames of a request's cycle that
// the adapter writes and reads (PROTOCOL.md, in package workers, which
// frames them).

// windowPayload is a W payload: count more bytes of streamed body have
// gone to the client.
func windowPayload(count int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(count)) }

// parseOffset reads an F payload: where in the file to start.
func parseOffset(p []byte) (int64, error) {
	if len(p) != 8 {
		return 0, fmt.Errorf("%w: an F frame of %d bytes", workers.ErrProtocol, len(p))
	}
	return int64(binary.LittleEndian.Uint64(p)), nil
}

// parseMost reads an r payload: at most how many bytes of body the
// worker wants.
func parseMost(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("%w: an r frame of %d bytes", workers.ErrProtocol, len(p))
	}
	return int(binary.LittleEndian.Uint32(p)), nil
}

// parseHead reads an S payload: the status line, then header names and
// values.
func parseHead(p []byte) (status string, fields []string, err error) {
	fields, err = parseFields(p, 'S')
	if err == nil && len(fields)%2 != 1 {
		err = fmt.Errorf("%w: S frame with %d fields", workers.ErrProtocol, len(fields))
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
		err = fmt.Errorf("%w: E frame with %d fields", workers.ErrProtocol, len(fields))
	}
	return fields, err
}

// parseFields reads a payload of fields (S's, E's): their count, their
// lengths, then the fields.
func parseFields(p []byte, kind byte) ([]string, error) {
	if len(p) < 4 {
		return nil, fmt.Errorf("%w: %c frame of %d bytes", workers.ErrProtocol, kind, len(p))
	}
	n := int(binary.LittleEndian.Uint32(p))
	if n < 0 || 4+4*n > len(p) {
		return nil, fmt.Errorf("%w: %c frame with %d fields in %d bytes", workers.ErrProtocol, kind, n, len(p))
	}
	data := p[4+4*n:]
	fields := make([]string, n)
	for i := range n {
		l := int(binary.LittleEndian.Uint32(p[4+4*i:]))
		if l > len(data) {
			return nil, fmt.Errorf("%w: %c frame field %d is longer than the frame", workers.ErrProtocol, kind, i)
		}
		fields[i], data = string(data[:l]), data[l:]
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%w: %c frame has %d bytes after its fields", workers.ErrProtocol, kind, len(data))
	}
	return fields, nil
}
