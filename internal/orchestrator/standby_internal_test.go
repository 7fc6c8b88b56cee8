package orchestrator

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
)

// FuzzReplicaRecord decodes deployment records as a standby receives them
// in a replicate: no panic, and a record it keeps is a standby replica of
// the request's deployment, epoch and primary, with maps a run can use.
func FuzzReplicaRecord(f *testing.F) {
	key, err := identity.NewKey()
	if err != nil {
		f.Fatal(err)
	}
	owner, _ := identity.NewKey()
	s := &Service{cfg: Config{Key: key}}
	spec := "version: v1\nallocations:\n  job: {executor: docker, execution: {image: x}}\n"
	good, _ := json.Marshal(&Deployment{ID: "d1", Owner: owner.DID(), Spec: []byte(spec), State: Running, Epoch: 2,
		Allocations: map[string]*Allocation{"job": {Name: "job", State: deployproto.AllocRunning}}})
	f.Add(good, uint64(2))
	f.Add([]byte(`{"id":"d1","owner":"did:key:z","state":"running","epoch":2}`), uint64(2))
	f.Add([]byte(`{"id":"d1","allocations":{"job":null}}`), uint64(0))
	f.Add([]byte(`null`), uint64(0))
	primary := actor.Handle{DID: owner.DID(), Host: "12D3KooWA", Inbox: "orch/d1"}
	f.Fuzz(func(t *testing.T, record []byte, epoch uint64) {
		req := deployproto.ReplicateRequest{ID: "d1", Deployment: record, Epoch: epoch, Primary: primary, Lease: time.Second}
		d, err := s.decodeReplica(req)
		if err != nil {
			return
		}
		switch {
		case d.ID != "d1" || d.Epoch != epoch || d.Orchestrator != primary || !d.IsStandby() || d.SealedKey != nil:
			t.Fatalf("kept %+v from a request for d1 at epoch %d", d, epoch)
		case d.Placement == nil || d.Allocations == nil:
			t.Fatal("a kept replica has nil maps")
		}
		for name, a := range d.Allocations {
			if a == nil {
				t.Fatalf("allocation %s is nil", name)
			}
		}
		d.clone()
	})
}

func TestHigher(t *testing.T) {
	a := actor.Handle{DID: "did:key:za", Host: "12D3KooWA", Inbox: "orch/d1"}
	b := actor.Handle{DID: "did:key:zb", Host: "12D3KooWB", Inbox: "orch/d1"}
	tests := []struct {
		name   string
		e1     uint64
		p1     actor.Handle
		e2     uint64
		p2     actor.Handle
		higher bool
	}{
		{"higher epoch", 5, b, 4, a, true},
		{"lower epoch", 4, a, 5, b, false},
		{"same epoch, same orchestrator", 5, a, 5, a, false},
		{"same epoch, lower peer ID wins", 5, a, 5, b, true},
		{"same epoch, higher peer ID loses", 5, b, 5, a, false},
		{"same epoch and host, lower DID wins", 5, actor.Handle{DID: "did:key:z1", Host: a.Host}, 5, a, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := higher(tt.e1, tt.p1, tt.e2, tt.p2); got != tt.higher {
				t.Fatalf("higher(%d %s, %d %s) = %v, want %v", tt.e1, tt.p1.Host, tt.e2, tt.p2.Host, got, tt.higher)
			}
		})
	}
}

func TestStandbyPeer(t *testing.T) {
	key, _ := identity.NewKey()
	peer, _ := key.DID().PeerID()
	tests := []struct {
		name, in, want, err string
	}{
		{"peer ID", peer, peer, ""},
		{"did:key", string(key.DID()), peer, ""},
		{"garbage", "not-a-peer", "", "peer"},
		{"other DID method", "did:web:example.com", "", "did"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := standbyPeer(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.err) {
					t.Fatalf("standbyPeer(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("standbyPeer(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
