package ensemble

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Bandwidth is a data rate in bits per second. In text it is written with a
// unit: bps, kbps, Mbps, Gbps or Tbps (powers of 1000; the case of the
// prefix letter does not matter, "bps" is required).
type Bandwidth uint64

// ErrBandwidth is wrapped by every error ParseBandwidth returns.
var ErrBandwidth = errors.New("not a bandwidth")

var bandwidthUnits = []struct {
	prefix string
	mult   uint64
}{{"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"K", 1e3}, {"", 1}}

// ParseBandwidth parses a rate such as "100Mbps", "1.5Gbps" or "800kbps".
func ParseBandwidth(s string) (Bandwidth, error) {
	bad := func(why string) (Bandwidth, error) {
		return 0, fmt.Errorf("%q is %w (%s; examples: 100Mbps, 1Gbps)", s, ErrBandwidth, why)
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], s[i:]
	if num == "" {
		return bad("no number")
	}
	up := strings.ToUpper(unit)
	if !strings.HasSuffix(up, "BPS") || len(up) > 4 {
		return bad("want a unit: bps, kbps, Mbps, Gbps or Tbps")
	}
	var mult uint64
	for _, u := range bandwidthUnits {
		if up == u.prefix+"BPS" {
			mult = u.mult
		}
	}
	if mult == 0 {
		return bad(fmt.Sprintf("unknown unit %q", unit))
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad("malformed number")
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).SetUint64(mult)))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if !r.IsInt() {
		q.Add(q, big.NewInt(1)) // a need never shrinks below what was asked
	}
	if !q.IsUint64() {
		return bad("too large")
	}
	return Bandwidth(q.Uint64()), nil
}

// String writes the rate exactly, with the largest unit that divides it:
// 100Mbps, 1500kbps.
func (b Bandwidth) String() string {
	for _, u := range bandwidthUnits {
		if b != 0 && uint64(b)%u.mult == 0 {
			p := strings.ToLower(u.prefix)
			if p != "k" && p != "" {
				p = u.prefix
			}
			return strconv.FormatUint(uint64(b)/u.mult, 10) + p + "bps"
		}
	}
	return "0bps"
}

// MarshalText writes the String form.
func (b Bandwidth) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText accepts every form ParseBandwidth accepts.
func (b *Bandwidth) UnmarshalText(text []byte) error {
	v, err := ParseBandwidth(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
