package web

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// AccessFormat is an access line's layout in gunicorn's atoms (its
// --access-logformat), parsed once: text, and %(NAME)s for
//
//	h remote address, l "-", u "-" (no user), t the time in brackets
//	([10/Oct/2000:13:55:36 -0700]), r the request line, m the method,
//	U the path, q the query, H the protocol, s the status, B the body's
//	bytes, b the same or "-" for none, f the Referer, a the User-Agent,
//	T the seconds taken, M milliseconds, D microseconds, L decimal
//	seconds, p the process id, {NAME}i a request header, {NAME}e an
//	environment variable.
//
// Values from the client are escaped as Apache escapes them, and an empty
// one is "-".
type AccessFormat struct{ parts []accessPart }

// accessPart is text (atom 0) or an atom, with its header or variable.
type accessPart struct {
	atom byte
	text string
}

// The common layouts: Apache's combined format (what goaccess and awstats
// read), and the same with the request id after it.
const (
	CombinedFormat       = `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"`
	CombinedWithIDFormat = CombinedFormat + ` "%({X-Request-Id}i)s"`
)

// ParseAccessFormat parses a layout; an unknown atom is an error naming it.
func ParseAccessFormat(layout string) (AccessFormat, error) {
	var f AccessFormat
	for layout != "" {
		i := strings.Index(layout, "%(")
		if i < 0 {
			f.parts = append(f.parts, accessPart{text: layout})
			break
		}
		if i > 0 {
			f.parts = append(f.parts, accessPart{text: layout[:i]})
		}
		end := strings.Index(layout[i:], ")s")
		if end < 0 {
			return f, fmt.Errorf("%q: an atom %%(NAME)s is not closed", layout[i:])
		}
		atom := layout[i+2 : i+end]
		layout = layout[i+end+2:]
		if name, ok := strings.CutPrefix(atom, "{"); ok {
			name, kind, ok := strings.Cut(name, "}")
			switch {
			case ok && kind == "i":
				f.parts = append(f.parts, accessPart{atom: 'i', text: http.CanonicalHeaderKey(name)})
			case ok && kind == "e":
				f.parts = append(f.parts, accessPart{text: orDash(os.Getenv(name))})
			default:
				return f, fmt.Errorf("%%(%s)s: want {NAME}i (a request header) or {NAME}e (an environment variable)", atom)
			}
			continue
		}
		switch {
		case atom == "l" || atom == "u":
			f.parts = append(f.parts, accessPart{text: "-"}) // no identd, no user
		case len(atom) != 1 || !strings.Contains("htrmUqHsBbfaTMDLp", atom):
			return f, fmt.Errorf("%%(%s)s is not an atom (h l u t r m U q H s B b f a T M D L p {NAME}i {NAME}e)", atom)
		default:
			f.parts = append(f.parts, accessPart{atom: atom[0]})
		}
	}
	// Text beside text is one part: "%(h)s %(l)s %(u)s %(t)s" is h,
	// " - - ", t.
	merged := f.parts[:0]
	for _, p := range f.parts {
		if n := len(merged); n > 0 && p.atom == 0 && merged[n-1].atom == 0 {
			merged[n-1].text += p.text
			continue
		}
		merged = append(merged, p)
	}
	f.parts = merged
	return f, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var pidText = "<" + strconv.Itoa(os.Getpid()) + ">"

// Line formats one request's access line.
func (f AccessFormat) Line(r *http.Request, a Answer) string {
	return string(f.AppendLine(make([]byte, 0, 256), r, a))
}

// AppendLine appends one request's access line to b.
func (f AccessFormat) AppendLine(b []byte, r *http.Request, a Answer) []byte {
	for _, p := range f.parts {
		switch p.atom {
		case 0:
			b = append(b, p.text...)
		case 'h':
			b = appendEscaped(b, orDash(remoteHost(r)))
		case 't':
			b = append(b, '[')
			b = append(stamps.Append(b, a.Start), ']')
		case 'r':
			b = appendEscaped(b, r.Method)
			b = append(b, ' ')
			b = appendEscaped(b, r.RequestURI)
			b = append(b, ' ')
			b = appendEscaped(b, r.Proto)
		case 'm':
			b = appendEscaped(b, r.Method)
		case 'U':
			b = appendEscaped(b, orDash(r.URL.Path))
		case 'q':
			b = appendEscaped(b, r.URL.RawQuery)
		case 'H':
			b = appendEscaped(b, r.Proto)
		case 's':
			b = strconv.AppendInt(b, int64(a.Status), 10)
		case 'B':
			b = strconv.AppendInt(b, a.Bytes, 10)
		case 'b':
			if a.Bytes == 0 {
				b = append(b, '-')
			} else {
				b = strconv.AppendInt(b, a.Bytes, 10)
			}
		case 'f':
			b = appendEscaped(b, headerOrDash(r, "Referer"))
		case 'a':
			b = appendEscaped(b, headerOrDash(r, "User-Agent"))
		case 'i':
			b = appendEscaped(b, headerOrDash(r, p.text))
		case 'T':
			b = strconv.AppendInt(b, int64(time.Since(a.Start)/time.Second), 10)
		case 'M':
			b = strconv.AppendInt(b, int64(time.Since(a.Start)/time.Millisecond), 10)
		case 'D':
			b = strconv.AppendInt(b, int64(time.Since(a.Start)/time.Microsecond), 10)
		case 'L':
			b = strconv.AppendFloat(b, time.Since(a.Start).Seconds(), 'f', 6, 64)
		case 'p':
			b = append(b, pidText...)
		}
	}
	return b
}
