package match

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrDuration is wrapped by the errors of ParseDuration for text that is
// not a duration; ErrDurationRange by those for a duration beyond what
// time.Duration holds (about 292 years).
var (
	ErrDuration      = errors.New("not a duration")
	ErrDurationRange = errors.New("too large")
)

// ParseDuration parses a Go duration ("30s", "1h30m", "-5m") as
// time.ParseDuration does, but tells a value too large to hold ("is too
// large (at most 2562047h47m16s)") from text that is not a duration at all.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	if durationSyntax(s) {
		return 0, fmt.Errorf("%q is %w (at most %s)", s, ErrDurationRange, time.Duration(math.MaxInt64))
	}
	return 0, fmt.Errorf("%q is %w", s, ErrDuration)
}

// durationSyntax reports whether s is written as a duration: an optional
// sign, then one or more decimal numbers each followed by a unit (ns, us,
// µs, μs, ms, s, m, h). time.ParseDuration refuses such text only when its
// value overflows.
func durationSyntax(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	if s == "0" {
		return true
	}
	if s == "" {
		return false
	}
	for s != "" {
		i, digits := 0, 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
		if i < len(s) && s[i] == '.' {
			i++
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i, digits = i+1, digits+1
			}
		}
		if digits == 0 {
			return false
		}
		s = s[i:]
		unit := ""
		for _, u := range []string{"ns", "us", "µs", "μs", "ms", "s", "m", "h"} {
			if len(s) >= len(u) && s[:len(u)] == u && (unit == "" || len(u) > len(unit)) {
				unit = u
			}
		}
		if unit == "" {
			return false
		}
		s = s[len(unit):]
	}
	return true
}
