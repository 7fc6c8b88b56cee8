package logs

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestEncodeBulk(t *testing.T) {
	body := encodeBulk(nil, "dms-logs", []item{{1, []byte(`{"message":"a"}` + "\n")}, {2, []byte(`{"message":"b\"c"}`)}},
		func(seq uint64) string { return "n-e-" + string(rune('0'+seq)) })
	want := `{"create":{"_index":"dms-logs","_id":"n-e-1"}}
{"message":"a"}
{"create":{"_index":"dms-logs","_id":"n-e-2"}}
{"message":"b\"c"}
`
	if string(body) != want {
		t.Errorf("body:\n%s\nwant:\n%s", body, want)
	}
}

func TestDecodeBulkResponse(t *testing.T) {
	for _, c := range []struct {
		name string
		body string
		n    int
		want []outcome
		err  bool
	}{
		{"es", `{"took":3,"errors":true,"items":[{"create":{"status":201}},{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},{"create":{"status":429}},{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}},{"create":{"status":503}}]}`, 5, []outcome{done, done, retry, reject, retry}, false},
		{"zinc", `{"took":0,"errors":false,"items":[{"index":{"_index":"i","_id":"x","status":200}}]}`, 1, []outcome{done}, false},
		{"short", `{"items":[{"create":{"status":201}}]}`, 3, []outcome{done, retry, retry}, false},
		{"zinc stopped", `{"error":"field [x] parse err","items":[{"index":{"status":200}},{"index":{"status":200}}]}`, 4, []outcome{done, reject, retry, retry}, false},
		{"zinc failed at once", `{"error":"index failed","items":[]}`, 2, []outcome{retry, retry}, false},
		{"no status", `{"items":[{"create":{}}]}`, 1, []outcome{retry}, false},
		{"two actions", `{"items":[{"create":{"status":201},"index":{"status":201}}]}`, 1, nil, true},
		{"not json", `<html>`, 1, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeBulkResponse([]byte(c.body), c.n)
			if (err != nil) != c.err {
				t.Fatalf("err %v", err)
			}
			for i, w := range c.want {
				if got[i].outcome() != w {
					t.Errorf("item %d: %+v outcome %d, want %d", i, got[i], got[i].outcome(), w)
				}
			}
		})
	}
}

// FuzzDecodeBulkResponse: any body gives an error or exactly n results.
func FuzzDecodeBulkResponse(f *testing.F) {
	f.Add([]byte(`{"took":3,"errors":true,"items":[{"create":{"status":201}},{"create":{"status":409,"error":{"type":"x","reason":"y"}}}]}`), 2)
	f.Add([]byte(`{"error":{"type":"t","reason":"r"}}`), 1)
	f.Add([]byte(`{"items":[{"index":{"status":"x"}}]}`), 1)
	f.Add([]byte(`{"items":null}`), 0)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		if n < 0 || n > 1000 {
			return
		}
		got, err := decodeBulkResponse(body, n)
		if err == nil && len(got) != n {
			t.Fatalf("%d results for %d items", len(got), n)
		}
		if err != nil && !strings.Contains(err.Error(), errBulkResponse.Error()) {
			t.Fatalf("error %v does not say the response is malformed", err)
		}
		_ = json.Valid(body)
		_ = bytes.Equal
	})
}
