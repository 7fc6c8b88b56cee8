package logs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// encodeBulk appends the NDJSON body of a _bulk request creating items in
// index, with ids made by id.
func encodeBulk(buf []byte, index string, items []item, id func(seq uint64) string) []byte {
	for _, it := range items {
		buf = append(buf, `{"create":{"_index":`...)
		buf = strconv.AppendQuote(buf, index)
		buf = append(buf, `,"_id":`...)
		buf = strconv.AppendQuote(buf, id(it.seq))
		buf = append(buf, "}}\n"...)
		buf = append(buf, bytes.TrimRight(it.doc, "\n")...)
		buf = append(buf, '\n')
	}
	return buf
}

// itemResult is the store's answer for one item of a _bulk request.
type itemResult struct {
	Status int
	Reason string // the item's error, if any
}

// outcome of an item.
type outcome int

const (
	done   outcome = iota // accepted, or already there (409)
	retry                 // 429 or 5xx: send again
	reject                // any other error: drop and count
)

func (r itemResult) outcome() outcome {
	switch {
	case r.Status >= 200 && r.Status < 300, r.Status == 409:
		return done
	case r.Status == 429, r.Status >= 500, r.Status == 0:
		return retry
	}
	return reject
}

// errBulkResponse is a _bulk response that cannot be read.
var errBulkResponse = errors.New("malformed _bulk response")

// decodeBulkResponse reads the body of a _bulk response to n items. Items
// the response does not cover (too few items, or an error of the whole
// request) come back with status 0 (retry).
func decodeBulkResponse(body []byte, n int) ([]itemResult, error) {
	var resp struct {
		Errors bool                         `json:"errors"`
		Error  json.RawMessage              `json:"error"`
		Items  []map[string]json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("%w: %v", errBulkResponse, err)
	}
	out := make([]itemResult, n)
	var whole string // an error beside the items (ZincSearch)
	if e := bytes.TrimSpace(resp.Error); len(e) > 0 && !bytes.Equal(e, []byte("null")) && !bytes.Equal(e, []byte(`""`)) {
		whole = errorReason(e)
	}
	for i, m := range resp.Items {
		if i >= n {
			break
		}
		if len(m) != 1 {
			return nil, fmt.Errorf("%w: item %d has %d actions", errBulkResponse, i, len(m))
		}
		for _, raw := range m {
			var it struct {
				Status int             `json:"status"`
				Error  json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(raw, &it); err != nil {
				return nil, fmt.Errorf("%w: item %d: %v", errBulkResponse, i, err)
			}
			out[i].Status = it.Status
			out[i].Reason = errorReason(it.Error)
			if it.Status == 0 {
				out[i].Reason = "no status"
			}
		}
	}
	if whole != "" {
		// ZincSearch stops at the first document it cannot store and
		// reports it beside the items: the last item listed is that
		// document (a bad field value: refused for good), those after it
		// were not processed (sent again).
		if k := min(len(resp.Items), n); k > 0 {
			out[k-1] = itemResult{Status: 400, Reason: whole}
		}
	}
	return out, nil
}

// errorReason is a short text for an item's error: its type and reason
// (Elasticsearch), or the text itself.
func errorReason(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	var e struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(raw, &e) == nil && (e.Type != "" || e.Reason != "") {
		return e.Type + ": " + e.Reason
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if len(raw) > 200 {
		raw = raw[:200]
	}
	return string(raw)
}
