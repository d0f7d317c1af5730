package web

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/torsion-server/torsion/logging"
)

func TestAccessLog(t *testing.T) {
	root, _ := tree(t)
	s, _ := NewStatic(root, StaticOptions{})
	var buf bytes.Buffer
	log, _ := logging.New(&buf, "text", slog.LevelInfo)
	addr := serve(t, AccessLog(s, log))
	ts := `\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]`
	tests := []struct {
		name string
		req  string
		line string // regexp for the line after the log prefix
	}{
		{"file", get("/a.txt", "User-Agent: curl/8.0\r\nReferer: http://r/\r\n"),
			`127\.0\.0\.1 - - ` + ts + ` "GET /a\.txt HTTP/1\.1" 200 13 "http://r/" "curl/8\.0"`},
		{"no body", get("/a.txt", "If-None-Match: *\r\n"),
			`127\.0\.0\.1 - - ` + ts + ` "GET /a\.txt HTTP/1\.1" 304 - "-" "-"`},
		{"escapes", get(`/nope"x`, "User-Agent: a\"b\\c\xffd\r\n"),
			`127\.0\.0\.1 - - ` + ts + ` "GET /nope\\"x HTTP/1\.1" 404 \d+ "-" "a\\"b\\\\c\\xffd"`},
		{"range", get("/digits.txt", "Range: bytes=0-1\r\n"),
			`"GET /digits\.txt HTTP/1\.1" 206 2 `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf.Reset()
			raw(t, addr, tt.req)
			line := strings.TrimSpace(buf.String())
			if strings.Count(line, "\n") != 0 {
				t.Fatalf("want one line, got %q", line)
			}
			if !regexp.MustCompile(tt.line).MatchString(line) {
				t.Errorf("line %q\ndoes not match %q", line, tt.line)
			}
		})
	}
}

func TestStructuredAccessLog(t *testing.T) {
	root, _ := tree(t)
	s, _ := NewStatic(root, StaticOptions{})
	var buf bytes.Buffer
	log, _ := logging.New(&buf, "json", slog.LevelInfo)
	addr := serve(t, StructuredAccessLog(s, log))
	raw(t, addr, get("/a.txt?x=1", "User-Agent: curl/8.0\r\nReferer: http://r/\r\n"))
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %q", err, buf.String())
	}
	want := map[string]any{"msg": "request", "method": "GET", "uri": "/a.txt?x=1", "proto": "HTTP/1.1", "status": 200.0,
		"bytes": 13.0, "remote": "127.0.0.1", "referer": "http://r/", "user_agent": "curl/8.0"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v (record %v)", k, rec[k], v, rec)
		}
	}
	if d, ok := rec["duration"].(float64); !ok || d <= 0 || d > 5 {
		t.Errorf("duration = %v", rec["duration"])
	}
}

// TestAccessFormat: gunicorn's atoms lay out an access line; Apache's
// combined format is the default; an unknown atom is an error naming it.
func TestAccessFormat(t *testing.T) {
	r := httptest.NewRequest("GET", "/a%20b?x=1", nil)
	r.RemoteAddr = "192.0.2.7:5555"
	r.Header.Set("User-Agent", `ua "quoted"`)
	r.Header.Set("X-Request-Id", "id-1")
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	a := Answer{Status: 201, Bytes: 0, Start: start}
	for _, tt := range []struct{ layout, want string }{
		{CombinedFormat, `192.0.2.7 - - [07/Dec/2026:10:00:00 +0000] "GET /a%20b?x=1 HTTP/1.1" 201 - "-" "ua \"quoted\""`},
		{CombinedWithIDFormat, `192.0.2.7 - - [07/Dec/2026:10:00:00 +0000] "GET /a%20b?x=1 HTTP/1.1" 201 - "-" "ua \"quoted\"" "id-1"`},
		{`%(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s %({x-request-id}i)s %({X-None}i)s`, `GET /a b x=1 HTTP/1.1 201 0 - id-1 -`},
	} {
		f, err := ParseAccessFormat(tt.layout)
		if err != nil {
			t.Fatalf("%q: %v", tt.layout, err)
		}
		if got := f.Line(r, a); got != tt.want {
			t.Errorf("%q:\n got %s\nwant %s", tt.layout, got, tt.want)
		}
	}
	for _, bad := range []string{"%(z)s", "%(h", "%({X}o)s"} {
		if _, err := ParseAccessFormat(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestAccessRecordsFields: a structured access record encoded straight
// into the log's buffer (logging.FieldsHandler) is byte for byte the one
// built of slog attributes, for any handler, but for its time and
// duration.
func TestAccessRecordsFields(t *testing.T) {
	r := httptest.NewRequest("POST", "/a%20b?x=\"1\"", nil)
	r.RemoteAddr = "[2001:db8::1]:5555"
	r.Header.Set("User-Agent", "ua \"quoted\" \x01 é \xff")
	r.Header.Set("Referer", "http://r/\u2028")
	r.Header.Set(RequestIDHeader, "id-1")
	bare := httptest.NewRequest("GET", "/", nil)
	bare.RemoteAddr = "@" // a Unix socket's peer: no port
	varying := regexp.MustCompile(`"time":"[^"]*"|"duration":[-+.e0-9]+`)
	for _, req := range []*http.Request{r, bare} {
		var fast, slow bytes.Buffer
		l, _ := logging.New(&fast, "json", slog.LevelInfo)
		if _, ok := l.Handler().(logging.FieldsHandler); !ok {
			t.Fatal("the JSON handler takes no fields")
		}
		AccessRecords(l.With(logging.SystemKey, "access"))(req, Answer{Status: 201, Bytes: 7, Start: time.Now()})
		l, _ = logging.New(&slow, "json", slog.LevelInfo)
		AccessRecords(slog.New(attrsOnly{l.Handler()}).With(logging.SystemKey, "access"))(req, Answer{Status: 201, Bytes: 7, Start: time.Now()})
		got, want := varying.ReplaceAllString(fast.String(), ""), varying.ReplaceAllString(slow.String(), "")
		// Encoded straight into reused buffers, a record allocates less
		// than one of slog attributes (ten do not fit in a Record): none,
		// but for what the race detector's pools drop.
		l, _ = logging.New(io.Discard, "json", slog.LevelInfo)
		allocs := func(log *slog.Logger) float64 {
			observe := AccessRecords(log.With(logging.SystemKey, "access"))
			return testing.AllocsPerRun(200, func() { observe(req, Answer{Status: 201, Bytes: 7, Start: time.Now()}) })
		}
		if fields, attrs := allocs(l), allocs(slog.New(attrsOnly{l.Handler()})); fields >= attrs {
			t.Errorf("%s: %.1f allocations per record encoded as fields, %.1f as attributes", req.URL, fields, attrs)
		}
		if got != want || !strings.Contains(fast.String(), `"duration":`) || !json.Valid(fast.Bytes()) {
			t.Errorf("%s:\nfields %s\nattrs  %s", req.URL, fast.String(), slow.String())
		}
	}
}

// attrsOnly hides every method but slog.Handler's.
type attrsOnly struct{ slog.Handler }

func (h attrsOnly) WithAttrs(as []slog.Attr) slog.Handler { return attrsOnly{h.Handler.WithAttrs(as)} }
func (h attrsOnly) WithGroup(name string) slog.Handler    { return attrsOnly{h.Handler.WithGroup(name)} }

// TestPutLine: a line buffer that a client's long header grew is not
// kept for the next line.
func TestPutLine(t *testing.T) {
	big := make([]byte, 0, 1<<20)
	putLine(&big)
	for range 10 {
		if b := lines.Get().(*[]byte); cap(*b) > 16<<10 {
			t.Fatalf("the pool kept a buffer of %d bytes", cap(*b))
		}
	}
}
