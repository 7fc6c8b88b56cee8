// Package capstore persists a node's capability state in the store: trust
// anchors, revocations and the tokens the user issued or imported (for
// dms cap list and revoke by CID).
//
// Usage:
//
//	cs, err := capstore.Open(db)               // runs its migrations, loads revocations
//	err = cs.EnsureDefaults(userDID)           // dms init: trust the user for /dms
//	trust, err := cs.Trust()
//	v := cap.NewVerifier(cap.Config{Trust: trust, Revoked: cs, …})
//	err = cs.Revoke(rev, chain)                // verified, persisted, seen by v at once
//
// A Store is a cap.RevocationSet: revocations are held in memory (loaded at
// Open) and written through to the store. It is safe for concurrent use.
package capstore

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/store"
)

// DefaultPrefix is what a new home trusts its user for.
const DefaultPrefix = api.CmdRoot

// Token is a delegation this home issued or imported.
type Token struct {
	CID       string       `json:"cid"`
	Issuer    identity.DID `json:"issuer"`
	Audience  identity.DID `json:"audience"`
	Subject   identity.DID `json:"subject"`
	Cmd       string       `json:"cmd"`
	Policy    string       `json:"policy,omitempty"`
	NotBefore time.Time    `json:"not_before,omitzero"`
	Expiry    time.Time    `json:"expiry,omitzero"`
	Source    string       `json:"source"`  // "issued", or the imported file's path
	Chain     string       `json:"chain"`   // the token file (container text) from the root to this token
	Added     time.Time    `json:"added"`   // when it was recorded
	Revoked   bool         `json:"revoked"` // filled by Tokens, not stored
}

// SourceIssued marks tokens issued by this home (dms cap grant, delegate).
const SourceIssued = api.SourceIssued

var (
	anchors = store.NewKind("cap-anchors", func(a cap.Anchor) string { return string(a.Root) + " " + a.Cmd },
		store.IndexOn("root", func(a cap.Anchor) string { return string(a.Root) }))
	revocations = store.NewKind("cap-revocations", func(r cap.Revocation) string { return r.CID })
	tokens      = store.NewKind("cap-tokens", func(t Token) string { return t.CID },
		store.IndexOn("audience", func(t Token) string { return string(t.Audience) }),
		store.IndexOn("issuer", func(t Token) string { return string(t.Issuer) }))
)

// migrations of the "cap" component.
var migrations = []store.Migration{
	{Component: "cap", Version: 1, Name: "create kinds", Up: func(*store.Tx) error { return nil }},
}

// Store is the capability state of one home.
type Store struct {
	db   *store.DB
	revs *cap.Revocations
}

var _ cap.RevocationSet = (*Store)(nil)

// Open migrates the capability kinds of db and loads the revocations.
func Open(db *store.DB) (*Store, error) {
	if err := db.Migrate(migrations...); err != nil {
		return nil, err
	}
	s := &Store{db: db, revs: cap.NewRevocations()}
	err := db.View(func(tx *store.Tx) error {
		rs, err := revocations.List(tx, "")
		for _, r := range rs {
			s.revs.Add(r)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load revocations: %w", err)
	}
	return s, nil
}

// EnsureDefaults makes a new home trust its user for /dms; it does nothing
// when any anchor exists (the user changed the defaults).
func (s *Store) EnsureDefaults(user identity.DID) error {
	a := cap.Anchor{Root: user, Cmd: DefaultPrefix}
	if err := a.Validate(); err != nil {
		return err
	}
	return s.db.Update(func(tx *store.Tx) error {
		have, err := anchors.List(tx, "")
		if err != nil || len(have) > 0 {
			return err
		}
		return anchors.Put(tx, a)
	})
}

// AddAnchor trusts a.Root for the commands under a.Cmd. Adding an anchor
// twice is not an error.
func (s *Store) AddAnchor(a cap.Anchor) error {
	if err := a.Validate(); err != nil {
		return err
	}
	return s.db.Update(func(tx *store.Tx) error { return anchors.Put(tx, a) })
}

// ErrNoAnchor is returned by RemoveAnchor for an anchor that does not exist.
var ErrNoAnchor = errors.New("no such anchor")

// RemoveAnchor stops trusting a.Root for a.Cmd.
func (s *Store) RemoveAnchor(a cap.Anchor) error {
	return s.db.Update(func(tx *store.Tx) error {
		err := anchors.Delete(tx, string(a.Root)+" "+a.Cmd)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s for %s", ErrNoAnchor, a.Root, a.Cmd)
		}
		return err
	})
}

// Anchors returns the anchors, ordered by root and prefix.
func (s *Store) Anchors() ([]cap.Anchor, error) {
	var out []cap.Anchor
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		out, err = anchors.List(tx, "")
		return err
	})
	return out, err
}

// Trust returns the trust context of the anchors.
func (s *Store) Trust() (cap.Trust, error) {
	as, err := s.Anchors()
	if err != nil {
		return cap.Trust{}, err
	}
	return cap.NewTrust(as...)
}

// Revoke verifies r against chain (root first, through the revoked
// delegation) and persists it. Revoking twice is not an error.
func (s *Store) Revoke(r cap.Revocation, chain cap.Chain) error {
	if err := r.Verify(chain); err != nil {
		return err
	}
	err := s.db.Update(func(tx *store.Tx) error { return revocations.Put(tx, r) })
	if err != nil {
		return err
	}
	s.revs.Add(r)
	return nil
}

// IsRevoked reports whether the token cid was revoked.
func (s *Store) IsRevoked(cid string) bool { return s.revs.IsRevoked(cid) }

// Generation changes after every revocation.
func (s *Store) Generation() uint64 { return s.revs.Generation() }

// Revocations returns the recorded revocations, ordered by CID.
func (s *Store) Revocations() ([]cap.Revocation, error) {
	var out []cap.Revocation
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		out, err = revocations.List(tx, "")
		return err
	})
	return out, err
}

// AddChain records the leaf of chain as a known token from source
// (SourceIssued, or a file path), with the chain that proves it.
func (s *Store) AddChain(chain cap.Chain, source string, now time.Time) (Token, error) {
	leaf := chain.Leaf()
	if leaf == nil {
		return Token{}, errors.New("empty chain")
	}
	text, err := chain.Encode()
	if err != nil {
		return Token{}, err
	}
	t := Token{
		CID: leaf.CID(), Issuer: leaf.Issuer(), Audience: leaf.Audience(), Subject: leaf.Subject(),
		Cmd: leaf.Command(), NotBefore: leaf.NotBefore(), Expiry: leaf.Expiry(),
		Source: source, Chain: text, Added: now.UTC().Truncate(time.Second),
	}
	if p := leaf.Policy(); p != "[]" {
		t.Policy = p
	}
	return t, s.db.Update(func(tx *store.Tx) error { return tokens.Put(tx, t) })
}

// Tokens returns the known tokens, ordered by CID, with Revoked filled.
func (s *Store) Tokens() ([]Token, error) {
	var out []Token
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		out, err = tokens.List(tx, "")
		return err
	})
	for i := range out {
		out[i].Revoked = s.IsRevoked(out[i].CID)
	}
	return out, err
}

// Token returns the known token cid, or an error wrapping store.ErrNotFound.
func (s *Store) Token(cid string) (Token, error) {
	var t Token
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		t, err = tokens.Get(tx, cid)
		return err
	})
	t.Revoked = s.IsRevoked(cid)
	return t, err
}

// TokensFor returns the known tokens delegated to aud.
func (s *Store) TokensFor(aud identity.DID) ([]Token, error) {
	var out []Token
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		out, err = tokens.Find(tx, "audience", string(aud))
		return err
	})
	out = slices.DeleteFunc(out, func(t Token) bool { return s.IsRevoked(t.CID) })
	return out, err
}
