package capstore

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/store"
)

func newKey(t *testing.T) *identity.Key {
	t.Helper()
	k, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func open(t *testing.T, path string) (*store.DB, *Store) {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := Open(db)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return db, cs
}

func TestAnchors(t *testing.T) {
	user, other := newKey(t), newKey(t)
	db, cs := open(t, filepath.Join(t.TempDir(), "dms.db"))
	defer db.Close()
	steps := []struct {
		name string
		do   func() error
		want []cap.Anchor
	}{
		{"defaults on a new home", func() error { return cs.EnsureDefaults(user.DID()) },
			[]cap.Anchor{{Root: user.DID(), Cmd: "/dms"}}},
		{"defaults are idempotent", func() error { return cs.EnsureDefaults(user.DID()) },
			[]cap.Anchor{{Root: user.DID(), Cmd: "/dms"}}},
		{"add", func() error { return cs.AddAnchor(cap.Anchor{Root: other.DID(), Cmd: "/dms/node/peers"}) },
			[]cap.Anchor{{Root: user.DID(), Cmd: "/dms"}, {Root: other.DID(), Cmd: "/dms/node/peers"}}},
		{"add twice", func() error { return cs.AddAnchor(cap.Anchor{Root: other.DID(), Cmd: "/dms/node/peers"}) },
			[]cap.Anchor{{Root: user.DID(), Cmd: "/dms"}, {Root: other.DID(), Cmd: "/dms/node/peers"}}},
		{"remove the default", func() error { return cs.RemoveAnchor(cap.Anchor{Root: user.DID(), Cmd: "/dms"}) },
			[]cap.Anchor{{Root: other.DID(), Cmd: "/dms/node/peers"}}},
		{"defaults do not return once the user changed the anchors", func() error { return cs.EnsureDefaults(user.DID()) },
			[]cap.Anchor{{Root: other.DID(), Cmd: "/dms/node/peers"}}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, err := cs.Anchors()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(s.want) {
			t.Fatalf("%s: anchors %v, want %v", s.name, got, s.want)
		}
		for _, a := range s.want {
			found := false
			for _, g := range got {
				found = found || g == a
			}
			if !found {
				t.Fatalf("%s: anchors %v, want %v", s.name, got, s.want)
			}
		}
	}
	if err := cs.RemoveAnchor(cap.Anchor{Root: user.DID(), Cmd: "/dms"}); !errors.Is(err, ErrNoAnchor) {
		t.Fatalf("removing a missing anchor = %v, want ErrNoAnchor", err)
	}
	if err := cs.AddAnchor(cap.Anchor{Root: "did:key:nope", Cmd: "/dms"}); err == nil {
		t.Fatal("AddAnchor accepted a bad DID")
	}
	tr, err := cs.Trust()
	if err != nil || !tr.Trusts(other.DID(), "/dms/node/peers/list") || tr.Trusts(user.DID(), "/dms/x") {
		t.Fatalf("Trust = %v, %v", tr.Anchors(), err)
	}
}

// TestRevokedAfterReopen is the acceptance case "revoked, also after
// reopening the store".
func TestRevokedAfterReopen(t *testing.T) {
	alice, bob, node := newKey(t), newKey(t), newKey(t)
	now := time.Now()
	d, err := cap.Delegate(alice, cap.DelegationParams{Audience: bob.DID(), Command: "/dms/node/peers", Expiry: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	chain := cap.Chain{d}
	inv, err := cap.Invoke(bob, cap.InvocationParams{Audience: node.DID(), Command: "/dms/node/peers/list", Proofs: chain, Expiry: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dms.db")
	verifier := func(cs *Store) *cap.Verifier {
		tr, err := cs.Trust()
		if err != nil {
			t.Fatal(err)
		}
		return cap.NewVerifier(cap.Config{Trust: tr, Revoked: cs, IsLocal: func(x identity.DID) bool { return x == node.DID() }})
	}

	db, cs := open(t, path)
	if err := cs.EnsureDefaults(alice.DID()); err != nil {
		t.Fatal(err)
	}
	v := verifier(cs)
	if _, err := v.Authorize(now, inv.Sealed(), [][]byte{d.Sealed()}); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	// bob may not revoke alice's delegation; alice may.
	if _, err := cap.Revoke(bob, chain, d.CID(), now); !errors.Is(err, cap.ErrNoRevokeAuthority) {
		t.Fatalf("Revoke by the audience = %v", err)
	}
	bad := cap.Revocation{CID: d.CID(), Issuer: alice.DID(), Time: now, Signature: make([]byte, 64)}
	if err := cs.Revoke(bad, chain); cap.RuleOf(err) != cap.RuleSignature {
		t.Fatalf("Revoke with a bad signature = %v", err)
	}
	r, err := cap.Revoke(alice, chain, d.CID(), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Revoke(r, chain); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Authorize(now, inv.Sealed(), nil); cap.RuleOf(err) != cap.RuleRevoked {
		t.Fatalf("cached authorization after revocation = %v, want revoked", err)
	}
	db.Close()

	db, cs = open(t, path)
	defer db.Close()
	if !cs.IsRevoked(d.CID()) {
		t.Fatal("revocation lost on reopen")
	}
	_, err = verifier(cs).Authorize(now, inv.Sealed(), [][]byte{d.Sealed()})
	if cap.RuleOf(err) != cap.RuleRevoked {
		t.Fatalf("after reopening = %v, want revoked", err)
	}
	rs, err := cs.Revocations()
	if err != nil || len(rs) != 1 || rs[0].Issuer != alice.DID() {
		t.Fatalf("Revocations = %v, %v", rs, err)
	}
}

func TestTokens(t *testing.T) {
	alice, bob, carol := newKey(t), newKey(t), newKey(t)
	now := time.Now()
	d, _ := cap.Delegate(alice, cap.DelegationParams{Audience: bob.DID(), Command: "/dms/node", Expiry: now.Add(time.Hour), Policy: `[["==", ".a", 1]]`})
	chain, err := cap.Redelegate(bob, cap.Chain{d}, cap.DelegationParams{Audience: carol.DID(), Command: "/dms/node/peers"}, now)
	if err != nil {
		t.Fatal(err)
	}
	db, cs := open(t, filepath.Join(t.TempDir(), "dms.db"))
	defer db.Close()
	if _, err := cs.AddChain(cap.Chain{d}, SourceIssued, now); err != nil {
		t.Fatal(err)
	}
	tok, err := cs.AddChain(chain, "/tmp/tok", now)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Subject != alice.DID() || tok.Cmd != "/dms/node/peers" || tok.Policy == "" || !tok.Expiry.Equal(d.Expiry()) {
		t.Fatalf("token record %+v", tok)
	}
	got, err := cs.Token(chain.Leaf().CID())
	if err != nil {
		t.Fatal(err)
	}
	back, err := cap.DecodeChain([]byte(got.Chain))
	if err != nil || back.Leaf().CID() != chain.Leaf().CID() || len(back) != 2 {
		t.Fatalf("stored chain does not decode to the chain: %v", err)
	}
	if _, err := cs.Token("bafynope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Token(unknown) = %v", err)
	}
	forCarol, err := cs.TokensFor(carol.DID())
	if err != nil || len(forCarol) != 1 {
		t.Fatalf("TokensFor(carol) = %v, %v", forCarol, err)
	}
	r, _ := cap.Revoke(alice, chain, chain.Leaf().CID(), now)
	if err := cs.Revoke(r, chain); err != nil {
		t.Fatal(err)
	}
	all, err := cs.Tokens()
	if err != nil || len(all) != 2 {
		t.Fatalf("Tokens = %v, %v", all, err)
	}
	for _, tk := range all {
		if tk.Revoked != (tk.CID == chain.Leaf().CID()) {
			t.Fatalf("token %s revoked=%v", tk.CID, tk.Revoked)
		}
	}
	if forCarol, _ := cs.TokensFor(carol.DID()); len(forCarol) != 0 {
		t.Fatal("TokensFor lists a revoked token")
	}
}
