package httpserver

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// limits bound what a client may send in a request head: Options'
// fields of the same names, defaults applied.
type limits struct {
	MaxRequestLine, MaxHeaderBytes, MaxHeaders int
	RefuseUnderscores                          bool // 400 for a header name with an underscore; else it is dropped
}

// errFraming is what a body read returns after malformed chunked framing.
var errFraming = errors.New("malformed chunked encoding")

// head is a parsed request head.
type head struct {
	method, target, proto string
	minor                 int
	header                http.Header
	host                  string
	length                int64 // 0 when there is no body
	chunked               bool
	close                 bool   // the client asked to close after the response
	expect                string // the Expect field, if any
	dropped               int    // header fields with underscores, dropped
}

// parseHead checks a request head ending in CRLFCRLF, per RFC 9112, and
// parses it; or it returns an error status and message. It refuses what
// lets requests be smuggled past a proxy or read differently by the
// application:
//
//   - control characters in the request line or in header fields, and
//     obsolete line folding,
//   - header names that are not tokens, a header name with an underscore
//     when RefuseUnderscores is set (WSGI maps "X_A" and "X-A" to the same
//     variable: by default such a field is dropped, as nginx and gunicorn
//     drop it, and counted in head.dropped), a repeated or missing
//     Host, a Host that is not a host, a repeated Content-Type (which an
//     application and a proxy could each read differently),
//   - Content-Length that is not plain digits, or repeated even with one
//     value; Transfer-Encoding other than exactly "chunked"; both at once;
//     Transfer-Encoding in HTTP/1.0,
//   - request targets other than a path, an http(s) URI with a valid
//     authority, "*" for OPTIONS and host:port for CONNECT (checkTarget),
//   - a malformed HTTP version (400; a well-formed one other than 1.0 and
//     1.1 gets 505),
//   - request lines and header counts over the limits (414, 431).
//
// Strings in the result share s's memory, so a head costs one allocation
// for all its fields.
func (l limits) parseHead(s string) (h head, code int, msg string) {
	s = s[:len(s)-4]
	reqLine, rest, _ := strings.Cut(s, "\r\n")
	if len(reqLine) > l.MaxRequestLine {
		return h, http.StatusRequestURITooLong, "The request line is too long."
	}
	method, r, ok1 := strings.Cut(reqLine, " ")
	target, version, ok2 := strings.Cut(r, " ")
	if !ok1 || !ok2 || !isToken(method) || len(target) == 0 || !visible(target) {
		return h, 400, "Malformed request line."
	}
	if msg := checkTarget(method, target); msg != "" {
		return h, 400, msg
	}
	h.method, h.target, h.proto = method, target, version
	switch {
	case version == "HTTP/1.1":
		h.minor = 1
	case version == "HTTP/1.0":
	case len(version) == 8 && strings.HasPrefix(version, "HTTP/") && isDigit(version[5]) && version[6] == '.' && isDigit(version[7]):
		return h, http.StatusHTTPVersionNotSupported, "Only HTTP/1.0 and HTTP/1.1 are supported here."
	default:
		return h, 400, "Malformed HTTP version."
	}
	fields := 0
	if rest != "" {
		fields = strings.Count(rest, "\n") + 1
	}
	if fields > l.MaxHeaders {
		return h, http.StatusRequestHeaderFieldsTooLarge, "Too many header fields."
	}
	h.header = make(http.Header, fields)
	h.length = -1
	var te, hosts int
	var conn []string
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\r\n")
		if line == "" {
			return h, 400, "Malformed header field."
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h, 400, "Obsolete line folding is not accepted."
		}
		name, value, ok := checkField(line)
		if !ok {
			return h, 400, "Malformed header field."
		}
		if strings.IndexByte(name, '_') >= 0 {
			if l.RefuseUnderscores {
				return h, 400, "Header names with underscores are not accepted."
			}
			h.dropped++
			continue
		}
		key := canonicalKey(name)
		switch key {
		case "Content-Length":
			if h.length >= 0 {
				return h, 400, "Content-Length is repeated."
			}
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || !digits(value) {
				return h, 400, "Invalid Content-Length."
			}
			h.length = n
		case "Transfer-Encoding":
			te++
			if !strings.EqualFold(value, "chunked") {
				return h, 400, "Only Transfer-Encoding: chunked is accepted."
			}
			continue // the body reader removes the chunking
		case "Host":
			hosts++
			if !ValidHost(value) {
				return h, 400, "Invalid Host."
			}
			h.host = value
			continue // net/http's convention: r.Host, not r.Header
		case "Connection":
			conn = append(conn, value)
		case "Expect":
			h.expect = value
		case "Content-Type":
			if _, ok := h.header[key]; ok {
				return h, 400, "Content-Type is repeated."
			}
		}
		h.header[key] = append(h.header[key], value)
	}
	switch {
	case te > 1:
		return h, 400, "Transfer-Encoding is repeated."
	case te == 1 && h.length >= 0:
		return h, 400, "Both Content-Length and Transfer-Encoding are set."
	case te == 1 && h.minor == 0:
		return h, 400, "Transfer-Encoding is not allowed in HTTP/1.0."
	case hosts > 1:
		return h, 400, "Host is repeated."
	case hosts == 0 && h.minor == 1:
		return h, 400, "HTTP/1.1 requests must have a Host."
	}
	h.length, h.chunked = max(h.length, 0), te == 1
	if h.minor == 0 {
		h.close = !hasToken(conn, "keep-alive")
	} else {
		h.close = hasToken(conn, "close")
	}
	return h, 0, ""
}

// hasToken reports whether a comma-separated list in vals holds token.
func hasToken(vals []string, token string) bool {
	for _, v := range vals {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// checkTarget checks a request target against RFC 9112 3.2: origin-form
// ("/path?query") for every method; absolute-form only as an http or https
// URI with a valid authority; "*" only for OPTIONS; authority-form
// ("host:port") only for CONNECT. It returns why a target is refused, or "".
func checkTarget(method, target string) string {
	switch {
	case target[0] == '/':
		return ""
	case target == "*":
		if method != http.MethodOptions {
			return "The request target * is only for OPTIONS."
		}
		return ""
	case method == http.MethodConnect:
		if host, port, err := net.SplitHostPort(target); err != nil || host == "" || !digits(port) || !ValidHost(target) {
			return "CONNECT needs a target of the form host:port."
		}
		return ""
	}
	scheme, rest, _ := strings.Cut(target, "://")
	if !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") {
		return "The request target must be a path, or an http or https URI."
	}
	authority := rest[:strings.IndexAny(rest+"/", "/?")]
	if authority == "" || !ValidHost(authority) || strings.HasPrefix(authority, ":") {
		return "The request target's authority is not a valid host."
	}
	return ""
}

// ValidHost reports whether v is host[:port] as RFC 9110 7.2 allows in a
// Host field: an IP literal in brackets, or a reg-name (letters, digits,
// "-._~", sub-delims and percent-escapes), then optionally ":" and
// digits. Userinfo ("user@host"), quotes, spaces and a second ":" are
// refused. Empty is allowed (a Host for a target without an authority).
func ValidHost(v string) bool {
	host, port := v, ""
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return false
		}
		host, port = v[1:end], v[end+1:]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return false
		}
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		}
	} else {
		if i := strings.IndexByte(v, ':'); i >= 0 {
			host, port = v[:i], v[i+1:]
		}
		for i := 0; i < len(host); i++ {
			c := host[i]
			switch {
			case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~!$&'()*+,;=", c) >= 0:
			case c == '%' && i+2 < len(host) && isHex(host[i+1]) && isHex(host[i+2]):
				i += 2
			default:
				return false
			}
		}
	}
	return len(port) <= 5 && (port == "" || digits(port))
}

// commonKeys holds the canonical form of frequent header names, so that
// parsing them allocates nothing.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Length", "Content-Type", "Cookie", "Expect", "Host",
		"If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since", "Origin", "Pragma",
		"Range", "Referer", "Transfer-Encoding", "Upgrade", "User-Agent", "X-Forwarded-For",
		"X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip", "X-Requested-With", "Forwarded",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Upgrade-Insecure-Requests", "Dnt", "Te", "Trailer"} {
		m[k] = k
	}
	return m
}()

// canonicalKey is http.CanonicalHeaderKey for a token, without allocating
// for the common names.
func canonicalKey(name string) string {
	if k, ok := commonKeys[name]; ok {
		return k
	}
	var buf [64]byte
	if len(name) <= len(buf) {
		b := buf[:len(name)]
		upper := true
		for i := 0; i < len(name); i++ {
			c := name[i]
			if upper && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			} else if !upper && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b[i] = c
			upper = c == '-'
		}
		if k, ok := commonKeys[string(b)]; ok {
			return k
		}
		if string(b) == name {
			return name
		}
	}
	return http.CanonicalHeaderKey(name)
}

// checkField splits "name: value" and checks both parts.
func checkField[T string | []byte](line T) (name, value T, ok bool) {
	i := strings.IndexByte(string(line), ':')
	if i < 0 || !isToken(line[:i]) {
		return name, value, false
	}
	name, value = line[:i], line[i+1:]
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	for len(value) > 0 && (value[len(value)-1] == ' ' || value[len(value)-1] == '\t') {
		value = value[:len(value)-1]
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < ' ' && c != '\t' || c == 0x7f {
			return name, value, false
		}
	}
	return name, value, true
}

// chunkSize parses "HEX[;ext]" strictly: hex digits only, and nothing but
// an extension after them.
func chunkSize(line []byte) (int64, bool) {
	i := 0
	for i < len(line) && i < 16 && isHex(line[i]) {
		i++
	}
	if i == 0 || i < len(line) && isHex(line[i]) {
		return 0, false
	}
	size, err := strconv.ParseInt(string(line[:i]), 16, 64)
	if err != nil {
		return 0, false
	}
	// An extension starts right after the size: RFC 9112 allows
	// whitespace before ';', but net/http does not, so neither do we.
	ext := line[i:]
	if len(ext) > 0 && ext[0] != ';' {
		return 0, false
	}
	for _, c := range ext {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, false
		}
	}
	return size, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digits(b string) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// isToken reports whether b is an RFC 9110 token.
func isToken[T string | []byte](b T) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if c := b[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// visible reports whether b holds only visible ASCII, as a request target must.
func visible(b string) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
