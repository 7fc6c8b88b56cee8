package match

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseMoney(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Money
		err  string
	}{
		{"whole", "3", 3_000_000, ""},
		{"fraction", "0.25", 250_000, ""},
		{"leading dot", ".5", 500_000, ""},
		{"six decimals", "1.000001", 1_000_001, ""},
		{"zero", "0", 0, ""},
		{"largest", "9223372036854.775807", MaxMoney, ""},
		{"too large", "9223372036854.775808", 0, "too large"},
		{"seven decimals", "0.0000001", 0, "6 decimals"},
		{"negative", "-1", 0, "negative"},
		{"word", "lots", 0, "malformed"},
		{"exponent", "1e400", 0, "malformed"},
		{"space", "1 ", 0, "malformed"},
		{"empty", "", 0, "empty"},
		{"dot", ".", 0, "no digits"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMoney(tc.in)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("ParseMoney(%q) = %v, %v, want %v, nil", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrMoney) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ParseMoney(%q) = %v, %v, want an ErrMoney error containing %q", tc.in, got, err, tc.err)
			}
		})
	}
}

func TestParsePrice(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Price
		err  string
	}{
		{"bare amount is per core-hour", "0.5", Price{CPU: 500_000}, ""},
		{"list", "cpu=0.5,ram=0.1,disk=0.01,gpu=2", Price{CPU: 500_000, RAM: 100_000, Disk: 10_000, GPU: 2_000_000}, ""},
		{"subset", "gpu=1.5", Price{GPU: 1_500_000}, ""},
		{"unknown kind", "tpu=1", Price{}, "unknown kind"},
		{"twice", "cpu=1,cpu=2", Price{}, "twice"},
		{"missing value", "cpu=", Price{}, "empty"},
		{"missing equals", "cpu=1,ram", Price{}, "kind=amount"},
		{"negative", "ram=-1", Price{}, "negative"},
		{"empty", "", Price{}, "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePrice(tc.in)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("ParsePrice(%q) = %+v, %v, want %+v, nil", tc.in, got, err, tc.want)
				}
				if back, err := ParsePrice(got.String()); err != nil || back != got {
					t.Fatalf("ParsePrice(%q).String() = %q reads back as %+v, %v", tc.in, got.String(), back, err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrMoney) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ParsePrice(%q) = %+v, %v, want an ErrMoney error containing %q", tc.in, got, err, tc.err)
			}
		})
	}
}

func TestHourly(t *testing.T) {
	p := Price{CPU: 1_000_000, RAM: 100_000, Disk: 1_000, GPU: 2_000_000}
	tests := []struct {
		name  string
		price Price
		r     Resources
		want  Money
	}{
		{"nothing costs nothing", p, Resources{}, 0},
		{"free price", Price{}, res(4000, gib(16), gib(100)), 0},
		{"sum of units", p, res(1500, gib(2), gib(10), GPU{}), 1_500_000 + 200_000 + 10_000 + 2_000_000},
		{"rounded up to the micro-unit", Price{RAM: 1}, res(0, 1, 0), 1},
		{"saturates", Price{RAM: MaxMoney}, res(0, math.MaxUint64, 0), MaxMoney},
		{"saturating sum", Price{CPU: MaxMoney, GPU: MaxMoney}, res(1000, 0, 0, GPU{}), MaxMoney},
	}
	for _, tc := range tests {
		if got := tc.price.Hourly(tc.r); got != tc.want {
			t.Errorf("%s: %v.Hourly(%v) = %v, want %v", tc.name, tc.price, tc.r, got, tc.want)
		}
	}
}

func TestMoneyJSON(t *testing.T) {
	var p Price
	if err := json.Unmarshal([]byte(`{"cpu":0.5,"ram":"0.1"}`), &p); err != nil || p != (Price{CPU: 500_000, RAM: 100_000}) {
		t.Fatalf("Unmarshal = %+v, %v", p, err)
	}
	b, _ := json.Marshal(p)
	if string(b) != `{"cpu":0.5,"ram":0.1}` {
		t.Fatalf("Marshal = %s", b)
	}
	if err := json.Unmarshal([]byte(`{"cpu":-1}`), &p); err == nil {
		t.Fatal("Unmarshal of a negative price succeeded")
	}
}

// FuzzParsePrice checks that the --price parser never panics, wraps
// ErrMoney, and that what it reads survives its text form.
func FuzzParsePrice(f *testing.F) {
	for _, s := range []string{"0.5", "cpu=0.5,ram=0.1", "gpu=", "-1", "1e400", "lots", "9223372036854.775807", ".", "cpu=1,cpu=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrice(s)
		if err != nil {
			if !errors.Is(err, ErrMoney) {
				t.Fatalf("ParsePrice(%q) error %v does not wrap ErrMoney", s, err)
			}
			return
		}
		if p.Validate() != nil {
			t.Fatalf("ParsePrice(%q) = %+v, invalid", s, p)
		}
		back, err := ParsePrice(p.String())
		if err != nil || back != p {
			t.Fatalf("ParsePrice(%q) = %+v; String %q reads back as %+v, %v", s, p, p.String(), back, err)
		}
	})
}
