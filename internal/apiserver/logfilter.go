package apiserver

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/dmsnet/dms/api"
)

// maxTail bounds the tail a log request may ask for.
const maxTail = 100000

// logFilter reads the tail, since and stream parameters of a logs request.
func logFilter(q url.Values) (api.LogFilter, error) {
	var f api.LogFilter
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxTail {
			return f, fmt.Errorf("tail %q: want a number of lines from 0 to %d", v, maxTail)
		}
		f.Tail = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, fmt.Errorf("since %q: want an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)", v)
		}
		f.Since = t
	}
	if v := q.Get("health_checks"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, fmt.Errorf("health_checks %q: want true or false", v)
		}
		f.HealthChecks = b
	}
	switch v := q.Get("stream"); v {
	case "", "stdout", "stderr":
		f.Stream = v
	default:
		return f, fmt.Errorf("stream %q: want stdout or stderr", v)
	}
	return f, nil
}
