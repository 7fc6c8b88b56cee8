package bidi

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeCommand(t *testing.T) {
	tests := []struct {
		name    string
		id      int64
		method  string
		params  any
		want    string
		wantErr string
	}{
		{"nil params are an object", 1, "session.new", nil, `{"id":1,"method":"session.new","params":{}}`, ""},
		{"params", 7, "browsingContext.navigate", map[string]string{"url": "http://x/"}, `{"id":7,"method":"browsingContext.navigate","params":{"url":"http://x/"}}`, ""},
		{"no method", 1, "", nil, "", "needs a method"},
		{"params that do not encode", 2, "script.evaluate", map[string]any{"f": func() {}}, "", "bidi script.evaluate: encode params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeCommand(tt.id, tt.method, tt.params)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("encodeCommand = %s, %v, want error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("encodeCommand = %s, %v, want %s", got, err, tt.want)
			}
		})
	}
}

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    message
		wantErr string
	}{
		{
			name: "success",
			in:   `{"type":"success","id":3,"result":{"navigation":"n1","url":"about:blank"}}`,
			want: message{Kind: kindSuccess, ID: 3, HasID: true, Result: json.RawMessage(`{"navigation":"n1","url":"about:blank"}`)},
		},
		{
			name: "error",
			in:   `{"type":"error","id":4,"error":"no such frame","message":"Browsing Context with id nope not found","stacktrace":"RemoteError@chrome://...\n"}`,
			want: message{Kind: kindError, ID: 4, HasID: true, Err: &Error{Code: "no such frame", Message: "Browsing Context with id nope not found", Stacktrace: "RemoteError@chrome://...\n"}},
		},
		{
			name: "error about an unreadable command has no id",
			in:   `{"type":"error","id":null,"error":"invalid argument","message":"Expected \"id\" to be an integer"}`,
			want: message{Kind: kindError, Err: &Error{Code: "invalid argument", Message: `Expected "id" to be an integer`}},
		},
		{
			name: "event",
			in:   `{"type":"event","method":"browsingContext.userPromptOpened","params":{"context":"c1","type":"confirm","message":"sure?"}}`,
			want: message{Kind: kindEvent, Method: "browsingContext.userPromptOpened", Params: json.RawMessage(`{"context":"c1","type":"confirm","message":"sure?"}`)},
		},
		{name: "not JSON", in: `{"type":"success"`, wantErr: "undecodable message"},
		{name: "two messages in one frame", in: `{"type":"success","id":1,"result":{}} {}`, wantErr: "trailing data"},
		{name: "a stray brace after the message", in: `{"type":"success","id":1,"result":{}}}`, wantErr: "trailing data"},
		{name: "a stray bracket after the message", in: `{"type":"event","method":"log.entryAdded"}]`, wantErr: "trailing data"},
		{name: "unknown type", in: `{"type":"answer","id":1}`, wantErr: `unknown type "answer"`},
		{name: "no type", in: `{"id":1,"result":{}}`, wantErr: `unknown type ""`},
		{name: "success without id", in: `{"type":"success","result":{}}`, wantErr: "success without an id"},
		{name: "success without result", in: `{"type":"success","id":1}`, wantErr: "without a result"},
		{name: "success with a null result", in: `{"type":"success","id":1,"result":null}`, wantErr: "without a result"},
		{name: "error without code", in: `{"type":"error","id":1,"message":"?"}`, wantErr: "without an error code"},
		{name: "event without method", in: `{"type":"event","params":{}}`, wantErr: "event without a method"},
		{name: "id not a number", in: `{"type":"success","id":"1","result":{}}`, wantErr: "undecodable message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeMessage([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decodeMessage = %+v, %v, want error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeMessage: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("decodeMessage = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"with message", &Error{Method: "browsingContext.navigate", Code: "unknown error", Message: "NS_ERROR_CONNECTION_REFUSED", Stacktrace: "long"}, "bidi browsingContext.navigate: unknown error: NS_ERROR_CONNECTION_REFUSED"},
		{"code only", &Error{Method: "session.new", Code: "session not created"}, "bidi session.new: session not created"},
		{"script", &ScriptError{Method: "script.evaluate", Text: "TypeError: x is null", Line: 0, Column: 4}, "bidi script.evaluate: script threw at 1:5: TypeError: x is null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestScriptResult(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
		errText string
	}{
		{name: "value", in: `{"type":"success","realm":"r1","result":{"type":"number","value":4}}`, want: `{"type":"number","value":4}`},
		{
			name:    "exception",
			in:      `{"type":"exception","realm":"r1","exceptionDetails":{"text":"TypeError: can't access property \"x\" of null","lineNumber":2,"columnNumber":7,"exception":{"type":"error"},"stackTrace":{"callFrames":[]}}}`,
			wantErr: &ScriptError{Method: "script.evaluate", Text: `TypeError: can't access property "x" of null`, Line: 2, Column: 7},
		},
		{name: "exception without details", in: `{"type":"exception"}`, wantErr: &ScriptError{Method: "script.evaluate", Text: "(no details)"}},
		{name: "unknown type", in: `{"type":"maybe"}`, errText: `result of unknown type "maybe"`},
		{name: "success without value", in: `{"type":"success"}`, errText: "success without a value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scriptResult("script.evaluate", json.RawMessage(tt.in))
			switch {
			case tt.wantErr != nil:
				var se *ScriptError
				if !errors.As(err, &se) || !reflect.DeepEqual(se, tt.wantErr) {
					t.Fatalf("scriptResult = %s, %#v, want %#v", got, err, tt.wantErr)
				}
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("scriptResult = %s, %v, want error with %q", got, err, tt.errText)
				}
			default:
				if err != nil || string(got) != tt.want {
					t.Fatalf("scriptResult = %s, %v, want %s", got, err, tt.want)
				}
			}
		})
	}
}

func TestDecodeRemote(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    any
		wantErr string
	}{
		{name: "undefined", in: `{"type":"undefined"}`, want: nil},
		{name: "null", in: `{"type":"null"}`, want: nil},
		{name: "string", in: `{"type":"string","value":"tick 3"}`, want: "tick 3"},
		{name: "boolean", in: `{"type":"boolean","value":true}`, want: true},
		{name: "number", in: `{"type":"number","value":12.5}`, want: 12.5},
		{name: "infinity", in: `{"type":"number","value":"Infinity"}`, want: math.Inf(1)},
		{name: "minus infinity", in: `{"type":"number","value":"-Infinity"}`, want: math.Inf(-1)},
		{name: "bigint", in: `{"type":"bigint","value":"12345678901234567890"}`, want: "12345678901234567890"},
		{name: "date", in: `{"type":"date","value":"2026-12-05T05:00:00.000Z"}`, want: "2026-12-05T05:00:00.000Z"},
		{
			name: "array",
			in:   `{"type":"array","value":[{"type":"number","value":1},{"type":"string","value":"x"},{"type":"null"}]}`,
			want: []any{1.0, "x", nil},
		},
		{name: "set", in: `{"type":"set","value":[{"type":"boolean","value":false}]}`, want: []any{false}},
		{
			name: "object",
			in:   `{"type":"object","value":[["a",{"type":"array","value":[]}],["b",{"type":"object","value":[["c",{"type":"number","value":2}]]}]]}`,
			want: map[string]any{"a": []any{}, "b": map[string]any{"c": 2.0}},
		},
		{name: "map with a string key", in: `{"type":"map","value":[[{"type":"string","value":"k"},{"type":"number","value":1}]]}`, want: map[string]any{"k": 1.0}},
		{name: "map with a number key", in: `{"type":"map","value":[[{"type":"number","value":1},{"type":"number","value":1}]]}`, wantErr: "is not a string"},
		{name: "unknown special number", in: `{"type":"number","value":"Huge"}`, wantErr: `unknown special value "Huge"`},
		{name: "node", in: `{"type":"node","sharedId":"s1","value":{"nodeType":1}}`, wantErr: "a remote node has no Go value"},
		{name: "function", in: `{"type":"function","handle":"h"}`, wantErr: "a remote function has no Go value"},
		{name: "object beyond the depth", in: `{"type":"object"}`, wantErr: "serialization depth reached"},
		{name: "array beyond the depth", in: `{"type":"array"}`, wantErr: "serialization depth reached"},
		{name: "bad item", in: `{"type":"array","value":[{"type":"window"}]}`, wantErr: "[0]: a remote window"},
		{name: "string that is not", in: `{"type":"string","value":3}`, wantErr: "remote string"},
		{name: "not JSON", in: `{"type":`, wantErr: "remote value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeRemote(json.RawMessage(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decodeRemote = %#v, %v, want error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("decodeRemote = %#v, %v, want %#v", got, err, tt.want)
			}
		})
	}

	// NaN and -0 do not compare with DeepEqual.
	if got, err := decodeRemote(json.RawMessage(`{"type":"number","value":"NaN"}`)); err != nil || !math.IsNaN(got.(float64)) {
		t.Errorf("decodeRemote(NaN) = %v, %v", got, err)
	}
	if got, err := decodeRemote(json.RawMessage(`{"type":"number","value":"-0"}`)); err != nil || got.(float64) != 0 || !math.Signbit(got.(float64)) {
		t.Errorf("decodeRemote(-0) = %v, %v", got, err)
	}
}

func TestAssign(t *testing.T) {
	type row struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	var rows []row
	if err := assign([]any{map[string]any{"id": "d1", "state": "running"}}, &rows); err != nil || !reflect.DeepEqual(rows, []row{{"d1", "running"}}) {
		t.Errorf("assign rows = %v, %v", rows, err)
	}
	var n int
	if err := assign(4.0, &n); err != nil || n != 4 {
		t.Errorf("assign int = %d, %v", n, err)
	}
	var s string
	if err := assign(true, &s); err == nil {
		t.Errorf("assign bool into string = %q, nil error", s)
	}
	var f float64
	if err := assign(math.NaN(), &f); err == nil {
		t.Error("assign NaN into float64: nil error")
	}
	var a any
	if err := assign(math.NaN(), &a); err != nil || !math.IsNaN(a.(float64)) {
		t.Errorf("assign NaN into any = %v, %v", a, err)
	}
}

func TestEncodeLocal(t *testing.T) {
	type arg struct {
		Sel   string `json:"sel"`
		Count int    `json:"count"`
	}
	tests := []struct {
		name    string
		in      any
		want    string
		wantErr string
	}{
		{"nil", nil, `{"type":"null"}`, ""},
		{"false keeps its value", false, `{"type":"boolean","value":false}`, ""},
		{"empty string keeps its value", "", `{"type":"string","value":""}`, ""},
		{"int zero", 0, `{"type":"number","value":0}`, ""},
		{"float", 1.5, `{"type":"number","value":1.5}`, ""},
		{"NaN", math.NaN(), `{"type":"number","value":"NaN"}`, ""},
		{"infinity", math.Inf(-1), `{"type":"number","value":"-Infinity"}`, ""},
		{"minus zero", math.Copysign(0, -1), `{"type":"number","value":"-0"}`, ""},
		{"array", []any{1, "a"}, `{"type":"array","value":[{"type":"number","value":1},{"type":"string","value":"a"}]}`, ""},
		{"typed slice", []string{"a"}, `{"type":"array","value":[{"type":"string","value":"a"}]}`, ""},
		{"map in key order", map[string]any{"b": true, "a": nil}, `{"type":"object","value":[["a",{"type":"null"}],["b",{"type":"boolean","value":true}]]}`, ""},
		{"struct by its JSON", arg{"#x", 2}, `{"type":"object","value":[["count",{"type":"number","value":2}],["sel",{"type":"string","value":"#x"}]]}`, ""},
		{"channel", make(chan int), "", "argument chan int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := encodeLocal(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("encodeLocal = %+v, %v, want error with %q", l, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(l)
			if err != nil || string(got) != tt.want {
				t.Fatalf("encodeLocal = %s, %v, want %s", got, err, tt.want)
			}
		})
	}
}

func TestKeyActions(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // the keyDown values
		wantErr string
	}{
		{"text", "ab", []string{"a", "b"}, ""},
		{"named keys", Tab + Enter, []string{Tab, Enter}, ""},
		{"newline is Enter, CR dropped", "x\r\n", []string{"x", Enter}, ""},
		{"non-ASCII", "é€", []string{"é", "€"}, ""},
		{"nothing", "", nil, "no keys"},
		{"invalid UTF-8", "a\xff", nil, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keyActions(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("keyActions = %v, %v, want error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != 2*len(tt.want) {
				t.Fatalf("keyActions = %v, %v, want %d pairs", got, err, len(tt.want))
			}
			for i, k := range tt.want {
				down, up := got[2*i], got[2*i+1]
				if down["type"] != "keyDown" || up["type"] != "keyUp" || down["value"] != k || up["value"] != k {
					t.Errorf("pair %d = %v %v, want keyDown/keyUp %q", i, down, up, k)
				}
			}
		})
	}
}

func TestFormatPrefs(t *testing.T) {
	got, err := formatPrefs(map[string]any{"b.str": `say "hi"`, "a.bool": false, "c.int": 1})
	want := "user_pref(\"a.bool\", false);\nuser_pref(\"b.str\", \"say \\\"hi\\\"\");\nuser_pref(\"c.int\", 1);\n"
	if err != nil || string(got) != want {
		t.Errorf("formatPrefs = %q, %v, want %q", got, err, want)
	}
	if _, err := formatPrefs(map[string]any{"x": 1.5}); err == nil || !strings.Contains(err.Error(), "pref x: a float64") {
		t.Errorf("formatPrefs(float) error = %v", err)
	}
}

func TestDecodePNG(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"png", "iVBORw0KGgoAAAANSUhEUg==", ""},
		{"not base64", "!!!", "base64"},
		{"not a png", "R0lGODlhAQABAAAAACw=", "not a PNG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePNG(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decodePNG = %d bytes, %v, want error with %q", len(got), err, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.HasPrefix(string(got), "\x89PNG") {
				t.Fatalf("decodePNG = %q, %v", got, err)
			}
		})
	}
}

func TestViewport(t *testing.T) {
	tests := []struct {
		name          string
		width, height int
		wantW, wantH  int
		wantErr       bool
	}{
		{name: "defaults", wantW: 1280, wantH: 900},
		{name: "both given", width: 390, height: 844, wantW: 390, wantH: 844},
		{name: "height alone keeps it", height: 600, wantW: 1280, wantH: 600},
		{name: "width alone keeps it", width: 390, wantW: 390, wantH: 900},
		{name: "negative width", width: -1, height: 600, wantErr: true},
		{name: "negative height", width: 390, height: -1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, h, err := viewport(tt.width, tt.height)
			if (err != nil) != tt.wantErr || w != tt.wantW || h != tt.wantH {
				t.Fatalf("viewport(%d, %d) = %d, %d, %v, want %d, %d (error %v)", tt.width, tt.height, w, h, err, tt.wantW, tt.wantH, tt.wantErr)
			}
		})
	}
}
