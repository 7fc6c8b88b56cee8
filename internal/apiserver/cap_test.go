package apiserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/cap/capstore"
	"github.com/dmsnet/dms/internal/identity"
)

// fakeCaps is a CapService in memory: it records what it is given and
// refuses to verify anything but /dms/ok.
type fakeCaps struct {
	anchors []cap.Anchor
	revoked []cap.Revocation
	tokens  []capstore.Token
}

func (f *fakeCaps) Anchor(_ context.Context, a cap.Anchor, remove bool) error {
	if remove {
		return &BadRequest{Err: errors.New("no such anchor")}
	}
	f.anchors = append(f.anchors, a)
	return nil
}

func (f *fakeCaps) Revoke(_ context.Context, r cap.Revocation, chain cap.Chain) error {
	f.revoked = append(f.revoked, r)
	return nil
}

func (f *fakeCaps) Import(_ context.Context, chain cap.Chain, source string) (capstore.Token, error) {
	leaf := chain.Leaf()
	t := capstore.Token{CID: leaf.CID(), Issuer: leaf.Issuer(), Audience: leaf.Audience(), Subject: leaf.Subject(), Cmd: leaf.Command(), Source: source}
	f.tokens = append(f.tokens, t)
	return t, nil
}

func (f *fakeCaps) List(context.Context) (api.CapListing, error) {
	l := api.CapListing{Anchors: []api.Anchor{}, Tokens: []api.CapToken{}, Revocations: []api.Revocation{}}
	for _, a := range f.anchors {
		l.Anchors = append(l.Anchors, api.Anchor{Root: string(a.Root), Cmd: a.Cmd})
	}
	for _, t := range f.tokens {
		l.Tokens = append(l.Tokens, t.API())
	}
	for _, r := range f.revoked {
		l.Revocations = append(l.Revocations, capstore.APIRevocation(r))
	}
	return l, nil
}

func (f *fakeCaps) Verify(_ context.Context, chain cap.Chain, cmd string, args map[string]any) error {
	if cmd == "/dms/ok" {
		return nil
	}
	// Wrapped, as a service adds context: the server finds it by type.
	return fmt.Errorf("verify %s: %w", cmd, &cap.DeniedError{Rule: cap.RuleUntrustedRoot, Token: chain.Leaf().CID(), Detail: "not anchored for " + cmd})
}

// TestCapEndpoints drives the capability endpoints through api.Client.
func TestCapEndpoints(t *testing.T) {
	caps := &fakeCaps{}
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Caps: caps})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx) }()
	defer func() { stop(); <-done }()
	c, err := api.NewClient(api.ClientConfig{Addr: addr.String(), Token: token})
	if err != nil {
		t.Fatal(err)
	}

	alice, bob := mustKey(t), mustKey(t)
	d, err := cap.Delegate(alice, cap.DelegationParams{Audience: bob.DID(), Command: "/dms/node"})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := cap.Chain{d}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rev, err := cap.Revoke(alice, cap.Chain{d}, d.CID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		call     func() error
		wantCode string // "": success
		wantMsg  string // a part of the error's message
	}{
		{"anchor", func() error { return c.Anchor(ctx, api.AnchorRequest{Root: string(alice.DID()), Cmd: api.CmdRoot}) }, "", ""},
		{"anchor refused", func() error { return c.Anchor(ctx, api.AnchorRequest{Root: "did:key:z", Cmd: "/dms", Remove: true}) }, api.CodeBadRequest, "no such anchor"},
		{"import", func() error {
			tok, err := c.ImportToken(ctx, api.ImportRequest{Chain: chain, Source: "/tmp/t.tok"})
			if err == nil && (tok.CID != d.CID() || tok.Issuer != string(alice.DID()) || tok.Cmd != "/dms/node" || tok.Source != "/tmp/t.tok") {
				return fmt.Errorf("ImportToken = %+v", tok)
			}
			return err
		}, "", ""},
		{"import not a chain", func() error { _, err := c.ImportToken(ctx, api.ImportRequest{Chain: "nope"}); return err }, api.CodeBadRequest, "chain: "},
		{"revoke", func() error {
			return c.Revoke(ctx, api.RevokeRequest{Revocation: capstore.APIRevocation(rev), Chain: chain})
		}, "", ""},
		{"verify", func() error { return c.Verify(ctx, api.VerifyRequest{Chain: chain, Cmd: "/dms/ok"}) }, "", ""},
		{"verify denied", func() error { return c.Verify(ctx, api.VerifyRequest{Chain: chain, Cmd: "/dms/node/peers"}) },
			api.CodeDenied, "untrusted-root: token " + d.CID() + ": not anchored for /dms/node/peers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tt.wantCode || !strings.Contains(ae.Message, tt.wantMsg) {
				t.Fatalf("err = %v, want code %s and a message containing %q", err, tt.wantCode, tt.wantMsg)
			}
			if tt.wantCode == api.CodeDenied && (ae.Status != 403 || ae.Message != tt.wantMsg) {
				t.Fatalf("denied = %d %q, want 403 %q: the rule, token and detail, no prefix", ae.Status, ae.Message, tt.wantMsg)
			}
		})
	}

	l, err := c.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Anchors) != 1 || l.Anchors[0].Root != string(alice.DID()) || l.Anchors[0].Cmd != api.CmdRoot ||
		len(l.Tokens) != 1 || l.Tokens[0].CID != d.CID() ||
		len(l.Revocations) != 1 || l.Revocations[0].CID != d.CID() || l.Revocations[0].Issuer != string(alice.DID()) {
		t.Fatalf("Capabilities = %+v", l)
	}
	// The revocation crossed the wire intact: it still verifies.
	if err := caps.revoked[0].Verify(cap.Chain{d}); err != nil {
		t.Fatalf("the revocation the server received does not verify: %v", err)
	}
}

func mustKey(t *testing.T) *identity.Key {
	t.Helper()
	k, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
