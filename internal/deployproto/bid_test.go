package deployproto_test

import (
	"encoding/json"
	"testing"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
)

// TestSignedBid: a signed bid verifies after a trip through JSON, and not
// when anything it is bound to changes.
func TestSignedBid(t *testing.T) {
	key, other := mustKey(t), mustKey(t)
	peer, _ := key.DID().PeerID()
	otherPeer, _ := other.DID().PeerID()
	body, _ := json.Marshal(deployproto.Bid{Nodes: []string{"job"}, Reservation: "d1.1", Latencies: map[string]float64{}})
	signed := deployproto.SignedBid{Body: body}
	signed.Signature = key.Sign(signed.SignedBytes("d1", peer))

	wire, err := json.Marshal(deployproto.BidReply{Bid: &signed})
	if err != nil {
		t.Fatal(err)
	}
	var got deployproto.BidReply
	if err := json.Unmarshal(wire, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Bid.Verify("d1", peer) {
		t.Fatal("a bid does not verify after a JSON round trip")
	}
	if b, err := got.Bid.Open(); err != nil || b.Reservation != "d1.1" || b.Nodes[0] != "job" {
		t.Fatalf("Open = %+v, %v", b, err)
	}

	tampered := func(f func(*deployproto.SignedBid)) deployproto.SignedBid {
		c := deployproto.SignedBid{Body: append(json.RawMessage(nil), got.Bid.Body...), Signature: append([]byte(nil), got.Bid.Signature...)}
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name       string
		bid        deployproto.SignedBid
		deployment string
		provider   string
	}{
		{"other deployment", *got.Bid, "d2", peer},
		{"other provider", *got.Bid, "d1", otherPeer},
		{"not a peer id", *got.Bid, "d1", "nobody"},
		{"body changed", tampered(func(s *deployproto.SignedBid) { s.Body = []byte(`{"nodes":["job"],"reservation":"d1.2"}`) }), "d1", peer},
		{"signature changed", tampered(func(s *deployproto.SignedBid) { s.Signature[0] ^= 1 }), "d1", peer},
		{"no signature", tampered(func(s *deployproto.SignedBid) { s.Signature = nil }), "d1", peer},
	} {
		if tc.bid.Verify(tc.deployment, tc.provider) {
			t.Errorf("%s: verifies", tc.name)
		}
	}
	if _, err := (&deployproto.SignedBid{Body: []byte(`{"nodes":`)}).Open(); err == nil {
		t.Error("a truncated bid opens")
	}
}

func mustKey(t testing.TB) *identity.Key {
	t.Helper()
	k, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
