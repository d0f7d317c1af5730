//go:build !linux

package httpserver

import (
	"io"
	"syscall"
)

// writeMore writes p to c; only Linux has MSG_MORE.
func writeMore(c syscall.Conn, p []byte) (int, error) {
	return c.(io.Writer).Write(p)
}
