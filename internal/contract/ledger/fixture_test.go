package ledger

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/store"
)

// openLedger opens a ledger in a new store under t.TempDir().
func openLedger(t testing.TB) *Local {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dms.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func balance(t testing.TB, l *Local, did identity.DID) contract.Balance {
	t.Helper()
	b, err := l.Balance(context.Background(), did)
	if err != nil {
		t.Fatalf("Balance(%s): %v", did.Short(), err)
	}
	return b
}

func state(t testing.TB, l *Local, id string) State {
	t.Helper()
	s, err := l.Contract(context.Background(), id)
	if err != nil {
		t.Fatalf("Contract(%s): %v", id, err)
	}
	return s
}

func audit(t testing.TB, l *Local) {
	t.Helper()
	if err := l.Audit(context.Background()); err != nil {
		t.Fatal(err)
	}
}
