package node

import (
	"path/filepath"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/cap/capstore"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/store"
)

// capStateTimeout bounds the wait for the store's lock: a running node
// holds it, and OpenCapState fails at once with a clear error.
const capStateTimeout = 300 * time.Millisecond

// CapState is a home's capability state (trust anchors, revocations,
// tokens) opened while no node runs on the home: what `dms init` and the
// offline `dms cap` commands read and change. While a node runs, its REST
// API serves the same operations.
type CapState struct {
	db *store.DB
	cs *capstore.Store
}

// OpenCapState opens the capability state in the home's store. It fails
// with "store … is in use by another process (is `dms run` running?)"
// while a node runs on the home. Close releases the store.
func OpenCapState(home string) (*CapState, error) {
	db, err := store.Open(filepath.Join(home, StoreFile), store.Options{Timeout: capStateTimeout})
	if err != nil {
		return nil, err
	}
	cs, err := capstore.Open(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &CapState{db: db, cs: cs}, nil
}

// EnsureDefaults records the default trust of a home: the node trusts the
// home's user for /dms.
func (s *CapState) EnsureDefaults(user identity.DID) error { return s.cs.EnsureDefaults(user) }

// Anchor adds a trust anchor, or removes it.
func (s *CapState) Anchor(an cap.Anchor, remove bool) error {
	if remove {
		return s.cs.RemoveAnchor(an)
	}
	return s.cs.AddAnchor(an)
}

// Revoke records a revocation of a delegation of chain.
func (s *CapState) Revoke(r cap.Revocation, chain cap.Chain) error { return s.cs.Revoke(r, chain) }

// Import keeps a token (a delegation chain) the home holds; source is
// api.SourceIssued or the file it came from.
func (s *CapState) Import(chain cap.Chain, source string) (api.CapToken, error) {
	t, err := s.cs.AddChain(chain, source, time.Now())
	return t.API(), err
}

// List returns the anchors, revocations and tokens.
func (s *CapState) List() (api.CapListing, error) { return s.cs.Listing() }

// Verify checks chain for cmd as this home's node would.
func (s *CapState) Verify(chain cap.Chain, cmd string, args map[string]any) error {
	trust, err := s.cs.Trust()
	if err != nil {
		return err
	}
	v := cap.NewVerifier(cap.Config{Trust: trust, Revoked: s.cs, CacheSize: -1})
	return v.VerifyChain(time.Now(), chain, cmd, args)
}

// Close releases the store.
func (s *CapState) Close() error { return s.db.Close() }
