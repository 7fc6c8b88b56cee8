package node

import (
	"reflect"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/orchestrator"
)

func TestAPIDeployment(t *testing.T) {
	at := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	const (
		orch  = "12D3KooWOrchestrator"
		prov  = "12D3KooWProviderB"
		old   = "12D3KooWProviderA"
		stand = "12D3KooWStandby"
	)
	d := &orchestrator.Deployment{
		ID: "d1", State: orchestrator.Failed, Version: 9, Spec: []byte("version: v1\n"),
		Reason: orchestrator.ReasonBudgetSpent, Epoch: 4,
		Orchestrator: actor.Handle{DID: "did:key:zOrch", Host: orch, Inbox: "dep-d1"},
		Standbys:     []string{stand},
		Allocations: map[string]*orchestrator.Allocation{
			"web": {Name: "web", Node: "web", Handle: actor.Handle{Host: prov}, State: "running", Restarts: 1, Attempt: 2, Epoch: 4},
		},
		Events: []orchestrator.Event{
			{Seq: 1, Time: at, Kind: orchestrator.EventLost, Allocation: "web", Node: "web", From: old, Epoch: 3, Message: "no heartbeat for 3s"},
			{Seq: 2, Time: at.Add(time.Second), Kind: orchestrator.EventRedeployed, Node: "web", From: old, To: prov, Epoch: 4, Message: "redeployed node web"},
		},
		EventSeq: 2,
	}
	for _, tc := range []struct {
		name   string
		detail bool
		want   *api.Deployment
	}{
		{"detail", true, &api.Deployment{
			ID: "d1", State: "failed", Version: 9, Ensemble: "version: v1\n",
			Reason: "reschedule-budget-spent", Epoch: 4, Orchestrator: orch, Standbys: []string{stand},
			Allocations: []api.DeploymentAlloc{{Name: "web", Node: "web", Provider: prov, State: "running", Restarts: 1, Attempt: 2, Epoch: 4}},
			Events: []api.DeploymentEvent{
				{Seq: 1, Time: at, Kind: "lost", Allocation: "web", Node: "web", From: old, Epoch: 3, Message: "no heartbeat for 3s"},
				{Seq: 2, Time: at.Add(time.Second), Kind: "redeployed", Node: "web", From: old, To: prov, Epoch: 4, Message: "redeployed node web"},
			},
		}},
		{"list", false, &api.Deployment{
			ID: "d1", State: "failed", Version: 9,
			Reason: "reschedule-budget-spent", Epoch: 4, Orchestrator: orch, Standbys: []string{stand},
			Allocations: []api.DeploymentAlloc{{Name: "web", Node: "web", Provider: prov, State: "running", Restarts: 1, Attempt: 2, Epoch: 4}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := apiDeployment(d, tc.detail)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("apiDeployment(detail %v) =\n  %+v\nwant\n  %+v", tc.detail, got, tc.want)
			}
		})
	}
	// The copy shares nothing with the deployment.
	got := apiDeployment(d, true)
	got.Standbys[0] = "changed"
	if d.Standbys[0] != stand {
		t.Error("apiDeployment shares Standbys with the deployment")
	}
}
