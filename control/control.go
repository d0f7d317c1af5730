// Package control serves torsion's control channels: ports apart from the
// public ones, on which an operator changes a running application, as the
// control channel of a Twisted WSGI server does. Lines serves Twisted's
// LineReceiver example: each line goes to every worker of an application
// and the answer comes back on one line. AMP serves its AMP example:
// each command runs in every worker, with the locator the application
// registered.
//
// A control port changes what the application does, so it must be
// reachable only by operators: give it a loopback interface or a unix:
// socket with mode=0600, never the public port.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/torsion-server/torsion/amp"
	"github.com/torsion-server/torsion/protocol"
)

// Target is what a control line changes: a WSGI pool, whose Control
// passes the line to every worker.
type Target interface {
	Control(ctx context.Context, line []byte) (string, error)
}

// Timeout bounds the handling of one control line.
const Timeout = 30 * time.Second

// Lines returns the factory of the line protocol: a client sends a line
// (ending in LF or CRLF, at most maxLine bytes), the target handles it,
// and the client gets back its answer, or "error: " and why, on one line
// ending in CRLF; then the connection closes, as in Twisted's example.
// One line per connection: lines after the first are neither applied nor
// answered. A line over maxLine bytes gets an error and a closed
// connection, and never reaches the target. A line that looks like HTTP
// (a request line, or a Host field) closes the connection without an
// answer and reaches nothing, as Redis does: it is a web page in an
// operator's browser posting to the port (a cross-protocol attack).
func Lines(t Target, maxLine int, log *slog.Logger) protocol.Factory {
	return func(remote net.Addr) protocol.Protocol {
		return &protocol.LineReceiver{
			Delimiter: []byte("\n"),
			MaxLength: maxLine,
			OnLine: func(r *protocol.LineReceiver, line []byte) {
				line = []byte(strings.TrimSuffix(string(line), "\r"))
				if looksLikeHTTP(line) {
					log.Warn("refused a control connection that speaks HTTP: a web page posting to the port?", "remote", remote.String())
					r.Transport().LoseConnection()
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), Timeout)
				defer cancel()
				reply, err := t.Control(ctx, line)
				if err != nil {
					log.Warn("a control line failed", "remote", remote.String(), "line", string(line), "err", err)
					reply = "error: " + oneLine(err.Error())
				} else {
					log.Info("control line applied", "remote", remote.String(), "line", string(line))
				}
				r.Transport().WriteSequence([][]byte{[]byte(oneLine(reply)), []byte("\r\n")})
				r.Transport().LoseConnection()
			},
			OnTooLong: func(r *protocol.LineReceiver) {
				log.Warn("a control line was too long", "remote", remote.String(), "max", maxLine)
				r.Transport().WriteSequence([][]byte{[]byte("error: the line is longer than " + strconv.Itoa(maxLine) + " bytes\r\n")})
				r.Transport().LoseConnection()
			},
		}
	}
}

// looksLikeHTTP reports whether line is an HTTP request line ("POST /
// HTTP/1.1") or a Host field.
func looksLikeHTTP(line []byte) bool {
	s := string(line)
	if len(s) >= 5 && strings.EqualFold(s[:5], "host:") {
		return true
	}
	method, rest, ok := strings.Cut(s, " ")
	if !ok || method == "" || strings.ToUpper(method) != method {
		return false
	}
	_, version, ok := strings.Cut(rest, " ")
	return ok && strings.HasPrefix(version, "HTTP/")
}

// oneLine keeps an answer on one line: line breaks become "; ".
func oneLine(s string) string {
	s = strings.TrimRight(s, "\r\n")
	return strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ").Replace(s)
}

// AMPTarget is what an AMP command changes: a WSGI pool, whose ControlBox
// gives the command's box, in AMP's wire form, to every worker's locator,
// and returns the answer box (or an error whose Answer is the declared
// error's box, as wsgi.DeclaredError is).
type AMPTarget interface {
	ControlBox(ctx context.Context, box []byte, key string) ([]byte, error)
}

// declared is the error a target returns for a declared AMP error: its
// box in AMP's wire form.
type declared interface {
	error
	DeclaredAnswer() []byte
}

// RunAMP runs command with args on t: it encodes the box, keys it by the
// command's name (so that of the commands kept for workers that start
// later, only the last of each name is given to them: a command should
// set state), and decodes the answer, or the declared error as an
// *amp.Error.
func RunAMP(ctx context.Context, t AMPTarget, command string, args amp.Box) (amp.Box, error) {
	box := amp.Box{amp.KeyCommand: []byte(command)}
	for k, v := range args {
		box[k] = v
	}
	wire, err := amp.AppendBox(nil, box)
	if err != nil {
		return nil, err
	}
	answer, err := t.ControlBox(ctx, wire, "amp "+command)
	var de declared
	switch {
	case errors.As(err, &de):
		boxes, perr := amp.ParseBoxes(de.DeclaredAnswer())
		if perr != nil || len(boxes) != 1 {
			return nil, fmt.Errorf("a malformed AMP error box: %w", err)
		}
		return nil, &amp.Error{Code: string(boxes[0][amp.KeyErrorCode]), Description: string(boxes[0][amp.KeyErrorDescription])}
	case err != nil:
		return nil, err
	}
	boxes, err := amp.ParseBoxes(answer)
	if err != nil || len(boxes) != 1 {
		return nil, fmt.Errorf("an AMP answer that is not one box (%d bytes)", len(answer))
	}
	return boxes[0], nil
}

// CodeWorkerFailed is the AMP error code of a command that failed in some
// worker in a way the command does not declare; the description says how,
// for each worker.
const CodeWorkerFailed = "WORKER_FAILED"

// AMP returns what a protocol.Server's ServeConn wants for an AMP control
// port: each command a client asks runs in every worker of t, and the
// client gets the answer once all have run it (see RunAMP),
// the declared error the application raised, or WORKER_FAILED saying which
// workers failed and how. A malformed box closes the connection.
func AMP(t AMPTarget, log *slog.Logger) func(net.Conn) {
	h := amp.HandlerFunc(func(ctx context.Context, command string, args amp.Box) (amp.Box, error) {
		ctx, cancel := context.WithTimeout(ctx, Timeout)
		defer cancel()
		r, err := RunAMP(ctx, t, command, args)
		var ae *amp.Error
		switch {
		case err == nil:
			log.Info("AMP command applied", "command", command)
		case errors.As(err, &ae):
			log.Info("AMP command refused", "command", command, "code", ae.Code)
		default:
			log.Warn("an AMP command failed", "command", command, "err", err)
			err = &amp.Error{Code: CodeWorkerFailed, Description: oneLine(err.Error())}
		}
		return r, err
	})
	return func(nc net.Conn) {
		if err := amp.NewConn(nc, h, log).Serve(); err != nil {
			log.Warn("an AMP connection ended", "remote", nc.RemoteAddr().String(), "err", err)
		}
	}
}
