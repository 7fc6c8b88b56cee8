package cap

import (
	"testing"
)

// TestBinding: an invocation's binding round-trips through its arguments,
// survives authorization (cached or not), and Check refuses any other host
// or payload with RuleBinding; a binding argument of the wrong type is
// malformed.
func TestBinding(t *testing.T) {
	w := newWorld(t)
	v := w.verifier(t, NewRevocations())
	c := w.chain(t, "/dms/node/peers", w.bob)
	const host, other = "12D3KooWHost", "12D3KooWOther"
	payload := []byte(`{"peer":"x"}`)
	authorized := func(t *testing.T, args map[string]any) (*Authorized, error) {
		t.Helper()
		inv := w.invoke(t, w.bob, "/dms/node/peers/list", c, func(p *InvocationParams) { p.Args = args })
		return v.Authorize(w.t0, inv.Sealed(), sealedOf(c))
	}

	tests := []struct {
		name    string
		args    map[string]any
		host    string
		payload []byte
		oneShot bool
		rule    Rule // "" accepted
	}{
		{"one-shot, matching", Bind(host, payload).Args(), host, payload, true, ""},
		{"one-shot, no payload", Bind(host, nil).Args(), host, nil, true, ""},
		{"one-shot, other host", Bind(host, payload).Args(), other, payload, true, RuleBinding},
		{"one-shot, other payload", Bind(host, payload).Args(), host, []byte(`{"peer":"y"}`), true, RuleBinding},
		{"one-shot, bound to no payload", Binding{Host: host}.Args(), host, payload, true, RuleBinding},
		{"session, bound to the host", Binding{Host: host}.Args(), host, nil, false, ""},
		{"session, other host", Binding{Host: host}.Args(), other, nil, false, RuleBinding},
		{"bound to no host", nil, host, nil, false, RuleBinding},
		{"host not a string", map[string]any{ArgHost: int64(7)}, host, nil, false, RuleMalformed},
		{"empty host", map[string]any{ArgHost: ""}, host, nil, false, RuleMalformed},
		{"digest not bytes", map[string]any{ArgHost: host, ArgPayload: "abc"}, host, nil, true, RuleMalformed},
		{"digest too short", map[string]any{ArgHost: host, ArgPayload: []byte{1, 2, 3}}, host, nil, true, RuleMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, pass := range []string{"verified", "cached"} {
				res, err := authorized(t, tt.args)
				if err == nil {
					err = res.Binding.Check(tt.host, tt.payload, tt.oneShot)
				}
				if got := RuleOf(err); got != tt.rule {
					t.Fatalf("%s: Authorize+Check = %v, want rule %q", pass, err, tt.rule)
				}
			}
		})
	}
}
