package cap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ucan-wg/go-ucan/pkg/args"
	"github.com/ucan-wg/go-ucan/pkg/policy"
)

// MaxPolicySize bounds the text of a policy.
const MaxPolicySize = 16 << 10

// ParsePolicy parses the DAG-JSON text form of a UCAN policy: a list of
// statements that must all hold over the invocation's arguments, e.g.
//
//	[["==", ".executor", "docker"], ["<=", ".cpu", 4]]
//	[["or", [["==", ".image", "alpine"], ["like", ".image", "debian:*"]]]]
//
// A single statement (["==", ".executor", "docker"]) is accepted as a
// one-statement policy; "" and "[]" mean no constraint. The operators are
// go-ucan's (==, !=, <, <=, >, >=, like, not, and, or, all, any); selectors
// are jq-like (.a.b, .list[0], .x?). See docs/capabilities.md.
func ParsePolicy(text string) (policy.Policy, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return policy.Policy{}, nil
	}
	if len(text) > MaxPolicySize {
		return nil, fmt.Errorf("policy is %d bytes, max %d", len(text), MaxPolicySize)
	}
	n, err := safely(func() (datamodel.Node, error) { return ipld.Decode([]byte(text), dagjson.Decode) })
	if err != nil {
		return nil, fmt.Errorf("policy %s: not JSON: %w", abbrev(text), err)
	}
	// A single statement starts with an operator string.
	if n.Kind() == datamodel.Kind_List && n.Length() > 0 {
		if first, err := n.LookupByIndex(0); err == nil && first.Kind() == datamodel.Kind_String {
			text = "[" + text + "]"
			if n, err = safely(func() (datamodel.Node, error) { return ipld.Decode([]byte(text), dagjson.Decode) }); err != nil {
				return nil, fmt.Errorf("policy %s: %w", abbrev(text), err)
			}
		}
	}
	p, err := safely(func() (policy.Policy, error) { return policy.FromIPLD(n) })
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", abbrev(text), err)
	}
	return p, nil
}

func abbrev(s string) string {
	if len(s) > 60 {
		return fmt.Sprintf("%q…", s[:60])
	}
	return fmt.Sprintf("%q", s)
}

// policyStatements returns the text of each statement, for comparing
// policies statement by statement.
func policyStatements(p policy.Policy) []string {
	out := make([]string, len(p))
	for i, s := range p {
		out[i] = policyText(policy.Policy{s})
	}
	return out
}

// policyOf makes a one-statement policy (none for nil).
func policyOf(s policy.Statement) policy.Policy {
	if s == nil {
		return nil
	}
	return policy.Policy{s}
}

// MaxArgsSize bounds the JSON text of invocation arguments.
const MaxArgsSize = 1 << 20

// ArgsFromJSON decodes a JSON object into invocation arguments, keeping
// integers as integers (policies compare them exactly).
func ArgsFromJSON(data []byte) (map[string]any, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return map[string]any{}, nil
	}
	if len(data) > MaxArgsSize {
		return nil, fmt.Errorf("arguments are %d bytes, max %d", len(data), MaxArgsSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("arguments: want a JSON object: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("arguments: trailing data after the JSON object")
	}
	if m == nil {
		m = map[string]any{}
	}
	for k, v := range m {
		m[k] = numbers(v)
	}
	return m, nil
}

// numbers replaces json.Number values by int64 or float64.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// buildArgs converts arguments for go-ucan, checking each value.
func buildArgs(m map[string]any) (*args.Args, error) {
	a := args.New()
	for k, v := range m {
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%v", r)
				}
			}()
			return a.Add(k, v)
		}()
		if err != nil {
			return nil, fmt.Errorf("argument %q: %w", k, err)
		}
	}
	return a, nil
}
