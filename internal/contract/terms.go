package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/dmsnet/dms/internal/identity"
)

// Version is the terms' encoding version this package reads and writes.
const Version = 1

// maxName bounds a deployment, node, reservation or allocation name.
const maxName = 255

// Signed-bytes prefixes: what each party signs, so a signature of one
// kind can never pass for another.
const (
	contractPrefix = "dms-contract|"
	notePrefix     = "dms-note|"
	acceptPrefix   = "dms-note-accept|"
)

// refuse builds a *RefusalError.
func refuse(err error, format string, args ...any) *RefusalError {
	return &RefusalError{Err: err, Detail: fmt.Sprintf(format, args...)}
}

// sigMemo remembers a signature that verified (or that this package made
// with the right key), so a second check of the same bytes costs nothing.
// It holds for exactly the hash, signer and signature bytes it records.
type sigMemo struct {
	hash string
	by   identity.DID
	sig  []byte
	// batch: verified in a batch (VerifyProviderSigs), which holds for
	// CheckNote only; everything else verifies it again.
	batch bool
}

func memo(hash string, by identity.DID, sig []byte) sigMemo {
	return sigMemo{hash: hash, by: by, sig: bytes.Clone(sig)}
}

func (m sigMemo) clone() sigMemo {
	return sigMemo{hash: m.hash, by: m.by, sig: bytes.Clone(m.sig), batch: m.batch}
}

// holds reports whether m remembers exactly this signature; one from a
// batch only when batchOK.
func (m *sigMemo) holds(hash string, by identity.DID, sig []byte, batchOK bool) bool {
	return m.sig != nil && (batchOK || !m.batch) && m.hash == hash && m.by == by && bytes.Equal(m.sig, sig)
}

// verifySig reports whether sig is by's signature of prefix+hash, using
// the memo when it holds (not a batch's).
func verifySig(m *sigMemo, prefix, hash string, by identity.DID, sig []byte) bool {
	if m.holds(hash, by, sig, false) {
		return true
	}
	return len(sig) > 0 && verifyDID(by, []byte(prefix+hash), sig)
}

// isHash reports whether s is a lowercase hex SHA-256.
func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// decodeStrict decodes exactly one JSON value of b into v, refusing
// unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the value")
	}
	return nil
}

// checkName refuses an empty or oversize name.
func checkName(what, s string) error {
	switch {
	case s == "":
		return refuse(ErrMalformed, "%s is empty", what)
	case len(s) > maxName:
		return refuse(ErrMalformed, "%s is %d bytes, at most %d", what, len(s), maxName)
	}
	return nil
}

// Validate checks the terms: names, parties, interval within
// [MinInterval, MaxInterval], the price valid, settlement known.
// Refusals are *RefusalError wrapping ErrMalformed.
func (t *Terms) Validate() error {
	if t.Version != Version {
		return refuse(ErrMalformed, "terms version %d, this node reads %d", t.Version, Version)
	}
	for _, f := range []struct{ what, v string }{
		{"deployment", t.Deployment}, {"node", t.Node}, {"reservation", t.Reservation},
	} {
		if err := checkName(f.what, f.v); err != nil {
			return err
		}
	}
	if len(t.Allocations) == 0 || len(t.Allocations) > MaxAllocations {
		return refuse(ErrMalformed, "%d allocations, want 1 to %d", len(t.Allocations), MaxAllocations)
	}
	seen := make(map[string]bool, len(t.Allocations))
	for _, a := range t.Allocations {
		if err := checkName("allocation name", a); err != nil {
			return err
		}
		if seen[a] {
			return refuse(ErrMalformed, "allocation %q named twice", a)
		}
		seen[a] = true
	}
	if !t.Requester.Valid() {
		return refuse(ErrMalformed, "requester %q is not an ed25519 did:key", short(string(t.Requester)))
	}
	if !t.Provider.Valid() {
		return refuse(ErrMalformed, "provider %q is not an ed25519 did:key", short(string(t.Provider)))
	}
	if t.User != "" && !t.User.Valid() {
		return refuse(ErrMalformed, "user %q is not an ed25519 did:key", short(string(t.User)))
	}
	if err := t.Price.Validate(); err != nil {
		return refuse(ErrMalformed, "%v", err)
	}
	if t.Reserved.CPU < 0 {
		return refuse(ErrMalformed, "reserved cpu %d is negative", t.Reserved.CPU)
	}
	if t.Interval < MinInterval || t.Interval > MaxInterval {
		return refuse(ErrMalformed, "interval %v, want %v to %v", t.Interval, MinInterval, MaxInterval)
	}
	if t.Budget < 0 {
		return refuse(ErrMalformed, "budget %d is negative", int64(t.Budget))
	}
	if t.Settlement != SettleLocal {
		return refuse(ErrMalformed, "settlement %q unknown (known: %s)", short(t.Settlement), SettleLocal)
	}
	if t.Created.IsZero() {
		return refuse(ErrMalformed, "created time missing")
	}
	return nil
}

// short cuts s for an error message.
func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// decodeTerms checks that id is the hash of body and decodes valid terms
// from body.
func decodeTerms(id string, body []byte) (*Terms, error) {
	if len(body) > MaxEncoded {
		return nil, refuse(ErrMalformed, "contract body is %d bytes, at most %d", len(body), MaxEncoded)
	}
	if !isHash(id) {
		return nil, refuse(ErrMalformed, "contract id %q is not a hex sha-256", short(id))
	}
	if hashHex(body) != id {
		return nil, refuse(ErrMalformed, "contract id %s is not the hash of its body", id)
	}
	t := new(Terms)
	if err := decodeStrict(body, t); err != nil {
		return nil, refuse(ErrMalformed, "contract body: %v", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// New validates t, encodes it and signs the contract's ID as the
// requester. t.Requester must be key's DID.
func New(t Terms, requester *identity.Key) (*Contract, error) {
	if requester == nil {
		return nil, refuse(ErrWrongParty, "no requester key")
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if t.Requester != requester.DID() {
		return nil, refuse(ErrWrongParty, "terms name requester %s, the key is %s", t.Requester.Short(), requester.DID().Short())
	}
	body, err := json.Marshal(&t)
	if err != nil {
		return nil, refuse(ErrMalformed, "encode terms: %v", err)
	}
	id := hashHex(body)
	// Decode what was encoded, so Terms() is what any receiver reads.
	dt, err := decodeTerms(id, body)
	if err != nil {
		return nil, err
	}
	c := &Contract{ID: id, Body: body, RequesterSig: requester.Sign([]byte(contractPrefix + id))}
	c.terms, c.termsOf, c.bodyOf = dt, id, bytes.Clone(body)
	c.reqOK = memo(id, dt.Requester, c.RequesterSig)
	return c, nil
}

// check is the contract's validity without changing c: ID is the hash of
// Body, Body decodes to valid terms, the requester's signature verifies,
// and the provider's when present (provSigned then).
func (c *Contract) check() (t *Terms, provSigned bool, err error) {
	if c == nil {
		return nil, false, refuse(ErrUnknown, "no contract")
	}
	// Body unchanged since it was hashed (a copy compares in a fraction
	// of the hash's time; it is checked for every note of the contract).
	if c.terms != nil && c.termsOf == c.ID && bytes.Equal(c.Body, c.bodyOf) {
		t = c.terms
	} else if t, err = decodeTerms(c.ID, c.Body); err != nil {
		return nil, false, err
	}
	if !verifySig(&c.reqOK, contractPrefix, c.ID, t.Requester, c.RequesterSig) {
		return nil, false, refuse(ErrSignature, "contract %s is not signed by its requester %s", c.ID, t.Requester.Short())
	}
	if len(c.ProviderSig) > 0 {
		if !verifySig(&c.provOK, contractPrefix, c.ID, t.Provider, c.ProviderSig) {
			return nil, false, refuse(ErrSignature, "contract %s: the provider signature is not %s's", c.ID, t.Provider.Short())
		}
		provSigned = true
	}
	return t, provSigned, nil
}

// Open checks a decoded contract: ID is the hash of Body, Body decodes to
// valid terms, the requester's signature (and the provider's, when set)
// verifies. Refusals are *RefusalError. Open must not run concurrently
// with other methods of c.
func (c *Contract) Open() error {
	t, provSigned, err := c.check()
	if err != nil {
		return err
	}
	c.terms, c.termsOf = t, c.ID
	if !bytes.Equal(c.bodyOf, c.Body) {
		c.bodyOf = bytes.Clone(c.Body)
	}
	c.reqOK = memo(c.ID, t.Requester, c.RequesterSig)
	if provSigned {
		c.provOK = memo(c.ID, t.Provider, c.ProviderSig)
	}
	return nil
}

// Terms returns the decoded terms (after New or Open).
func (c *Contract) Terms() *Terms { return c.terms }

// SignAsProvider adds the provider's signature; key must be the terms'
// Provider. It checks the contract first (as Open).
func (c *Contract) SignAsProvider(key *identity.Key) error {
	if key == nil {
		return refuse(ErrWrongParty, "no provider key")
	}
	saved := c.ProviderSig
	c.ProviderSig = nil
	t, _, err := c.check()
	c.ProviderSig = saved
	if err != nil {
		return err
	}
	if key.DID() != t.Provider {
		return refuse(ErrWrongParty, "contract %s names provider %s, the key is %s", c.ID, t.Provider.Short(), key.DID().Short())
	}
	c.ProviderSig = key.Sign([]byte(contractPrefix + c.ID))
	c.terms, c.termsOf = t, c.ID
	if !bytes.Equal(c.bodyOf, c.Body) {
		c.bodyOf = bytes.Clone(c.Body)
	}
	c.reqOK = memo(c.ID, t.Requester, c.RequesterSig)
	c.provOK = memo(c.ID, t.Provider, c.ProviderSig)
	return nil
}

// Signed reports whether both parties' signatures are present and valid.
func (c *Contract) Signed() bool {
	_, provSigned, err := c.check()
	return err == nil && provSigned
}
