package orchestrator

import (
	"encoding/json"
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
