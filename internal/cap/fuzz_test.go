package cap

import (
	"encoding/base64"
	"strings"
	"testing"
)

// Decoders of bytes from files and the network never panic and refuse
// with a *DeniedError.

func FuzzDecodeChain(f *testing.F) {
	w := newWorld(f)
	c := w.chain(f, "/dms/node/peers", w.bob, w.carol)
	text := must[string](f)(c.Encode())
	raw, _ := base64.StdEncoding.DecodeString(text[1:])
	f.Add([]byte(text))
	f.Add(append([]byte{ctnRaw}, raw...))
	f.Add([]byte("C" + base64.RawURLEncoding.EncodeToString(raw)))
	f.Add([]byte{ctnBase64Gzip, 'H', '4', 's', 'I'})
	f.Add([]byte("B"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeChain(data)
		if err != nil {
			if RuleOf(err) == "" {
				t.Fatalf("DecodeChain error is not a *DeniedError: %v", err)
			}
			return
		}
		again, err := got.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeChain([]byte(again))
		if err != nil || strings.Join(back.CIDs(), ",") != strings.Join(got.CIDs(), ",") {
			t.Fatalf("re-encoded chain does not round-trip: %v", err)
		}
	})
}

func FuzzDecodeInvocation(f *testing.F) {
	w := newWorld(f)
	c := w.chain(f, "/dms/node/peers", w.bob)
	f.Add(w.invoke(f, w.bob, "/dms/node/peers/list", c, func(p *InvocationParams) {
		p.Args = map[string]any{"a": []any{int64(1), "x"}}
		p.Meta = map[string]string{"host": "p"}
	}).Sealed())
	f.Add(c[0].Sealed())
	f.Add([]byte{0x82, 0x40, 0xa0})
	v := w.verifier(f, NewRevocations())
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := DecodeInvocation(data); err != nil && RuleOf(err) == "" {
			t.Fatalf("DecodeInvocation error is not a *DeniedError: %v", err)
		}
		if _, err := DecodeDelegation(data); err != nil && RuleOf(err) == "" {
			t.Fatalf("DecodeDelegation error is not a *DeniedError: %v", err)
		}
		if _, err := v.Authorize(w.t0, data, [][]byte{data, c[0].Sealed()}); err != nil && RuleOf(err) == "" {
			t.Fatalf("Authorize error is not a *DeniedError: %v", err)
		}
	})
}

// FuzzInvocationBinding: reading an invocation's binding, and checking
// it, refuse any input with a *DeniedError and never panic.
func FuzzInvocationBinding(f *testing.F) {
	w := newWorld(f)
	for _, args := range []map[string]any{
		Bind("12D3KooWHost", []byte(`{}`)).Args(),
		{ArgHost: int64(1), ArgPayload: "x"},
		{ArgHost: "h", ArgPayload: []byte{1}},
	} {
		f.Add(w.invoke(f, w.bob, "/public/x", nil, func(p *InvocationParams) { p.Args = args }).Sealed(), "12D3KooWHost", []byte(`{}`))
	}
	f.Fuzz(func(t *testing.T, data []byte, host string, payload []byte) {
		inv, err := DecodeInvocation(data)
		if err != nil {
			return
		}
		b, err := inv.Binding()
		if err != nil {
			if RuleOf(err) != RuleMalformed {
				t.Fatalf("Binding error = %v, want a malformed refusal", err)
			}
			return
		}
		for _, oneShot := range []bool{false, true} {
			if err := b.Check(host, payload, oneShot); err != nil && RuleOf(err) != RuleBinding {
				t.Fatalf("Check error = %v, want a binding refusal", err)
			}
		}
	})
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		`[["==", ".executor", "docker"]]`,
		`["<=", ".cpu", 4]`,
		`[["or", [["==", ".a", 1], ["like", ".b", "x*"]]], ["not", ["!=", ".c", null]]]`,
		`[["all", ".ports[]", [">", ".", 1024]], ["any", ".tags", ["==", ".", "gpu"]]]`,
		`[["==", ".a.b[0]?", {"k": [1.5, true]}]]`,
		``, `[]`, `[[]]`, `[1]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		text := policyText(p)
		q, err := ParsePolicy(text)
		if err != nil {
			t.Fatalf("ParsePolicy(%q) accepted, but its text %q does not parse: %v", s, text, err)
		}
		if policyText(q) != text {
			t.Fatalf("policy text does not round-trip: %q → %q", text, policyText(q))
		}
		// Matching arbitrary arguments must not panic either.
		a, err := buildArgs(map[string]any{"executor": "docker", "cpu": int64(2), "ports": []any{int64(80)}, "s": s})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := a.ToIPLD()
		p.Match(n)
	})
}
