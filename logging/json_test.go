package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"testing/slogtest"
	"time"
)

// TestJSONHandlerConformance: the handler keeps slog's rules for handlers
// (testing/slogtest).
func TestJSONHandlerConformance(t *testing.T) {
	var buf bytes.Buffer
	slogtest.Run(t, func(*testing.T) slog.Handler {
		buf.Reset()
		return NewJSONHandler(&buf, slog.LevelInfo)
	}, func(t *testing.T) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("%v: %q", err, buf.String())
		}
		return m
	})
}

// point is a value encoding/json marshals.
type point struct{ X, Y int }

// TestJSONAsSlog: what JSONHandler writes is byte for byte what
// slog.JSONHandler writes, for records without a system or a duration
// (which it writes its own way): strings that need escaping, numbers,
// times, errors, values encoding/json marshals, groups (empty, inlined,
// nested), and attributes from With and WithGroup.
func TestJSONAsSlog(t *testing.T) {
	at := time.Date(2026, 12, 8, 1, 2, 3, 456789000, time.FixedZone("", 3600))
	for _, tt := range []struct {
		name string
		log  func(l *slog.Logger)
	}{
		{"message", func(l *slog.Logger) { l.Info("hello") }},
		{"escapes", func(l *slog.Logger) {
			l.Warn("q\"b\\n\nr\rt\tc\x01\x1f<&>", "s", "é ü 日本 \u2028\u2029 \xff\xfe bad", "k\"ey", "v")
		}},
		{"numbers", func(l *slog.Logger) {
			l.Info("n", "i", -3, "u", uint64(math.MaxUint64), "f", 1.5, "tiny", 1e-7, "big", 1e21, "whole", 3.0, "b", true)
		}},
		{"time", func(l *slog.Logger) { l.Info("t", "at", at) }},
		{"error and marshalled", func(l *slog.Logger) {
			l.Error("e", "err", errors.New("it \"broke\""), "p", point{1, 2}, "list", []string{"a", "b"}, "nil", nil, "bytes", []byte("hi"))
		}},
		{"groups", func(l *slog.Logger) {
			l.Info("g", slog.Group("req", "id", 1, slog.Group("inner", "x", "y")), slog.Group("empty"), slog.Group("", "inlined", 2),
				slog.Group("only empty", slog.Group("e")))
		}},
		{"With and WithGroup", func(l *slog.Logger) {
			l.With("a", 1).WithGroup("g").With("b", 2).WithGroup("h").Info("x", "c", 3)
		}},
		{"an empty open group", func(l *slog.Logger) { l.With("a", 1).WithGroup("g").Info("x") }},
		{"a group opened by the record", func(l *slog.Logger) { l.WithGroup("g").WithGroup("h").Info("x", "c", 3) }},
		{"empty attributes", func(l *slog.Logger) { l.Info("x", slog.Attr{}, "k", "") }},
		{"levels", func(l *slog.Logger) { l.Log(context.Background(), slog.LevelWarn+2, "w2") }},
	} {
		var ours, theirs bytes.Buffer
		now := func(h slog.Handler) *slog.Logger { return slog.New(fixedTime{h, at}) }
		tt.log(now(NewJSONHandler(&ours, slog.LevelInfo)))
		tt.log(now(slog.NewJSONHandler(&theirs, nil)))
		if ours.Len() == 0 || ours.String() != theirs.String() {
			t.Errorf("%s:\n ours   %s theirs %s", tt.name, ours.String(), theirs.String())
		}
	}
}

// fixedTime gives every record the same time, for comparison.
type fixedTime struct {
	slog.Handler
	at time.Time
}

func (f fixedTime) Handle(ctx context.Context, r slog.Record) error {
	r.Time = f.at
	return f.Handler.Handle(ctx, r)
}
func (f fixedTime) WithAttrs(as []slog.Attr) slog.Handler {
	return fixedTime{f.Handler.WithAttrs(as), f.at}
}
func (f fixedTime) WithGroup(name string) slog.Handler {
	return fixedTime{f.Handler.WithGroup(name), f.at}
}

// TestJSONFloats: durations and floats are numbers as encoding/json
// writes them; NaN and the infinities, which JSON lacks, strings.
func TestJSONFloats(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{1500 * time.Millisecond, `1.5`},
		{time.Nanosecond, `1e-9`},
		{2.5e-7, `2.5e-7`},
		{1e21, `1e+21`},
		{123456.0, `123456`},
		{math.NaN(), `"NaN"`},
		{math.Inf(-1), `"-Inf"`},
	} {
		var buf bytes.Buffer
		slog.New(NewJSONHandler(&buf, slog.LevelInfo)).Info("x", "v", tt.v)
		if got := buf.String(); !strings.Contains(got, `"v":`+tt.want+`}`) {
			t.Errorf("%v: %s, want \"v\":%s", tt.v, got, tt.want)
		}
		if !json.Valid(buf.Bytes()) {
			t.Errorf("%v: not JSON: %s", tt.v, buf.String())
		}
	}
}

// TestHandleFields: members handed over encoded (JSONFields) make the
// record the same members as attributes make, inside the logger's groups
// and after its attributes; with none, an open group is left out, as
// slog leaves out an empty one.
func TestHandleFields(t *testing.T) {
	at := time.Date(2026, 12, 8, 1, 2, 3, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		logger func(l *slog.Logger) *slog.Logger
		fields bool
	}{
		{"top level", func(l *slog.Logger) *slog.Logger { return l.With(SystemKey, "access") }, true},
		{"after With", func(l *slog.Logger) *slog.Logger { return l.With("a", 1) }, true},
		{"in groups", func(l *slog.Logger) *slog.Logger { return l.With("a", 1).WithGroup("g").WithGroup("h") }, true},
		{"in a group With opened", func(l *slog.Logger) *slog.Logger { return l.WithGroup("g").With("a", 1) }, true},
		{"no fields in a group", func(l *slog.Logger) *slog.Logger { return l.With("a", 1).WithGroup("g") }, false},
	} {
		var ours, attrs bytes.Buffer
		l, _ := New(&ours, "json", slog.LevelInfo)
		f := JSONFields(nil)
		if tt.fields {
			f = f.String("k", "v \"q\"").Int("n", -2).Float("d", 0.25)
		}
		if err := tt.logger(l).Handler().(FieldsHandler).HandleFields(at, "m", f); err != nil {
			t.Fatal(err)
		}
		l, _ = New(&attrs, "json", slog.LevelInfo)
		var as []any
		if tt.fields {
			as = []any{"k", "v \"q\"", "n", -2, "d", 0.25}
		}
		slog.New(fixedTime{tt.logger(l).Handler(), at}).Info("m", as...)
		if ours.String() != attrs.String() {
			t.Errorf("%s:\nfields %sattrs  %s", tt.name, ours.String(), attrs.String())
		}
	}
}
