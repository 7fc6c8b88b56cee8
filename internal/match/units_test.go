package match

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Bytes
		err  string // substring of the error; "" means success
	}{
		{"plain bytes", "1024", 1024, ""},
		{"zero", "0", 0, ""},
		{"binary MiB", "512MiB", 512 << 20, ""},
		{"decimal GB", "2GB", 2_000_000_000, ""},
		{"fraction GiB exact", "1.5GiB", 1536 << 20, ""},
		{"kubernetes Gi", "4Gi", 4 << 30, ""},
		{"bare letter is binary", "1G", 1 << 30, ""},
		{"lower case unit", "3mib", 3 << 20, ""},
		{"B suffix", "10B", 10, ""},
		{"fractional byte rounds up", "1.5B", 2, ""},
		{"largest", "18446744073709551615", math.MaxUint64, ""},
		{"16EiB is too large", "16384PiB", 0, "too large"},
		{"one past largest", "18446744073709551616", 0, "too large"},
		{"space before unit", "4 GB", 0, "no spaces"},
		{"negative", "-1", 0, "negative"},
		{"word", "lots", 0, "no number"},
		{"exponent", "1e400", 0, "unknown unit"},
		{"exponent small", "1e3", 0, "unknown unit"},
		{"empty", "", 0, "empty"},
		{"dot only", ".", 0, "malformed"},
		{"two dots", "1.2.3GB", 0, "malformed"},
		{"unknown unit", "5XB", 0, "unknown unit"},
		{"leading space", " 5GB", 0, "no number"},
		{"trailing space", "5GB ", 0, "no spaces"},
		{"plus sign", "+5", 0, "no number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBytes(tc.in)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("ParseBytes(%q) = %d, %v, want %d, nil", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrSize) {
				t.Fatalf("ParseBytes(%q) = %d, %v, want an ErrSize error containing %q", tc.in, got, err, tc.err)
			}
		})
	}
}

func TestParseCPU(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want MilliCPU
		err  string
	}{
		{"whole cores", "2", 2000, ""},
		{"fraction", "1.5", 1500, ""},
		{"millicores", "500m", 500, ""},
		{"zero", "0", 0, ""},
		{"tiny fraction rounds up", "0.0001", 1, ""},
		{"a million cores", "1000000", 1_000_000_000, ""},
		{"too many cores", "1000001", 0, "too large"},
		{"negative", "-1", 0, "negative"},
		{"negative millicores", "-5m", 0, "negative"},
		{"word", "lots", 0, "malformed"},
		{"exponent", "1e400", 0, "malformed"},
		{"space", "1 m", 0, "no spaces"},
		{"empty", "", 0, "empty"},
		{"m only", "m", 0, "malformed"},
		{"dot", ".", 0, "malformed"},
		{"unit", "2cores", 0, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCPU(tc.in)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("ParseCPU(%q) = %d, %v, want %d, nil", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrCPU) {
				t.Fatalf("ParseCPU(%q) = %d, %v, want an ErrCPU error containing %q", tc.in, got, err, tc.err)
			}
		})
	}
}

func TestUnitsEncodings(t *testing.T) {
	type doc struct {
		CPU MilliCPU `json:"cpu" yaml:"cpu"`
		RAM Bytes    `json:"ram" yaml:"ram"`
	}
	tests := []struct {
		name, yaml, json string
		want             doc
		err              bool
	}{
		{name: "units", yaml: "cpu: 1.5\nram: 512MiB\n", json: `{"cpu":1.5,"ram":"512MiB"}`, want: doc{1500, 512 << 20}},
		{name: "numbers", yaml: "cpu: 2\nram: 1024\n", json: `{"cpu":2,"ram":1024}`, want: doc{2000, 1024}},
		{name: "millicores", yaml: "cpu: 250m\nram: 1GB\n", json: `{"cpu":"250m","ram":"1GB"}`, want: doc{250, 1e9}},
		{name: "space refused", yaml: "cpu: 1\nram: 4 GB\n", json: `{"cpu":1,"ram":"4 GB"}`, err: true},
		{name: "negative refused", yaml: "cpu: -1\nram: 1\n", json: `{"cpu":-1,"ram":1}`, err: true},
		{name: "list refused", yaml: "cpu: [1]\nram: 1\n", json: `{"cpu":[1],"ram":1}`, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var y, j doc
			yerr := yaml.Unmarshal([]byte(tc.yaml), &y)
			jerr := json.Unmarshal([]byte(tc.json), &j)
			if tc.err {
				if yerr == nil || jerr == nil {
					t.Fatalf("decode = %+v, %v (yaml) and %+v, %v (json), want errors", y, yerr, j, jerr)
				}
				return
			}
			if yerr != nil || jerr != nil || y != tc.want || j != tc.want {
				t.Fatalf("decode = %+v, %v (yaml) and %+v, %v (json), want %+v", y, yerr, j, jerr, tc.want)
			}
			// Round trip through JSON.
			b, err := json.Marshal(j)
			if err != nil {
				t.Fatal(err)
			}
			var back doc
			if err := json.Unmarshal(b, &back); err != nil || back != j {
				t.Fatalf("round trip %s = %+v, %v, want %+v", b, back, err, j)
			}
		})
	}
}

func TestBytesString(t *testing.T) {
	tests := []struct {
		in        Bytes
		str, text string
	}{
		{0, "0B", "0"},
		{1000, "1000B", "1000"},
		{512 << 20, "512MiB", "512MiB"},
		{1536 << 20, "1.5GiB", "1.5GiB"},
		{100 << 40, "100TiB", "100TiB"},
		{1e9, "953.67MiB", "1000000000"},
		{(1 << 30) + (1<<30)/4, "1.25GiB", "1.25GiB"},
		{3000 << 30, "2.93TiB", "3000GiB"},
		{1<<40 + 1<<30, "1TiB", "1025GiB"},
		{18446740000000000000, "16384PiB", "18446740000000000000"},
	}
	for _, tc := range tests {
		if got := tc.in.String(); got != tc.str {
			t.Errorf("Bytes(%d).String() = %q, want %q", uint64(tc.in), got, tc.str)
		}
		if got, _ := tc.in.MarshalText(); string(got) != tc.text {
			t.Errorf("Bytes(%d).MarshalText() = %q, want %q", uint64(tc.in), got, tc.text)
		}
	}
}

// FuzzParseBytes checks that ParseBytes never panics, that every error wraps
// ErrSize, and that a parsed size survives its JSON form.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"512MiB", "2GB", "1.5GiB", "4 GB", "-1", "lots", "1e400", "", ".", "18446744073709551616", "0.000001KiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBytes(s)
		if err != nil {
			if !errors.Is(err, ErrSize) {
				t.Fatalf("ParseBytes(%q) error %v does not wrap ErrSize", s, err)
			}
			return
		}
		js, _ := b.MarshalJSON()
		var back Bytes
		if err := back.UnmarshalJSON(js); err != nil || back != b {
			t.Fatalf("ParseBytes(%q) = %d; JSON %s reads back as %d, %v", s, uint64(b), js, uint64(back), err)
		}
		// The text form (YAML, flags) is exact.
		txt, _ := b.MarshalText()
		var fromText Bytes
		if err := fromText.UnmarshalText(txt); err != nil || fromText != b {
			t.Fatalf("ParseBytes(%q) = %d; text %q reads back as %d, %v", s, uint64(b), txt, uint64(fromText), err)
		}
	})
}

// FuzzParseCPU checks that ParseCPU never panics, stays in range, and that a
// parsed amount survives its text form.
func FuzzParseCPU(f *testing.F) {
	for _, s := range []string{"1", "1.5", "500m", "-1", "lots", "1e400", "", "m", "1000000", "0.0005"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCPU(s)
		if err != nil {
			if !errors.Is(err, ErrCPU) {
				t.Fatalf("ParseCPU(%q) error %v does not wrap ErrCPU", s, err)
			}
			return
		}
		if c < 0 || c > maxMilliCPU {
			t.Fatalf("ParseCPU(%q) = %d, out of range", s, c)
		}
		back, err := ParseCPU(c.String())
		if err != nil || back != c {
			t.Fatalf("ParseCPU(%q) = %d; String %q reads back as %d, %v", s, c, c.String(), back, err)
		}
	})
}
