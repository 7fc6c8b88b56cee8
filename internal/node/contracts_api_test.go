package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/notary"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// memRecords keeps notary records in memory, newest first.
type memRecords struct{ rs []notary.Record }

func (m memRecords) Get(id string) (notary.Record, error) {
	for _, r := range m.rs {
		if r.Contract.ID == id {
			return r, nil
		}
	}
	return notary.Record{}, fmt.Errorf("contract %q: %w", id, store.ErrNotFound)
}

func (m memRecords) List(deployment string) ([]notary.Record, error) {
	var out []notary.Record
	for _, r := range m.rs {
		var t contract.Terms
		if err := json.Unmarshal(r.Contract.Body, &t); err != nil {
			return nil, err
		}
		if deployment == "" || t.Deployment == deployment {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m memRecords) Chain(id string) (*contract.Chain, error) {
	r, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	ch := &contract.Chain{Contract: r.Contract}
	if r.Last != nil {
		ch.Notes = append(ch.Notes, *r.Last)
	}
	return ch, nil
}

// balances is a ledger that only reports balances.
type balances struct {
	contract.Ledger
	b map[identity.DID]contract.Balance
}

func (l balances) Balance(_ context.Context, did identity.DID) (contract.Balance, error) {
	return l.b[did], nil
}

func record(t *testing.T, id string, role notary.Role, state notary.State, terms contract.Terms, last, accepted *contract.Note) notary.Record {
	t.Helper()
	body, err := json.Marshal(terms)
	if err != nil {
		t.Fatal(err)
	}
	note := func(n *contract.Note) *contract.SignedNote {
		if n == nil {
			return nil
		}
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		return &contract.SignedNote{Hash: fmt.Sprintf("h%d", n.Seq), Body: b, ProviderSig: []byte{1}}
	}
	return notary.Record{Contract: &contract.Contract{ID: id, Body: body}, Role: role, State: state, Last: note(last), Accepted: note(accepted)}
}

func TestContractService(t *testing.T) {
	terms := func(dep, node string, budget match.Money) contract.Terms {
		return contract.Terms{
			Version: 1, Deployment: dep, Node: node, Reservation: "r-" + node, Allocations: []string{node},
			Requester: "did:key:alice", Provider: identity.DID("did:key:" + node), Interval: time.Second,
			Price: match.Price{CPU: 2_000_000}, Budget: budget, Settlement: contract.SettleLocal,
		}
	}
	u := func(cpu uint64) contract.Usage {
		return contract.Usage{CPUMicros: cpu, MemoryByteSeconds: 2 * cpu, WallMillis: cpu / 1000}
	}
	recs := memRecords{rs: []notary.Record{
		record(t, "aaaa1111", notary.RoleRequester, notary.StateActive, terms("d1", "a", 5_000),
			&contract.Note{Seq: 3, Usage: u(3_000_000), Amount: 1_666}, &contract.Note{Seq: 2, Usage: u(2_000_000), Amount: 1_111}),
		record(t, "aaaa2222", notary.RoleRequester, notary.StateStopped, terms("d1", "b", 5_000),
			&contract.Note{Seq: 1, Usage: u(1_000_000), Amount: 555, Final: true}, &contract.Note{Seq: 1, Usage: u(1_000_000), Amount: 555, Final: true}),
		// The same node provides a placement of d1 to another requester:
		// its usage is not d1's cost to this node.
		record(t, "bbbb3333", notary.RoleProvider, notary.StateActive, terms("d1", "c", 0),
			&contract.Note{Seq: 9, Usage: u(9_000_000), Amount: 5_000}, nil),
		record(t, "cccc4444", notary.RoleProvider, notary.StateProposed, terms("d2", "x", 0), nil, nil),
	}}
	recs.rs[1].Reason = "budget exhausted"
	recs.rs[2].Refusal = "budget-exhausted: over budget"
	self := identity.DID("did:key:alice")
	s := contractService{records: recs, ledger: balances{b: map[identity.DID]contract.Balance{self: {DID: self, Paid: 1_666, Escrowed: 3_000}}}, self: self}
	ctx := context.Background()

	t.Run("list", func(t *testing.T) {
		cs, err := s.Contracts(ctx, "d1")
		if err != nil || len(cs) != 3 {
			t.Fatalf("Contracts(d1) = %d, %v; want 3", len(cs), err)
		}
		want := api.Contract{
			ID: "aaaa1111", Deployment: "d1", Node: "a", Reservation: "r-a", Allocations: []string{"a"},
			Role: "requester", State: "active", Requester: "did:key:alice", Provider: "did:key:a",
			Price: api.ContractPrice{CPU: "2"}, IntervalMS: 1000, Budget: "0.005", Settlement: "local",
			Notes: 3, Usage: api.ContractUsage{CPUMicros: 3_000_000, MemoryByteSeconds: 6_000_000, WallMillis: 3000},
			Amount: "0.001666", Owed: "0.001111",
		}
		if !reflect.DeepEqual(cs[0], want) {
			t.Errorf("Contracts(d1)[0] =\n%+v\nwant\n%+v", cs[0], want)
		}
		if c := cs[2]; c.Owed != "0" || c.Budget != "" || c.Refusal != "budget-exhausted: over budget" {
			t.Errorf("a contract without countersigned notes or budget = owed %q, budget %q, refusal %q; want 0, none and the refusal", c.Owed, c.Budget, c.Refusal)
		}
		if cs, err := s.Contracts(ctx, "d2"); err != nil || len(cs) != 1 || cs[0].Notes != 0 || cs[0].Amount != "0" {
			t.Errorf("Contracts(d2) = %+v, %v; want one without notes", cs, err)
		}
	})

	t.Run("one", func(t *testing.T) {
		for _, tt := range []struct {
			id      string
			want    string
			wantErr any
		}{
			{"aaaa1111", "aaaa1111", nil},
			{"aaaa2", "aaaa2222", nil},
			{"aaaa", "", &apiserver.Ambiguous{}},
			{"aa", "", &apiserver.NotFound{}},
			{"ffff", "", &apiserver.NotFound{}},
		} {
			d, err := s.Contract(ctx, tt.id)
			switch want := tt.wantErr.(type) {
			case nil:
				if err != nil || d.Contract.ID != tt.want || d.Chain.Contract == nil || d.Chain.Contract.ID != tt.want || len(d.Chain.Notes) != 1 {
					t.Errorf("Contract(%s) = %+v, %v; want %s with its chain", tt.id, d, err, tt.want)
				}
			case *apiserver.Ambiguous:
				if !errors.As(err, &want) || len(want.Candidates) != 2 {
					t.Errorf("Contract(%s) error = %v, want ambiguous between 2", tt.id, err)
				}
			case *apiserver.NotFound:
				if !errors.As(err, &want) {
					t.Errorf("Contract(%s) error = %v, want not found", tt.id, err)
				}
			}
		}
	})

	t.Run("usage", func(t *testing.T) {
		got, err := s.Usage(ctx, "d1")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Contracts) != 2 {
			t.Fatalf("Usage(d1) has %d contracts, want the 2 requester ones: %+v", len(got.Contracts), got.Contracts)
		}
		if got.Amount != "0.002221" || got.Owed != "0.001666" || got.Budget != "0.005" || got.Usage.CPUMicros != 4_000_000 {
			t.Errorf("Usage(d1) totals = amount %s, owed %s, budget %s, cpu %d; want 0.002221, 0.001666, 0.005, 4000000", got.Amount, got.Owed, got.Budget, got.Usage.CPUMicros)
		}
		if c := got.Contracts[1]; c.State != "stopped" || c.Reason != "budget exhausted" || !c.Final || c.Provider != "did:key:b" {
			t.Errorf("Usage(d1) second line = %+v, want stopped for budget exhausted, final, provider b", c)
		}
		// A provider sees its own contracts of a deployment.
		if got, err := s.Usage(ctx, "d2"); err != nil || len(got.Contracts) != 1 || got.Amount != "0" {
			t.Errorf("Usage(d2) = %+v, %v; want the provider's contract, nothing yet", got, err)
		}
	})

	t.Run("ledger", func(t *testing.T) {
		b, err := s.Ledger(ctx)
		if err != nil || *b != (api.LedgerBalance{DID: string(self), Paid: "0.001666", Received: "0", Escrowed: "0.003"}) {
			t.Errorf("Ledger() = %+v, %v", b, err)
		}
		if _, err := (contractService{records: recs, self: self}).Ledger(ctx); err == nil {
			t.Error("Ledger() without a ledger succeeded")
		}
	})

	t.Run("no notary", func(t *testing.T) {
		if s := newContractService(nil, nil, self); s != nil {
			t.Errorf("newContractService(nil) = %v, want nil (the API answers 503)", s)
		}
	})
}

func TestAddMoneySaturates(t *testing.T) {
	for _, tt := range []struct{ a, b, want match.Money }{
		{1, 2, 3},
		{match.MaxMoney, 1, match.MaxMoney},
		{match.MaxMoney - 1, 1, match.MaxMoney},
		{0, 0, 0},
	} {
		if got := addMoney(tt.a, tt.b); got != tt.want {
			t.Errorf("addMoney(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
