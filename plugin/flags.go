package plugin

import (
	"fmt"
	"strconv"
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
