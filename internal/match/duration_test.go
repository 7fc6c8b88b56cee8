package match

import (
	"errors"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr error
		errText string
	}{
		{"seconds", "30s", 30 * time.Second, nil, ""},
		{"compound", "1h30m", 90 * time.Minute, nil, ""},
		{"fraction", "1.5h", 90 * time.Minute, nil, ""},
		{"negative", "-5m", -5 * time.Minute, nil, ""},
		{"zero", "0", 0, nil, ""},
		{"micro", "3µs", 3 * time.Microsecond, nil, ""},
		{"largest hours", "2562047h", 2562047 * time.Hour, nil, ""},
		{"hours too large", "9999999h", 0, ErrDurationRange, `"9999999h" is too large (at most 2562047h47m16.854775807s)`},
		{"digits too large", "99999999999999999999s", 0, ErrDurationRange, ""},
		{"compound too large", "2562047h60m", 0, ErrDurationRange, ""},
		{"words", "10 minutes", 0, ErrDuration, `"10 minutes" is not a duration`},
		{"no unit", "10", 0, ErrDuration, ""},
		{"unknown unit", "10d", 0, ErrDuration, ""},
		{"empty", "", 0, ErrDuration, ""},
		{"sign only", "-", 0, ErrDuration, ""},
		{"dot only", ".s", 0, ErrDuration, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseDuration(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if tt.errText != "" && err.Error() != tt.errText {
				t.Fatalf("ParseDuration(%q) error = %q, want %q", tt.in, err, tt.errText)
			}
		})
	}
}

// FuzzParseDuration checks that ParseDuration agrees with time.ParseDuration
// on every input it accepts, and that every refusal is one of its two
// kinds.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "1h30m", "-5m", "9999999h", "10 minutes", "", "0", "1.5µs", "99999999999999999999ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDuration(s)
		want, werr := time.ParseDuration(s)
		if (err == nil) != (werr == nil) {
			t.Fatalf("ParseDuration(%q) error %v, time.ParseDuration error %v", s, err, werr)
		}
		if err == nil {
			if got != want {
				t.Fatalf("ParseDuration(%q) = %v, time.ParseDuration = %v", s, got, want)
			}
			return
		}
		if !errors.Is(err, ErrDuration) && !errors.Is(err, ErrDurationRange) {
			t.Fatalf("ParseDuration(%q) error %v wraps neither ErrDuration nor ErrDurationRange", s, err)
		}
	})
}
