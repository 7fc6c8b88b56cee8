package bidi

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeMessage: any frame is a message of one of the three kinds,
// complete as its kind requires, or an error; never a panic.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"success","id":3,"result":{"navigation":"n1"}}`,
		`{"type":"error","id":null,"error":"invalid argument","message":"m"}`,
		`{"type":"event","method":"log.entryAdded","params":{}}`,
		`{"type":"success","id":1,"result":{}}}`,
		`{"type":"success","id":1.5,"result":{}}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("decodeMessage(%q) accepted invalid JSON", data)
		}
		switch m.Kind {
		case kindSuccess:
			if !m.HasID || len(m.Result) == 0 {
				t.Fatalf("decodeMessage(%q) = %+v: a success needs an id and a result", data, m)
			}
		case kindError:
			if m.Err == nil || m.Err.Code == "" {
				t.Fatalf("decodeMessage(%q) = %+v: an error needs its code", data, m)
			}
		case kindEvent:
			if m.Method == "" {
				t.Fatalf("decodeMessage(%q) = %+v: an event needs its method", data, m)
			}
		default:
			t.Fatalf("decodeMessage(%q) = kind %q", data, m.Kind)
		}
	})
}

// FuzzDecodeRemote: any RemoteValue decodes to a Go value made only of
// nil, bool, float64, string, []any and map[string]any, or is an error;
// never a panic. Stored into a typed destination it is stored or refused.
func FuzzDecodeRemote(f *testing.F) {
	for _, s := range []string{
		`{"type":"array","value":[{"type":"number","value":1},{"type":"string","value":"x"},{"type":"null"}]}`,
		`{"type":"object","value":[["a",{"type":"array","value":[]}]]}`,
		`{"type":"map","value":[[{"type":"string","value":"k"},{"type":"number","value":"NaN"}]]}`,
		`{"type":"map","value":[[{"type":"string","value":"k"}]]}`,
		`{"type":"bigint","value":"1"}`,
		`{"type":"node"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeRemote(json.RawMessage(data))
		if err != nil {
			return
		}
		if !plain(v) {
			t.Fatalf("decodeRemote(%q) = %#v: not a plain Go value", data, v)
		}
		var typed struct{ A []int }
		_ = assign(v, &typed)
	})
}

// plain reports whether v is made only of the types decodeRemote returns.
func plain(v any) bool {
	switch x := v.(type) {
	case nil, bool, float64, string:
		return true
	case []any:
		for _, it := range x {
			if !plain(it) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, it := range x {
			if !plain(it) {
				return false
			}
		}
		return true
	}
	return false
}
