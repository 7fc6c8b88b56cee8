package node

import (
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/identity"
)

// startCaps builds the verifier from this node's trust anchors.
// TODO(lead): load anchors and revocations from capstore once it lands.
func (n *Node) startCaps() error {
	trust, err := cap.NewTrust(cap.Anchor{Root: n.cfg.UserDID, Cmd: "/dms"})
	if err != nil {
		return err
	}
	n.revs = cap.NewRevocations()
	n.verify = cap.NewVerifier(cap.Config{
		Trust:     trust,
		Revoked:   n.revs,
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
