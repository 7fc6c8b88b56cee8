package match

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Money is an amount of the network's currency in millionths: 1.5 is
// Money(1_500_000). It is never negative. In text and JSON it is a decimal
// number with at most six decimals ("0.25").
type Money int64

// MaxMoney is the largest amount; a cost that would exceed it is MaxMoney.
const MaxMoney = Money(math.MaxInt64)

const microPerUnit = 1_000_000

// ErrMoney is wrapped by every error ParseMoney and ParsePrice return.
var ErrMoney = errors.New("not an amount of money")

// ParseMoney parses a non-negative decimal such as "0.25", "3" or "1.000001".
func ParseMoney(s string) (Money, error) {
	bad := func(why string) (Money, error) {
		return 0, fmt.Errorf("%q is %w (%s; examples: 0.25, 3)", s, ErrMoney, why)
	}
	if s == "" {
		return bad("empty")
	}
	if s[0] == '-' {
		return bad("negative")
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return bad("no digits")
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return bad("malformed number")
			}
		}
	}
	if len(frac) > 6 {
		return bad("more than 6 decimals")
	}
	var w uint64
	if whole != "" {
		var err error
		w, err = strconv.ParseUint(whole, 10, 63)
		if err != nil {
			return bad("too large")
		}
	}
	f := uint64(0)
	if frac != "" {
		v, _ := strconv.ParseUint(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		f = v
	}
	hi, lo := bits.Mul64(w, microPerUnit)
	if hi != 0 || lo > math.MaxInt64-f {
		return bad("too large")
	}
	return Money(lo + f), nil
}

// String writes the decimal form without trailing zeros: "0.25", "3".
func (m Money) String() string {
	if m < 0 {
		return "-" + Money(-m).String()
	}
	s := strconv.FormatInt(int64(m/microPerUnit), 10)
	if f := int64(m % microPerUnit); f != 0 {
		fs := fmt.Sprintf("%06d", f)
		s += "." + strings.TrimRight(fs, "0")
	}
	return s
}

// Units returns the amount as a float of whole units, for scoring.
func (m Money) Units() float64 { return float64(m) / microPerUnit }

// MarshalText writes the decimal form.
func (m Money) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText accepts what ParseMoney accepts.
func (m *Money) UnmarshalText(text []byte) error {
	v, err := ParseMoney(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON writes a JSON number with the exact decimal (0.25).
func (m Money) MarshalJSON() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalJSON accepts a JSON number or a string holding one.
func (m *Money) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		data = []byte(s)
	}
	return m.UnmarshalText(data)
}

// Price is what a provider charges per hour for each unit of resource: per
// core, per GiB of RAM, per GiB of disk, per GPU. The zero Price is free.
type Price struct {
	CPU  Money `json:"cpu,omitempty" yaml:"cpu,omitempty"`   // per core-hour
	RAM  Money `json:"ram,omitempty" yaml:"ram,omitempty"`   // per GiB-hour
	Disk Money `json:"disk,omitempty" yaml:"disk,omitempty"` // per GiB-hour
	GPU  Money `json:"gpu,omitempty" yaml:"gpu,omitempty"`   // per GPU-hour
}

// ParsePrice parses the --price flag: either one amount, the price per
// core-hour ("0.5"), or a comma-separated list of unit prices
// ("cpu=0.5,ram=0.1,disk=0.01,gpu=2"; RAM and disk per GiB-hour).
func ParsePrice(s string) (Price, error) {
	var p Price
	if !strings.Contains(s, "=") {
		m, err := ParseMoney(s)
		if err != nil {
			return Price{}, fmt.Errorf("price: %w", err)
		}
		p.CPU = m
		return p, nil
	}
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return Price{}, fmt.Errorf("price %q: item %q is %w (want kind=amount, kinds cpu, ram, disk, gpu)", s, item, ErrMoney)
		}
		var dst *Money
		switch k {
		case "cpu":
			dst = &p.CPU
		case "ram":
			dst = &p.RAM
		case "disk":
			dst = &p.Disk
		case "gpu":
			dst = &p.GPU
		default:
			return Price{}, fmt.Errorf("price %q: unknown kind %q: %w (kinds cpu, ram, disk, gpu)", s, k, ErrMoney)
		}
		if seen[k] {
			return Price{}, fmt.Errorf("price %q: %s given twice: %w", s, k, ErrMoney)
		}
		seen[k] = true
		m, err := ParseMoney(v)
		if err != nil {
			return Price{}, fmt.Errorf("price %s: %w", k, err)
		}
		*dst = m
	}
	return p, nil
}

// String writes the form ParsePrice reads: "cpu=0.5,ram=0.1", or "0" when free.
func (p Price) String() string {
	var parts []string
	for _, x := range []struct {
		k string
		m Money
	}{{"cpu", p.CPU}, {"ram", p.RAM}, {"disk", p.Disk}, {"gpu", p.GPU}} {
		if x.m != 0 {
			parts = append(parts, x.k+"="+x.m.String())
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ",")
}

// Validate reports a negative unit price.
func (p Price) Validate() error {
	if p.CPU < 0 || p.RAM < 0 || p.Disk < 0 || p.GPU < 0 {
		return fmt.Errorf("price %s: %w (negative)", p, ErrMoney)
	}
	return nil
}

// Hourly is the price of r for one hour: the unit prices times the amounts,
// each product rounded up to the micro-unit, the sum saturating at MaxMoney.
// Extra kinds are not priced.
func (p Price) Hourly(r Resources) Money {
	if p.Validate() != nil || r.CPU < 0 {
		return MaxMoney
	}
	total := uint64(0)
	add := func(v uint64, ok bool) {
		if !ok || v > math.MaxInt64 || total > math.MaxInt64-v {
			total = math.MaxInt64
			return
		}
		total += v
	}
	add(mulDivUp(uint64(p.CPU), uint64(r.CPU), 1000))
	add(mulDivUp(uint64(p.RAM), uint64(r.RAM), 1<<30))
	add(mulDivUp(uint64(p.Disk), uint64(r.Disk), 1<<30))
	add(mulDivUp(uint64(p.GPU), uint64(len(r.GPUs)), 1))
	return Money(total)
}

// mulDivUp returns ceil(a*b/d) and whether it fits in 64 bits.
func mulDivUp(a, b, d uint64) (uint64, bool) {
	hi, lo := bits.Mul64(a, b)
	if hi >= d {
		return 0, false
	}
	q, rem := bits.Div64(hi, lo, d)
	if rem != 0 {
		if q == math.MaxUint64 {
			return 0, false
		}
		q++
	}
	return q, true
}
