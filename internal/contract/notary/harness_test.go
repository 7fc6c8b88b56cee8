package notary

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/ledger"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/store"
)

// interval is the test contracts' metering interval.
const interval = 10 * time.Second

// step is what the fake meter adds per call: a second of CPU time (so a
// note's amount grows by 1_000_000 under testPrice), 10 s of wall time
// with 1 GiB in use.
var step = contract.Usage{CPUMicros: 1_000_000, MemoryByteSeconds: 10 << 30, WallMillis: 10_000}

// testPrice makes the amount of a note its CPU microseconds: 3600 per
// core-hour.
var testPrice = match.Price{CPU: 3_600_000_000}

// seedKey derives a key from a name.
func seedKey(t testing.TB, name string) *identity.Key {
	t.Helper()
	seed := sha256.Sum256([]byte("notary test key " + name))
	k, err := identity.KeyFromSeed(seed[:])
	if err != nil {
		t.Fatalf("KeyFromSeed(%s): %v", name, err)
	}
	return k
}

// meter is a scripted fake of the allocations' metering: each call adds
// step to a reservation's usage until it is stopped or ended.
type meter struct {
	mu      sync.Mutex
	usage   map[string]contract.Usage
	ended   map[string]bool
	stopped map[string]string // reservation → reason
	stopAt  map[string]time.Time
	calls   int
	fail    error // returned by every call when set
	frozen  bool  // usage does not change
}

func newMeter() *meter {
	return &meter{usage: map[string]contract.Usage{}, ended: map[string]bool{}, stopped: map[string]string{}, stopAt: map[string]time.Time{}}
}

func (m *meter) Meter(_ context.Context, res string) (contract.Usage, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail != nil {
		return contract.Usage{}, false, m.fail
	}
	u := m.usage[res]
	if _, stopped := m.stopped[res]; !stopped && !m.ended[res] && !m.frozen {
		u.CPUMicros += step.CPUMicros
		u.MemoryByteSeconds += step.MemoryByteSeconds
		u.WallMillis += step.WallMillis
		m.usage[res] = u
	}
	return u, m.ended[res] || m.stopped[res] != "", nil
}

func (m *meter) Stop(_ context.Context, res, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.stopped[res]; !ok {
		m.stopped[res] = reason
		m.stopAt[res] = time.Now()
	}
	return nil
}

func (m *meter) end(res string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ended[res] = true
}

func (m *meter) stop(res string) (string, time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.stopped[res]
	return r, m.stopAt[res], ok
}

// side is one node: its store, ledger and notary.
type side struct {
	t      testing.TB
	name   string
	path   string
	key    *identity.Key
	cfg    Config
	db     *store.DB
	ledger *ledger.Local
	n      *Notary
	cancel context.CancelFunc
	done   chan error
	wrap   func(contract.Ledger) contract.Ledger // wraps the ledger at open
}

func newSide(t testing.TB, name string, cfg Config) *side {
	s := &side{t: t, name: name, path: filepath.Join(t.TempDir(), name+".db"), key: seedKey(t, name), cfg: cfg}
	s.open()
	return s
}

// open opens the store, the ledger and the notary (again after close),
// and runs the notary.
func (s *side) open() {
	s.t.Helper()
	db, err := store.Open(s.path, store.Options{})
	if err != nil {
		s.t.Fatalf("%s: store.Open: %v", s.name, err)
	}
	l, err := ledger.Open(db)
	if err != nil {
		s.t.Fatalf("%s: ledger.Open: %v", s.name, err)
	}
	cfg := s.cfg
	cfg.DB, cfg.Key, cfg.Ledger = db, s.key, l
	if s.wrap != nil {
		cfg.Ledger = s.wrap(l)
	}
	n, err := Open(cfg)
	if err != nil {
		s.t.Fatalf("%s: Open: %v", s.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.db, s.ledger, s.n, s.cancel, s.done = db, l, n, cancel, make(chan error, 1)
	go func() { s.done <- n.Run(ctx) }()
}

// close stops the notary and closes the store, as a kill would (nothing
// is flushed that a commit did not already write).
func (s *side) close() {
	s.t.Helper()
	if s.n == nil {
		return
	}
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Errorf("%s: Run = %v", s.name, err)
	}
	if err := s.db.Close(); err != nil {
		s.t.Errorf("%s: close store: %v", s.name, err)
	}
	s.n = nil
}

func (s *side) get(id string) Record {
	s.t.Helper()
	r, err := s.n.Get(id)
	if err != nil {
		s.t.Fatalf("%s: Get(%s): %v", s.name, id, err)
	}
	return r
}

func (s *side) balance(did identity.DID) contract.Balance {
	s.t.Helper()
	b, err := s.n.cfg.Ledger.Balance(context.Background(), did)
	if err != nil {
		s.t.Fatalf("%s: Balance: %v", s.name, err)
	}
	return b
}

// world is a provider and a requester whose notes go straight from the
// provider's Send to the requester's HandleNote.
type world struct {
	t    testing.TB
	m    *meter
	prov *side
	req  *side
	mu   sync.Mutex
	down error // Send fails with it before reaching the requester
	lose error // Send reaches the requester, then fails with it (a lost reply)
	sent int
	// forge: from note forgeFrom on (0: never), the answer's
	// countersignature is replaced by forgeSig's (a man in the middle).
	forgeFrom uint64
	forgeSig  func(*contract.SignedNote) []byte
	exh       []string // Exhausted calls: deployment + " " + reason
	nodes     int
	// placed is when each contract was placed.
	placed map[string]time.Time
}

// newWorld is a provider and a requester that settle every note
// (settleEvery 0) or one note per settleEvery.
func newWorld(t testing.TB) *world { return newWorldSettling(t, time.Nanosecond) }

func newWorldSettling(t testing.TB, settleEvery time.Duration) *world {
	w := &world{t: t, m: newMeter(), placed: map[string]time.Time{}}
	w.req = newSide(t, "requester", Config{Exhausted: w.exhausted, SettleEvery: settleEvery})
	w.prov = newSide(t, "provider", Config{Meter: w.m.Meter, Stop: w.m.Stop, Send: w.send, SettleEvery: settleEvery})
	return w
}

func (w *world) exhausted(dep, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.exh = append(w.exh, dep+" "+reason)
}

func (w *world) exhaustedCalls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.exh...)
}

func (w *world) send(ctx context.Context, c *contract.Contract, n *contract.SignedNote) (*contract.SignedNote, error) {
	w.mu.Lock()
	down, lose, forgeFrom, forgeSig := w.down, w.lose, w.forgeFrom, w.forgeSig
	w.sent++
	w.mu.Unlock()
	if down != nil {
		return nil, down
	}
	// What travels is the encoded note: the requester gets a copy.
	in := contract.SignedNote{Hash: n.Hash, Body: append([]byte(nil), n.Body...), ProviderSig: append([]byte(nil), n.ProviderSig...)}
	out, err := w.req.n.HandleNote(ctx, w.prov.key.DID(), in)
	if err != nil {
		return nil, err
	}
	if lose != nil {
		return nil, lose
	}
	if forgeFrom > 0 && out.Note().Seq >= forgeFrom {
		out.RequesterSig = forgeSig(&out)
	}
	return &contract.SignedNote{Hash: out.Hash, Body: out.Body, ProviderSig: out.ProviderSig, RequesterSig: out.RequesterSig}, nil
}

func (w *world) set(down, lose error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.down, w.lose = down, lose
}

func (w *world) terms(dep string, budget match.Money) contract.Terms {
	w.nodes++
	n := string(rune('a' + w.nodes - 1))
	return contract.Terms{
		Version:     1,
		Deployment:  dep,
		Node:        "node-" + n,
		Reservation: "res-" + dep + "-" + n,
		Allocations: []string{"alloc-" + n},
		Requester:   w.req.key.DID(),
		Provider:    w.prov.key.DID(),
		Price:       testPrice,
		Reserved:    match.Resources{CPU: 1000, RAM: 1 << 30},
		Interval:    interval,
		Budget:      budget,
		Settlement:  contract.SettleLocal,
		Created:     time.Now().UTC(),
	}
}

// place runs the commit's contract steps: Propose, Sign, Agree.
func (w *world) place(t contract.Terms) *contract.Contract {
	w.t.Helper()
	c, err := w.req.n.Propose(t)
	if err != nil {
		w.t.Fatalf("Propose: %v", err)
	}
	sig, err := w.prov.n.Sign(c, Expect{Deployment: t.Deployment, Reservation: t.Reservation, Requester: w.req.key.DID()})
	if err != nil {
		w.t.Fatalf("Sign: %v", err)
	}
	if err := w.req.n.Agree(c.ID, sig); err != nil {
		w.t.Fatalf("Agree: %v", err)
	}
	w.mu.Lock()
	w.placed[c.ID] = time.Now()
	w.mu.Unlock()
	return c
}

// startOf is when the provider signed c (its notes are due every
// interval after it).
func (w *world) startOf(c *contract.Contract) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.placed[c.ID]
}

func (w *world) close() {
	w.prov.close()
	w.req.close()
}

// seqOf is the seq of a record's accepted note (0: none).
func seqOf(n *contract.SignedNote) uint64 {
	if n == nil {
		return 0
	}
	return n.Note().Seq
}

func amountOf(n *contract.SignedNote) match.Money {
	if n == nil {
		return 0
	}
	return n.Note().Amount
}

// codeOf is the actor code of a refusal ("" for another error).
func codeOf(err error) actor.Code {
	var ae *actor.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}
