package amp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"
)

// Type encodes and decodes one argument type, as Twisted's amp.Argument
// subclasses do. Values are Go values: Integer int64, Float float64,
// String []byte, Unicode string, Boolean bool, ListOf []any, AmpList
// []map[string]any, DateTime time.Time, Decimal string.
type Type interface {
	Encode(v any) ([]byte, error)
	Decode(b []byte) (any, error)
}

// The argument types of Twisted's amp module.
var (
	Integer  Type = integerType{}
	Float    Type = floatType{}
	String   Type = stringType{}
	Unicode  Type = unicodeType{}
	Boolean  Type = booleanType{}
	DateTime Type = dateTimeType{}
	Decimal  Type = decimalType{}
)

// ListOf is a list of elem values, each prefixed by a 2-byte length.
func ListOf(elem Type) Type { return listOf{elem} }

// AmpList is a list of boxes, each of the given arguments.
func AmpList(params ...Param) Type { return ampList(params) }

func wrongType(want string, v any) error { return fmt.Errorf("amp: want %s, not %T", want, v) }

type integerType struct{}

func (integerType) Encode(v any) ([]byte, error) {
	switch n := v.(type) {
	case int:
		return strconv.AppendInt(nil, int64(n), 10), nil
	case int64:
		return strconv.AppendInt(nil, n, 10), nil
	}
	return nil, wrongType("an int or int64", v)
}

func (integerType) Decode(b []byte) (any, error) { return strconv.ParseInt(string(b), 10, 64) }

type floatType struct{}

func (floatType) Encode(v any) ([]byte, error) {
	f, ok := v.(float64)
	if !ok {
		return nil, wrongType("a float64", v)
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

func (floatType) Decode(b []byte) (any, error) { return strconv.ParseFloat(string(b), 64) }

type stringType struct{}

func (stringType) Encode(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, wrongType("a []byte", v)
	}
	return b, nil
}

func (stringType) Decode(b []byte) (any, error) { return b, nil }

type unicodeType struct{}

func (unicodeType) Encode(v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, wrongType("a string", v)
	}
	return []byte(s), nil
}

func (unicodeType) Decode(b []byte) (any, error) { return string(b), nil }

type booleanType struct{}

func (booleanType) Encode(v any) ([]byte, error) {
	b, ok := v.(bool)
	if !ok {
		return nil, wrongType("a bool", v)
	}
	if b {
		return []byte("True"), nil
	}
	return []byte("False"), nil
}

func (booleanType) Decode(b []byte) (any, error) {
	switch string(b) {
	case "True":
		return true, nil
	case "False":
		return false, nil
	}
	return nil, fmt.Errorf("amp: bad boolean value %q", b)
}

// dateTimeLayout is Twisted's DateTime wire format, 32 characters.
const dateTimeLayout = "2006-01-02T15:04:05.000000-07:00"

type dateTimeType struct{}

func (dateTimeType) Encode(v any) ([]byte, error) {
	t, ok := v.(time.Time)
	if !ok {
		return nil, wrongType("a time.Time", v)
	}
	return []byte(t.Format(dateTimeLayout)), nil
}

func (dateTimeType) Decode(b []byte) (any, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("amp: invalid date format %q", b)
	}
	return time.Parse(dateTimeLayout, string(b))
}

type decimalType struct{}

func (decimalType) Encode(v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, wrongType("a decimal string", v)
	}
	return decimalType{}.check([]byte(s))
}

func (decimalType) Decode(b []byte) (any, error) {
	b, err := decimalType{}.check(b)
	return string(b), err
}

// check accepts what Python's Decimal prints: numbers, and the special
// values.
func (decimalType) check(b []byte) ([]byte, error) {
	switch string(b) {
	case "NaN", "-NaN", "sNaN", "-sNaN", "Infinity", "-Infinity":
		return b, nil
	}
	if _, ok := new(big.Float).SetString(string(b)); !ok {
		return nil, fmt.Errorf("amp: bad decimal value %q", b)
	}
	return b, nil
}

type listOf struct{ elem Type }

func (l listOf) Encode(v any) ([]byte, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, wrongType("a []any", v)
	}
	var out []byte
	for _, it := range items {
		b, err := l.elem.Encode(it)
		if err != nil {
			return nil, err
		}
		if len(b) > MaxValueLength {
			return nil, fmt.Errorf("%w: a list element of %d bytes", ErrMalformed, len(b))
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	return out, nil
}

func (l listOf) Decode(b []byte) (any, error) {
	out := []any{}
	for len(b) > 0 {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			return nil, fmt.Errorf("%w: a list cut short", ErrMalformed)
		}
		n := int(binary.BigEndian.Uint16(b))
		v, err := l.elem.Decode(b[2 : 2+n])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = b[2+n:]
	}
	return out, nil
}

type ampList []Param

func (l ampList) Encode(v any) ([]byte, error) {
	items, ok := v.([]map[string]any)
	if !ok {
		return nil, wrongType("a []map[string]any", v)
	}
	var out []byte
	for _, it := range items {
		box, err := encodeParams([]Param(l), it)
		if err != nil {
			return nil, err
		}
		if out, err = AppendBox(out, box); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (l ampList) Decode(b []byte) (any, error) {
	boxes, err := ParseBoxes(b)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(boxes))
	for _, box := range boxes {
		m, err := decodeParams([]Param(l), box)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Param is one argument or response value of a Command.
type Param struct {
	Name     string
	Type     Type
	Optional bool // may be left out (Twisted's optional=True)
}

// Command declares an AMP command, as a Twisted amp.Command subclass does.
type Command struct {
	Name      string
	Arguments []Param
	Response  []Param
	// Errors maps the codes of the errors it may answer with to what they
	// mean; an *Error with another code goes out as UNKNOWN.
	Errors map[string]string
}

func encodeParams(params []Param, values map[string]any) (Box, error) {
	b := Box{}
	for _, p := range params {
		v, ok := values[p.Name]
		if !ok {
			if p.Optional {
				continue
			}
			return nil, fmt.Errorf("amp: %q is missing", p.Name)
		}
		enc, err := p.Type.Encode(v)
		if err != nil {
			return nil, fmt.Errorf("amp: %q: %w", p.Name, err)
		}
		b[p.Name] = enc
	}
	return b, nil
}

func decodeParams(params []Param, b Box) (map[string]any, error) {
	out := map[string]any{}
	for _, p := range params {
		raw, ok := b[p.Name]
		if !ok {
			if p.Optional {
				continue
			}
			return nil, fmt.Errorf("amp: %q is missing", p.Name)
		}
		v, err := p.Type.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("amp: %q: %w", p.Name, err)
		}
		out[p.Name] = v
	}
	return out, nil
}

// Call asks c to run the command with the given arguments and returns the
// decoded response.
func (cmd Command) Call(ctx context.Context, c *Conn, args map[string]any) (map[string]any, error) {
	b, err := encodeParams(cmd.Arguments, args)
	if err != nil {
		return nil, err
	}
	r, err := c.Call(ctx, cmd.Name, b)
	if err != nil {
		return nil, err
	}
	return decodeParams(cmd.Response, r)
}

// Responder answers one command with decoded arguments.
type Responder func(ctx context.Context, args map[string]any) (map[string]any, error)

// Locator is a Handler that answers the commands registered with Handle,
// Twisted's CommandLocator: it decodes the arguments as the command
// declares them (a box that does not fit gets an UNKNOWN error, as in
// Twisted, and the connection closes) and encodes the response.
type Locator struct {
	commands map[string]locatorEntry
}

type locatorEntry struct {
	cmd Command
	fn  Responder
}

// Handle registers fn as the responder of cmd.
func (l *Locator) Handle(cmd Command, fn Responder) {
	if l.commands == nil {
		l.commands = map[string]locatorEntry{}
	}
	l.commands[cmd.Name] = locatorEntry{cmd, fn}
}

// ServeAMP implements Handler.
func (l *Locator) ServeAMP(ctx context.Context, name string, args Box) (Box, error) {
	e, ok := l.commands[name]
	if !ok {
		return nil, &Error{Code: CodeUnhandled, Description: fmt.Sprintf("Unhandled Command: %q", name)}
	}
	in, err := decodeParams(e.cmd.Arguments, args)
	if err != nil {
		return nil, err
	}
	out, err := e.fn(ctx, in)
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			if _, declared := e.cmd.Errors[ae.Code]; declared {
				return nil, ae
			}
		}
		return nil, err
	}
	return encodeParams(e.cmd.Response, out)
}
