package ledger

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/ledger/ledgertest"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// v1Record is a contract as version 1 stored it: with its own escrow
// (its whole budget, less what it paid).
type v1Record struct {
	record
	Escrow match.Money `json:"escrow"`
}

var v1Contracts = store.NewKind("ledger-contracts", func(r v1Record) string { return r.ID },
	store.Index[v1Record]{Name: "party", Values: func(r v1Record) []string {
		return []string{string(r.Requester), string(r.Provider)}
	}})

// TestMigrateEscrows opens a version 1 ledger, where each of a
// deployment's contracts escrowed the whole budget: the migration holds
// the budget once per deployment.
func TestMigrateEscrows(t *testing.T) {
	req, prov, prov2 := ledgertest.Key(t, "req"), ledgertest.Key(t, "prov"), ledgertest.Key(t, "prov2")
	db, err := store.Open(filepath.Join(t.TempDir(), "dms.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(migrations[0]); err != nil {
		t.Fatal(err)
	}
	v1 := func(c *contract.Contract, paid, escrow match.Money, closed bool, opened time.Time) v1Record {
		tt := c.Terms()
		return v1Record{record: record{State: State{ID: c.ID, Deployment: tt.Deployment, Requester: tt.Requester, Provider: tt.Provider,
			Budget: tt.Budget, Paid: paid, Closed: closed, Opened: opened},
			Body: c.Body, RequesterSig: c.RequesterSig, ProviderSig: c.ProviderSig}, Escrow: escrow}
	}
	t1 := ledgertest.Terms(req.DID(), prov.DID(), "a", 100_000)
	t2 := ledgertest.Terms(req.DID(), prov2.DID(), "b", 100_000)
	t2.Deployment = t1.Deployment
	old := ledgertest.Contract(t, req, prov, "old", 50_000) // another deployment, closed
	now := time.Now()
	recs := []v1Record{
		v1(ledgertest.Signed(t, t1, req, prov), 30_000, 70_000, false, now),
		v1(ledgertest.Signed(t, t2, req, prov2), 5_000, 95_000, false, now.Add(time.Second)),
		v1(old, 20_000, 0, true, now),
	}
	if err := db.Update(func(tx *store.Tx) error {
		for _, r := range recs {
			if err := v1Contracts.Put(tx, r); err != nil {
				return err
			}
			p := Payment{Contract: r.ID, Seq: 1, Hash: "h", From: r.Requester, To: r.Provider, Amount: r.Paid, Moved: r.Paid}
			if err := journal.Put(tx, p); err != nil {
				return err
			}
		}
		for _, b := range []contract.Balance{
			{DID: req.DID(), Paid: 55_000, Escrowed: 165_000},
			{DID: prov.DID(), Received: 50_000},
			{DID: prov2.DID(), Received: 5_000},
		} {
			if err := accounts.Put(tx, b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	l, err := Open(db)
	if err != nil {
		t.Fatalf("Open (migration 2): %v", err)
	}
	audit(t, l)
	if b := balance(t, l, req.DID()); b.Escrowed != 65_000 || b.Paid != 55_000 {
		t.Errorf("requester after the migration: %+v, want 0.065 escrowed (the budget less 0.035 paid, once)", b)
	}
	for _, tc := range []struct {
		dep  string
		want Escrow
	}{
		{t1.Deployment, Escrow{Requester: req.DID(), Deployment: t1.Deployment, Budget: 100_000, Held: 65_000, Paid: 35_000, Open: 2}},
		{old.Terms().Deployment, Escrow{Requester: req.DID(), Deployment: old.Terms().Deployment, Budget: 50_000, Paid: 20_000}},
	} {
		if e, err := l.Escrow(t.Context(), req.DID(), tc.dep); err != nil || e != tc.want {
			t.Errorf("Escrow(%s) = %+v, %v; want %+v", tc.dep, e, err, tc.want)
		}
	}
}
