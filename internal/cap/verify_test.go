package cap

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// TestAuthorize is the acceptance table of the capability rules: one named
// case per rule, each an invocation that must pass or fail with that rule.
func TestAuthorize(t *testing.T) {
	w := newWorld(t)
	peers := "/dms/node/peers"
	list := "/dms/node/peers/list"

	type tc struct {
		name   string
		inv    *Invocation
		proofs Chain
		at     time.Time // default w.t0
		cfg    func(*Config)
		revoke func(c Chain) Revocation // revoked before the check
		rule   Rule                     // "" for success
		token  func(inv *Invocation, c Chain) string
		detail string // substring of the refusal's Detail
	}
	leafCID := func(_ *Invocation, c Chain) string { return c.Leaf().CID() }
	rootCID := func(_ *Invocation, c Chain) string { return c[0].CID() }
	invTok := func(*Invocation, Chain) string { return TokenInvocation }

	valid := w.chain(t, peers, w.bob)
	twoHop := w.chain(t, peers, w.bob, w.carol)
	withPolicy := Chain{w.grant(t, w.alice, w.bob, "/dms/node/deployment", func(p *DelegationParams) {
		p.Policy = `[["==", ".executor", "docker"], ["<=", ".cpu", 4]]`
	})}
	notYet := Chain{w.grant(t, w.alice, w.bob, peers, func(p *DelegationParams) { p.NotBefore = w.t0.Add(30 * time.Minute) })}
	forged := Chain{w.forged(t, w.alice, w.mallory, w.bob, peers)}
	untrusted := Chain{w.grant(t, w.mallory, w.bob, peers)}
	// A re-delegation that widens /dms/node/peers to /dms, built without
	// Redelegate's checks.
	widened := must[Chain](t)(valid.Extend(w.grant(t, w.bob, w.carol, "/dms", func(p *DelegationParams) { p.Subject = w.alice.DID() })))
	// A re-delegation claiming another subject.
	wrongSubject := append(Chain{valid[0]}, w.grant(t, w.bob, w.carol, peers))
	// A chain that skips a link: alice→bob, then carol→dave.
	broken := append(Chain{valid[0]}, w.grant(t, w.carol, w.dave, peers, func(p *DelegationParams) { p.Subject = w.alice.DID() }))
	deep := w.chain(t, peers, w.bob, w.carol, w.dave)
	everything := w.chain(t, "/", w.bob)

	tamperedInv := w.invoke(t, w.bob, list, valid)
	tamperedBytes := append([]byte(nil), tamperedInv.Sealed()...)
	tamperedBytes[10] ^= 0xff // inside the signature

	tests := []tc{
		{name: "valid chain", inv: w.invoke(t, w.bob, list, valid), proofs: valid},
		{name: "valid chain, exact command", inv: w.invoke(t, w.bob, peers, valid), proofs: valid},
		{name: "valid two-hop chain", inv: w.invoke(t, w.carol, list, twoHop), proofs: twoHop},
		{name: "valid self-issued by the trusted root", inv: w.invoke(t, w.alice, list, nil)},
		{name: "valid public command, untrusted self-signed", inv: w.invoke(t, w.mallory, "/public/ping", nil)},
		{name: "valid within clock skew after expiry", inv: w.invoke(t, w.bob, list, valid, func(p *InvocationParams) { p.Expiry = w.t0.Add(2 * time.Hour) }), proofs: valid, at: w.t0.Add(time.Hour + 20*time.Second)},
		{name: "valid policy", inv: w.invoke(t, w.bob, "/dms/node/deployment/new", withPolicy, func(p *InvocationParams) {
			p.Args = map[string]any{"executor": "docker", "cpu": 2}
		}), proofs: withPolicy},

		{name: "expired delegation", inv: w.invoke(t, w.bob, list, valid, func(p *InvocationParams) { p.Expiry = w.t0.Add(3 * time.Hour) }),
			proofs: valid, at: w.t0.Add(2 * time.Hour), rule: RuleExpired, token: rootCID, detail: "expired at"},
		{name: "expired invocation", inv: w.invoke(t, w.bob, list, valid), proofs: valid, at: w.t0.Add(10 * time.Minute),
			rule: RuleExpired, token: invTok},
		{name: "not yet valid", inv: w.invoke(t, w.bob, list, notYet), proofs: notYet, rule: RuleNotYetValid, token: rootCID},
		{name: "broken signature on a delegation", inv: w.invoke(t, w.bob, list, forged), proofs: forged, rule: RuleSignature, token: rootCID},
		{name: "broken signature on the invocation", inv: tamperedInv, rule: RuleSignature, token: invTok},
		{name: "audience mismatch: chain held by another", inv: w.invoke(t, w.carol, list, valid), proofs: valid,
			rule: RuleAudience, token: leafCID, detail: "not to the invoker"},
		{name: "audience mismatch: broken link", inv: w.invoke(t, w.dave, list, broken), proofs: broken,
			rule: RuleAudience, token: leafCID, detail: "was delegated to"},
		{name: "audience mismatch: invocation for another node", inv: w.invoke(t, w.bob, list, valid, func(p *InvocationParams) { p.Audience = w.mallory.DID() }),
			proofs: valid, rule: RuleAudience, token: invTok, detail: "not this node"},
		{name: "subject mismatch in a re-delegation", inv: w.invoke(t, w.carol, list, wrongSubject), proofs: wrongSubject,
			rule: RuleSubject, token: leafCID},
		{name: "subject mismatch: self-issued for someone else", inv: w.invoke(t, w.bob, list, nil, func(p *InvocationParams) { p.Subject = w.alice.DID() }),
			rule: RuleSubject, token: invTok},
		{name: "command escalation", inv: w.invoke(t, w.bob, "/dms/node/deployment/new", valid), proofs: valid,
			rule: RuleCommandEscalation, token: rootCID, detail: "/dms/node/deployment/new is not under /dms/node/peers"},
		{name: "command escalation by prefix text, not segment", inv: w.invoke(t, w.bob, "/dms/node/peersx", valid), proofs: valid,
			rule: RuleCommandEscalation, token: rootCID},
		{name: "re-delegation that widens", inv: w.invoke(t, w.carol, list, widened), proofs: widened,
			rule: RuleCommandEscalation, token: leafCID, detail: "/dms is not under its parent's /dms/node/peers"},
		{name: "policy violation", inv: w.invoke(t, w.bob, "/dms/node/deployment/new", withPolicy, func(p *InvocationParams) {
			p.Args = map[string]any{"executor": "wasm", "cpu": 2}
		}), proofs: withPolicy, rule: RulePolicy, token: rootCID, detail: `".executor"`},
		{name: "policy violation: missing argument", inv: w.invoke(t, w.bob, "/dms/node/deployment/new", withPolicy), proofs: withPolicy,
			rule: RulePolicy, token: rootCID},
		{name: "revoked delegation", inv: w.invoke(t, w.bob, list, valid), proofs: valid,
			revoke: func(c Chain) Revocation { return must[Revocation](t)(Revoke(w.alice, c, c[0].CID(), w.t0)) },
			rule:   RuleRevoked, token: rootCID},
		{name: "revoked by an ancestor's issuer", inv: w.invoke(t, w.carol, list, twoHop), proofs: twoHop,
			revoke: func(c Chain) Revocation { return must[Revocation](t)(Revoke(w.alice, c, c[1].CID(), w.t0)) },
			rule:   RuleRevoked, token: leafCID},
		{name: "depth exceeded", inv: w.invoke(t, w.dave, list, deep), proofs: deep,
			cfg: func(c *Config) { c.MaxDepth = 2 }, rule: RuleDepth, token: invTok, detail: "3 delegations, max 2"},
		{name: "untrusted root", inv: w.invoke(t, w.bob, list, untrusted), proofs: untrusted, rule: RuleUntrustedRoot, token: rootCID},
		{name: "untrusted root: self-issued", inv: w.invoke(t, w.mallory, list, nil), rule: RuleUntrustedRoot, token: invTok},
		{name: "untrusted root: anchored for another prefix", inv: w.invoke(t, w.bob, "/other/thing", everything), proofs: everything,
			rule: RuleUntrustedRoot, token: rootCID, detail: "is not trusted for /other/thing"},
		{name: "proof not supplied", inv: w.invoke(t, w.bob, list, valid), rule: RuleMalformed,
			token: func(*Invocation, Chain) string { return valid[0].CID() }, detail: "not supplied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Trust: w.trust(t), IsLocal: func(d identity.DID) bool { return d == w.node.DID() }}
			revs := NewRevocations()
			cfg.Revoked = revs
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			if tt.revoke != nil {
				r := tt.revoke(tt.proofs)
				if err := r.Verify(tt.proofs); err != nil {
					t.Fatalf("revocation does not verify: %v", err)
				}
				revs.Add(r)
			}
			v := NewVerifier(cfg)
			at := tt.at
			if at.IsZero() {
				at = w.t0
			}
			sealed := tt.inv.Sealed()
			if tt.name == "broken signature on the invocation" {
				sealed = tamperedBytes
			}
			proofs := sealedOf(tt.proofs)
			res, err := v.Authorize(at, sealed, proofs)
			checkRule(t, err, tt.rule)
			if tt.rule == "" {
				if res.Command != tt.inv.Command() || res.Issuer != tt.inv.Issuer() {
					t.Fatalf("Authorized = %+v", res)
				}
				return
			}
			var d *DeniedError
			errors.As(err, &d)
			if tt.token != nil {
				if want := tt.token(tt.inv, tt.proofs); d.Token != want {
					t.Errorf("refusal names token %s, want %s (%v)", d.Token, want, err)
				}
			}
			if !strings.Contains(d.Detail, tt.detail) {
				t.Errorf("detail %q, want it to contain %q", d.Detail, tt.detail)
			}
			if !strings.HasPrefix(err.Error(), "denied: "+string(tt.rule)+": ") || !errors.Is(err, ErrDenied) {
				t.Errorf("error text %q: want prefix denied: %s:", err, tt.rule)
			}
		})
	}
}

func checkRule(t *testing.T, err error, want Rule) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("Authorize = %v, want success", err)
		}
		return
	}
	if got := RuleOf(err); got != want {
		t.Fatalf("Authorize = %v, want rule %s", err, want)
	}
}
