// Package connwrap helps types that wrap a net.Conn keep what the
// connection underneath can do: sendfile(2) through ReadFrom, and
// half-closing through CloseWrite.
package connwrap

import (
	"errors"
	"io"
	"net"
)

// ReadFrom copies r to c, through c's own ReadFrom (sendfile for a TCP
// connection) when it has one.
func ReadFrom(c net.Conn, r io.Reader) (int64, error) {
	if rf, ok := c.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c, r)
}

// CloseWrite half-closes c when it can, and reports errors.ErrUnsupported
// when it cannot.
func CloseWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
