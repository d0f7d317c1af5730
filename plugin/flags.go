package plugin

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// DurationVar defines a duration flag that takes Go's form ("30s",
// "1m30s", "250ms") or a bare number of seconds ("30", "0.5"), as
// gunicorn users type; its help shows DURATION.
func DurationVar(fs *pflag.FlagSet, p *time.Duration, name, shorthand string, value time.Duration, usage string) {
	*p = value
	fs.VarP((*duration)(p), name, shorthand, usage)
}

type duration time.Duration

func (d *duration) Set(s string) error {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs < 0 || secs > 1e9 {
			return fmt.Errorf("%s seconds is out of range", s)
		}
		*d = duration(time.Duration(secs * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration: give seconds (30) or Go's form (30s, 1m30s, 250ms)", s)
	}
	*d = duration(v)
	return nil
}

func (d *duration) String() string { return time.Duration(*d).String() }

// Type names the value in help: DURATION.
func (d *duration) Type() string { return "DURATION" }

// BytesVar defines a size flag that takes a number of bytes ("1048576")
// or one with a unit, K, M, G or T, each 1,024 times the one before, as
// nginx and systemd read them ("64K", "10M", "1G"; "KiB", "MB" and "b"
// are read as the same); its help shows BYTES, and --print-config writes
// a number. Negative sizes are refused where a flag's own check says so.
func BytesVar[T int | int64](fs *pflag.FlagSet, p *T, name, shorthand string, value T, usage string) {
	*p = value
	fs.VarP(&size[T]{p}, name, shorthand, usage)
}

type size[T int | int64] struct{ p *T }

// sizeUnits are the multiples a size may name, by their first letter.
var sizeUnits = map[byte]int64{'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30, 't': 1 << 40}

func (s *size[T]) Set(v string) error {
	num := strings.TrimSpace(v)
	unit := strings.TrimLeft(num, "+-0123456789.")
	num = strings.TrimSpace(num[:len(num)-len(unit)])
	mult := int64(1)
	switch u := strings.ToLower(strings.TrimSpace(unit)); u {
	case "", "b":
	default:
		m, ok := sizeUnits[u[0]]
		if rest := u[1:]; !ok || rest != "" && rest != "b" && rest != "ib" {
			return fmt.Errorf("%q is not a size: give bytes (1048576) or a number with K, M or G (64K, 10M, 1G)", v)
		}
		mult = m
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return fmt.Errorf("%q is not a size: give bytes (1048576) or a number with K, M or G (64K, 10M, 1G)", v)
	}
	n := f * float64(mult)
	if n >= float64(maxOf[T]()) || n <= -float64(maxOf[T]()) {
		return fmt.Errorf("%q is out of range", v)
	}
	*s.p = T(n)
	return nil
}

// maxOf is the largest T.
func maxOf[T int | int64]() int64 {
	if _, isInt := any(T(0)).(int); isInt && strconv.IntSize == 32 {
		return math.MaxInt32
	}
	return math.MaxInt64
}

func (s *size[T]) String() string { return strconv.FormatInt(int64(*s.p), 10) }

// Type names the value in help: BYTES.
func (s *size[T]) Type() string { return "BYTES" }

// Alias adds a hidden option, alias, that sets the same value as the
// option target (defined before it), for a name users bring from another
// server (gunicorn's --keep-alive for --idle-timeout, say). It is left
// out of --help and --print-config.
func Alias(fs *pflag.FlagSet, alias, target string) {
	t := fs.Lookup(target)
	if t == nil {
		panic("plugin.Alias: no option --" + target)
	}
	fs.AddFlag(&pflag.Flag{Name: alias, Value: t.Value, DefValue: t.DefValue, NoOptDefVal: t.NoOptDefVal,
		Usage: "the same as --" + target, Hidden: true})
}

// RangeVar defines a flag that takes a number, N, or a range, MIN:MAX,
// into least and most: N sets both (most 0 means "as least"). Its help
// shows N|MIN:MAX.
func RangeVar(fs *pflag.FlagSet, least, most *int, name, shorthand, usage string) {
	fs.VarP(&intRange{least, most}, name, shorthand, usage)
}

type intRange struct{ least, most *int }

func (r *intRange) Set(v string) error {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(v), ":")
	a, err := strconv.Atoi(lo)
	b := a
	if err == nil && isRange {
		b, err = strconv.Atoi(hi)
	}
	if err != nil || b < a {
		return fmt.Errorf("%q: want N, or MIN:MAX with MIN <= MAX", v)
	}
	*r.least, *r.most = a, b
	if !isRange {
		*r.most = 0
	}
	return nil
}

func (r *intRange) String() string {
	if *r.most == 0 || *r.most == *r.least {
		return strconv.Itoa(*r.least)
	}
	return fmt.Sprintf("%d:%d", *r.least, *r.most)
}

// Type names the value in help.
func (r *intRange) Type() string { return "N|MIN:MAX" }
