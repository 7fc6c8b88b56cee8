package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dmsnet/dms/api"
)

// fakeContracts keeps contracts in memory: c1aa… of deployment d1, c2bb…
// of d2.
type fakeContracts struct {
	cs     []api.Contract
	chains map[string]api.ContractChain
}

// signedBody is a body as a signer encodes it: compact, with an escaped
// character an indenting or re-encoding printer could change.
const signedBody = `{"contract":"c1aa","seq":1,"amount":"0.25","note":"a\u003cb"}`

func newFakeContracts() *fakeContracts {
	return &fakeContracts{
		cs: []api.Contract{
			{ID: "c2bb00", Deployment: "d2", Role: "provider", State: "active", Amount: "1", Owed: "1"},
			{ID: "c1aa00", Deployment: "d1", Role: "requester", State: "closed", Amount: "0.25", Owed: "0.25", Final: true},
		},
		chains: map[string]api.ContractChain{
			"c1aa00": {
				Contract: &api.SignedContract{ID: "c1aa00", Body: json.RawMessage(`{"v":1,"deployment":"d1"}`), RequesterSig: []byte{1}, ProviderSig: []byte{2}},
				Notes:    []api.SignedNote{{Hash: "h1", Body: json.RawMessage(signedBody), ProviderSig: []byte{3}, RequesterSig: []byte{4}}},
			},
			"c2bb00": {Contract: &api.SignedContract{ID: "c2bb00", Body: json.RawMessage(`{}`)}},
		},
	}
}

func (f *fakeContracts) Contracts(_ context.Context, deployment string) ([]api.Contract, error) {
	var out []api.Contract
	for _, c := range f.cs {
		if deployment == "" || c.Deployment == deployment {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeContracts) Contract(_ context.Context, id string) (*api.ContractDetail, error) {
	var found []api.Contract
	for _, c := range f.cs {
		if strings.HasPrefix(c.ID, id) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, &NotFound{Err: fmt.Errorf("no contract %s", id)}
	case 1:
		return &api.ContractDetail{Contract: found[0], Chain: f.chains[found[0].ID]}, nil
	}
	return nil, &Ambiguous{Err: fmt.Errorf("%s matches several contracts", id), Candidates: []string{found[0].ID, found[1].ID}}
}

func (f *fakeContracts) Usage(_ context.Context, deployment string) (*api.DeploymentUsage, error) {
	u := &api.DeploymentUsage{Deployment: deployment, Amount: "0", Owed: "0"}
	for _, c := range f.cs {
		if c.Deployment == deployment {
			u.Contracts = append(u.Contracts, api.ContractUsed{Contract: c.ID, Amount: c.Amount, Owed: c.Owed, State: c.State})
			u.Amount, u.Owed = c.Amount, c.Owed
		}
	}
	return u, nil
}

func (f *fakeContracts) Ledger(context.Context) (*api.LedgerBalance, error) {
	return &api.LedgerBalance{DID: "did:key:z6Mk", Paid: "0.25", Received: "0", Escrowed: "0"}, nil
}

func TestContractRoutes(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		status int
		code   string
		check  func(t *testing.T, body []byte)
	}{
		{"list all", "/api/v1/contracts", 200, "", func(t *testing.T, body []byte) {
			var cs []api.Contract
			if err := json.Unmarshal(body, &cs); err != nil || len(cs) != 2 {
				t.Fatalf("contracts = %s (%v), want 2", body, err)
			}
		}},
		{"list of a deployment", "/api/v1/contracts?deployment=d1", 200, "", func(t *testing.T, body []byte) {
			var cs []api.Contract
			if err := json.Unmarshal(body, &cs); err != nil || len(cs) != 1 || cs[0].ID != "c1aa00" {
				t.Fatalf("contracts of d1 = %s (%v), want c1aa00", body, err)
			}
		}},
		{"list of an unknown deployment is empty", "/api/v1/contracts?deployment=zz", 200, "", func(t *testing.T, body []byte) {
			if got := strings.TrimSpace(string(body)); got != "[]" {
				t.Fatalf("contracts of zz = %s, want []", got)
			}
		}},
		{"one by prefix, bodies verbatim", "/api/v1/contracts/c1", 200, "", func(t *testing.T, body []byte) {
			if !bytes.Contains(body, []byte(signedBody)) {
				t.Fatalf("the note's body is not as signed in %s", body)
			}
			var d api.ContractDetail
			if err := json.Unmarshal(body, &d); err != nil || d.Contract.ID != "c1aa00" || len(d.Chain.Notes) != 1 {
				t.Fatalf("contract = %s (%v)", body, err)
			}
			if got := string(d.Chain.Notes[0].Body); got != signedBody {
				t.Fatalf("note body = %s, want %s", got, signedBody)
			}
		}},
		{"no notes is an empty list", "/api/v1/contracts/c2", 200, "", func(t *testing.T, body []byte) {
			if !bytes.Contains(body, []byte(`"notes":[]`)) {
				t.Fatalf("contract c2 = %s, want notes []", body)
			}
		}},
		{"unknown contract", "/api/v1/contracts/ffff", 404, api.CodeNotFound, nil},
		{"ambiguous prefix", "/api/v1/contracts/c", 400, api.CodeAmbiguous, nil},
		{"usage", "/api/v1/deployments/d1/usage", 200, "", func(t *testing.T, body []byte) {
			var u api.DeploymentUsage
			if err := json.Unmarshal(body, &u); err != nil || len(u.Contracts) != 1 || u.Owed != "0.25" {
				t.Fatalf("usage = %s (%v), want one contract owing 0.25", body, err)
			}
		}},
		{"usage of an unknown deployment", "/api/v1/deployments/nope/usage", 404, api.CodeNotFound, nil},
		{"ledger", "/api/v1/ledger", 200, "", func(t *testing.T, body []byte) {
			var b api.LedgerBalance
			if err := json.Unmarshal(body, &b); err != nil || b.Paid != "0.25" {
				t.Fatalf("ledger = %s (%v), want paid 0.25", body, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Deployments: newFakeTimeline("completed"), Contracts: newFakeContracts()})
			if err != nil {
				t.Fatal(err)
			}
			w := do(s, "GET", tt.path, "", "127.0.0.1:5000", token)
			if w.Code != tt.status {
				t.Fatalf("GET %s = %d %s, want %d", tt.path, w.Code, w.Body, tt.status)
			}
			if tt.status != http.StatusOK {
				var body api.ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != tt.code {
					t.Fatalf("GET %s body = %s, want code %s", tt.path, w.Body, tt.code)
				}
				return
			}
			tt.check(t, w.Body.Bytes())
		})
	}
}

func TestContractRoutesUnavailable(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/contracts", "/api/v1/contracts/c1", "/api/v1/deployments/d1/usage", "/api/v1/ledger"} {
		if w := do(s, "GET", path, "", "127.0.0.1:5000", token); w.Code != http.StatusServiceUnavailable {
			t.Errorf("GET %s without contracts = %d %s, want 503", path, w.Code, w.Body)
		}
	}
}

// TestResourcesCarryLedger: the resources reply holds the node's ledger
// account when it keeps contracts, and none when it does not.
func TestResourcesCarryLedger(t *testing.T) {
	for _, tt := range []struct {
		name      string
		contracts ContractService
		want      *api.LedgerBalance
	}{
		{"with contracts", newFakeContracts(), &api.LedgerBalance{DID: "did:key:z6Mk", Paid: "0.25", Received: "0", Escrowed: "0"}},
		{"without", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Resources: &fakeResources{}, Contracts: tt.contracts})
			if err != nil {
				t.Fatal(err)
			}
			w := do(s, "GET", "/api/v1/resources", "", "127.0.0.1:5000", token)
			var snap api.ResourceSnapshot
			if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &snap) != nil {
				t.Fatalf("GET /api/v1/resources = %d %s", w.Code, w.Body)
			}
			if fmt.Sprint(snap.Ledger) != fmt.Sprint(tt.want) {
				t.Fatalf("ledger = %+v, want %+v", snap.Ledger, tt.want)
			}
		})
	}
}
