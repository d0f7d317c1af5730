package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/testutil"
)

func TestTextHandler(t *testing.T) {
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want string // after the timestamp
	}{
		{"plain", func(l *slog.Logger) { l.Info("Site starting on 8080") }, "[-] Site starting on 8080"},
		{"system from With", func(l *slog.Logger) { l.With(SystemKey, "web").Info("hi") }, "[web] hi"},
		{"system per record", func(l *slog.Logger) { l.Info("hi", SystemKey, "echo") }, "[echo] hi"},
		{"attrs", func(l *slog.Logger) { l.Info("hi", "n", 3, "s", "a b", "e", "") }, `[-] hi n=3 s="a b" e=""`},
		{"level", func(l *slog.Logger) { l.Warn("careful") }, "[-] WARN: careful"},
		{"groups", func(l *slog.Logger) { l.WithGroup("req").With("id", 1).Info("x", slog.Group("g", "k", "v")) }, "[-] x req.id=1 req.g.k=v"},
		{"below level", func(l *slog.Logger) { l.Debug("no") }, ""},
		{"multi-line value", func(l *slog.Logger) {
			l.Error("the application failed", "uri", "/x", "traceback", "Traceback:\n  File \"app.py\"\nValueError\n")
		}, "[-] ERROR: the application failed uri=/x\n\ttraceback:\n\t\tTraceback:\n\t\t  File \"app.py\"\n\t\tValueError"},
		// What a client chose (an SSH or SMTP user name) can neither start
		// a record's line nor drive a terminal.
		{"control characters", func(l *slog.Logger) { l.Warn("login refused", "user", "a\x1b[31m\rb") }, `[-] WARN: login refused user="a\x1b[31m\rb"`},
		{"control characters in a block", func(l *slog.Logger) {
			l.Warn("login refused", "user", "a\x1b[31m\r\n2026-12-07 [-] forged\x07")
		}, "[-] WARN: login refused\n\tuser:\n\t\ta\\x1b[31m\\r\n\t\t2026-12-07 [-] forged\\x07"},
	}
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4} `)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := New(&buf, "text", slog.LevelInfo)
			if err != nil {
				t.Fatal(err)
			}
			tt.log(l)
			got := buf.String()
			if tt.want == "" {
				if got != "" {
					t.Errorf("logged %q, want nothing", got)
				}
				return
			}
			if !stamp.MatchString(got) {
				t.Fatalf("line %q does not start with a timestamp", got)
			}
			if got = strings.TrimSuffix(stamp.ReplaceAllString(got, ""), "\n"); got != tt.want {
				t.Errorf("line = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestJSONKeys: a JSON record names its system once, the record's own
// over the logger's (17 of 27 records once had it twice), and durations
// are seconds.
func TestJSONKeys(t *testing.T) {
	for _, tt := range []struct {
		name   string
		log    func(l *slog.Logger)
		system any
	}{
		{"the logger's", func(l *slog.Logger) { l.With(SystemKey, "web").Warn("x", "timeout", 3*time.Second) }, "web"},
		{"the record's over the logger's", func(l *slog.Logger) {
			l.With(SystemKey, "wsgi").Warn("x", SystemKey, "wsgi.errors", "timeout", 3*time.Second)
		}, "wsgi.errors"},
		{"a group after it", func(l *slog.Logger) { l.With(SystemKey, "web").WithGroup("g").Warn("x", "timeout", 3*time.Second) }, "web"},
		{"none", func(l *slog.Logger) { l.Warn("x", "timeout", 3*time.Second) }, nil},
		{"a duration from With", func(l *slog.Logger) { l.With("timeout", 3*time.Second).Warn("x") }, nil},
		{"a duration in a group", func(l *slog.Logger) { l.Warn("x", slog.Group("g", "n", 1, "timeout", 3*time.Second)) }, nil},
	} {
		var buf bytes.Buffer
		l, _ := New(&buf, "json", slog.LevelInfo)
		tt.log(l)
		dups, err := testutil.DuplicateKeys(buf.Bytes())
		if err != nil || len(dups) > 0 {
			t.Errorf("%s: %s: duplicate keys %v, %v", tt.name, buf.String(), dups, err)
		}
		var m map[string]any
		json.Unmarshal(buf.Bytes(), &m)
		timeout := m["timeout"]
		if g, ok := m["g"].(map[string]any); ok {
			timeout = g["timeout"]
		}
		if m[SystemKey] != tt.system || timeout != 3.0 {
			t.Errorf("%s: %s: want system %v and timeout 3 (seconds)", tt.name, buf.String(), tt.system)
		}
	}
}

// TestHandleLine: a line handed over as bytes is written as a record
// with that message: after the time and system (TextHandler) with the
// logger's attributes, or alone (PlainHandler).
func TestHandleLine(t *testing.T) {
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4} `)
	for _, tt := range []struct {
		name string
		log  func(w *bytes.Buffer) *slog.Logger
		want string // after the timestamp, if any
	}{
		{"text", func(w *bytes.Buffer) *slog.Logger {
			l, _ := New(w, "text", slog.LevelInfo)
			return l.With(SystemKey, "access")
		}, `[access] GET / "x"` + "\n"},
		{"text with attributes", func(w *bytes.Buffer) *slog.Logger {
			l, _ := New(w, "text", slog.LevelInfo)
			return l.With(SystemKey, "access", "k", "v")
		}, `[access] GET / "x" k=v` + "\n"},
		{"plain", func(w *bytes.Buffer) *slog.Logger { return slog.New(NewPlainHandler(w)) }, `GET / "x"` + "\n"},
	} {
		var buf bytes.Buffer
		h, ok := tt.log(&buf).Handler().(LineHandler)
		if !ok {
			t.Fatalf("%s: not a LineHandler", tt.name)
		}
		line := []byte(`GET / "x"`)
		if err := h.HandleLine(time.Now(), line); err != nil {
			t.Fatal(err)
		}
		if got := stamp.ReplaceAllString(buf.String(), ""); got != tt.want || string(line) != `GET / "x"` {
			t.Errorf("%s: wrote %q, want %q after the time (line now %q)", tt.name, buf.String(), tt.want, line)
		}
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "json", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	l.With(SystemKey, "web").Info("hello", "n", 1)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["msg"] != "hello" || m[SystemKey] != "web" || m["n"] != 1.0 {
		t.Errorf("record = %v", m)
	}
	if _, err := New(&buf, "xml", slog.LevelInfo); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("New(xml) = %v", err)
	}
}

func TestBufferedWriter(t *testing.T) {
	var mu sync.Mutex
	var got []string
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, string(p))
		return len(p), nil
	})
	writes := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	b := NewBufferedWriter(w, 50*time.Millisecond)
	b.Write([]byte("one\n"))
	b.Write([]byte("two\n"))
	if n := len(writes()); n != 0 {
		t.Errorf("%d writes before the interval", n)
	}
	testutil.WaitUntil(10*time.Second, func() bool { return len(writes()) > 0 }, func() {}) // the check below says what came
	if g := writes(); len(g) != 1 || g[0] != "one\ntwo\n" {
		t.Errorf("after the interval: %q, want one write of both lines", g)
	}
	big := strings.Repeat("x", bufferedMax)
	b.Write([]byte(big))
	if g := writes(); len(g) != 2 || g[1] != big {
		t.Errorf("a full buffer was not written through: %d writes", len(g))
	}
	b.Write([]byte("last\n"))
	b.Close()
	if g := writes(); g[len(g)-1] != "last\n" {
		t.Errorf("Close did not flush: %q", g[len(g)-1])
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestAppendTime(t *testing.T) {
	zone := time.FixedZone("X", -(5*3600 + 30*60))
	for _, tm := range []time.Time{
		time.Date(2026, 12, 2, 5, 6, 7, 0, time.UTC),
		time.Date(2026, 12, 2, 5, 6, 7, 5e6, time.UTC),
		time.Date(2026, 12, 2, 5, 6, 7, 999999999, time.UTC),
		time.Date(2026, 12, 2, 5, 6, 7, 120e6, zone),
		time.Date(2026, 12, 2, 5, 6, 8, 45e6, time.UTC),
	} {
		if got, want := string(appendTime(nil, tm)), tm.Format("2006-01-02T15:04:05.000-0700"); got != want {
			t.Errorf("appendTime(%v) = %q, want %q", tm, got, want)
		}
	}
}
