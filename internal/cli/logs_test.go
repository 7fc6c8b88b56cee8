package cli

import (
	"strings"
	"testing"
	"time"
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
