package placement

import (
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
)

// TestVerifyBidsRefusesDryRuns: a dry-run bid (dms plan's) is never fit
// for a commit — not unsigned as providers send it, not even signed —
// while a real bid is, signed (the JSON form) or not (the binary form);
// a signature that is there must be the provider's over this bid.
func TestVerifyBidsRefusesDryRuns(t *testing.T) {
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := key.DID().PeerID()
	sign := func(b deployproto.Bid) *deployproto.SignedBid {
		s, err := deployproto.SignBid(key, "d1", peer, &b)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	real := deployproto.Bid{Nodes: []string{"job"}, Reservation: "d1.1"}
	dry := deployproto.Bid{Nodes: []string{"job"}, DryRun: true}
	unsigned := sign(dry)
	unsigned.Signature = nil
	binary := &deployproto.SignedBid{Body: deployproto.MarshalBid(&real)}
	other := sign(real)
	other.Body = deployproto.MarshalBid(&deployproto.Bid{Nodes: []string{"job"}, Reservation: "d1.2"}) // the signature is over another bid
	tests := []struct {
		name   string
		bid    deployproto.Bid
		signed *deployproto.SignedBid
		ok     bool
	}{
		{"signed bid", real, sign(real), true},
		{"unsigned real bid (binary form)", real, binary, true},
		{"signature over another bid", real, other, false},
		{"signature for another deployment", real, func() *deployproto.SignedBid {
			s, err := deployproto.SignBid(key, "d2", peer, &real)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), false},
		{"dry run as providers send it: unsigned", dry, unsigned, false},
		{"dry run, signed all the same", dry, sign(dry), false},
		{"no signed form", real, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := map[string]Candidate{"job": {Node: "job", Provider: actor.Handle{Host: peer}, Bid: tc.bid, Signed: tc.signed}}
			bad := VerifyBids("d1", plan)
			if ok := bad == nil; ok != tc.ok {
				t.Fatalf("VerifyBids = %+v; want ok %v", bad, tc.ok)
			}
			if !tc.ok && (len(bad) != 1 || bad[0].Kind != deployproto.KindInvalid || bad[0].Peer != peer || tc.bid.DryRun != strings.Contains(bad[0].Reasons[0], "dry-run")) {
				t.Fatalf("refusal %+v, want one invalid reason for %s", bad, peer)
			}
		})
	}
}
