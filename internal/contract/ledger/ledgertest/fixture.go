package ledgertest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// Created is the fixed creation time of the fixtures' contracts, so a
// contract built twice from the same keys has the same ID.
var Created = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// Price makes an hour of one core cost 1 and a GiB-hour of memory 0.5.
var Price = match.Price{CPU: 1_000_000, RAM: 500_000}

// TB is what the fixtures need of a test: a testing.TB, or a stand-in
// in a process that is not a test (a crash test's child).
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// Key derives a key from a name, the same in every process.
func Key(t TB, name string) *identity.Key {
	t.Helper()
	seed := sha256.Sum256([]byte("ledger test key " + name))
	k, err := identity.KeyFromSeed(seed[:])
	if err != nil {
		t.Fatalf("KeyFromSeed(%s): %v", name, err)
	}
	return k
}

// Terms are the terms of a test contract named name.
func Terms(req, prov identity.DID, name string, budget match.Money) contract.Terms {
	return contract.Terms{
		Version:     1,
		Deployment:  "dep-" + name,
		Node:        "worker",
		Reservation: "res-" + name,
		Allocations: []string{"worker-0"},
		Requester:   req,
		Provider:    prov,
		Price:       Price,
		Reserved:    match.Resources{CPU: 1000, RAM: 1 << 30},
		Interval:    time.Minute,
		Budget:      budget,
		Settlement:  contract.SettleLocal,
		Created:     Created,
	}
}

// Contract is a contract both parties signed.
func Contract(t TB, req, prov *identity.Key, name string, budget match.Money) *contract.Contract {
	t.Helper()
	return Signed(t, Terms(req.DID(), prov.DID(), name, budget), req, prov)
}

// Signed is a contract of terms tt both parties signed.
func Signed(t TB, tt contract.Terms, req, prov *identity.Key) *contract.Contract {
	t.Helper()
	c, err := contract.New(tt, req)
	if err != nil {
		t.Fatalf("contract.New(%s): %v", tt.Reservation, err)
	}
	if err := c.SignAsProvider(prov); err != nil {
		t.Fatalf("SignAsProvider(%s): %v", tt.Reservation, err)
	}
	return c
}

// Usages is a chain of growing usages: step i adds cpu[i] seconds of
// CPU time and a minute of wall time with 512 MiB in use.
func Usages(cpuSeconds []uint64) []contract.Usage {
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

// Notes is the provider's chain of notes for usages, the last one final
// when final is set; none is countersigned.
func Notes(t TB, c *contract.Contract, prov *identity.Key, usages []contract.Usage, final bool) []*contract.SignedNote {
	t.Helper()
	var prev *contract.SignedNote
	out := make([]*contract.SignedNote, 0, len(usages))
	for i, u := range usages {
		n, err := c.Issue(prov, prev, Created.Add(time.Duration(i+1)*time.Minute), u, final && i == len(usages)-1)
		if err != nil {
			t.Fatalf("Issue(note %d): %v", i+1, err)
		}
		out = append(out, n)
		prev = n
	}
	return out
}

// Countersigned is a copy of n with the requester's signature.
func Countersigned(t TB, n *contract.SignedNote, req *identity.Key) *contract.SignedNote {
	t.Helper()
	cp := Copy(t, n)
	cp.Countersign(req)
	return cp
}

// Copy copies a signed note through its wire form, as a peer receives it.
func Copy(t TB, n *contract.SignedNote) *contract.SignedNote {
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

// HandNote builds a note by hand, signed the documented way: the provider
// signs "dms-note|"+hash, the requester (when req is set) signs
// "dms-note-accept|"+hash. It makes notes Issue would refuse to make.
func HandNote(t TB, note contract.Note, prov, req *identity.Key) *contract.SignedNote {
	t.Helper()
	body, err := json.Marshal(note)
	if err != nil {
		t.Fatal(err)
	}
	h := hashHex(body)
	n := &contract.SignedNote{Hash: h, Body: body, ProviderSig: prov.Sign([]byte("dms-note|" + h))}
	if req != nil {
		n.RequesterSig = req.Sign([]byte("dms-note-accept|" + h))
	}
	if err := n.Open(); err != nil {
		t.Fatalf("hand-made note does not open: %v", err)
	}
	return n
}

// ReHash is n with its body passed through edit and the hash recomputed
// (so it opens), the signatures kept: a forgery.
func ReHash(t TB, n *contract.SignedNote, edit func(*contract.Note)) *contract.SignedNote {
	t.Helper()
	note := *n.Note()
	edit(&note)
	body, err := json.Marshal(note)
	if err != nil {
		t.Fatal(err)
	}
	return &contract.SignedNote{Hash: hashHex(body), Body: body, ProviderSig: n.ProviderSig, RequesterSig: n.RequesterSig}
}

// hashHex is the hex SHA-256 of b.
func hashHex(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}
