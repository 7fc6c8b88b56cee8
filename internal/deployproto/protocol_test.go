package deployproto_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/match"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" when valid, else part of the message
	}{
		{"simple", "web", ""},
		{"digits and dashes", "db-2", ""},
		{"63 characters", strings.Repeat("a", 63), ""},
		{"empty", "", `deployment name ""`},
		{"64 characters", strings.Repeat("a", 64), "deployment name"},
		{"upper case", "Web", "lower-case letters, digits and '-' only"},
		{"dot", "a.b", "lower-case letters, digits and '-' only"},
		{"slash", "a/b", "lower-case letters, digits and '-' only"},
		{"unicode", "wéb", "lower-case letters, digits and '-' only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := deployproto.CheckName("deployment", tt.in)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckName(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			var ae *actor.Error
			if !errors.As(err, &ae) || ae.Code != actor.CodeBadEnvelope || !strings.Contains(ae.Msg, tt.want) {
				t.Fatalf("CheckName(%q) = %v, want a bad-envelope error with %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct{ dim, want string }{
		{match.DimExecutor, deployproto.KindExecutor},
		{match.DimLocation, deployproto.KindLocation},
		{match.DimPrice, deployproto.KindPrice},
		{match.DimTime, deployproto.KindTime},
		{"cpu", deployproto.KindResource},
		{"gpu", deployproto.KindResource},
		{"extra:fpga", deployproto.KindResource},
	}
	for _, tt := range tests {
		if got := deployproto.KindOf(tt.dim); got != tt.want {
			t.Errorf("KindOf(%q) = %q, want %q", tt.dim, got, tt.want)
		}
	}
}

func TestNoFit(t *testing.T) {
	tests := []struct {
		name    string
		reasons []match.Reason
		want    deployproto.NoBid
	}{
		{"no reasons", nil, deployproto.NoBid{Node: "web", Kind: deployproto.KindResource}},
		{"first reason classifies", []match.Reason{
			{Dimension: match.DimLocation, Message: "is rejected"},
			{Dimension: "ram", Message: "need 2GiB"},
		}, deployproto.NoBid{Node: "web", Kind: deployproto.KindLocation, Reasons: []string{"location: is rejected", "ram: need 2GiB"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := deployproto.NoFit("web", tt.reasons)
			if got.Node != tt.want.Node || got.Kind != tt.want.Kind || strings.Join(got.Reasons, "|") != strings.Join(tt.want.Reasons, "|") {
				t.Fatalf("NoFit = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReservationID(t *testing.T) {
	if got := deployproto.ReservationID("dabc", 3); got != "dabc.3" {
		t.Fatalf("ReservationID = %q, want dabc.3", got)
	}
}

func TestSignBid(t *testing.T) {
	key := mustKey(t)
	peer, _ := key.DID().PeerID()
	bid := &deployproto.Bid{Nodes: []string{"web"}, Reservation: "d1.1"}
	s, err := deployproto.SignBid(key, "d1", peer, bid)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Verify("d1", peer) {
		t.Fatal("SignBid's bid does not verify")
	}
	if s.Verify("d2", peer) {
		t.Fatal("SignBid's bid verifies for another deployment")
	}
	got, err := s.Open()
	if err != nil || got.Reservation != "d1.1" || len(got.Nodes) != 1 {
		t.Fatalf("Open = %+v, %v", got, err)
	}
}

func TestAllocationStateTerminal(t *testing.T) {
	terminal := map[deployproto.AllocationState]bool{
		deployproto.AllocCompleted: true, deployproto.AllocFailed: true, deployproto.AllocStopped: true, deployproto.AllocLost: true,
	}
	for _, s := range []deployproto.AllocationState{
		deployproto.AllocPending, deployproto.AllocStarting, deployproto.AllocRunning, deployproto.AllocHealthy,
		deployproto.AllocUnhealthy, deployproto.AllocRestarting, deployproto.AllocCompleted, deployproto.AllocFailed,
		deployproto.AllocStopped, deployproto.AllocLost,
	} {
		if got := s.Terminal(); got != terminal[s] {
			t.Errorf("%s.Terminal() = %v, want %v", s, got, terminal[s])
		}
	}
}
