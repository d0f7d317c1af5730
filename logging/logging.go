// Package logging makes the slog loggers torsion writes with: twistd-style
// text lines or JSON objects, one per record, batched into few writes
// (BufferedWriter). Access logs hand their lines (LineHandler) and fields
// (FieldsHandler) over already formatted, from reused buffers.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/torsion-server/torsion/internal/timefmt"
)

// SystemKey is the attribute that names the part of the server a line comes
// from; the text format prints it in brackets, as twistd does.
const SystemKey = "system"

// New returns a logger writing to w in the given format, "text" or "json".
func New(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	switch format {
	case "text", "":
		return slog.New(NewTextHandler(w, level)), nil
	case "json":
		return slog.New(NewJSONHandler(w, level)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// PlainHandler writes each record's message alone, a line each: an access
// log of its own (--access-logfile) in the combined format, which tools
// such as goaccess and awstats read, with no timestamp or system before
// it. Attributes are not written.
type PlainHandler struct{ out }

// NewPlainHandler returns a PlainHandler writing to w.
func NewPlainHandler(w io.Writer) *PlainHandler { return &PlainHandler{newOut(w)} }

// Enabled implements slog.Handler: every level.
func (h *PlainHandler) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs implements slog.Handler; attributes are not written.
func (h *PlainHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

// WithGroup implements slog.Handler.
func (h *PlainHandler) WithGroup(string) slog.Handler { return h }

// Handle implements slog.Handler: the message and a newline, one write.
func (h *PlainHandler) Handle(_ context.Context, r slog.Record) error {
	return h.writeLine(nil, r.Message)
}

// HandleLine implements LineHandler: line and a newline, one write.
func (h *PlainHandler) HandleLine(_ time.Time, line []byte) error { return h.writeLine(line, "") }

// writeLine writes line, or else message, and a newline.
func (h *PlainHandler) writeLine(line []byte, message string) error {
	bp := getBuf()
	defer putBuf(bp)
	b := append(append(*bp, line...), message...)
	*bp = append(b, '\n')
	return h.emit(*bp)
}

// out is where a handler writes, shared with the handlers that With and
// WithGroup derive from it: each record one Write, under one lock.
type out struct {
	mu *sync.Mutex
	w  io.Writer
}

func newOut(w io.Writer) out { return out{new(sync.Mutex), w} }

// emit writes one record.
func (o out) emit(b []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err := o.w.Write(b)
	return err
}

// LineHandler is a slog.Handler that also takes an INFO record with no
// attributes of its own whose message is still bytes: an access line,
// formatted into a reused buffer, is written without becoming a string
// first. HandleLine does not keep line.
type LineHandler interface {
	slog.Handler
	HandleLine(t time.Time, line []byte) error
}

var (
	_ LineHandler = (*PlainHandler)(nil)
	_ LineHandler = (*TextHandler)(nil)
)

// bufs holds the buffers records are formatted in, so that a record
// costs no allocation. Buffers that grew past 16 KiB (a record with a
// traceback) are let go.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 16<<10 {
		return
	}
	*b = (*b)[:0]
	bufs.Put(b)
}

// Discard returns a logger that drops everything.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TextHandler writes records as twistd does:
//
//	2026-11-22T03:35:00.123+0000 [web] Site starting on 8080 addr=[::]:8080
//
// Levels other than INFO are shown after the system. Each record is one
// write to the underlying writer.
type TextHandler struct {
	out
	level  slog.Leveler
	system string
	attrs  []byte // preformatted " key=value" pairs from WithAttrs
	group  string // key prefix from WithGroup
}

// NewTextHandler returns a TextHandler writing records at or above level.
func NewTextHandler(w io.Writer, level slog.Leveler) *TextHandler {
	return &TextHandler{out: newOut(w), level: level, system: "-"}
}

// Enabled implements slog.Handler.
func (h *TextHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs implements slog.Handler.
func (h *TextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]byte(nil), h.attrs...)
	for _, a := range as {
		if a.Key == SystemKey && h.group == "" {
			c.system = a.Value.String()
			continue
		}
		c.attrs = appendAttr(c.attrs, h.group, a)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *TextHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = h.group + name + "."
	return &c
}

var seconds, zones = timefmt.New("2006-01-02T15:04:05"), timefmt.New("-0700")

// appendTime appends t as 2006-01-02T15:04:05.000-0700.
func appendTime(b []byte, t time.Time) []byte {
	b = seconds.Append(b, t)
	ms := t.Nanosecond() / 1e6
	b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	return zones.Append(b, t)
}

// Handle implements slog.Handler.
func (h *TextHandler) Handle(_ context.Context, r slog.Record) error {
	bp := getBuf()
	defer putBuf(bp)
	system := h.system
	var extra, blocks []byte
	r.Attrs(func(a slog.Attr) bool {
		switch {
		case a.Key == SystemKey && h.group == "":
			system = a.Value.String()
		case a.Value.Kind() == slog.KindString && strings.Contains(a.Value.String(), "\n"):
			// A traceback or a stack reads as it was written: indented
			// lines after the record's own.
			blocks = append(blocks, '\t')
			blocks = append(blocks, h.group...)
			blocks = append(blocks, a.Key...)
			blocks = append(blocks, ":\n"...)
			for line := range strings.SplitSeq(strings.TrimRight(a.Value.String(), "\n"), "\n") {
				blocks = append(blocks, "\t\t"...)
				blocks = appendEscaped(blocks, line)
				blocks = append(blocks, '\n')
			}
		default:
			extra = appendAttr(extra, h.group, a)
		}
		return true
	})
	buf := h.appendHead(*bp, r.Time, r.Level, system)
	buf = append(buf, r.Message...)
	buf = append(buf, h.attrs...)
	buf = append(buf, extra...)
	buf = append(buf, '\n')
	*bp = append(buf, blocks...)
	return h.emit(*bp)
}

// HandleLine implements LineHandler.
func (h *TextHandler) HandleLine(t time.Time, line []byte) error {
	bp := getBuf()
	defer putBuf(bp)
	buf := h.appendHead(*bp, t, slog.LevelInfo, h.system)
	buf = append(buf, line...)
	buf = append(buf, h.attrs...)
	*bp = append(buf, '\n')
	return h.emit(*bp)
}

// appendHead appends what begins a record: its time, system and level
// (unless INFO).
func (h *TextHandler) appendHead(buf []byte, t time.Time, level slog.Level, system string) []byte {
	if t.IsZero() {
		t = time.Now()
	}
	buf = appendTime(buf, t)
	buf = append(buf, " ["...)
	buf = append(buf, system...)
	buf = append(buf, "] "...)
	if level != slog.LevelInfo {
		buf = append(buf, level.String()...)
		buf = append(buf, ": "...)
	}
	return buf
}

func appendAttr(buf []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			buf = appendAttr(buf, p, g)
		}
		return buf
	}
	buf = append(buf, ' ')
	buf = append(buf, prefix...)
	buf = append(buf, a.Key...)
	buf = append(buf, '=')
	return appendValue(buf, a.Value.String())
}

// appendEscaped appends a line of a block with its control characters but
// tab escaped (\r, \x1b...), as Apache's ap_escape_logitem does: a value
// from a client (a user name with a CR or a terminal escape) can neither
// start a line of its own nor drive the terminal that shows the log.
func appendEscaped(buf []byte, line string) []byte {
	for _, r := range line {
		switch {
		case r == '\t' || r >= ' ' && r != 0x7f && !(r >= 0x80 && r < 0xa0):
			buf = utf8.AppendRune(buf, r)
		case r == '\r':
			buf = append(buf, `\r`...)
		default:
			buf = fmt.Appendf(buf, `\x%02x`, r)
		}
	}
	return buf
}

// appendValue quotes values that would be ambiguous bare.
func appendValue(buf []byte, s string) []byte {
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '=' || r == utf8.RuneError || r == 0x7f {
			return strconv.AppendQuote(buf, s)
		}
	}
	if s == "" {
		return append(buf, `""`...)
	}
	return append(buf, s...)
}
