// Package mailserver is Twisted's twistd mail in Go: an ESMTP server that
// delivers to Maildir mailboxes of virtual domains, and a POP3 server
// (RFC 1939) through which their users read and delete what arrived.
package mailserver

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/torsion-server/torsion/internal/penalty"
)

// Store holds the virtual domains: each domain's mail lives in a
// directory, one Maildir (tmp, new, cur) per user below it.
type Store struct {
	// Hostname names the server in the Received lines it adds.
	Hostname string
	// Observer, if set, is told what the SMTP and POP3 servers of this
	// store do (for metrics). Set it before serving.
	Observer Observer

	mu      sync.Mutex
	domains map[string]*domain
	first   string          // the first domain added: a bare postmaster's
	locked  map[string]bool // mailboxes a POP3 session holds
	// guesses paces logins by client address, over POP3 and SMTP AUTH
	// alike, as Dovecot's auth penalty does.
	guesses penalty.Table
}

type domain struct {
	dir        string
	users      map[string]string // user -> password
	postmaster string            // who gets postmaster@ (RFC 5321 4.5.1): the first user, unless one is called so
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{domains: map[string]*domain{}, locked: map[string]bool{}}
}

// AddDomain makes name a domain whose mail is kept under dir, which is
// created if need be.
func (s *Store) AddDomain(name, dir string) error {
	name = strings.ToLower(name)
	if name == "" || strings.ContainsAny(name, "/@ ") {
		return fmt.Errorf("domain %q: want a domain name", name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("domain %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.domains[name]; dup {
		return fmt.Errorf("domain %s given twice", name)
	}
	s.domains[name] = &domain{dir: dir, users: map[string]string{}}
	if s.first == "" {
		s.first = name
	}
	return nil
}

// AddUser adds a user with a password to a domain, and makes the user's
// Maildir.
func (s *Store) AddUser(domainName, user, password string) error {
	user = strings.ToLower(user)
	if user == "" || strings.ContainsAny(user, "/@ \t") || strings.HasPrefix(user, ".") {
		return fmt.Errorf("user %q: want a plain name", user)
	}
	s.mu.Lock()
	d := s.domains[strings.ToLower(domainName)]
	s.mu.Unlock()
	if d == nil {
		return fmt.Errorf("user %s: no domain %s", user, domainName)
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(d.dir, user, sub), 0o700); err != nil {
			return fmt.Errorf("user %s: %w", user, err)
		}
	}
	s.mu.Lock()
	d.users[user] = password
	if d.postmaster == "" || user == "postmaster" {
		d.postmaster = user
	}
	s.mu.Unlock()
	return nil
}

func (s *Store) hostname() string {
	if s.Hostname != "" {
		return s.Hostname
	}
	return "localhost"
}

// mailbox returns the Maildir of address (user@domain), or "" if the store
// has no such user.
//
// postmaster@DOMAIN, and a bare postmaster (for the first domain given),
// are always taken, as RFC 5321 4.5.1 requires: they go to a user called
// postmaster, or else to the domain's first user.
func (s *Store) mailbox(address string) string {
	user, dom, ok := strings.Cut(strings.ToLower(address), "@")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		if user != "postmaster" || s.first == "" {
			return ""
		}
		dom = s.first
	}
	d := s.domains[dom]
	if d == nil {
		return ""
	}
	if _, ok := d.users[user]; !ok {
		if user != "postmaster" || d.postmaster == "" {
			return ""
		}
		user = d.postmaster
	}
	return filepath.Join(d.dir, user)
}

// hasDomain reports whether the store takes mail for domain.
func (s *Store) hasDomain(dom string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.domains[strings.ToLower(dom)] != nil
}

// refusalDelay slows each refused login, a guesser's pace on one
// connection; the address's penalty comes on top, whatever connection its
// next attempt comes on.
const refusalDelay = time.Second

// Observer is told what a store's mail servers do. Its methods are
// called from many connections at once.
type Observer interface {
	// Session: a client connected over protocol ("smtp" or "pop3").
	Session(protocol string)
	// Login: a client tried to log in over protocol, and succeeded or not.
	Login(protocol string, ok bool)
	// Delivery: a message accepted was "delivered" to local mailboxes
	// and/or "relayed" to the smarthost, or "failed" (the client was told
	// to try again).
	Delivery(result string)
}

// observe calls f with the store's Observer, if it has one.
func (s *Store) observe(f func(Observer)) {
	if s.Observer != nil {
		f(s.Observer)
	}
}

// login checks a user's password with check, which is given the password
// the user has; name is user@domain, or a bare user when the store has one
// domain. It returns the user's Maildir. An attempt from remote first
// waits the address's penalty, which each failure doubles.
func (s *Store) login(protocol string, remote net.Addr, name string, check func(password string) bool) (string, bool) {
	s.guesses.Wait(context.Background(), remote) // at most penalty.DefaultMax
	box, ok := s.checkLogin(name, check)
	s.observe(func(o Observer) { o.Login(protocol, ok) })
	if !ok {
		s.guesses.Fail(remote)
		time.Sleep(refusalDelay)
		return "", false
	}
	s.guesses.Succeed(remote)
	return box, true
}

func (s *Store) checkLogin(name string, check func(password string) bool) (string, bool) {
	name = strings.ToLower(name)
	if !strings.Contains(name, "@") {
		s.mu.Lock()
		if len(s.domains) == 1 {
			for d := range s.domains {
				name += "@" + d
			}
		}
		s.mu.Unlock()
	}
	user, dom, _ := strings.Cut(name, "@")
	s.mu.Lock()
	d := s.domains[dom]
	var want string
	var ok bool
	if d != nil {
		want, ok = d.users[user]
	}
	s.mu.Unlock()
	if !ok || !check(want) {
		return "", false
	}
	return filepath.Join(d.dir, user), true
}

// is returns a check for login that the password is given.
func is(given string) func(string) bool {
	return func(password string) bool { return subtle.ConstantTimeCompare([]byte(password), []byte(given)) == 1 }
}

// apopDigest is APOP's proof of a password (RFC 1939 section 7): the MD5
// of the server's greeting stamp and the password, in lower-case hex.
func apopDigest(stamp, password string) string {
	sum := md5.Sum([]byte(stamp + password))
	return hex.EncodeToString(sum[:])
}

// lock takes a mailbox for one POP3 session (RFC 1939 wants it exclusive).
func (s *Store) lock(box string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locked[box] {
		return false
	}
	s.locked[box] = true
	return true
}

func (s *Store) unlock(box string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.locked, box)
}

// deliver writes a message to a Maildir: into tmp, then renamed into new,
// so that a reader never sees half a message.
//
// The file has LF line ends, as Maildir readers expect (a message's CRLFs
// become LFs, so no file mixes the two), and its name carries its sizes as
// Dovecot writes them: ,S= on disk and ,W= with CRLF line ends, what POP3
// counts.
func deliver(box string, msg []byte) error {
	msg = bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	var id [8]byte
	rand.Read(id[:])
	host, _ := os.Hostname()
	name := fmt.Sprintf("%d.%s.%s,S=%d,W=%d", time.Now().UnixNano(), hex.EncodeToString(id[:]),
		strings.NewReplacer("/", "_", ",", "_", ":", "_").Replace(host), len(msg), len(msg)+bytes.Count(msg, []byte("\n")))
	tmp := filepath.Join(box, "tmp", name)
	if err := os.WriteFile(tmp, msg, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(box, "new", name))
}

// message is one message of a mailbox, as a POP3 session sees it.
type message struct {
	path    string
	uid     string
	size    int64
	deleted bool
}

// list reads a Maildir's messages (new and cur), oldest first.
func list(box string) ([]*message, error) {
	var msgs []*message
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(box, sub))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			base, _, _ := strings.Cut(e.Name(), ":") // cur names carry ":2,flags"
			uid, sizes, _ := strings.Cut(base, ",")  // and ",S=...,W=..." the sizes
			size := info.Size()
			if _, w, ok := strings.Cut(","+sizes, ",W="); ok {
				// The size as POP3 sends it, with CRLF line ends.
				if n, err := strconv.ParseInt(strings.SplitN(w, ",", 2)[0], 10, 64); err == nil {
					size = n
				}
			}
			msgs = append(msgs, &message{path: filepath.Join(box, sub, e.Name()), uid: uid, size: size})
		}
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].uid < msgs[j].uid })
	return msgs, nil
}

// readMessage reads a message whole.
func readMessage(m *message) ([]byte, error) {
	f, err := os.Open(m.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
