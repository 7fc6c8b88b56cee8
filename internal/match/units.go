package match

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Bytes is an amount of memory or storage in bytes. In text (YAML, JSON
// strings, flags) it is written with a unit: 512MiB, 2GB, 1.5GiB, or a plain
// integer number of bytes. Binary units (KiB, MiB, GiB, TiB, PiB) are powers of
// 1024, decimal units (kB, KB, MB, GB, TB, PB) powers of 1000; the Kubernetes
// forms Ki, Mi, Gi, Ti and the bare letters K, M, G, T are accepted too (bare
// letters are binary, as in Docker).
type Bytes uint64

var byteUnits = map[string]float64{
	"":  1,
	"B": 1,
	"K": 1 << 10, "KI": 1 << 10, "KIB": 1 << 10, "KB": 1e3,
	"M": 1 << 20, "MI": 1 << 20, "MIB": 1 << 20, "MB": 1e6,
	"G": 1 << 30, "GI": 1 << 30, "GIB": 1 << 30, "GB": 1e9,
	"T": 1 << 40, "TI": 1 << 40, "TIB": 1 << 40, "TB": 1e12,
	"P": 1 << 50, "PI": 1 << 50, "PIB": 1 << 50, "PB": 1e15,
}

// ErrSize is wrapped by every error ParseBytes returns.
var ErrSize = errors.New("not a size")

// ParseBytes parses a size such as "512MiB", "2GB", "1.5GiB" or "1024".
// Spaces, signs, exponents and values beyond 2^64-1 bytes are refused.
func ParseBytes(s string) (Bytes, error) {
	bad := func(why string) (Bytes, error) {
		return 0, fmt.Errorf("%q is %w (%s; examples: 512MiB, 2GB, 1.5GiB)", s, ErrSize, why)
	}
	if s == "" {
		return bad("empty")
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], s[i:]
	if num == "" {
		if strings.HasPrefix(s, "-") {
			return bad("negative")
		}
		return bad("no number")
	}
	if strings.ContainsAny(unit, " \t") {
		return bad("no spaces allowed between number and unit")
	}
	mult, ok := byteUnits[strings.ToUpper(unit)]
	if !ok {
		return bad(fmt.Sprintf("unknown unit %q", unit))
	}
	// Exact arithmetic: "1.5GiB" must be exactly 1610612736.
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad("malformed number")
	}
	r.Mul(r, new(big.Rat).SetFloat64(mult))
	if !r.IsInt() {
		// Round fractional bytes up: a size never shrinks below what was asked.
		q := new(big.Int).Quo(r.Num(), r.Denom())
		r.SetInt(q.Add(q, big.NewInt(1)))
	}
	n := r.Num()
	if !n.IsUint64() {
		return bad("too large")
	}
	return Bytes(n.Uint64()), nil
}

// binaryUnits are the units String and MarshalText write, largest first.
var binaryUnits = []struct {
	name string
	size uint64
}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

// String formats b for people with the largest binary unit, rounded to two
// decimals: 512MiB, 1.5GiB, 21.33GiB, 1000B. It may round; MarshalText is
// exact.
func (b Bytes) String() string {
	for _, u := range binaryUnits {
		if uint64(b) >= u.size {
			v := float64(b) / float64(u.size)
			s := strconv.FormatFloat(v, 'f', 2, 64)
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
			return s + u.name
		}
	}
	return strconv.FormatUint(uint64(b), 10) + "B"
}

// MarshalText writes an exact form that ParseBytes reads back to the same
// value: the largest binary unit that keeps b exact, with up to two decimals
// below 1024 of the unit (512MiB, 1.5GiB, 3000GiB), else a plain number of
// bytes (1000000000).
func (b Bytes) MarshalText() ([]byte, error) {
	for _, u := range binaryUnits {
		q, rem := uint64(b)/u.size, uint64(b)%u.size
		if q == 0 || q >= 1<<20 || rem*100%u.size != 0 || rem != 0 && q >= 1024 {
			continue
		}
		s := strconv.FormatUint(q, 10)
		if frac := rem * 100 / u.size; frac != 0 {
			s += strings.TrimRight(fmt.Sprintf(".%02d", frac), "0")
		}
		return []byte(s + u.name), nil
	}
	return strconv.AppendUint(nil, uint64(b), 10), nil
}

// UnmarshalText accepts every form ParseBytes accepts.
func (b *Bytes) UnmarshalText(text []byte) error {
	v, err := ParseBytes(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalJSON writes a number of bytes, which every JSON consumer can compare.
func (b Bytes) MarshalJSON() ([]byte, error) { return strconv.AppendUint(nil, uint64(b), 10), nil }

// UnmarshalJSON accepts a number of bytes or a string with a unit.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		return b.UnmarshalText([]byte(s))
	}
	return b.UnmarshalText(data)
}

// MilliCPU is an amount of CPU in thousandths of a core: 1500 is one and a
// half cores. In text it is written as cores ("1.5", "2") or millicores
// ("500m").
type MilliCPU int64

// ErrCPU is wrapped by every error ParseCPU returns.
var ErrCPU = errors.New("not a CPU amount")

// maxMilliCPU bounds CPU amounts (a million cores) so sums cannot overflow.
const maxMilliCPU = 1_000_000_000

// MaxMilliCPU is the largest CPU amount ParseCPU accepts, for decoders of
// other encodings (deployproto's binary form).
const MaxMilliCPU = maxMilliCPU

// ParseCPU parses "1.5" (cores), "2" or "500m" (millicores).
func ParseCPU(s string) (MilliCPU, error) {
	bad := func(why string) (MilliCPU, error) {
		return 0, fmt.Errorf("%q is %w (%s; examples: 1, 1.5, 500m)", s, ErrCPU, why)
	}
	if s == "" {
		return bad("empty")
	}
	if strings.ContainsAny(s, " \t") {
		return bad("no spaces allowed")
	}
	num, scale := s, int64(1000)
	if strings.HasSuffix(s, "m") {
		num, scale = strings.TrimSuffix(s, "m"), 1
	}
	if strings.HasPrefix(num, "-") {
		return bad("negative")
	}
	for _, c := range num {
		if (c < '0' || c > '9') && c != '.' {
			return bad("malformed number")
		}
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad("malformed number")
	}
	r.Mul(r, big.NewRat(scale, 1))
	if r.Cmp(big.NewRat(maxMilliCPU, 1)) > 0 {
		return bad("too large")
	}
	f, _ := r.Float64()
	return MilliCPU(math.Ceil(f)), nil
}

// Cores returns the amount as a number of cores.
func (c MilliCPU) Cores() float64 { return float64(c) / 1000 }

// String writes whole cores as "2", fractions as "1.5".
func (c MilliCPU) String() string {
	return strconv.FormatFloat(c.Cores(), 'f', -1, 64)
}

// MarshalText writes the cores form.
func (c MilliCPU) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText accepts every form ParseCPU accepts.
func (c *MilliCPU) UnmarshalText(text []byte) error {
	v, err := ParseCPU(string(text))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// MarshalJSON writes a number of cores (1.5).
func (c MilliCPU) MarshalJSON() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalJSON accepts a number of cores or a string ("500m").
func (c *MilliCPU) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		data = []byte(s)
	}
	return c.UnmarshalText(data)
}

// UnmarshalYAML accepts a size with a unit or a plain number of bytes.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a size such as 512MiB, got a %s", kindName(n.Kind))
	}
	return b.UnmarshalText([]byte(n.Value))
}

// UnmarshalYAML accepts cores (1.5) or millicores ("500m").
func (c *MilliCPU) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a CPU amount such as 1.5, got a %s", kindName(n.Kind))
	}
	return c.UnmarshalText([]byte(n.Value))
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}
