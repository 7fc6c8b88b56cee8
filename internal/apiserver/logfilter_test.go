package apiserver

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
)

func TestLogFilter(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    api.LogFilter
		wantErr string
	}{
		{name: "none", query: ""},
		{name: "all", query: "tail=5&since=2026-01-02T03:04:05Z&stream=stderr", want: api.LogFilter{Tail: 5, Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Stream: "stderr"}},
		{name: "negative tail", query: "tail=-1", wantErr: "tail \"-1\""},
		{name: "huge tail", query: "tail=1000001", wantErr: "tail \"1000001\""},
		{name: "bad since", query: "since=10m", wantErr: "since \"10m\": want an RFC 3339 time"},
		{name: "bad stream", query: "stream=both", wantErr: "stream \"both\": want stdout or stderr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			got, err := logFilter(q)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("logFilter(%s) error = %v, want %q", tc.query, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.Tail != tc.want.Tail || !got.Since.Equal(tc.want.Since) || got.Stream != tc.want.Stream {
				t.Errorf("logFilter(%s) = %+v, %v, want %+v", tc.query, got, err, tc.want)
			}
		})
	}
}
