package mailserver

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/torsion-server/torsion/protocol"
)

// POP3 serves the store's mailboxes over POP3 (RFC 1939: USER, PASS, APOP,
// STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT; RFC 2449's CAPA). A
// mailbox is held by one session at a time; messages marked deleted are
// removed when the session QUITs, not if it breaks off.
func POP3(store *Store, log *slog.Logger) *protocol.Server {
	return &protocol.Server{ServeConn: func(c net.Conn) { (&pop3{store: store, log: log, c: c}).serve() }}
}

// pop3Timeout bounds the wait for a client's next command (RFC 1939 asks
// at least 10 minutes of an autologout timer; this server is kinder to
// itself, and to clients that went away).
const pop3Timeout = 5 * time.Minute

// maxLoginFailures is how many failed logins end a connection.
const maxLoginFailures = 3

// pop3MaxLine is the longest command accepted (RFC 2449: 255 octets).
const pop3MaxLine = 512

type pop3 struct {
	store *Store
	log   *slog.Logger
	c     net.Conn
	w     *bufio.Writer

	user     string
	stamp    string // the greeting's <...>, for APOP
	failures int    // failed logins on this connection
	box      string // once authenticated
	msgs     []*message
}

func (p *pop3) serve() {
	defer p.c.Close()
	p.store.observe(func(o Observer) { o.Session("pop3") })
	r := bufio.NewReaderSize(p.c, pop3MaxLine)
	p.w = bufio.NewWriter(p.c)
	defer func() {
		if p.box != "" {
			p.store.unlock(p.box)
		}
	}()
	p.stamp = fmt.Sprintf("<%d.%d@%s>", os.Getpid(), time.Now().UnixNano(), p.store.hostname())
	p.reply(true, "torsion POP3 server ready "+p.stamp)
	for {
		p.c.SetReadDeadline(time.Now().Add(pop3Timeout))
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			p.reply(false, "line too long")
			return
		}
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
		if quit := p.command(strings.ToUpper(cmd), arg); quit {
			return
		}
	}
}

// command runs one command; it reports whether the session ends.
func (p *pop3) command(cmd, arg string) (quit bool) {
	if p.box == "" {
		switch cmd {
		case "CAPA":
			p.multi("Capability list follows", []string{"USER", "UIDL", "TOP"})
		case "USER":
			p.user = arg
			p.reply(true, "send your password")
		case "PASS":
			p.enter(p.store.login("pop3", p.c.RemoteAddr(), p.user, is(arg)))
		case "APOP":
			name, digest, _ := strings.Cut(arg, " ")
			p.user = name
			p.enter(p.store.login("pop3", p.c.RemoteAddr(), name, func(password string) bool {
				return subtle.ConstantTimeCompare([]byte(apopDigest(p.stamp, password)), []byte(strings.ToLower(digest))) == 1
			}))
		case "QUIT":
			p.reply(true, "bye")
			return true
		default:
			p.reply(false, "authenticate first (USER and PASS, or APOP)")
		}
		return false
	}
	switch cmd {
	case "CAPA":
		p.multi("Capability list follows", []string{"USER", "UIDL", "TOP"})
	case "STAT":
		n, size := 0, int64(0)
		for _, m := range p.msgs {
			if !m.deleted {
				n, size = n+1, size+m.size
			}
		}
		p.reply(true, fmt.Sprintf("%d %d", n, size))
	case "LIST", "UIDL":
		p.list(cmd, arg)
	case "RETR":
		if m := p.message(arg); m != nil {
			p.send(m, -1)
		}
	case "TOP":
		n, lines, _ := strings.Cut(arg, " ")
		k, err := strconv.Atoi(lines)
		if err != nil || k < 0 {
			p.reply(false, "usage: TOP msg n")
			break
		}
		if m := p.message(n); m != nil {
			p.send(m, k)
		}
	case "DELE":
		if m := p.message(arg); m != nil {
			m.deleted = true
			p.reply(true, "message "+arg+" deleted")
		}
	case "RSET":
		for _, m := range p.msgs {
			m.deleted = false
		}
		p.reply(true, "maildrop reset")
	case "NOOP":
		p.reply(true, "")
	case "QUIT":
		var failed int
		for _, m := range p.msgs {
			if m.deleted && os.Remove(m.path) != nil {
				failed++
			}
		}
		if failed > 0 {
			p.reply(false, fmt.Sprintf("%d messages could not be removed", failed))
		} else {
			p.reply(true, "bye")
		}
		return true
	default:
		p.reply(false, "unknown command")
	}
	return false
}

// enter opens the mailbox box of a login that succeeded (ok).
func (p *pop3) enter(box string, ok bool) {
	if !ok {
		p.log.Warn("POP3 login refused", "user", p.user, "remote", p.c.RemoteAddr().String())
		p.reply(false, "invalid user or password")
		if p.failures++; p.failures >= maxLoginFailures {
			p.reply(false, "too many failed logins")
			p.c.Close() // serve's next read ends the session
		}
		return
	}
	if !p.store.lock(box) {
		p.reply(false, "the mailbox is in use by another session")
		return
	}
	msgs, err := list(box)
	if err != nil {
		p.store.unlock(box)
		p.reply(false, "the mailbox cannot be read")
		return
	}
	p.box, p.msgs = box, msgs
	p.reply(true, fmt.Sprintf("%d messages", len(msgs)))
}

// message returns message arg (numbered from 1), or answers -ERR.
func (p *pop3) message(arg string) *message {
	n, err := strconv.Atoi(strings.TrimSpace(arg))
	if err != nil || n < 1 || n > len(p.msgs) || p.msgs[n-1].deleted {
		p.reply(false, "no such message")
		return nil
	}
	return p.msgs[n-1]
}

func (p *pop3) list(cmd, arg string) {
	line := func(i int, m *message) string {
		if cmd == "UIDL" {
			return fmt.Sprintf("%d %s", i+1, m.uid)
		}
		return fmt.Sprintf("%d %d", i+1, m.size)
	}
	if strings.TrimSpace(arg) != "" {
		if m := p.message(arg); m != nil {
			n, _ := strconv.Atoi(strings.TrimSpace(arg))
			p.reply(true, line(n-1, m))
		}
		return
	}
	var lines []string
	for i, m := range p.msgs {
		if !m.deleted {
			lines = append(lines, line(i, m))
		}
	}
	p.multi("listing follows", lines)
}

// send sends a message (its header and first k body lines; k < 0: all),
// each line ending in CRLF, a leading dot doubled.
func (p *pop3) send(m *message, k int) {
	data, err := readMessage(m)
	if err != nil {
		p.reply(false, "the message cannot be read")
		return
	}
	p.reply(true, fmt.Sprintf("%d octets", m.size))
	inBody, bodyLines := false, 0
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		data = rest
		line = bytes.TrimSuffix(line, []byte("\r"))
		if inBody {
			if k >= 0 && bodyLines >= k {
				break
			}
			bodyLines++
		} else if len(line) == 0 {
			inBody = true
		}
		if bytes.HasPrefix(line, []byte(".")) {
			p.w.WriteByte('.')
		}
		p.w.Write(line)
		p.w.WriteString("\r\n")
	}
	p.w.WriteString(".\r\n")
	p.flush()
}

func (p *pop3) reply(ok bool, text string) {
	status := "-ERR"
	if ok {
		status = "+OK"
	}
	if text != "" {
		status += " " + text
	}
	p.w.WriteString(status + "\r\n")
	p.flush()
}

// flush sends what is written, within the timeout: a client that does
// not read is dropped.
func (p *pop3) flush() {
	p.c.SetWriteDeadline(time.Now().Add(pop3Timeout))
	p.w.Flush()
}

func (p *pop3) multi(text string, lines []string) {
	p.w.WriteString("+OK " + text + "\r\n")
	for _, l := range lines {
		p.w.WriteString(l + "\r\n")
	}
	p.w.WriteString(".\r\n")
	p.flush()
}
