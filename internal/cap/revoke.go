package cap

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// RevocationSet tells the Verifier which tokens are revoked. Generation
// must change after every addition, and an added CID must be visible to
// IsRevoked before Generation changes: a cached authorization is re-checked
// only when the generation moved. Implementations are safe for concurrent
// use.
type RevocationSet interface {
	IsRevoked(cid string) bool
	Generation() uint64
}

// ErrNoRevokeAuthority is wrapped by Revoke and Revocation.Verify when the
// revoking DID issued neither the token nor any of its ancestors.
var ErrNoRevokeAuthority = errors.New("neither its issuer nor the issuer of one of its ancestors")

// Revocation revokes the delegation CID. It is valid when Issuer signed it
// and Issuer issued the revoked delegation or one of its ancestors in a
// chain that leads to it.
type Revocation struct {
	CID       string       `json:"cid"`
	Issuer    identity.DID `json:"issuer"`
	Time      time.Time    `json:"time"`
	Signature []byte       `json:"signature"`
}

// signedBytes is what a revocation's signature covers.
func (r Revocation) signedBytes() []byte {
	return []byte("dms-revocation/v1\x00" + r.CID + "\x00" + string(r.Issuer) + "\x00" + strconv.FormatInt(r.Time.Unix(), 10))
}

// Revoke signs a revocation of the delegation cid of chain (root first, up
// to the revoked delegation or beyond) with key, which must be the issuer
// of that delegation or of one of its ancestors. at is the revocation
// time (whole seconds are kept).
func Revoke(key *identity.Key, chain Chain, cid string, at time.Time) (Revocation, error) {
	r := Revocation{CID: cid, Issuer: key.DID(), Time: at.UTC().Truncate(time.Second)}
	if err := r.authority(chain); err != nil {
		return Revocation{}, err
	}
	r.Signature = key.Sign(r.signedBytes())
	return r, nil
}

// Verify checks the revocation's signature and that its issuer has
// authority over the revoked delegation in chain: chain must be a linked
// chain from a root delegation down to (at least) the revoked one.
func (r Revocation) Verify(chain Chain) error {
	if !identity.Verify(r.Issuer, r.signedBytes(), r.Signature) {
		return deny(RuleSignature, r.CID, "revocation signature does not verify against %s", r.Issuer)
	}
	return r.authority(chain)
}

// CanRevoke returns nil when issuer may revoke the delegation cid of chain
// (root first): it issued that delegation or one of its ancestors.
// Otherwise the error wraps ErrNoRevokeAuthority, or is a *DeniedError
// when the chain is not a linked chain holding cid.
func CanRevoke(chain Chain, cid string, issuer identity.DID) error {
	return Revocation{CID: cid, Issuer: issuer}.authority(chain)
}

// authority checks that r.Issuer issued r.CID or an ancestor in chain.
func (r Revocation) authority(chain Chain) error {
	upto, ok := chain.Upto(r.CID)
	if !ok {
		return deny(RuleMalformed, r.CID, "the revoked token is not in the chain given with the revocation")
	}
	if err := checkLinks(upto); err != nil {
		return err
	}
	for _, d := range upto {
		if d.Issuer() == r.Issuer {
			return nil
		}
	}
	return fmt.Errorf("cannot revoke token %s: %s is %w", r.CID, r.Issuer, ErrNoRevokeAuthority)
}

// checkLinks checks chain's structure: it starts at a root delegation,
// every subject is the root, and each audience issues the next.
func checkLinks(chain Chain) error {
	if len(chain) == 0 {
		return deny(RuleMalformed, "", "empty chain")
	}
	root := chain[0]
	if !root.IsRoot() {
		return deny(RuleSubject, root.CID(), "the chain does not start at a root delegation (issuer %s, subject %s)", root.Issuer().Short(), root.Subject().Short())
	}
	for i, d := range chain {
		if d.Subject() == "" {
			return deny(RuleSubject, d.CID(), "powerline delegations (no subject) are not accepted")
		}
		if d.Subject() != root.Subject() {
			return deny(RuleSubject, d.CID(), "subject %s differs from the chain's root %s", d.Subject().Short(), root.Subject().Short())
		}
		if i > 0 && chain[i-1].Audience() != d.Issuer() {
			return deny(RuleAudience, d.CID(), "issued by %s, but its parent %s was delegated to %s", d.Issuer().Short(), chain[i-1].CID(), chain[i-1].Audience().Short())
		}
	}
	return nil
}

// Revocations is an in-memory RevocationSet, safe for concurrent use.
// capstore persists one.
type Revocations struct {
	mu  sync.RWMutex
	set map[string]Revocation // guarded by mu
	gen atomic.Uint64
}

// NewRevocations returns an empty set at generation 1.
func NewRevocations() *Revocations {
	r := &Revocations{set: map[string]Revocation{}}
	r.gen.Store(1)
	return r
}

// Add records an already verified revocation.
func (s *Revocations) Add(r Revocation) {
	s.mu.Lock()
	s.set[r.CID] = r
	s.mu.Unlock()
	s.gen.Add(1)
}

// IsRevoked reports whether cid was revoked.
func (s *Revocations) IsRevoked(cid string) bool {
	s.mu.RLock()
	_, ok := s.set[cid]
	s.mu.RUnlock()
	return ok
}

// Generation changes after every Add.
func (s *Revocations) Generation() uint64 { return s.gen.Load() }

// List returns the revocations in no particular order.
func (s *Revocations) List() []Revocation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Revocation, 0, len(s.set))
	for _, r := range s.set {
		out = append(out, r)
	}
	return out
}

var _ RevocationSet = (*Revocations)(nil)
