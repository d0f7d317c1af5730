package mailserver

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPOptions configure NewSMTP.
type SMTPOptions struct {
	// Hostname is the name the server greets with.
	Hostname string
	// MaxMessage is the largest message accepted, in bytes; a larger one
	// gets 552 and is not stored.
	MaxMessage int64
	// TLS, if set, offers STARTTLS, and AUTH PLAIN once it is on.
	TLS *tls.Config
	// RelayVia, if set (HOST:PORT), is a smarthost: mail that a user who
	// authenticated sends to other domains is passed to it within the DATA
	// transaction, so the client hears whether it was taken. Unset, no
	// mail leaves.
	RelayVia string
}

// NewSMTP returns an ESMTP server (emersion/go-smtp) that delivers to the
// store's mailboxes: a recipient in a domain the store does not take mail
// for is refused (550, no relaying) unless the session authenticated and
// opts.RelayVia is set, as is an unknown user of one of its domains.
func NewSMTP(store *Store, opts SMTPOptions, log *slog.Logger) *smtp.Server {
	s := smtp.NewServer(&backend{store: store, opts: opts, log: log})
	s.Domain = opts.Hostname
	s.MaxMessageBytes = opts.MaxMessage
	s.MaxRecipients = 100
	s.ReadTimeout = 60 * time.Second
	s.WriteTimeout = 60 * time.Second
	s.TLSConfig = opts.TLS // AUTH is offered only over TLS
	s.ErrorLog = slogLogger{log}
	return s
}

type backend struct {
	store *Store
	opts  SMTPOptions
	log   *slog.Logger
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.store.observe(func(o Observer) { o.Session("smtp") })
	return &session{b: b, addr: c.Conn().RemoteAddr(), remote: c.Conn().RemoteAddr().String(), helo: c.Hostname()}, nil
}

type session struct {
	b      *backend
	addr   net.Addr
	remote string
	helo   string // the name the client greeted with
	user   string // authenticated, or ""
	from   string
	boxes  []string // local mailboxes
	relay  []string // recipients for the smarthost
	to     []string
}

func (s *session) Reset()        { s.from, s.boxes, s.relay, s.to = "", nil, nil, nil }
func (s *session) Logout() error { return nil }

// AuthMechanisms offers AUTH PLAIN where a smarthost can take what an
// authenticated user sends (go-smtp offers it only over TLS).
func (s *session) AuthMechanisms() []string {
	if s.b.opts.RelayVia == "" {
		return nil
	}
	return []string{sasl.Plain}
}

// Auth checks AUTH PLAIN against the store's users; a refusal costs a
// second, a guesser's pace.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || s.b.opts.RelayVia == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, password string) error {
		if _, ok := s.b.store.login("smtp", s.addr, user, is(password)); !ok || identity != "" && identity != user {
			s.b.log.Warn("SMTP login refused", "user", user, "remote", s.remote)
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Invalid user or password"}
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.Reset()
	if !printable(from) {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "The sender address has characters outside printable ASCII"}
	}
	s.from = from
	return nil
}

// headerSafe is a client's word as a header field may hold it: printable
// ASCII without spaces (go-smtp takes the HELO name as the client sent it).
func headerSafe(s string) string {
	if s == "" || !printable(s) || strings.ContainsAny(s, " ()") {
		return "unknown"
	}
	return s
}

// printable reports whether an address is printable ASCII, 32 to 126
// (RFC 5321 4.1.2; no SMTPUTF8 is offered): a control character (a bare
// CR in a quoted local part, say) would otherwise reach the Return-Path
// written into the message, where a mail reader finds injected headers.
func printable(addr string) bool {
	for i := 0; i < len(addr); i++ {
		if addr[i] < 32 || addr[i] > 126 {
			return false
		}
	}
	return true
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !printable(to) {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "The recipient address has characters outside printable ASCII"}
	}
	box := s.b.store.mailbox(to)
	if box == "" {
		_, dom, _ := strings.Cut(to, "@")
		if !s.b.store.hasDomain(dom) {
			if s.user != "" && s.b.opts.RelayVia != "" {
				s.relay = append(s.relay, to)
				s.to = append(s.to, to)
				return nil
			}
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied: this server takes mail for its own domains only"}
		}
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	s.boxes = append(s.boxes, box)
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	if len(s.boxes) == 0 && len(s.relay) == 0 {
		return errors.New("no valid recipient")
	}
	var msg bytes.Buffer
	ip, _, _ := net.SplitHostPort(s.remote)
	// RFC 5321 4.4: the name the client gave, its address in brackets.
	fmt.Fprintf(&msg, "Return-Path: <%s>\r\nReceived: from %s ([%s]) by %s with ESMTP; %s\r\n",
		s.from, headerSafe(s.helo), ip, s.b.store.hostname(), time.Now().Format(time.RFC1123Z))
	if _, err := io.Copy(&msg, r); err != nil {
		return err // go-smtp answers 552 for a message over the limit
	}
	if len(s.relay) > 0 {
		// First, so that a refusal leaves nothing delivered here twice
		// when the client tries again.
		if err := s.b.relay(s.from, s.relay, msg.Bytes()); err != nil {
			s.b.log.Error("relaying a message failed", "via", s.b.opts.RelayVia, "to", strings.Join(s.relay, ","), "err", err)
			s.b.store.observe(func(o Observer) { o.Delivery("failed") })
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				return se // the smarthost's own answer
			}
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "The relay did not take the message; try again later"}
		}
	}
	for _, box := range s.boxes {
		if err := deliver(box, msg.Bytes()); err != nil {
			s.b.log.Error("delivering a message failed", "to", box, "err", err)
			s.b.store.observe(func(o Observer) { o.Delivery("failed") })
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not store the message; try again later"}
		}
	}
	s.b.store.observe(func(o Observer) {
		if len(s.boxes) > 0 {
			o.Delivery("delivered")
		}
		if len(s.relay) > 0 {
			o.Delivery("relayed")
		}
	})
	s.b.log.Info("message delivered", "from", s.from, "to", strings.Join(s.to, ","), "bytes", msg.Len(), "remote", s.remote, "user", s.user)
	return nil
}

// relayTimeout bounds a whole hand-over to the smarthost.
const relayTimeout = 60 * time.Second

// relay passes a message to the smarthost.
func (b *backend) relay(from string, to []string, msg []byte) error {
	conn, err := net.DialTimeout("tcp", b.opts.RelayVia, 10*time.Second)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(relayTimeout))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello(b.store.hostname()); err != nil {
		return err
	}
	if err := c.SendMail(from, to, bytes.NewReader(normalizeNewlines(msg))); err != nil {
		return err
	}
	return c.Quit()
}

// normalizeNewlines turns every bare CR and bare LF of a message into
// CRLF, as Postfix's smtpd_forbid_bare_newline=normalize does, so that
// the smarthost sees the lines this server saw: "<CR>.<CR>" passed on
// unchanged ends the data early for a smarthost that takes a bare CR as a
// line end, and what follows becomes commands of its own (SMTP
// smuggling).
func normalizeNewlines(msg []byte) []byte {
	if bytes.IndexByte(msg, '\r') < 0 && bytes.IndexByte(msg, '\n') < 0 {
		return msg
	}
	out := make([]byte, 0, len(msg)+64)
	for i := 0; i < len(msg); i++ {
		switch c := msg[i]; {
		case c == '\r' && i+1 < len(msg) && msg[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r' || c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// slogLogger is go-smtp's error log as slog.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Printf(format string, v ...any) { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l slogLogger) Println(v ...any)               { l.log.Warn(fmt.Sprint(v...)) }
