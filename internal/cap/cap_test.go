package cap

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ucan-wg/go-ucan/token/delegation"

	"github.com/dmsnet/dms/internal/identity"
)

func TestCachedAuthorizationHonoursState(t *testing.T) {
	w := newWorld(t)
	c := w.chain(t, "/dms/node/peers", w.bob)
	inv := w.invoke(t, w.bob, "/dms/node/peers/list", c)
	tests := []struct {
		name   string
		change func(v *Verifier, revs *Revocations) time.Time // returns the time of the second check
		rule   Rule
	}{
		{"hit", func(*Verifier, *Revocations) time.Time { return w.t0 }, ""},
		{"hit without proofs", func(*Verifier, *Revocations) time.Time { return w.t0 }, ""},
		{"revoked after caching", func(_ *Verifier, revs *Revocations) time.Time {
			revs.Add(must[Revocation](t)(Revoke(w.alice, c, c[0].CID(), w.t0)))
			return w.t0
		}, RuleRevoked},
		{"expired after caching", func(*Verifier, *Revocations) time.Time { return w.t0.Add(5 * time.Minute) }, RuleExpired},
		{"anchor removed after caching", func(v *Verifier, _ *Revocations) time.Time {
			v.SetTrust(Trust{})
			return w.t0
		}, RuleUntrustedRoot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			revs := NewRevocations()
			v := w.verifier(t, revs)
			if _, err := v.Authorize(w.t0, inv.Sealed(), sealedOf(c)); err != nil {
				t.Fatal(err)
			}
			if _, n := v.CacheLen(); n != 1 {
				t.Fatalf("%d cached authorizations, want 1", n)
			}
			at := tt.change(v, revs)
			var proofs [][]byte
			if tt.name == "hit" {
				proofs = sealedOf(c)
			}
			_, err := v.Authorize(at, inv.Sealed(), proofs)
			checkRule(t, err, tt.rule)
		})
	}
}

func TestDelegationCacheServesNewInvocations(t *testing.T) {
	w := newWorld(t)
	c := w.chain(t, "/dms/node/peers", w.bob, w.carol)
	v := w.verifier(t, nil)
	if _, err := v.Authorize(w.t0, w.invoke(t, w.carol, "/dms/node/peers/list", c).Sealed(), sealedOf(c)); err != nil {
		t.Fatal(err)
	}
	// A new invocation over the same chain needs no proof bytes.
	if _, err := v.Authorize(w.t0, w.invoke(t, w.carol, "/dms/node/peers/list", c).Sealed(), nil); err != nil {
		t.Fatalf("second invocation without proofs: %v", err)
	}
}

func TestCacheBounded(t *testing.T) {
	w := newWorld(t)
	v := NewVerifier(Config{Trust: w.trust(t), IsLocal: func(identity.DID) bool { return true }, CacheSize: 3})
	for range 10 {
		if _, err := v.Authorize(w.t0, w.invoke(t, w.alice, "/dms/x", nil).Sealed(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, n := v.CacheLen(); n != 3 {
		t.Fatalf("cache holds %d, want 3", n)
	}
}

func TestAuthorizeConcurrent(t *testing.T) {
	w := newWorld(t)
	c := w.chain(t, "/dms/node/peers", w.bob)
	invs := []*Invocation{w.invoke(t, w.bob, "/dms/node/peers/list", c), w.invoke(t, w.bob, "/dms/node/peers/list", c)}
	revs := NewRevocations()
	v := w.verifier(t, revs)
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				_, err := v.Authorize(w.t0, invs[(g+i)%2].Sealed(), sealedOf(c))
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	revs.Add(must[Revocation](t)(Revoke(w.alice, c, c[0].CID(), w.t0)))
	for _, inv := range invs {
		_, err := v.Authorize(w.t0, inv.Sealed(), nil)
		checkRule(t, err, RuleRevoked)
	}
}

func TestVerifyChain(t *testing.T) {
	w := newWorld(t)
	c := w.chain(t, "/dms/node/peers", w.bob)
	pol := Chain{w.grant(t, w.alice, w.bob, "/dms/node/deployment", func(p *DelegationParams) { p.Policy = `[["==", ".executor", "docker"]]` })}
	tests := []struct {
		name  string
		chain Chain
		cmd   string
		args  map[string]any
		rule  Rule
	}{
		{"authorizes a command under the grant", c, "/dms/node/peers/list", nil, ""},
		{"refuses escalation", c, "/dms/node/deployment/new", nil, RuleCommandEscalation},
		{"refuses an untrusted root", Chain{w.grant(t, w.mallory, w.bob, "/dms")}, "/dms/x", nil, RuleUntrustedRoot},
		{"policy over empty args fails", pol, "/dms/node/deployment/new", nil, RulePolicy},
		{"policy over given args passes", pol, "/dms/node/deployment/new", map[string]any{"executor": "docker"}, ""},
		{"bad command", c, "dms", nil, RuleMalformed},
		{"empty chain", Chain{}, "/dms/x", nil, RuleMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := w.verifier(t, nil).VerifyChain(w.t0, tt.chain, tt.cmd, tt.args)
			checkRule(t, err, tt.rule)
		})
	}
}

func TestRedelegateRefusesWidening(t *testing.T) {
	w := newWorld(t)
	parent := Chain{w.grant(t, w.alice, w.bob, "/dms/node/peers", func(p *DelegationParams) {
		p.Policy = `[["==", ".scope", "lan"]]`
	})}
	tests := []struct {
		name   string
		by     *identity.Key
		params DelegationParams
		now    time.Time
		rule   Rule
		errSub string
	}{
		{"narrower command, inherited expiry and policy", w.bob, DelegationParams{Audience: w.carol.DID(), Command: "/dms/node/peers/list"}, w.t0, "", ""},
		{"added policy statement", w.bob, DelegationParams{Audience: w.carol.DID(), Command: "/dms/node/peers",
			Policy: `[["==", ".scope", "lan"], ["==", ".n", 1]]`}, w.t0, "", ""},
		{"wider command", w.bob, DelegationParams{Audience: w.carol.DID(), Command: "/dms"}, w.t0, RuleCommandEscalation, "/dms is not under /dms/node/peers"},
		{"sibling command", w.bob, DelegationParams{Audience: w.carol.DID(), Command: "/dms/node/deployment/new"}, w.t0, RuleCommandEscalation, ""},
		{"longer expiry", w.bob, DelegationParams{Audience: w.carol.DID(), Command: "/dms/node/peers", Expiry: w.t0.Add(48 * time.Hour)}, w.t0, RuleExpiryEscalation, "after its parent chain"},
		{"dropped policy", w.bob, DelegationParams{Audience: w.carol.DID(), Command: "/dms/node/peers", Policy: `[["==", ".n", 1]]`}, w.t0, RulePolicyDropped, `".scope"`},
		{"not the holder", w.carol, DelegationParams{Audience: w.dave.DID(), Command: "/dms/node/peers"}, w.t0, RuleAudience, "not by the issuing key"},
		{"expired parent", w.bob, DelegationParams{Audience: w.carol.DID(), Command: "/dms/node/peers"}, w.t0.Add(2 * time.Hour), RuleExpired, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Redelegate(tt.by, parent, tt.params, tt.now)
			if tt.rule == "" {
				if err != nil {
					t.Fatal(err)
				}
				leaf := c.Leaf()
				if len(c) != 2 || leaf.Subject() != w.alice.DID() || !leaf.Expiry().Equal(parent[0].Expiry()) || !strings.Contains(leaf.Policy(), ".scope") {
					t.Fatalf("re-delegation: len %d subject %s expiry %v policy %s", len(c), leaf.Subject(), leaf.Expiry(), leaf.Policy())
				}
				if err := w.verifier(t, nil).VerifyChain(w.t0, c, tt.params.Command, map[string]any{"scope": "lan", "n": 1}); err != nil {
					t.Fatalf("the narrowed chain does not verify: %v", err)
				}
				return
			}
			if RuleOf(err) != tt.rule || !strings.Contains(err.Error(), tt.errSub) {
				t.Fatalf("Redelegate = %v, want rule %s containing %q", err, tt.rule, tt.errSub)
			}
		})
	}
}

func TestRevocationAuthority(t *testing.T) {
	w := newWorld(t)
	c := w.chain(t, "/dms/node/peers", w.bob, w.carol) // alice → bob → carol
	leaf := c.Leaf().CID()
	tests := []struct {
		name   string
		by     *identity.Key
		target string
		ok     bool
	}{
		{"issuer of the token", w.bob, leaf, true},
		{"issuer of an ancestor", w.alice, leaf, true},
		{"root issuer revokes the root", w.alice, c[0].CID(), true},
		{"audience may not revoke", w.carol, leaf, false},
		{"descendant may not revoke an ancestor", w.bob, c[0].CID(), false},
		{"stranger", w.mallory, leaf, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Revoke(tt.by, c, tt.target, w.t0)
			if !tt.ok {
				if !errors.Is(err, ErrNoRevokeAuthority) {
					t.Fatalf("Revoke = %v, want ErrNoRevokeAuthority", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Verify(c); err != nil {
				t.Fatalf("Verify = %v", err)
			}
		})
	}
	t.Run("forged signature", func(t *testing.T) {
		r := must[Revocation](t)(Revoke(w.alice, c, leaf, w.t0))
		r.Issuer = w.bob.DID() // bob has authority but did not sign
		if RuleOf(r.Verify(c)) != RuleSignature {
			t.Fatalf("Verify of a re-attributed revocation = %v", r.Verify(c))
		}
	})
	t.Run("chain without the token", func(t *testing.T) {
		r := must[Revocation](t)(Revoke(w.alice, c, leaf, w.t0))
		if RuleOf(r.Verify(c[:1])) != RuleMalformed {
			t.Fatalf("Verify with a short chain = %v", r.Verify(c[:1]))
		}
	})
	t.Run("fake ancestor", func(t *testing.T) {
		// mallory fabricates a root over herself to claim authority over
		// bob's token: the chain's subjects disagree.
		fake := Chain{w.grant(t, w.mallory, w.bob, "/dms"), c[1]}
		if _, err := Revoke(w.mallory, fake, leaf, w.t0); RuleOf(err) != RuleSubject {
			t.Fatalf("Revoke with a fabricated ancestor = %v, want subject", err)
		}
	})
}

func TestChainEncoding(t *testing.T) {
	w := newWorld(t)
	c := w.chain(t, "/dms/node/peers", w.bob, w.carol, w.dave)
	text := must[string](t)(c.Encode())
	if !strings.HasPrefix(text, "B") {
		t.Fatalf("container text starts with %q, want B (base64)", text[:1])
	}
	got := must[Chain](t)(DecodeChain([]byte("\n " + text + "\n")))
	if strings.Join(got.CIDs(), ",") != strings.Join(c.CIDs(), ",") {
		t.Fatalf("decoded chain %v, want %v (root first)", got.CIDs(), c.CIDs())
	}
	other := w.chain(t, "/dms", w.mallory)
	forkChild := must[*Delegation](t)(Delegate(w.bob, DelegationParams{Audience: w.mallory.DID(), Subject: w.alice.DID(), Command: "/dms/node/peers"}))
	tests := []struct {
		name string
		in   func() []byte
		rule Rule
		sub  string
	}{
		{"empty", func() []byte { return nil }, RuleMalformed, "empty"},
		{"garbage", func() []byte { return []byte("hello") }, RuleMalformed, "unknown header"},
		{"bad base64", func() []byte { return []byte("B!!!!") }, RuleMalformed, "not a token container"},
		{"two roots", func() []byte { return []byte(must[string](t)(append(Chain{}, c[0], other[0]).Encode())) }, RuleMalformed, "second root"},
		{"no root", func() []byte { return []byte(must[string](t)(c[1:].Encode())) }, RuleMalformed, "no root delegation"},
		{"fork", func() []byte { return []byte(must[string](t)(append(Chain{}, c[0], c[1], forkChild).Encode())) }, RuleMalformed, "forks"},
		{"unlinked", func() []byte { return []byte(must[string](t)(append(Chain{}, c[0], c[2]).Encode())) }, RuleMalformed, "not linked"},
		{"forged signature", func() []byte {
			return []byte(must[string](t)(Chain{w.forged(t, w.alice, w.mallory, w.bob, "/dms")}.Encode()))
		}, RuleSignature, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeChain(tt.in())
			if RuleOf(err) != tt.rule || !strings.Contains(err.Error(), tt.sub) {
				t.Fatalf("DecodeChain = %v, want rule %s containing %q", err, tt.rule, tt.sub)
			}
		})
	}
}

func TestTokenIDMatchesGoUCAN(t *testing.T) {
	w := newWorld(t)
	priv, iss, _ := signer(w.alice)
	aud, _ := parseDID(w.bob.DID())
	tok, err := delegation.Root(iss, aud, "/dms", nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed, id, err := tok.ToSealed(priv)
	if err != nil {
		t.Fatal(err)
	}
	if tokenID(sealed) != id.String() {
		t.Fatalf("tokenID = %s, go-ucan %s", tokenID(sealed), id)
	}
}

func TestInvocationFields(t *testing.T) {
	w := newWorld(t)
	c := w.chain(t, "/dms/node/peers", w.bob)
	inv := w.invoke(t, w.bob, "/dms/node/peers/list", c, func(p *InvocationParams) {
		p.Meta = map[string]string{"host": "12D3KooWabc"}
		p.Args = must[map[string]any](t)(ArgsFromJSON([]byte(`{"n": 3, "f": 1.5, "s": "x", "l": [1, {"k": true}]}`)))
	})
	if h, ok := inv.Meta("host"); !ok || h != "12D3KooWabc" {
		t.Fatalf("Meta(host) = %q, %v", h, ok)
	}
	if inv.Subject() != w.alice.DID() || inv.Issuer() != w.bob.DID() || inv.Audience() != w.node.DID() {
		t.Fatalf("subject %s issuer %s audience %s", inv.Subject(), inv.Issuer(), inv.Audience())
	}
	if got := strings.Join(inv.Proofs(), ","); got != strings.Join(c.CIDs(), ",") {
		t.Fatalf("Proofs = %s, want %s", got, c.CIDs())
	}
	args := string(must[[]byte](t)(inv.ArgsJSON()))
	if args != `{"f":1.5,"l":[1,{"k":true}],"n":3,"s":"x"}` {
		t.Fatalf("ArgsJSON = %s", args)
	}
	// Self-addressed: go-ucan omits an audience equal to the subject.
	self := w.invoke(t, w.node, "/dms/x", nil)
	if self.Audience() != w.node.DID() {
		t.Fatalf("self-addressed audience = %s", self.Audience())
	}
}

func TestTrust(t *testing.T) {
	w := newWorld(t)
	tr, err := NewTrust(Anchor{Root: w.alice.DID(), Cmd: "/dms"}, Anchor{Root: w.bob.DID(), Cmd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		root identity.DID
		cmd  string
		want bool
	}{
		{"prefix covers a descendant", w.alice.DID(), "/dms/node/peers/list", true},
		{"prefix covers itself", w.alice.DID(), "/dms", true},
		{"segments, not text", w.alice.DID(), "/dmsx", false},
		{"outside the prefix", w.alice.DID(), "/public/x", false},
		{"slash covers all", w.bob.DID(), "/anything/at/all", true},
		{"unknown root", w.carol.DID(), "/dms", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tr.Trusts(tt.root, tt.cmd); got != tt.want {
				t.Fatalf("Trusts(%s, %s) = %v, want %v", tt.root.Short(), tt.cmd, got, tt.want)
			}
		})
	}
	if _, err := NewTrust(Anchor{Root: "did:web:example.com", Cmd: "/dms"}); err == nil {
		t.Fatal("NewTrust accepted a non-did:key root")
	}
	if _, err := NewTrust(Anchor{Root: w.alice.DID(), Cmd: "/dms/"}); err == nil {
		t.Fatal("NewTrust accepted a trailing slash")
	}
}

func TestValidCommand(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"/", true}, {"/dms", true}, {"/dms/node/peers/list", true}, {"/a-b_c.d", true},
		{"", false}, {"dms", false}, {"/dms/", false}, {"//dms", false}, {"/dms//x", false}, {"/DMS", false}, {"/d ms", false}, {"/d\x00", false},
	} {
		if err := ValidCommand(tt.in); (err == nil) != tt.ok {
			t.Errorf("ValidCommand(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
		stmts    int
	}{
		{"empty", "", true, 0},
		{"empty list", "[]", true, 0},
		{"one statement list", `[["==", ".executor", "docker"]]`, true, 1},
		{"bare statement", `["==", ".executor", "docker"]`, true, 1},
		{"several", `[["==", ".a", 1], ["like", ".img", "debian:*"], ["or", [["<", ".cpu", 2], [">", ".cpu", 8]]]]`, true, 3},
		{"quantifier", `[["all", ".ports", [">", ".", 1024]]]`, true, 1},
		{"not json", `[[==`, false, 0},
		{"unknown operator", `[["~", ".a", 1]]`, false, 0},
		{"bad selector", `[["==", "a", 1]]`, false, 0},
		{"not a list", `{"a": 1}`, false, 0},
		{"huge", "[" + strings.Repeat(" ", MaxPolicySize) + "]", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy(tt.in)
			if (err == nil) != tt.ok || err == nil && len(p) != tt.stmts {
				t.Fatalf("ParsePolicy(%q) = %d statements, %v; want ok=%v, %d", tt.in, len(p), err, tt.ok, tt.stmts)
			}
		})
	}
}

func TestNonceCache(t *testing.T) {
	w := newWorld(t)
	now := w.t0
	c := NewNonceCache(NonceConfig{MaxEntries: 32, MaxWindow: time.Minute, ClockSkew: -1})
	alice, bob := w.alice.DID(), w.bob.DID()
	steps := []struct {
		name   string
		at     time.Time
		issuer identity.DID
		nonce  string
		exp    time.Time
		rule   Rule
	}{
		{"first use", now, alice, "n1", now.Add(30 * time.Second), ""},
		{"replay", now.Add(time.Second), alice, "n1", now.Add(30 * time.Second), RuleReplay},
		{"same nonce, other issuer", now, bob, "n1", now.Add(30 * time.Second), ""},
		{"no nonce", now, alice, "", now.Add(30 * time.Second), RuleReplay},
		{"no expiry", now, alice, "n2", time.Time{}, RuleReplay},
		{"beyond the window", now, alice, "n3", now.Add(2 * time.Minute), RuleReplay},
		{"already expired", now, alice, "n4", now.Add(-time.Second), RuleExpired},
		{"reuse after expiry is a new message", now.Add(40 * time.Second), alice, "n1", now.Add(70 * time.Second), ""},
	}
	for _, s := range steps {
		err := c.Check(s.at, s.issuer, []byte(s.nonce), s.exp)
		if RuleOf(err) != s.rule {
			t.Fatalf("%s: Check = %v, want rule %q", s.name, err, s.rule)
		}
	}
	// Fill the cache: it refuses rather than forgets, and sweeps expired
	// entries to make room.
	full := NewNonceCache(NonceConfig{MaxEntries: nonceShards, MaxWindow: time.Minute, ClockSkew: -1})
	refused := 0
	for i := range 200 {
		if err := full.Check(now, alice, []byte{byte(i), 1}, now.Add(10*time.Second)); err != nil {
			if RuleOf(err) != RuleReplay || !strings.Contains(err.Error(), "full") {
				t.Fatalf("Check on a full cache = %v", err)
			}
			refused++
		}
	}
	if refused == 0 || full.Len() > nonceShards {
		t.Fatalf("full cache: %d refused, %d entries (max %d)", refused, full.Len(), nonceShards)
	}
	later := now.Add(20 * time.Second)
	for i := range 200 {
		if err := full.Check(later, alice, []byte{byte(i), 2}, later.Add(10*time.Second)); err == nil {
			break
		} else if i == 199 {
			t.Fatalf("expired entries were never swept: %v", err)
		}
	}
}

func TestNonceCacheConcurrent(t *testing.T) {
	w := newWorld(t)
	c := NewNonceCache(NonceConfig{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range 8 {
		wg.Go(func() {
			for i := range 100 {
				if c.Check(w.t0, w.alice.DID(), []byte{byte(i)}, w.t0.Add(time.Minute)) == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if accepted != 100 {
		t.Fatalf("%d of 800 checks of 100 distinct nonces accepted, want exactly 100", accepted)
	}
}

// TestNoClock keeps the package pure of the wall clock: time is passed in.
func TestNoClock(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "time" {
					switch sel.Sel.Name {
					case "Now", "Since", "Until", "Sleep", "After", "Tick", "NewTimer", "NewTicker", "AfterFunc":
						t.Errorf("%s uses time.%s: pass the time in", f, sel.Sel.Name)
					}
				}
			}
			return true
		})
	}
}

func TestCheckPayloadPolicies(t *testing.T) {
	w := newWorld(t)
	c := Chain{w.grant(t, w.alice, w.bob, "/dms/node/deployment", func(p *DelegationParams) {
		p.Policy = `[["==", ".executor", "docker"], ["<=", ".cpu", 4]]`
	})}
	revs := NewRevocations()
	v := NewVerifier(Config{Trust: w.trust(t), Revoked: revs, DeferPolicies: true,
		IsLocal: func(d identity.DID) bool { return d == w.node.DID() }})
	// A session invocation carries no arguments: its policies are deferred.
	a, err := v.Authorize(w.t0, w.invoke(t, w.bob, "/dms/node/deployment/new", c).Sealed(), sealedOf(c))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload string
		rule    Rule
	}{
		{"matching payload", `{"executor": "docker", "cpu": 2}`, ""},
		{"failing payload", `{"executor": "wasm", "cpu": 2}`, RulePolicy},
		{"integer bound", `{"executor": "docker", "cpu": 5}`, RulePolicy},
		{"missing field", `{"executor": "docker"}`, RulePolicy},
		{"empty payload", ``, RulePolicy},
		{"not an object", `[1, 2]`, RulePolicy},
		{"not JSON", `{`, RulePolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRule(t, v.Check(w.t0, a, []byte(tt.payload)), tt.rule)
		})
	}
	t.Run("expired", func(t *testing.T) {
		checkRule(t, v.Check(w.t0.Add(2*time.Hour), a, []byte(`{"executor": "docker", "cpu": 2}`)), RuleExpired)
	})
	t.Run("revoked", func(t *testing.T) {
		revs.Add(must[Revocation](t)(Revoke(w.alice, c, c[0].CID(), w.t0)))
		checkRule(t, v.Check(w.t0, a, []byte(`{"executor": "docker", "cpu": 2}`)), RuleRevoked)
	})
	t.Run("no policies: any payload", func(t *testing.T) {
		plain := w.chain(t, "/dms/node/peers", w.bob)
		a, err := v.Authorize(w.t0, w.invoke(t, w.bob, "/dms/node/peers/list", plain).Sealed(), sealedOf(plain))
		if err != nil {
			t.Fatal(err)
		}
		checkRule(t, v.Check(w.t0, a, []byte("not json at all")), "")
	})
}

func TestBroadcastAudience(t *testing.T) {
	w := newWorld(t)
	v := w.verifier(t, nil)
	c := w.chain(t, "/dms/deployment", w.bob)
	exp := w.t0.Add(time.Minute)
	noAud := must[*Invocation](t)(Invoke(w.bob, InvocationParams{Command: "/dms/deployment/request", Proofs: c, Expiry: exp}))
	toNode := must[*Invocation](t)(Invoke(w.bob, InvocationParams{Audience: w.node.DID(), Command: "/dms/deployment/request", Proofs: c, Expiry: exp}))
	untrusted := must[*Invocation](t)(Invoke(w.mallory, InvocationParams{Command: "/dms/deployment/request", Expiry: exp}))
	public := must[*Invocation](t)(Invoke(w.mallory, InvocationParams{Command: "/public/hello", Expiry: exp}))
	tests := []struct {
		name      string
		inv       *Invocation
		broadcast bool
		want      Rule
	}{
		{"broadcast: chained, no audience", noAud, true, ""},
		{"broadcast: names an audience", toNode, true, RuleAudience},
		{"broadcast: untrusted root", untrusted, true, RuleUntrustedRoot},
		{"broadcast: public", public, true, ""},
		// The same bytes as a unicast (now cached as a broadcast): the
		// audience, read as the subject, is not local.
		{"unicast of a broadcast invocation", noAud, false, RuleAudience},
		{"unicast to the node", toNode, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := v.Authorize
			if tt.broadcast {
				auth = v.AuthorizeBroadcast
			}
			_, err := auth(w.t0, tt.inv.Sealed(), sealedOf(c))
			checkRule(t, err, tt.want)
		})
	}
}
