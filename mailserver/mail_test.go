package mailserver

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/testutil"
	"github.com/torsion-server/torsion/logging"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s := NewStore()
	if err := s.AddDomain("example.org", filepath.Join(dir, "example.org")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("example.org", "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	return s, filepath.Join(dir, "example.org", "alice")
}

// pop3Client speaks to a POP3 server line by line.
type pop3Client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialPOP3(t *testing.T, store *Store) *pop3Client {
	t.Helper()
	srv := POP3(store, logging.Discard())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	p := &pop3Client{t: t, c: c, r: bufio.NewReader(c)}
	p.line() // greeting
	return p
}

func (p *pop3Client) line() string {
	p.t.Helper()
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("reading: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

// do sends a command and returns its status line, and the lines of a
// multi-line answer when multi.
func (p *pop3Client) do(cmd string, multi bool) (string, []string) {
	p.t.Helper()
	fmt.Fprintf(p.c, "%s\r\n", cmd)
	status := p.line()
	var lines []string
	if multi && strings.HasPrefix(status, "+OK") {
		for l := p.line(); l != "."; l = p.line() {
			lines = append(lines, l)
		}
	}
	return status, lines
}

func TestPOP3(t *testing.T) {
	store, box := newStore(t)
	deliver(box, []byte("Subject: one\r\n\r\nfirst\r\n.starts with a dot\r\nthird\r\n"))
	deliver(box, []byte("Subject: two\n\nunix line ends\n"))
	p := dialPOP3(t, store)
	steps := []struct {
		cmd   string
		multi bool
		want  string   // status prefix
		lines []string // the multi-line answer, if any
	}{
		{"STAT", false, "-ERR authenticate first", nil},
		{"CAPA", true, "+OK", []string{"USER", "UIDL", "TOP"}},
		{"USER alice", false, "+OK", nil},
		{"PASS wrong", false, "-ERR invalid user or password", nil},
		{"USER alice@EXAMPLE.org", false, "+OK", nil},
		{"PASS secret", false, "+OK 2 messages", nil},
		{"STAT", false, "+OK 2 ", nil},
		// The octets RETR sends, with CRLF line ends, though the file
		// has LF ones.
		{"LIST 1", false, fmt.Sprintf("+OK 1 %d", len("Subject: one\r\n\r\nfirst\r\n.starts with a dot\r\nthird\r\n")), nil},
		{"LIST 2", false, fmt.Sprintf("+OK 2 %d", len("Subject: two\r\n\r\nunix line ends\r\n")), nil},
		{"RETR 1", true, "+OK", []string{"Subject: one", "", "first", "..starts with a dot", "third"}},
		{"TOP 1 1", true, "+OK", []string{"Subject: one", "", "first"}},
		{"RETR 2", true, "+OK", []string{"Subject: two", "", "unix line ends"}},
		{"LIST 3", false, "-ERR no such message", nil},
		{"DELE 1", false, "+OK", nil},
		{"RETR 1", false, "-ERR no such message", nil},
		{"STAT", false, "+OK 1 ", nil},
		{"RSET", false, "+OK", nil},
		{"STAT", false, "+OK 2 ", nil},
		{"DELE 2", false, "+OK", nil},
		{"BOGUS", false, "-ERR unknown command", nil},
		{"QUIT", false, "+OK", nil},
	}
	for _, s := range steps {
		status, lines := p.do(s.cmd, s.multi)
		if !strings.HasPrefix(status, s.want) {
			t.Errorf("%s: %q, want %q...", s.cmd, status, s.want)
		}
		if s.lines != nil && strings.Join(lines, "\n") != strings.Join(s.lines, "\n") {
			t.Errorf("%s: lines %q, want %q", s.cmd, lines, s.lines)
		}
	}
	// QUIT removed the message marked deleted, and only that one, whose
	// file has LF line ends only, as Maildir readers expect.
	msgs, _ := list(box)
	if len(msgs) != 1 || !strings.Contains(readFile(t, msgs[0].path), "Subject: one\n\nfirst\n") || strings.Contains(readFile(t, msgs[0].path), "\r") {
		t.Errorf("after QUIT: %d messages", len(msgs))
	}
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPOP3Lock: a mailbox is held by one session at a time, and a session
// that breaks off deletes nothing.
func TestPOP3Lock(t *testing.T) {
	store, box := newStore(t)
	deliver(box, []byte("Subject: x\r\n\r\nx\r\n"))
	a := dialPOP3(t, store)
	a.do("USER alice", false)
	if s, _ := a.do("PASS secret", false); !strings.HasPrefix(s, "+OK") {
		t.Fatal(s)
	}
	a.do("DELE 1", false)
	b := dialPOP3(t, store)
	b.do("USER alice", false)
	if s, _ := b.do("PASS secret", false); !strings.HasPrefix(s, "-ERR the mailbox is in use") {
		t.Errorf("a second session: %q", s)
	}
	a.c.Close() // no QUIT
	var s string
	testutil.WaitUntil(10*time.Second, func() bool {
		c := dialPOP3(t, store)
		c.do("USER alice", false)
		s, _ = c.do("PASS secret", false)
		if strings.HasPrefix(s, "+OK 1 messages") {
			return true
		}
		c.c.Close()
		return false
	}, func() { t.Fatalf("after the first session broke off: %q", s) })
}

func TestStoreErrors(t *testing.T) {
	s := NewStore()
	dir := t.TempDir()
	for _, c := range []struct {
		err  error
		want string
	}{
		{s.AddDomain("a b", dir), "want a domain name"},
		{s.AddUser("nowhere.org", "bob", "x"), "no domain nowhere.org"},
		{func() error { s.AddDomain("x.org", dir); return s.AddUser("x.org", "../evil", "x") }(), "want a plain name"},
		{s.AddDomain("x.org", dir), "given twice"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%v, want an error with %q", c.err, c.want)
		}
	}
}

// TestRelayNewlines: what the smarthost receives has CRLF for every line
// end: a message with "<CR>.<CR>" in it was passed on unchanged, and a
// smarthost that takes a bare CR for a line end would end the data there
// and run what follows as commands (SMTP smuggling).
func TestRelayNewlines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprint(c, "220 smarthost\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case strings.HasPrefix(cmd, "DATA"):
				fmt.Fprint(c, "354 go on\r\n")
				var data strings.Builder
				for !strings.HasSuffix(data.String(), "\r\n.\r\n") {
					b, err := r.ReadByte()
					if err != nil {
						return
					}
					data.WriteByte(b)
				}
				got <- data.String()
				fmt.Fprint(c, "250 taken\r\n")
			case strings.HasPrefix(cmd, "QUIT"):
				fmt.Fprint(c, "221 bye\r\n")
				return
			default:
				fmt.Fprint(c, "250 ok\r\n")
			}
		}
	}()
	store, _ := newStore(t)
	b := &backend{store: store, opts: SMTPOptions{RelayVia: ln.Addr().String()}, log: logging.Discard()}
	msg := "Subject: x\r\n\r\nbefore\r.\rMAIL FROM:<evil@example.com>\nafter\r\n"
	if err := b.relay("a@example.org", []string{"b@example.net"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	want := "Subject: x\r\n\r\nbefore\r\n..\r\nMAIL FROM:<evil@example.com>\r\nafter\r\n.\r\n"
	if data := <-got; data != want {
		t.Errorf("the smarthost received %q, want %q", data, want)
	}
}

// TestPOP3Guessing: a guesser gains nothing from more connections. The
// failures of one address make its next attempt wait, on any of its
// connections (the penalty doubles with each), and a connection ends after
// three failures; once, 300 connections gave 300 guesses a second.
func TestPOP3Guessing(t *testing.T) {
	store, _ := newStore(t)
	store.guesses.Base = 500 * time.Millisecond
	a := dialPOP3(t, store)
	a.c.SetDeadline(time.Now().Add(30 * time.Second))
	a.do("USER alice", false)
	for i := range 2 {
		if st, _ := a.do("PASS wrong", false); !strings.HasPrefix(st, "-ERR") {
			t.Fatalf("wrong password %d: %s", i+1, st)
		}
	}
	// Another connection of the same address: its first attempt waits
	// the address's penalty (two failures: 1 s) before its own refusal (1 s).
	srvAddr := a.c.RemoteAddr().String()
	c, err := net.Dial("tcp", srvAddr)
	if err != nil {
		t.Fatal(err)
	}
	b := &pop3Client{t: t, c: c, r: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	b.line()
	b.do("USER alice", false)
	began := time.Now()
	if st, _ := b.do("PASS wrong", false); !strings.HasPrefix(st, "-ERR") {
		t.Fatalf("wrong password on a second connection: %s", st)
	}
	if took := time.Since(began); took < 1800*time.Millisecond {
		t.Errorf("a second connection's guess took %v; want the address's penalty (1 s) and the refusal (1 s)", took)
	}
	// The first connection's third failure ends it.
	if st, _ := a.do("PASS wrong", false); !strings.HasPrefix(st, "-ERR") {
		t.Fatalf("third failure: %s", st)
	}
	if l, err := a.r.ReadString('\n'); !strings.HasPrefix(l, "-ERR too many") {
		t.Fatalf("after three failures: %q %v; want -ERR too many failed logins", l, err)
	}
	if _, err := a.r.ReadString('\n'); err == nil {
		t.Error("the connection is still open after three failures")
	}
	// The right password still gets in, after the wait, and clears it.
	if st, _ := b.do("PASS secret", false); !strings.HasPrefix(st, "+OK") {
		t.Fatalf("the right password: %s", st)
	}
	if d := store.guesses.Delay(c.LocalAddr()); d != 0 {
		t.Errorf("after a login, the address still waits %v", d)
	}
}
