package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		in      string
		want    time.Time
		wantErr string
	}{
		{name: "duration", in: "10m", want: now.Add(-10 * time.Minute)},
		{name: "rfc3339", in: "2026-03-04T11:00:00Z", want: now.Add(-time.Hour)},
		{name: "negative", in: "-5m", wantErr: "positive duration"},
		{name: "garbage", in: "yesterday", wantErr: `--since "yesterday": want a duration`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSince(tc.in, now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseSince(%q) error = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("parseSince(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestDropHealthChecks(t *testing.T) {
	hc := `10.0.0.1 - - "GET /health HTTP/1.1" 200 2 "-" "` + api.HealthCheckUserAgent + `"` + "\n"
	user := `10.0.0.2 - - "GET / HTTP/1.1" 200 612 "-" "curl/8.0"` + "\n"
	tests := []struct {
		name, in, want string
	}{
		{name: "no health checks", in: user + user, want: user + user},
		{name: "only health checks", in: hc + hc, want: ""},
		{name: "mixed", in: hc + user + hc, want: user},
		{name: "unterminated last line", in: user + hc[:len(hc)-1], want: user},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := dropHealthChecks(tc.in); got != tc.want {
				t.Errorf("dropHealthChecks(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
