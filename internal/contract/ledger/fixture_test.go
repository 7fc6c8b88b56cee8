package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// created is the fixed creation time of the test contracts, so a contract
// built twice from the same keys has the same ID.
var created = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// testPrice makes an hour of one core cost 1 and a GiB-hour of memory 0.5.
var testPrice = match.Price{CPU: 1_000_000, RAM: 500_000}

// tb is what the fixtures need of a test: testing.TB, or the crash
// child's stand-in.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// seedKey derives a key from a name, the same in every process.
func seedKey(t tb, name string) *identity.Key {
	t.Helper()
	seed := sha256.Sum256([]byte("ledger test key " + name))
	k, err := identity.KeyFromSeed(seed[:])
	if err != nil {
		t.Fatalf("KeyFromSeed(%s): %v", name, err)
	}
	return k
}

// terms are the terms of a test contract named name.
func terms(req, prov identity.DID, name string, budget match.Money) contract.Terms {
	return contract.Terms{
		Version:     1,
		Deployment:  "dep-" + name,
		Node:        "worker",
		Reservation: "res-" + name,
		Allocations: []string{"worker-0"},
		Requester:   req,
		Provider:    prov,
		Price:       testPrice,
		Reserved:    match.Resources{CPU: 1000, RAM: 1 << 30},
		Interval:    time.Minute,
		Budget:      budget,
		Settlement:  contract.SettleLocal,
		Created:     created,
	}
}

// signedContract is a contract both parties signed.
func signedContract(t tb, req, prov *identity.Key, name string, budget match.Money) *contract.Contract {
	t.Helper()
	c, err := contract.New(terms(req.DID(), prov.DID(), name, budget), req)
	if err != nil {
		t.Fatalf("contract.New(%s): %v", name, err)
	}
	if err := c.SignAsProvider(prov); err != nil {
		t.Fatalf("SignAsProvider(%s): %v", name, err)
	}
	return c
}

// usageSteps is a chain of growing usages: step i adds cpu[i] seconds of
// CPU time and a minute of wall time with 512 MiB in use.
func usageSteps(cpuSeconds []uint64) []contract.Usage {
	var u contract.Usage
	out := make([]contract.Usage, 0, len(cpuSeconds))
	for _, s := range cpuSeconds {
		u.CPUMicros += s * 1_000_000
		u.WallMillis += 60_000
		u.MemoryByteSeconds += 60 * (512 << 20)
		out = append(out, u)
	}
	return out
}

// issue is the provider's chain of notes for usages, the last one final
// when final is set; none is countersigned.
func issue(t tb, c *contract.Contract, prov *identity.Key, usages []contract.Usage, final bool) []*contract.SignedNote {
	t.Helper()
	var prev *contract.SignedNote
	out := make([]*contract.SignedNote, 0, len(usages))
	for i, u := range usages {
		n, err := c.Issue(prov, prev, created.Add(time.Duration(i+1)*time.Minute), u, final && i == len(usages)-1)
		if err != nil {
			t.Fatalf("Issue(note %d): %v", i+1, err)
		}
		out = append(out, n)
		prev = n
	}
	return out
}

// countersigned is a copy of n with the requester's signature.
func countersigned(t tb, n *contract.SignedNote, req *identity.Key) *contract.SignedNote {
	t.Helper()
	cp := clone(t, n)
	cp.Countersign(req)
	return cp
}

// clone copies a signed note through its wire form, as a peer receives it.
func clone(t tb, n *contract.SignedNote) *contract.SignedNote {
	t.Helper()
	cp := &contract.SignedNote{
		Hash:         n.Hash,
		Body:         append(json.RawMessage(nil), n.Body...),
		ProviderSig:  append([]byte(nil), n.ProviderSig...),
		RequesterSig: append([]byte(nil), n.RequesterSig...),
	}
	if err := cp.Open(); err != nil {
		t.Fatalf("clone of a note that does not open: %v", err)
	}
	return cp
}

// handNote builds a note by hand, signed the documented way: the provider
// signs "dms-note|"+hash, the requester (when req is set) signs
// "dms-note-accept|"+hash. It makes notes Issue would refuse to make.
func handNote(t tb, note contract.Note, prov, req *identity.Key) *contract.SignedNote {
	t.Helper()
	body, err := json.Marshal(note)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(body)
	h := hex.EncodeToString(d[:])
	n := &contract.SignedNote{Hash: h, Body: body, ProviderSig: prov.Sign([]byte("dms-note|" + h))}
	if req != nil {
		n.RequesterSig = req.Sign([]byte("dms-note-accept|" + h))
	}
	if err := n.Open(); err != nil {
		t.Fatalf("hand-made note does not open: %v", err)
	}
	return n
}

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
