package mailserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// NewSMTP returns an ESMTP server (emersion/go-smtp) that delivers to the
// store's mailboxes: a recipient in a domain the store does not take mail
// for is refused (550, no relaying), as is an unknown user of one of its
// domains. hostname is the name it greets with.
func NewSMTP(store *Store, hostname string, maxMessage int64, log *slog.Logger) *smtp.Server {
	s := smtp.NewServer(&backend{store: store, log: log})
	s.Domain = hostname
	s.MaxMessageBytes = maxMessage
	s.MaxRecipients = 100
	s.ReadTimeout = 60 * time.Second
	s.WriteTimeout = 60 * time.Second
	s.ErrorLog = slogLogger{log}
	return s
}

type backend struct {
	store *Store
	log   *slog.Logger
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{b: b, remote: c.Conn().RemoteAddr().String()}, nil
}

type session struct {
	b      *backend
	remote string
	from   string
	boxes  []string
	to     []string
}

func (s *session) Reset()        { s.from, s.boxes, s.to = "", nil, nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.Reset()
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	box := s.b.store.mailbox(to)
	if box == "" {
		_, dom, _ := strings.Cut(to, "@")
		if !s.b.store.hasDomain(dom) {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied: this server takes mail for its own domains only"}
		}
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	s.boxes = append(s.boxes, box)
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	if len(s.boxes) == 0 {
		return errors.New("no valid recipient")
	}
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "Return-Path: <%s>\r\nReceived: from %s by %s; %s\r\n", s.from, s.remote, s.b.store.hostname(), time.Now().Format(time.RFC1123Z))
	if _, err := io.Copy(&msg, r); err != nil {
		return err // go-smtp answers 552 for a message over the limit
	}
	for _, box := range s.boxes {
		if err := deliver(box, msg.Bytes()); err != nil {
			s.b.log.Error("delivering a message failed", "to", box, "err", err)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not store the message; try again later"}
		}
	}
	s.b.log.Info("message delivered", "from", s.from, "to", strings.Join(s.to, ","), "bytes", msg.Len(), "remote", s.remote)
	return nil
}

// slogLogger is go-smtp's error log as slog.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Printf(format string, v ...any) { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l slogLogger) Println(v ...any)               { l.log.Warn(fmt.Sprint(v...)) }
