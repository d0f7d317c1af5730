package logging

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// JSONHandler writes a JSON object per record, as slog.JSONHandler does
// ("time", "level", "msg", then the attributes, groups as nested
// objects), with two differences that strict readers (Elasticsearch)
// need: the system (SystemKey) appears once, right after the message,
// the record's own or else the logger's, where slog would write each one
// given; and durations are seconds, a number ("timeout": 3), not
// nanoseconds. It encodes records itself: slog's encoder costs an access
// record about twice as much.
type JSONHandler struct {
	out
	level  slog.Leveler
	system string   // from WithAttrs before any group; "" if none
	pre    []byte   // the attributes of WithAttrs, encoded, each after a comma
	groups []string // the groups of WithGroup, outermost first
	opened int      // how many of groups pre has opened
}

// NewJSONHandler returns a JSONHandler writing records at or above level.
func NewJSONHandler(w io.Writer, level slog.Leveler) *JSONHandler {
	return &JSONHandler{out: newOut(w), level: level}
}

// Enabled implements slog.Handler.
func (h *JSONHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs implements slog.Handler.
func (h *JSONHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.pre = append([]byte(nil), h.pre...)
	for _, a := range as {
		if a.Key == SystemKey && len(h.groups) == 0 {
			c.system = a.Value.String()
			continue
		}
		c.pre, c.opened = appendMember(c.pre, a, c.groups, c.opened)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *JSONHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.groups = append(h.groups[:len(h.groups):len(h.groups)], name)
	return &c
}

// Handle implements slog.Handler.
func (h *JSONHandler) Handle(_ context.Context, r slog.Record) error {
	bp := getBuf()
	defer putBuf(bp)
	system := h.system
	if len(h.groups) == 0 {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == SystemKey {
				system = a.Value.String()
			}
			return true
		})
	}
	b := h.appendHead(*bp, r.Time, r.Level, r.Message, system)
	opened := h.opened
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != SystemKey || len(h.groups) > 0 {
			b, opened = appendMember(b, a, h.groups, opened)
		}
		return true
	})
	*bp = b
	return h.end(bp, opened)
}

// HandleFields implements FieldsHandler.
func (h *JSONHandler) HandleFields(t time.Time, message string, fields []byte) error {
	bp := getBuf()
	defer putBuf(bp)
	b := h.appendHead(*bp, t, slog.LevelInfo, message, h.system)
	opened := h.opened
	if len(fields) > 0 {
		b, opened = openGroups(b, h.groups, opened)
		if b[len(b)-1] == '{' {
			fields = fields[1:] // the first member of its object: no comma
		}
		b = append(b, fields...)
	}
	*bp = b
	return h.end(bp, opened)
}

// appendHead appends a record's time, level, message and system, and the
// attributes of With.
func (h *JSONHandler) appendHead(b []byte, t time.Time, level slog.Level, message, system string) []byte {
	b = append(b, '{')
	if !t.IsZero() {
		b = append(b, `"time":"`...)
		b = append(t.Round(0).AppendFormat(b, time.RFC3339Nano), `",`...)
	}
	b = append(b, `"level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":`...)
	b = appendJSONString(b, message)
	if system != "" {
		b = append(b, `,"system":`...)
		b = appendJSONString(b, system)
	}
	return append(b, h.pre...)
}

// end closes the opened groups and the record, and writes it.
func (h *JSONHandler) end(bp *[]byte, opened int) error {
	b := *bp
	for range opened {
		b = append(b, '}')
	}
	*bp = append(b, "}\n"...)
	return h.emit(*bp)
}

// FieldsHandler is a slog.Handler that also takes an INFO record whose
// attributes come encoded already, as JSON members each after a comma
// (JSONFields): a structured access record, built in a reused buffer,
// costs no slog.Attr. HandleFields does not keep fields.
type FieldsHandler interface {
	slog.Handler
	HandleFields(t time.Time, message string, fields []byte) error
}

var _ FieldsHandler = (*JSONHandler)(nil)

// JSONFields are members of a JSON object, each after a comma, encoded as
// JSONHandler encodes attributes; each method appends one.
type JSONFields []byte

// String appends key and the string v.
func (f JSONFields) String(key, v string) JSONFields { return appendJSONString(f.key(key), v) }

// Int appends key and the integer v.
func (f JSONFields) Int(key string, v int64) JSONFields { return strconv.AppendInt(f.key(key), v, 10) }

// Float appends key and the number v (a duration in seconds, say).
func (f JSONFields) Float(key string, v float64) JSONFields { return appendJSONFloat(f.key(key), v) }

// key appends the comma and the key that begin a member.
func (f JSONFields) key(k string) []byte { return append(appendJSONString(append(f, ','), k), ':') }

// appendMember appends a as a member of the innermost of groups, first
// opening the groups not yet opened (groups[opened:]); an attribute that
// writes nothing (an empty key and value, an empty group) opens none. It
// returns how many groups are open.
func appendMember(b []byte, a slog.Attr, groups []string, opened int) ([]byte, int) {
	a.Value = a.Value.Resolve()
	if empty(a) {
		return b, opened
	}
	b, opened = openGroups(b, groups, opened)
	return appendJSONAttr(b, a), opened
}

// openGroups opens the groups not yet opened, groups[opened:], for a
// member to come; it returns how many are open: all.
func openGroups(b []byte, groups []string, opened int) ([]byte, int) {
	for _, g := range groups[opened:] {
		b = appendJSONString(comma(b), g)
		b = append(b, ":{"...)
	}
	return b, len(groups)
}

// comma appends the comma that goes before a member, unless it is the
// first of its object. (b is never a record's first member: "level" is.)
func comma(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '{' {
		return b
	}
	return append(b, ',')
}

// empty reports whether a, resolved, writes nothing: slog drops an
// attribute with an empty key and value, and a group with no members.
func empty(a slog.Attr) bool {
	if a.Equal(slog.Attr{}) {
		return true
	}
	if a.Value.Kind() != slog.KindGroup {
		return false
	}
	for _, m := range a.Value.Group() {
		m.Value = m.Value.Resolve()
		if !empty(m) {
			return false
		}
	}
	return true
}

// appendJSONAttr appends a, resolved and not empty, as a member.
func appendJSONAttr(b []byte, a slog.Attr) []byte {
	v := a.Value
	if v.Kind() == slog.KindGroup && a.Key == "" { // inlined, as slog does
		return appendJSONMembers(b, v.Group())
	}
	b = appendJSONString(comma(b), a.Key)
	b = append(b, ':')
	switch v.Kind() {
	case slog.KindString:
		return appendJSONString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return appendJSONFloat(b, v.Float64())
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return appendJSONFloat(b, v.Duration().Seconds())
	case slog.KindTime:
		b = append(b, '"')
		return append(v.Time().Round(0).AppendFormat(b, time.RFC3339Nano), '"')
	case slog.KindGroup:
		return append(appendJSONMembers(append(b, '{'), v.Group()), '}')
	}
	// KindAny: an error as its text, as slog writes it; the rest as
	// encoding/json marshals it.
	if err, ok := v.Any().(error); ok {
		if _, marshals := err.(json.Marshaler); !marshals {
			return appendJSONString(b, err.Error())
		}
	}
	j, err := json.Marshal(v.Any())
	if err != nil {
		return appendJSONString(b, "!ERROR:"+err.Error())
	}
	return append(b, j...)
}

// appendJSONMembers appends the members of a group that write something.
func appendJSONMembers(b []byte, as []slog.Attr) []byte {
	for _, m := range as {
		m.Value = m.Value.Resolve()
		if !empty(m) {
			b = appendJSONAttr(b, m)
		}
	}
	return b
}

// appendJSONFloat appends f as encoding/json writes a float64; NaN and
// the infinities, which JSON lacks, as strings.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendJSONString(b, strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // 1e-07, not 1e-007: what encoding/json writes
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendJSONString appends s quoted as a JSON string, escaped as
// slog.JSONHandler escapes it: quotes, backslashes and control characters,
// invalid UTF-8 as U+FFFD, and U+2028 and U+2029, which some JavaScript
// takes for line ends.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	plain := 0 // s[plain:i] needs no escape and is not yet appended
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[plain:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			plain = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[plain:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			}
			i += size
			plain = i
			continue
		}
		i += size
	}
	b = append(b, s[plain:]...)
	return append(b, '"')
}
