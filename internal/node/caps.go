package node

import (
	"context"
	"fmt"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/cap/capstore"
	"github.com/dmsnet/dms/internal/identity"
)

// startCaps opens the capability state in the store (anchors, revocations,
// tokens) and builds the verifier on it. A home made by `dms init` trusts
// its user for /dms; EnsureDefaults keeps that true for older homes.
func (n *Node) startCaps() error {
	var trust cap.Trust
	var revs cap.RevocationSet
	if n.db != nil {
		cs, err := capstore.Open(n.db)
		if err != nil {
			return err
		}
		if err := cs.EnsureDefaults(n.cfg.UserDID); err != nil {
			return err
		}
		if trust, err = cs.Trust(); err != nil {
			return err
		}
		n.caps, revs = cs, cs
	} else {
		// In-process tests without a store: the default trust only.
		var err error
		if trust, err = cap.NewTrust(cap.Anchor{Root: n.cfg.UserDID, Cmd: capstore.DefaultPrefix}); err != nil {
			return err
		}
		revs = cap.NewRevocations()
	}
	n.verify = cap.NewVerifier(cap.Config{
		Trust:     trust,
		Revoked:   revs,
		IsLocal:   n.isLocal,
		MaxDepth:  n.cfg.Config.Cap.MaxDepth,
		ClockSkew: n.cfg.Config.Cap.ClockSkew.D(),
		// The runtime checks policies per message (grant.Check).
		DeferPolicies: true,
	})
	return nil
}

// isLocal reports whether d is this node or one of its actors.
func (n *Node) isLocal(d identity.DID) bool {
	if d == n.cfg.Key.DID() {
		return true
	}
	return n.sys != nil && n.sys.HasActor(d)
}

// capService implements apiserver.CapService on the capability store, and
// applies every change to the running verifier at once.
type capService struct{ n *Node }

func (s capService) store() (*capstore.Store, error) {
	if s.n.caps == nil {
		return nil, fmt.Errorf("no capability store")
	}
	return s.n.caps, nil
}

func (s capService) Anchor(_ context.Context, a cap.Anchor, remove bool) error {
	cs, err := s.store()
	if err != nil {
		return err
	}
	if err := a.Validate(); err != nil {
		return &apiserver.BadRequest{Err: err}
	}
	if remove {
		err = cs.RemoveAnchor(a)
	} else {
		err = cs.AddAnchor(a)
	}
	if err != nil {
		return err
	}
	trust, err := cs.Trust()
	if err != nil {
		return err
	}
	s.n.verify.SetTrust(trust)
	s.n.log.Info("trust changed", "root", a.Root, "cmd", a.Cmd, "removed", remove)
	return nil
}

func (s capService) Revoke(_ context.Context, r cap.Revocation, chain cap.Chain) error {
	cs, err := s.store()
	if err != nil {
		return err
	}
	if err := cs.Revoke(r, chain); err != nil {
		return &apiserver.BadRequest{Err: err}
	}
	return nil
}

func (s capService) Import(_ context.Context, chain cap.Chain, source string) (capstore.Token, error) {
	cs, err := s.store()
	if err != nil {
		return capstore.Token{}, err
	}
	return cs.AddChain(chain, source, time.Now())
}

func (s capService) List(context.Context) (api.CapListing, error) {
	cs, err := s.store()
	if err != nil {
		return api.CapListing{}, err
	}
	return cs.Listing()
}

func (s capService) Verify(_ context.Context, chain cap.Chain, cmd string, args map[string]any) error {
	cs, err := s.store()
	if err != nil {
		return err
	}
	trust, err := cs.Trust()
	if err != nil {
		return err
	}
	v := cap.NewVerifier(cap.Config{Trust: trust, Revoked: cs, CacheSize: -1})
	return v.VerifyChain(time.Now(), chain, cmd, args)
}
