package endpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

func init() {
	Register("ssl", parseSSL)
	Register("txsni", parseSNI)
}

// TLSListener accepts TLS connections on a plain listener. Accept returns
// *tls.Conn values whose handshake is complete; handshakes run in a
// goroutine per connection, bounded by HandshakeTimeout, so a slow or
// broken client never holds up the others. The ssl: and txsni: endpoints
// listen with one; a server that needs ALPN (HTTP/2) can take the plain
// listener and Config from it and make its own.
type TLSListener struct {
	net.Listener // the plain listener underneath
	Config       *tls.Config
	// HandshakeTimeout bounds each handshake (default 10s).
	HandshakeTimeout time.Duration
	// HandshakeError, if set, is told of each failed handshake.
	HandshakeError func(net.Conn, error)

	once sync.Once
	p    *preparedListener
}

func (l *TLSListener) init() {
	l.once.Do(func() {
		l.p = newPrepared(l.Listener, l.HandshakeTimeout, func(c net.Conn) (net.Conn, error) {
			tc := tls.Server(c, l.Config)
			if err := tc.Handshake(); err != nil {
				return nil, err
			}
			return tc, nil
		}, l.HandshakeError)
	})
}

// Accept returns the next connection whose handshake succeeded.
func (l *TLSListener) Accept() (net.Conn, error) {
	l.init()
	return l.p.Accept()
}

// SetDeadline sets the plain listener's accept deadline.
func (l *TLSListener) SetDeadline(t time.Time) error {
	l.init()
	return l.p.SetDeadline(t)
}

// Close closes the listener; connections still in their handshake are
// closed too.
func (l *TLSListener) Close() error {
	l.init()
	return l.p.Close()
}

// serverConfig returns torsion's TLS defaults: TLS 1.2 or later, and
// only forward-secret AEAD cipher suites (TLS 1.3's are all of that kind;
// for TLS 1.2, ECDHE with AES-GCM or ChaCha20-Poly1305). Go's own default
// also offers two ECDHE suites with AES-CBC and SHA-1, which testssl.sh
// reports as obsolete (LUCKY13); AllowLegacyCiphers adds them back.
func serverConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: slices.Clone(aeadSuites)}
}

// aeadSuites are the TLS 1.2 suites offered by default, in Go's order of
// preference.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// AllowLegacyCiphers makes cfg, a configuration from a TLS endpoint, also
// offer the ECDHE suites with AES-CBC and SHA-1, after the AEAD ones, for
// TLS 1.2 clients that have no AEAD suite (Android 4.3 and older, Safari 8
// and older, Java 7). They are still forward-secret, but CBC with SHA-1
// is what LUCKY13-style attacks target.
func AllowLegacyCiphers(cfg *tls.Config) {
	for _, id := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	} {
		if !slices.Contains(cfg.CipherSuites, id) {
			cfg.CipherSuites = append(cfg.CipherSuites, id)
		}
	}
}

// SSL listens for TLS on a TCP port, Twisted's
// "ssl:PORT:privateKey=KEY.pem:certKey=CERT.pem[:extraCertChain=CHAIN.pem][:interface=ADDR][:backlog=N]".
// privateKey defaults to server.pem and certKey to privateKey, so one PEM
// file holding both works.
type SSL struct {
	TCP            TCP
	PrivateKey     string
	CertKey        string
	ExtraCertChain string
	cert           tls.Certificate
}

func parseSSL(a Args) (Server, error) {
	p, err := bind(a, "port", "privateKey", "certKey", "interface", "backlog", "extraCertChain", "reuseport")
	if err != nil {
		return nil, err
	}
	tcp := Args{Kind: "tcp", Named: map[string]string{}}
	for _, k := range []string{"port", "interface", "backlog", "reuseport"} {
		if v, ok := p.get(k); ok {
			tcp.Named[k] = v
		}
	}
	t, err := parseTCP(tcp, false)
	if err != nil {
		return nil, err
	}
	s := SSL{TCP: t.(TCP), PrivateKey: "server.pem"}
	if v, ok := p.get("privateKey"); ok {
		s.PrivateKey = v
	}
	s.CertKey = s.PrivateKey
	if v, ok := p.get("certKey"); ok {
		s.CertKey = v
	}
	s.ExtraCertChain, _ = p.get("extraCertChain")
	if s.cert, err = loadKeyPair(s.CertKey, s.PrivateKey); err != nil {
		return nil, err
	}
	if s.ExtraCertChain != "" {
		chain, err := loadCerts(s.ExtraCertChain)
		if err != nil {
			return nil, err
		}
		s.cert.Certificate = append(s.cert.Certificate, chain...)
	}
	return s, nil
}

// loadKeyPair loads a certificate and its key, with errors naming the files.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return c, err // "open key.pem: no such file or directory"
		}
		if certFile == keyFile {
			return c, fmt.Errorf("%s: %w", certFile, err)
		}
		return c, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return c, nil
}

// loadCerts reads the DER certificates of a PEM file.
func loadCerts(file string) ([][]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			certs = append(certs, b.Bytes)
		}
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no certificate found", file)
	}
	return certs, nil
}

// String returns the description in canonical form.
func (s SSL) String() string {
	var b strings.Builder
	b.WriteString("ssl" + strings.TrimPrefix(s.TCP.String(), "tcp"))
	b.WriteString(":privateKey=" + Escape(s.PrivateKey))
	if s.CertKey != s.PrivateKey {
		b.WriteString(":certKey=" + Escape(s.CertKey))
	}
	if s.ExtraCertChain != "" {
		b.WriteString(":extraCertChain=" + Escape(s.ExtraCertChain))
	}
	return b.String()
}

// Listen binds the port; connections are TLS.
func (s SSL) Listen(ctx context.Context) (net.Listener, error) {
	ln, err := s.TCP.Listen(ctx)
	if err != nil {
		return nil, err
	}
	cfg := serverConfig()
	cfg.Certificates = []tls.Certificate{s.cert}
	return &TLSListener{Listener: ln, Config: cfg}, nil
}

// SNI serves TLS with a certificate chosen by the name the client asks
// for, the txsni package's "txsni:DIR:ENDPOINT" (such as
// "txsni:certs:tcp:443"). DIR holds HOST.pem files, each a certificate
// chain and its key; "*.DOMAIN.pem" serves the names below DOMAIN, and
// DEFAULT.pem clients that name no known host. Files added to DIR or
// replaced are used from the next handshake on, without a restart. Every
// file must load at start-up; later, a replaced file that does not load
// keeps serving its previous certificate and a new one that does not is
// passed over, each logged once with slog's default logger.
type SNI struct {
	Dir   string
	Inner Server
	certs *certDir
}

func parseSNI(a Args) (Server, error) {
	dir, inner, ok := cutUnescaped(a.Rest, ':')
	if !ok || dir == "" || inner == "" {
		return nil, fmt.Errorf("want txsni:DIR:ENDPOINT, such as txsni:certs:tcp:443")
	}
	dir = unescape(dir)
	in, err := Parse(inner)
	if err != nil {
		return nil, err
	}
	if _, isTLS := in.(SSL); isTLS {
		return nil, fmt.Errorf("the endpoint inside txsni must be plain, such as tcp:443")
	}
	cd := &certDir{dir: dir, cache: map[string]*cachedCert{}}
	if err := cd.check(); err != nil {
		return nil, err
	}
	return SNI{Dir: dir, Inner: in, certs: cd}, nil
}

// String returns the description in canonical form.
func (s SNI) String() string { return "txsni:" + Escape(s.Dir) + ":" + s.Inner.String() }

// Listen listens on the inner endpoint; connections are TLS.
func (s SNI) Listen(ctx context.Context) (net.Listener, error) {
	ln, err := s.Inner.Listen(ctx)
	if err != nil {
		return nil, err
	}
	cfg := serverConfig()
	cfg.GetCertificate = s.certs.get
	return &TLSListener{Listener: ln, Config: cfg}, nil
}

// certDir loads HOST.pem files on demand, reloading a file when its size
// or modification time changes. A file that stops loading, such as one
// caught half-written by a renewal, keeps serving its last good
// certificate; one that never loaded is passed over for the next
// candidate. Either is logged once per change of the file.
type certDir struct {
	dir   string
	mu    sync.Mutex
	cache map[string]*cachedCert
	// serving is set once check has passed: from then on a file that does
	// not load is logged, as there is no start-up left to fail.
	serving bool
}

type cachedCert struct {
	size    int64
	modTime time.Time
	cert    *tls.Certificate // the last certificate the file gave; nil if none
	err     error            // why the file, as it is now, does not load
}

// check loads every .pem file in the directory, so that a broken one is
// reported at start-up, and fails if there is none.
func (d *certDir) check() error {
	files, err := filepath.Glob(filepath.Join(d.dir, "*.pem"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(d.dir); err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no HOST.pem files in %s", d.dir)
	}
	for _, f := range files {
		if _, err := d.load(f); err != nil {
			return err
		}
	}
	d.mu.Lock()
	d.serving = true
	d.mu.Unlock()
	return nil
}

// load returns the certificate in file, from the cache while the file is
// unchanged. If the file does not load, the error comes with the file's
// last good certificate, or with nil if it never had one.
func (d *certDir) load(file string) (*tls.Certificate, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	c := d.cache[file]
	d.mu.Unlock()
	if c != nil && c.size == fi.Size() && c.modTime.Equal(fi.ModTime()) {
		return c.cert, c.err
	}
	n := &cachedCert{size: fi.Size(), modTime: fi.ModTime()}
	if cert, err := loadKeyPair(file, file); err == nil {
		n.cert = &cert
	} else {
		n.err = err
		if c != nil {
			n.cert = c.cert
		}
	}
	d.mu.Lock()
	d.cache[file] = n
	serving := d.serving
	d.mu.Unlock()
	if n.err != nil && serving {
		log := slog.Default()
		if n.cert != nil {
			log.Warn("txsni: a certificate file no longer loads; serving its previous certificate until it is fixed", "file", file, "error", n.err)
		} else {
			log.Warn("txsni: a certificate file does not load; clients that ask for its host get the next match", "file", file, "error", n.err)
		}
	}
	return n.cert, n.err
}

// get chooses the certificate for a handshake: HOST.pem, then *.DOMAIN.pem,
// then DEFAULT.pem.
func (d *certDir) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	var names []string
	if host := strings.TrimSuffix(strings.ToLower(hello.ServerName), "."); host != "" && !strings.ContainsAny(host, `/\`) && !strings.HasPrefix(host, ".") {
		names = append(names, host)
		if _, parent, ok := strings.Cut(host, "."); ok && parent != "" {
			names = append(names, "*."+parent)
		}
	}
	names = append(names, "DEFAULT")
	var broken []error
	for _, n := range names {
		cert, err := d.load(filepath.Join(d.dir, n+".pem"))
		if cert != nil {
			return cert, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			broken = append(broken, err)
		}
	}
	return nil, errors.Join(append([]error{fmt.Errorf("no certificate for %q in %s (and no DEFAULT.pem)", hello.ServerName, d.dir)}, broken...)...)
}
