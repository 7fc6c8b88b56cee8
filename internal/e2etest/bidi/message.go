package bidi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
)

// command is one message to the browser.
type command struct {
	ID     int64  `json:"id"`
	Method string `json:"method"`
	Params any    `json:"params"`
}

// encodeCommand frames a command. Nil params become {} (the protocol wants
// an object).
func encodeCommand(id int64, method string, params any) ([]byte, error) {
	if method == "" {
		return nil, errors.New("bidi: a command needs a method")
	}
	if params == nil {
		params = struct{}{}
	}
	b, err := json.Marshal(command{ID: id, Method: method, Params: params})
	if err != nil {
		return nil, fmt.Errorf("bidi %s: encode params: %w", method, err)
	}
	return b, nil
}

// Kinds of message from the browser.
const (
	kindSuccess = "success"
	kindError   = "error"
	kindEvent   = "event"
)

// message is one decoded message from the browser: the answer to a command
// (success or error, with its id), or an event. An error about a message the
// browser could not read has no id (HasID false).
type message struct {
	Kind   string
	ID     int64
	HasID  bool
	Result json.RawMessage // success
	Err    *Error          // error; Method filled in by the caller that knows it
	Method string          // event
	Params json.RawMessage // event
}

// wire is the union of the three message shapes.
type wire struct {
	Type       string          `json:"type"`
	ID         *int64          `json:"id"`
	Result     json.RawMessage `json:"result"`
	Error      string          `json:"error"`
	Message    string          `json:"message"`
	Stacktrace string          `json:"stacktrace"`
	Method     string          `json:"method"`
	Params     json.RawMessage `json:"params"`
}

// decodeMessage reads one message. Anything that is not one of the three
// shapes the protocol defines is an error: a client that guessed would hang
// a command or drop an answer.
func decodeMessage(data []byte) (message, error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&w); err != nil {
		return message{}, fmt.Errorf("bidi: undecodable message %.200q: %w", data, err)
	}
	// Only JSON white space may follow (dec.More would let a stray } or ]
	// through).
	if len(bytes.Trim(data[dec.InputOffset():], " \t\r\n")) > 0 {
		return message{}, fmt.Errorf("bidi: trailing data after message %.200q", data)
	}
	m := message{Kind: w.Type}
	if w.ID != nil {
		m.ID, m.HasID = *w.ID, true
	}
	switch w.Type {
	case kindSuccess:
		if !m.HasID {
			return message{}, fmt.Errorf("bidi: success without an id: %.200q", data)
		}
		if len(w.Result) == 0 || string(w.Result) == "null" {
			return message{}, fmt.Errorf("bidi: success %d without a result", m.ID)
		}
		m.Result = w.Result
	case kindError:
		if w.Error == "" {
			return message{}, fmt.Errorf("bidi: error message without an error code: %.200q", data)
		}
		m.Err = &Error{Code: w.Error, Message: w.Message, Stacktrace: w.Stacktrace}
	case kindEvent:
		if w.Method == "" {
			return message{}, fmt.Errorf("bidi: event without a method: %.200q", data)
		}
		m.Method, m.Params = w.Method, w.Params
	default:
		return message{}, fmt.Errorf("bidi: message of unknown type %q: %.200q", w.Type, data)
	}
	return m, nil
}

// Error is an error the browser answered a command with.
type Error struct {
	Method     string // the command, e.g. "browsingContext.navigate"
	Code       string // the protocol's error code, e.g. "no such element"
	Message    string
	Stacktrace string // the browser's, for debugging; not in Error()
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("bidi %s: %s", e.Method, e.Code)
	}
	return fmt.Sprintf("bidi %s: %s: %s", e.Method, e.Code, e.Message)
}

// ScriptError is a script that threw (script.evaluate or
// script.callFunction answered with an exception).
type ScriptError struct {
	Method string
	Text   string // the exception as the browser prints it, e.g. "TypeError: x is null"
	Line   int    // zero-based, as the protocol gives it
	Column int
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("bidi %s: script threw at %d:%d: %s", e.Method, e.Line+1, e.Column+1, e.Text)
}

// evaluateResult is script.EvaluateResult.
type evaluateResult struct {
	Type             string          `json:"type"` // success or exception
	Result           json.RawMessage `json:"result"`
	ExceptionDetails *struct {
		Text         string `json:"text"`
		LineNumber   int    `json:"lineNumber"`
		ColumnNumber int    `json:"columnNumber"`
	} `json:"exceptionDetails"`
}

// scriptResult turns a script.evaluate or script.callFunction result into
// the script's value (a RemoteValue) or a *ScriptError.
func scriptResult(method string, raw json.RawMessage) (json.RawMessage, error) {
	var r evaluateResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("bidi %s: result: %w", method, err)
	}
	switch r.Type {
	case "success":
		if len(r.Result) == 0 {
			return nil, fmt.Errorf("bidi %s: success without a value", method)
		}
		return r.Result, nil
	case "exception":
		e := &ScriptError{Method: method, Text: "(no details)"}
		if d := r.ExceptionDetails; d != nil {
			e.Text, e.Line, e.Column = d.Text, d.LineNumber, d.ColumnNumber
		}
		return nil, e
	default:
		return nil, fmt.Errorf("bidi %s: result of unknown type %q", method, r.Type)
	}
}

// remoteValue is script.RemoteValue: a JavaScript value as the browser
// serializes it.
type remoteValue struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// decodeRemote turns a RemoteValue into a Go value: undefined and null
// become nil, numbers float64 (NaN, ±Infinity and -0 included), bigints
// their decimal string, strings and dates string, arrays and sets
// []any, objects and maps map[string]any (a map's non-string keys are an
// error). Nodes, functions, windows, promises and the like have no Go value:
// they are an error naming the type, so a script that returns one by mistake
// says so instead of yielding nil.
func decodeRemote(raw json.RawMessage) (any, error) {
	var v remoteValue
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("remote value %.100q: %w", raw, err)
	}
	switch v.Type {
	case "undefined", "null":
		return nil, nil
	case "string", "date":
		var s string
		if err := json.Unmarshal(v.Value, &s); err != nil {
			return nil, fmt.Errorf("remote %s: %w", v.Type, err)
		}
		return s, nil
	case "bigint":
		var s string
		if err := json.Unmarshal(v.Value, &s); err != nil {
			return nil, fmt.Errorf("remote bigint: %w", err)
		}
		return s, nil
	case "boolean":
		var b bool
		if err := json.Unmarshal(v.Value, &b); err != nil {
			return nil, fmt.Errorf("remote boolean: %w", err)
		}
		return b, nil
	case "number":
		var s string
		if json.Unmarshal(v.Value, &s) == nil {
			switch s {
			case "NaN":
				return math.NaN(), nil
			case "-0":
				return math.Copysign(0, -1), nil
			case "Infinity":
				return math.Inf(1), nil
			case "-Infinity":
				return math.Inf(-1), nil
			}
			return nil, fmt.Errorf("remote number: unknown special value %q", s)
		}
		var f float64
		if err := json.Unmarshal(v.Value, &f); err != nil {
			return nil, fmt.Errorf("remote number: %w", err)
		}
		return f, nil
	case "array", "set":
		if len(v.Value) == 0 {
			return nil, fmt.Errorf("remote %s without its items (serialization depth reached)", v.Type)
		}
		var items []json.RawMessage
		if err := json.Unmarshal(v.Value, &items); err != nil {
			return nil, fmt.Errorf("remote %s: %w", v.Type, err)
		}
		out := make([]any, len(items))
		for i, it := range items {
			x, err := decodeRemote(it)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = x
		}
		return out, nil
	case "object", "map":
		if len(v.Value) == 0 {
			return nil, fmt.Errorf("remote %s without its entries (serialization depth reached)", v.Type)
		}
		var pairs [][2]json.RawMessage
		if err := json.Unmarshal(v.Value, &pairs); err != nil {
			return nil, fmt.Errorf("remote %s: %w", v.Type, err)
		}
		out := make(map[string]any, len(pairs))
		for _, p := range pairs {
			var key string
			if err := json.Unmarshal(p[0], &key); err != nil {
				// A map's key may itself be a RemoteValue; only strings map to Go.
				k, kerr := decodeRemote(p[0])
				s, ok := k.(string)
				if kerr != nil || !ok {
					return nil, fmt.Errorf("remote %s: key %.60s is not a string", v.Type, p[0])
				}
				key = s
			}
			x, err := decodeRemote(p[1])
			if err != nil {
				return nil, fmt.Errorf(".%s: %w", key, err)
			}
			out[key] = x
		}
		return out, nil
	default:
		return nil, fmt.Errorf("a remote %s has no Go value", v.Type)
	}
}

// assign stores a decoded remote value into out: *any takes it as is,
// anything else through JSON (so structs, typed slices and numbers work;
// NaN or Infinity into a typed destination is an error).
func assign(v any, out any) error {
	if out == nil {
		return nil
	}
	if p, ok := out.(*any); ok {
		*p = v
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("value %v: %w", v, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("value %s into %T: %w", b, out, err)
	}
	return nil
}

// localValue is script.LocalValue: an argument for script.callFunction.
type localValue struct {
	Type  string
	Value any
}

// encodeLocal turns a Go value into a LocalValue: nil is null, bools,
// strings and numbers are primitives (NaN and ±Infinity as the protocol
// spells them), slices arrays and maps with string keys objects; anything
// else goes through its JSON encoding first (a struct becomes an object of
// its JSON fields).
func encodeLocal(v any) (localValue, error) {
	switch x := v.(type) {
	case nil:
		return localValue{Type: "null"}, nil
	case bool:
		return localValue{Type: "boolean", Value: x}, nil
	case string:
		return localValue{Type: "string", Value: x}, nil
	case float64:
		return number(x), nil
	case float32:
		return number(float64(x)), nil
	case int:
		return localValue{Type: "number", Value: x}, nil
	case int64:
		return localValue{Type: "number", Value: x}, nil
	case int32:
		return localValue{Type: "number", Value: x}, nil
	case uint:
		return localValue{Type: "number", Value: x}, nil
	case uint64:
		return localValue{Type: "number", Value: x}, nil
	case uint32:
		return localValue{Type: "number", Value: x}, nil
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return localValue{}, fmt.Errorf("number %q: %w", x, err)
		}
		return number(f), nil
	case []any:
		items := make([]localValue, len(x))
		for i, it := range x {
			l, err := encodeLocal(it)
			if err != nil {
				return localValue{}, fmt.Errorf("[%d]: %w", i, err)
			}
			items[i] = l
		}
		return localValue{Type: "array", Value: items}, nil
	case map[string]any:
		pairs := make([][2]any, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			l, err := encodeLocal(x[k])
			if err != nil {
				return localValue{}, fmt.Errorf(".%s: %w", k, err)
			}
			pairs = append(pairs, [2]any{k, l})
		}
		return localValue{Type: "object", Value: pairs}, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return localValue{}, fmt.Errorf("argument %T: %w", v, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var g any
	if err := dec.Decode(&g); err != nil {
		return localValue{}, fmt.Errorf("argument %T: %w", v, err)
	}
	return encodeLocal(g)
}

func number(f float64) localValue {
	switch {
	case math.IsNaN(f):
		return localValue{Type: "number", Value: "NaN"}
	case math.IsInf(f, 1):
		return localValue{Type: "number", Value: "Infinity"}
	case math.IsInf(f, -1):
		return localValue{Type: "number", Value: "-Infinity"}
	case f == 0 && math.Signbit(f):
		return localValue{Type: "number", Value: "-0"}
	}
	return localValue{Type: "number", Value: f}
}

// MarshalJSON keeps a zero value (false, 0, "") from being dropped by
// omitempty: only null and undefined have no value.
func (l localValue) MarshalJSON() ([]byte, error) {
	if l.Type == "null" || l.Type == "undefined" {
		return json.Marshal(struct {
			Type string `json:"type"`
		}{l.Type})
	}
	return json.Marshal(struct {
		Type  string `json:"type"`
		Value any    `json:"value"`
	}{l.Type, l.Value})
}
