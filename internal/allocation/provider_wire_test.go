package allocation

import (
	"context"
	"errors"
	"testing"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/match"
)

// TestBidRequestForms: a provider answers a bid request in the form it
// came in. A binary request (what the orchestrator sends) gets a binary
// reply whose bid opens and carries no signature; a JSON request a JSON
// reply whose bid verifies; a malformed binary request a bad-envelope
// error, and no reservation.
func TestBidRequestForms(t *testing.T) {
	w := newProvWorld(t)
	o := w.orchestrator()
	req := func(dep string) deployproto.BidRequest {
		return deployproto.BidRequest{Deployment: dep, Orchestrator: o.Handle(), Round: 1, Nodes: []deployproto.NodeRequest{{
			Name: "job", Request: match.Request{Resources: cores(1), Executors: []string{"docker"}},
		}}}
	}
	bin := req("d-bin")
	good := deployproto.MarshalBidRequest(&bin)
	tests := []struct {
		name       string
		payload    any
		dep        string
		wantBinary bool
		wantErr    bool
	}{
		{"binary", good, "d-bin", true, false},
		{"json", req("d-json"), "d-json", false, false},
		{"truncated binary", good[:len(good)-3], "", false, true},
		{"trailing byte", append(append([]byte(nil), good...), 0), "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := o.InvokeRaw(context.Background(), w.root, deployproto.BehaviorRequest, tt.payload)
			if tt.wantErr {
				var ae *actor.Error
				if err == nil && rep != nil && rep.Err != nil {
					err = rep.Err
				}
				if !errors.As(err, &ae) || ae.Code != actor.CodeBadEnvelope {
					t.Fatalf("err %v, want a bad-envelope error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := deployproto.IsBinary(rep.Payload); got != tt.wantBinary {
				t.Fatalf("reply binary %v, want %v", got, tt.wantBinary)
			}
			br, err := deployproto.UnmarshalBidReply(rep.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if br.Bid == nil {
				t.Fatalf("no bid: %+v", br.NoBids)
			}
			if deployproto.IsBinary(br.Bid.Body) != tt.wantBinary {
				t.Fatalf("bid body binary %v, want %v", deployproto.IsBinary(br.Bid.Body), tt.wantBinary)
			}
			// A JSON bid is signed; a binary one is not (docs/security.md, "Bids").
			if signed := len(br.Bid.Signature) > 0; signed == tt.wantBinary {
				t.Fatalf("bid signed %v, want %v", signed, !tt.wantBinary)
			}
			if !tt.wantBinary && !br.Bid.Verify(tt.dep, w.root.Host) {
				t.Fatal("the bid does not verify")
			}
			b, err := br.Bid.Open()
			if err != nil || b.Reservation != deployproto.ReservationID(tt.dep, 1) || len(b.Nodes) != 1 {
				t.Fatalf("Open = %+v, %v", b, err)
			}
		})
	}
	w.prov.mu.Lock()
	defer w.prov.mu.Unlock()
	if len(w.prov.live) != 2 {
		t.Fatalf("%d live reservations, want 2 (the malformed requests reserve nothing)", len(w.prov.live))
	}
}
