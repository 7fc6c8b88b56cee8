package cli

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
)

func TestProgress(t *testing.T) {
	small := []api.DeploymentCandidate{{Peer: "p1", Node: "web", Kind: "resource", Reasons: []string{"ram: need 2GiB, have 1GiB free"}}}
	smaller := []api.DeploymentCandidate{{Peer: "p1", Node: "web", Kind: "resource", Reasons: []string{"ram: need 2GiB, have 512MiB free"}}}
	queued := func(round int, c []api.DeploymentCandidate) *api.Deployment {
		return &api.Deployment{ID: "d1", State: "queued", Round: round, Message: "no placement for web (1 providers answered): waiting for providers", Candidates: c}
	}
	bidding := func(round int) *api.Deployment { return &api.Deployment{ID: "d1", State: "bidding", Round: round} }
	running := &api.Deployment{ID: "d1", State: "running", Round: 3, Allocations: []api.DeploymentAlloc{{Name: "web", State: "running", Ports: []string{"8080:80/tcp"}}}}
	const whyNot = "  p1 for web: resource (ram: need 2GiB, have 1GiB free)"
	detach := "all services run; Ctrl-C stops following and leaves them running (dms deployment shutdown d1 stops them)"
	tests := []struct {
		name             string
		follow, services bool
		steps            []*api.Deployment
		want             [][]string
	}{
		{
			name:  "why-not printed once while it does not change",
			steps: []*api.Deployment{bidding(1), queued(1, small), bidding(2), queued(2, small), bidding(3), queued(3, small)},
			want: [][]string{
				{"bidding"},
				{"queued: no placement for web (1 providers answered): waiting for providers", whyNot},
				nil, nil, nil, nil,
			},
		},
		{
			name:  "why-not printed again when it changes",
			steps: []*api.Deployment{queued(1, small), bidding(2), queued(2, smaller)},
			want: [][]string{
				{"queued: no placement for web (1 providers answered): waiting for providers", whyNot},
				nil,
				{"queued: no placement for web (1 providers answered): waiting for providers", "  p1 for web: resource (ram: need 2GiB, have 512MiB free)"},
			},
		},
		{
			name:  "no reasons: no empty why-not line",
			steps: []*api.Deployment{queued(1, small), queued(2, nil)},
			want: [][]string{
				{"queued: no placement for web (1 providers answered): waiting for providers", whyNot},
				nil,
			},
		},
		{
			name:   "followed services: the detach line once, with ports",
			follow: true, services: true,
			steps: []*api.Deployment{running, running},
			want:  [][]string{{"running", "  web: running (ports 8080:80/tcp)", detach}, nil},
		},
		{
			name:     "not followed: no detach line",
			services: true,
			steps:    []*api.Deployment{running},
			want:     [][]string{{"running", "  web: running (ports 8080:80/tcp)"}},
		},
		{
			name:   "followed tasks: no detach line",
			follow: true,
			steps:  []*api.Deployment{running},
			want:   [][]string{{"running", "  web: running (ports 8080:80/tcp)"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProgress(tt.follow, tt.services)
			for i, d := range tt.steps {
				if got := p.lines(d); !reflect.DeepEqual(got, tt.want[i]) {
					t.Fatalf("step %d (%s): lines = %q, want %q", i, d.State, got, tt.want[i])
				}
			}
		})
	}
}

func TestPrintDeploymentPorts(t *testing.T) {
	d := &api.Deployment{ID: "d1", State: "running", Allocations: []api.DeploymentAlloc{
		{Name: "web", Node: "web", State: "running", Ports: []string{"8080:80/tcp", "8443:443/tcp"}},
		{Name: "worker", Node: "web", State: "running"},
	}}
	var b strings.Builder
	if err := printDeployment(&b, d, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ALLOCATION  NODE  STATE    RESTARTS  EXIT  PORTS                     MESSAGE",
		"web         web   running  0         -     8080:80/tcp,8443:443/tcp",
		"worker      web   running  0         -     -",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printDeployment lacks %q:\n%s", want, b.String())
		}
	}
}

func TestPrintDeploymentSubnet(t *testing.T) {
	d := &api.Deployment{ID: "d1", State: "running", Subnet: "10.77.0.0/24", Allocations: []api.DeploymentAlloc{
		{Name: "db", Node: "db", State: "running", Address: "10.77.0.2", Attempt: 2},
		{Name: "web", Node: "web", State: "running", Address: "10.77.0.3"},
	}}
	var b strings.Builder
	if err := printDeployment(&b, d, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"subnet    10.77.0.0/24\n",
		"ALLOCATION  NODE  ADDRESS    STATE    ATTEMPT  RESTARTS  EXIT  PORTS  MESSAGE",
		"db          db    10.77.0.2  running  2        0         -     -",
		"web         web   10.77.0.3  running  1        0         -     -",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printDeployment lacks %q:\n%s", want, b.String())
		}
	}
}
