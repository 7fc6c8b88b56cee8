package cap

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// Building tokens: every parameter of a delegation or invocation comes back
// from the signed token, and a wrong parameter is refused before signing.

func TestDelegateParams(t *testing.T) {
	w := newWorld(t)
	nbf := w.t0.Add(time.Minute).Truncate(time.Second)
	exp := w.t0.Add(time.Hour).Truncate(time.Second)
	d, err := Delegate(w.alice, DelegationParams{
		Audience: w.bob.DID(), Command: "/dms/node/deployment", Policy: `[["==", ".executor", "wasm"]]`,
		NotBefore: nbf, Expiry: exp, Meta: map[string]string{"purpose": "ci", "team": "infra"}, Nonce: []byte("fixed-nonce-0001"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Issuer() != w.alice.DID() || d.Audience() != w.bob.DID() || d.Subject() != w.alice.DID() || !d.IsRoot() {
		t.Errorf("issuer %s audience %s subject %s root %v; want alice → bob, alice's own authority", d.Issuer(), d.Audience(), d.Subject(), d.IsRoot())
	}
	if d.Command() != "/dms/node/deployment" || d.Policy() != `[["==",".executor","wasm"]]` {
		t.Errorf("command %s policy %s", d.Command(), d.Policy())
	}
	if !d.NotBefore().Equal(nbf) || !d.Expiry().Equal(exp) {
		t.Errorf("not before %s expiry %s, want %s and %s", d.NotBefore(), d.Expiry(), nbf, exp)
	}
	for k, want := range map[string]string{"purpose": "ci", "team": "infra"} {
		if got, ok := d.Meta(k); !ok || got != want {
			t.Errorf("Meta(%s) = %q, %v; want %q", k, got, ok, want)
		}
	}
	if _, ok := d.Meta("absent"); ok {
		t.Error("Meta of an absent key found something")
	}
	// The same parameters and nonce sign the same token.
	again := must[*Delegation](t)(Delegate(w.alice, DelegationParams{
		Audience: w.bob.DID(), Command: "/dms/node/deployment", Policy: `[["==", ".executor", "wasm"]]`,
		NotBefore: nbf, Expiry: exp, Meta: map[string]string{"team": "infra", "purpose": "ci"}, Nonce: []byte("fixed-nonce-0001"),
	}))
	if again.CID() != d.CID() || !bytes.Equal(again.Sealed(), d.Sealed()) {
		t.Error("the same parameters signed a different token")
	}
	// A delegation on another subject's behalf is not a root.
	sub := must[*Delegation](t)(Delegate(w.bob, DelegationParams{Audience: w.carol.DID(), Subject: w.alice.DID(), Command: "/dms"}))
	if sub.IsRoot() || sub.Subject() != w.alice.DID() || !sub.Expiry().IsZero() || !sub.NotBefore().IsZero() {
		t.Errorf("re-delegation: root %v subject %s expiry %s not before %s", sub.IsRoot(), sub.Subject(), sub.Expiry(), sub.NotBefore())
	}

	tests := []struct {
		name string
		p    DelegationParams
		want string
	}{
		{"bad audience", DelegationParams{Audience: "did:key:nope", Command: "/dms"}, "audience"},
		{"bad subject", DelegationParams{Audience: w.bob.DID(), Subject: "did:web:example.com:x:y:z:%", Command: "/dms"}, "subject"},
		{"bad command", DelegationParams{Audience: w.bob.DID(), Command: "dms"}, "command"},
		{"upper-case command", DelegationParams{Audience: w.bob.DID(), Command: "/DMS"}, "command"},
		{"bad policy", DelegationParams{Audience: w.bob.DID(), Command: "/dms", Policy: `[["~~", ".a", 1]]`}, "policy"},
		{"policy not JSON", DelegationParams{Audience: w.bob.DID(), Command: "/dms", Policy: `[[`}, "policy"},
		{"expiry in the past", DelegationParams{Audience: w.bob.DID(), Command: "/dms", Expiry: w.t0.Add(-time.Hour)}, "delegation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d, err := Delegate(w.alice, tt.p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Delegate = %v, %v; want an error about the %s", d, err, tt.want)
			}
		})
	}
}

func TestInvokeParams(t *testing.T) {
	w := newWorld(t)
	c := w.chain(t, "/dms/node/peers", w.bob)
	iat := w.t0.Truncate(time.Second)
	inv, err := Invoke(w.bob, InvocationParams{
		Audience: w.node.DID(), Command: "/dms/node/peers/list", Proofs: c, Expiry: w.t0.Add(time.Minute),
		IssuedAt: iat, Nonce: []byte("nonce-0000000001"), Meta: map[string]string{"host": "12D3KooWx"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(inv.Nonce(), []byte("nonce-0000000001")) || !inv.IssuedAt().Equal(iat) {
		t.Errorf("nonce %q issued at %s, want nonce-1 and %s", inv.Nonce(), inv.IssuedAt(), iat)
	}
	if inv.Subject() != w.alice.DID() {
		t.Errorf("subject %s, want the chain's root", inv.Subject())
	}
	// Without a nonce, each invocation gets its own; without issued-at
	// there is none.
	a := w.invoke(t, w.bob, "/dms/node/peers/list", c)
	b := w.invoke(t, w.bob, "/dms/node/peers/list", c)
	if len(a.Nonce()) == 0 || bytes.Equal(a.Nonce(), b.Nonce()) || !a.IssuedAt().IsZero() {
		t.Errorf("nonces %x and %x, issued at %s: want two different nonces and no time", a.Nonce(), b.Nonce(), a.IssuedAt())
	}

	tests := []struct {
		name string
		p    InvocationParams
		want string
	}{
		{"bad audience", InvocationParams{Audience: "did:key:nope", Command: "/dms/node/peers/list", Proofs: c}, "audience"},
		{"bad subject", InvocationParams{Audience: w.node.DID(), Subject: "not-a-did", Command: "/dms/x"}, "subject"},
		{"bad command", InvocationParams{Audience: w.node.DID(), Command: "/dms/Peers", Proofs: c}, "command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if inv, err := Invoke(w.bob, tt.p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Invoke = %v, %v; want an error about the %s", inv, err, tt.want)
			}
		})
	}
}

// A chain's accessors on an empty chain, and Extend's checks.
func TestChainShape(t *testing.T) {
	w := newWorld(t)
	var empty Chain
	if empty.Root() != "" || empty.Holder() != "" || empty.Leaf() != nil {
		t.Errorf("empty chain: root %q holder %q leaf %v", empty.Root(), empty.Holder(), empty.Leaf())
	}
	var de *DeniedError
	if err := empty.CheckLinks(); !errors.As(err, &de) || de.Rule != RuleMalformed {
		t.Errorf("CheckLinks of an empty chain = %v, want malformed", err)
	}
	c := w.chain(t, "/dms/node", w.bob)
	if c.Root() != w.alice.DID() || c.Holder() != w.bob.DID() || c.Leaf() != c[0] {
		t.Errorf("root %s holder %s", c.Root(), c.Holder())
	}
	tests := []struct {
		name string
		d    *Delegation
		rule Rule
	}{
		{"issued by someone else than the holder", w.grant(t, w.carol, w.dave, "/dms/node"), RuleAudience},
		{"another subject", must[*Delegation](t)(Delegate(w.bob, DelegationParams{Audience: w.carol.DID(), Subject: w.mallory.DID(), Command: "/dms/node"})), RuleSubject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Extend(tt.d); !errors.As(err, &de) || de.Rule != tt.rule {
				t.Fatalf("Extend = %v, want %s", err, tt.rule)
			}
		})
	}
	ok := must[*Delegation](t)(Delegate(w.bob, DelegationParams{Audience: w.carol.DID(), Subject: w.alice.DID(), Command: "/dms/node/peers"}))
	longer := must[Chain](t)(c.Extend(ok))
	if len(longer) != 2 || len(c) != 1 || longer.Holder() != w.carol.DID() {
		t.Fatalf("Extend = %d delegations (parent %d), holder %s", len(longer), len(c), longer.Holder())
	}
	// CheckLinks refuses a link that widens the command.
	wide := must[*Delegation](t)(Delegate(w.bob, DelegationParams{Audience: w.carol.DID(), Subject: w.alice.DID(), Command: "/dms"}))
	widened := must[Chain](t)(c.Extend(wide))
	if err := widened.CheckLinks(); !errors.As(err, &de) || de.Rule != RuleCommandEscalation {
		t.Fatalf("CheckLinks of a widening chain = %v, want command-escalation", err)
	}
}

// Who may revoke a delegation of a chain alice → bob → carol: its issuer
// or an ancestor's, never its audience; a CID the chain does not hold is a
// malformed request.
func TestCanRevoke(t *testing.T) {
	w := newWorld(t)
	c := w.chain(t, "/dms/node/peers", w.bob, w.carol)
	leaf := c[1].CID()
	tests := []struct {
		name   string
		cid    string
		issuer *identity.Key
		want   error // nil, ErrNoRevokeAuthority or a DeniedError rule
		rule   Rule
	}{
		{"the root's user", leaf, w.alice, nil, ""},
		{"the leaf's issuer", leaf, w.bob, nil, ""},
		{"the root delegation by its issuer", c[0].CID(), w.alice, nil, ""},
		{"the audience", leaf, w.carol, ErrNoRevokeAuthority, ""},
		{"a stranger", leaf, w.mallory, ErrNoRevokeAuthority, ""},
		{"the root delegation by the intermediate", c[0].CID(), w.bob, ErrNoRevokeAuthority, ""},
		{"a token not in the chain", "bafyreinothere", w.alice, nil, RuleMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CanRevoke(c, tt.cid, tt.issuer.DID())
			var de *DeniedError
			switch {
			case tt.rule != "":
				if !errors.As(err, &de) || de.Rule != tt.rule {
					t.Fatalf("CanRevoke = %v, want %s", err, tt.rule)
				}
			case tt.want != nil:
				if !errors.Is(err, tt.want) {
					t.Fatalf("CanRevoke = %v, want %v", err, tt.want)
				}
			case err != nil:
				t.Fatalf("CanRevoke = %v, want allowed", err)
			}
		})
	}
}

func TestRevocationsSet(t *testing.T) {
	s := NewRevocations()
	g := s.Generation()
	if s.IsRevoked("bafyA") || len(s.List()) != 0 {
		t.Fatal("a new set is not empty")
	}
	s.Add(Revocation{CID: "bafyA"})
	s.Add(Revocation{CID: "bafyB"})
	s.Add(Revocation{CID: "bafyA"}) // again: still one record, a new generation
	if !s.IsRevoked("bafyA") || !s.IsRevoked("bafyB") || s.IsRevoked("bafyC") {
		t.Fatal("IsRevoked disagrees with what was added")
	}
	if n := len(s.List()); n != 2 {
		t.Fatalf("List holds %d records, want 2", n)
	}
	if s.Generation() != g+3 {
		t.Fatalf("generation %d after 3 adds from %d", s.Generation(), g)
	}
}

func TestTrustAnchors(t *testing.T) {
	w := newWorld(t)
	a := Anchor{Root: w.alice.DID(), Cmd: "/dms/node"}
	if a.String() != string(w.alice.DID())+" /dms/node" {
		t.Errorf("Anchor.String = %q", a.String())
	}
	tr := must[Trust](t)(NewTrust(a))
	got := tr.Anchors()
	got[0].Cmd = "/"
	if tr.Trusts(w.alice.DID(), "/dms/x") {
		t.Fatal("changing the anchors Anchors returned changed the trust")
	}
	v := NewVerifier(Config{Trust: tr})
	if anchors := v.Trust().Anchors(); len(anchors) != 1 || anchors[0] != a {
		t.Fatalf("Verifier.Trust = %v", anchors)
	}
	v.SetTrust(Trust{})
	if len(v.Trust().Anchors()) != 0 {
		t.Fatal("SetTrust did not replace the trust")
	}
}

func TestArgsFromJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the arguments as an invocation carries them
		err  string
	}{
		{"empty", "  ", "{}", ""},
		{"null", "null", "{}", ""},
		{"integers stay integers", `{"cpu": 4, "big": 9007199254740991}`, `{"big":9007199254740991,"cpu":4}`, ""},
		{"floats and nesting", `{"ram": 1.5, "ports": [80, 443], "env": {"A": "1"}}`, `{"env":{"A":"1"},"ports":[80,443],"ram":1.5}`, ""},
		{"not an object", `[1, 2]`, "", "want a JSON object"},
		{"trailing data", `{"a": 1} {"b": 2}`, "", "trailing data"},
		{"too large", `{"a": "` + strings.Repeat("x", MaxArgsSize) + `"}`, "", "max"},
	}
	w := newWorld(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := ArgsFromJSON([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ArgsFromJSON = %v, %v; want an error containing %q", args, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			inv := w.invoke(t, w.alice, "/dms/x", nil, func(p *InvocationParams) { p.Args = args })
			if got := string(must[[]byte](t)(inv.ArgsJSON())); got != tt.want {
				t.Fatalf("arguments = %s, want %s", got, tt.want)
			}
		})
	}
	// An integer beyond 2^53 cannot be carried exactly: the invocation is
	// refused rather than rounded.
	args := must[map[string]any](t)(ArgsFromJSON([]byte(`{"big": 9007199254740993}`)))
	if inv, err := Invoke(w.alice, InvocationParams{Audience: w.node.DID(), Command: "/dms/x", Args: args}); err == nil || !strings.Contains(err.Error(), "safe integer") {
		t.Fatalf("Invoke with 2^53+1 = %v, %v; want a refusal naming the safe integer bounds", inv, err)
	}
}
