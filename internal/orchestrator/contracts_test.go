package orchestrator_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/allocation"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/poll"
	"github.com/dmsnet/dms/internal/resource"
)

// fakeNotary is both sides of contracts for the harness, with real
// signatures over the terms' encoding (what package contract signs), so
// that the wiring is tested apart from the notary's runtime: the
// requester proposes and agrees, the provider checks what it expects
// and signs.
type fakeNotary struct {
	key *identity.Key

	mu        sync.Mutex
	proposed  map[string]*contract.Contract // requester: by ID
	agreed    map[string]bool               // requester: both signatures verified
	abandoned map[string]string             // requester: why
	ended     []string                      // requester: End calls, deployment + " " + reason
	signed    map[string]*contract.Contract // provider: by ID
	expects   map[string]allocation.Expect  // provider: what Sign was given
	badSig    bool                          // provider: return a signature that does not verify
}

func newFakeNotary(key *identity.Key) *fakeNotary {
	return &fakeNotary{key: key, proposed: map[string]*contract.Contract{}, agreed: map[string]bool{}, abandoned: map[string]string{},
		signed: map[string]*contract.Contract{}, expects: map[string]allocation.Expect{}}
}

func contractMsg(id string) []byte { return []byte("dms-contract|" + id) }

func (f *fakeNotary) Propose(t contract.Terms) (*contract.Contract, error) {
	if t.Requester != f.key.DID() {
		return nil, fmt.Errorf("requester %s is not this node", t.Requester)
	}
	body, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	c := &contract.Contract{ID: hex.EncodeToString(sum[:]), Body: body}
	c.RequesterSig = f.key.Sign(contractMsg(c.ID))
	f.mu.Lock()
	f.proposed[c.ID] = c
	f.mu.Unlock()
	return c, nil
}

func (f *fakeNotary) Agree(id string, sig []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.proposed[id]
	if !ok {
		return contract.ErrUnknown
	}
	var t contract.Terms
	if err := json.Unmarshal(c.Body, &t); err != nil {
		return err
	}
	if !identity.Verify(t.Provider, contractMsg(id), sig) {
		return &contract.RefusalError{Err: contract.ErrSignature, Detail: "the provider's signature does not verify"}
	}
	c.ProviderSig = sig
	f.agreed[id] = true
	return nil
}

func (f *fakeNotary) Abandon(id, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.proposed[id]; !ok {
		return contract.ErrUnknown
	}
	f.abandoned[id] = reason
	return nil
}

func (f *fakeNotary) End(deployment, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, deployment+" "+reason)
	return nil
}

func (f *fakeNotary) endedCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ended...)
}

func (f *fakeNotary) Sign(c *contract.Contract, want allocation.Expect) ([]byte, error) {
	sum := sha256.Sum256(c.Body)
	if hex.EncodeToString(sum[:]) != c.ID {
		return nil, contract.ErrMalformed
	}
	var t contract.Terms
	if err := json.Unmarshal(c.Body, &t); err != nil {
		return nil, err
	}
	switch {
	case !identity.Verify(t.Requester, contractMsg(c.ID), c.RequesterSig):
		return nil, contract.ErrSignature
	case t.Provider != f.key.DID() || t.Requester != want.Requester:
		return nil, contract.ErrWrongParty
	case t.Deployment != want.Deployment || t.Reservation != want.Reservation:
		return nil, contract.ErrTerms
	}
	if want.Terms != nil {
		if err := want.Terms(&t); err != nil {
			return nil, &contract.RefusalError{Err: contract.ErrTerms, Detail: err.Error()}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signed[c.ID] = c
	f.expects[c.ID] = want
	if f.badSig {
		return f.key.Sign([]byte("something else")), nil
	}
	return f.key.Sign(contractMsg(c.ID)), nil
}

// setPrice onboards the node again with a price.
func (tn *tnode) setPrice(t testing.TB, p match.Price) {
	t.Helper()
	if _, err := tn.ledger.Onboard(resource.OnboardRequest{Price: &p}); err != nil {
		t.Fatal(err)
	}
}

func (w *world) nodeOf(host string) *tnode {
	for _, n := range w.nodes {
		if n.host.Self() == host {
			return n
		}
	}
	w.t.Fatalf("no node %s", host)
	return nil
}

func TestContractPerPlacedNode(t *testing.T) {
	w := newWorld(t, 3, worldOpts{contracts: true})
	prices := []match.Price{{CPU: 100_000}, {CPU: 200_000, RAM: 10_000}, {CPU: 300_000}}
	for i, n := range w.nodes {
		n.setPrice(t, prices[i])
	}
	d := w.submit(`version: v1
contract: {budget: 5, interval: 2s}
allocations:
  a: {type: service, executor: docker, resources: {cpu: 0.5, ram: 64MiB}, execution: {image: workload, cmd: [workload, sleep=1h]}}
  b: {type: service, executor: docker, resources: {cpu: 0.25, ram: 32MiB}, execution: {image: workload, cmd: [workload, sleep=1h]}}
nodes:
  n1: {allocations: [a]}
  n2: {allocations: [b]}
`)
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
	req := w.nodes[0].notary
	req.mu.Lock()
	proposed, agreed := len(req.proposed), len(req.agreed)
	req.mu.Unlock()
	if proposed != 2 || agreed != 2 {
		t.Fatalf("%d contracts proposed, %d agreed; want 2 and 2", proposed, agreed)
	}
	byNode := map[string]string{}
	for name, a := range d.Allocations {
		if a.Contract == "" {
			t.Fatalf("allocation %s has no contract", name)
		}
		byNode[a.Node] = a.Contract
	}
	if byNode["n1"] == byNode["n2"] {
		t.Fatalf("nodes n1 and n2 share contract %s", byNode["n1"])
	}
	for node, id := range byNode {
		pl := d.Placement[node]
		prov := w.nodeOf(pl.Provider.Host)
		req.mu.Lock()
		c := req.proposed[id]
		req.mu.Unlock()
		var terms contract.Terms
		if err := json.Unmarshal(c.Body, &terms); err != nil {
			t.Fatal(err)
		}
		wantRes := match.Resources{CPU: 500, RAM: 64 << 20}
		alloc := "a"
		if node == "n2" {
			wantRes, alloc = match.Resources{CPU: 250, RAM: 32 << 20}, "b"
		}
		wantPrice := prices[0]
		for i, n := range w.nodes {
			if n == prov {
				wantPrice = prices[i]
			}
		}
		switch {
		case terms.Deployment != d.ID || terms.Node != node || terms.Reservation != pl.Reservation:
			t.Errorf("contract of %s: deployment %s node %s reservation %s", node, terms.Deployment, terms.Node, terms.Reservation)
		case terms.Requester != w.nodes[0].key.DID() || terms.Provider != prov.key.DID() || terms.User != w.user.DID():
			t.Errorf("contract of %s: parties %s → %s for %s", node, terms.Requester, terms.Provider, terms.User)
		case terms.Price != wantPrice || terms.Price != pl.Price:
			t.Errorf("contract of %s: price %s, want the bid's %s", node, terms.Price, wantPrice)
		case !terms.Reserved.Equal(wantRes):
			t.Errorf("contract of %s: reserved %v, want %v", node, terms.Reserved, wantRes)
		case len(terms.Allocations) != 1 || terms.Allocations[0] != alloc:
			t.Errorf("contract of %s: allocations %v", node, terms.Allocations)
		case terms.Interval != 2*time.Second || terms.Budget != 5_000_000 || terms.Settlement != contract.SettleLocal:
			t.Errorf("contract of %s: interval %s budget %s settlement %q", node, terms.Interval, terms.Budget, terms.Settlement)
		case !identity.Verify(terms.Requester, contractMsg(id), c.RequesterSig) || !identity.Verify(terms.Provider, contractMsg(id), c.ProviderSig):
			t.Errorf("contract of %s: not signed by both", node)
		}
		// The provider signed it, expecting the commit's sender as the
		// requester, and its allocation records name it.
		prov.notary.mu.Lock()
		want, signed := prov.notary.expects[id]
		prov.notary.mu.Unlock()
		if !signed || want.Requester != w.nodes[0].key.DID() || want.Deployment != d.ID {
			t.Errorf("provider of %s: signed %v, expected %+v", node, signed, want)
		}
		recs, _ := prov.astore.List()
		found := false
		for _, r := range recs {
			if r.Deployment == d.ID && r.Name == alloc {
				found = r.Contract == id
			}
		}
		if !found {
			t.Errorf("provider of %s: no allocation record of %s under contract %s", node, alloc, id)
		}
		// It holds the delegation of the note behavior to itself.
		if !holdsNoteChain(prov) {
			t.Errorf("provider of %s: no note chain in its wallet", node)
		}
	}

	// A start naming another contract is refused; the right one passes.
	a := d.Allocations["a"]
	for _, tc := range []struct {
		contract string
		denied   bool
	}{{"0000", true}, {a.Contract, false}, {"", false}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := w.nodes[0].root.Invoke(ctx, a.Handle, deployproto.BehaviorStart, deployproto.StartRequest{Epoch: a.Epoch, Contract: tc.contract}, nil)
		cancel()
		var ae *actor.Error
		if denied := errors.As(err, &ae) && ae.Code == actor.CodeDenied; denied != tc.denied {
			t.Errorf("start naming contract %q: %v, want denied %v", tc.contract, err, tc.denied)
		}
	}

	// Shut down: nothing abandoned (the contracts end with their final
	// notes), resources back.
	if _, err := w.nodes[0].svc.Shutdown(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, w.nodes[0].svc, d.ID, orchestrator.Stopped)
	req.mu.Lock()
	abandoned := len(req.abandoned)
	req.mu.Unlock()
	if abandoned != 0 {
		t.Errorf("%d contracts abandoned at a shutdown", abandoned)
	}
	// …but the requester is told the deployment ended: it awaits the
	// invoices for two intervals at most.
	poll.Eventually(t, 10*time.Second, "End called at the shutdown", func() bool { return len(req.endedCalls()) > 0 })
	if got := req.endedCalls(); got[0] != d.ID+" deployment stopped" {
		t.Errorf("End calls %q, want %q", got, d.ID+" deployment stopped")
	}
}

func holdsNoteChain(tn *tnode) bool {
	tn.wallet.mu.Lock()
	defer tn.wallet.mu.Unlock()
	for _, c := range tn.wallet.chains {
		if c.Holder() == tn.key.DID() && c.Leaf().Command() == deployproto.BehaviorNote {
			return true
		}
	}
	return false
}

func TestMaxPriceExcludesDearProviders(t *testing.T) {
	w := newWorld(t, 2, worldOpts{contracts: true})
	cheap, dear := w.nodes[0], w.nodes[1]
	cheap.setPrice(t, match.Price{CPU: 1_000_000})
	dear.setPrice(t, match.Price{CPU: 10_000_000})
	job := func(maxPrice string) string {
		return `version: v1
contract: {max_price: ` + maxPrice + `}
allocations:
  job: {executor: docker, resources: {cpu: 1, ram: 64MiB}, execution: {image: workload, cmd: [workload, sleep=50ms]}}
`
	}
	for range 3 {
		d := w.submit(job("2"))
		d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Completed)
		if got := d.Placement["job"].Provider.Host; got != cheap.host.Self() {
			t.Fatalf("placed on %s, want the cheap provider %s", got, cheap.host.Self())
		}
	}
	// Under both prices: queued, each provider with reason price.
	d := w.submit(job("0.5"))
	d = waitUntil(t, w.nodes[0].svc, d.ID, func(d *orchestrator.Deployment) bool {
		return d.State == orchestrator.Queued && len(d.Candidates) >= 2
	})
	for _, c := range d.Candidates {
		if c.Kind != deployproto.KindPrice || !strings.Contains(strings.Join(c.Reasons, " "), "max 0.5/h") {
			t.Errorf("candidate %v: want a price reason", c)
		}
	}
}

// TestProviderWithAPriceNeedsAContract: an orchestrator that proposes no
// contract is refused by a provider with a price, served by a free one.
// (Old orchestrators craft such commits.)
func TestProviderWithAPriceNeedsAContract(t *testing.T) {
	// Two priced providers that fit, a free one too small until it
	// onboards more.
	w := newWorld(t, 3, worldOpts{cpu: 500})
	for _, n := range w.nodes[:2] {
		n.onboard(t, 2000, 2<<30)
		n.setPrice(t, match.Price{CPU: 1})
	}
	d := w.submit(task("1", "print=x"))
	d = waitUntil(t, w.nodes[0].svc, d.ID, func(d *orchestrator.Deployment) bool {
		for _, c := range d.Candidates {
			// The refusal, or in later rounds its memory.
			why := strings.Join(c.Reasons, " ")
			if c.Kind == deployproto.KindRefused && (strings.Contains(why, "no contract") || strings.Contains(why, "refused a commit earlier")) {
				return true
			}
		}
		return false
	})
	if d.State.Terminal() || len(d.Allocations) != 0 {
		t.Fatalf("deployment %s with %d allocations", d.State, len(d.Allocations))
	}
	free := w.nodes[2]
	free.onboard(t, 2000, 2<<30)
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Completed)
	if d.Placement["job"].Provider.Host != free.host.Self() {
		t.Fatalf("placed on %s, want the free provider", d.Placement["job"].Provider.Host)
	}
}

// TestContractNotSignedByTheProvider: a provider signature that does not
// verify fails the commit like a refusal; the contract is abandoned and
// the placement reverted.
func TestContractNotSignedByTheProvider(t *testing.T) {
	w := newWorld(t, 2, worldOpts{contracts: true})
	start := w.free()
	forger := w.nodes[1]
	forger.notary.mu.Lock()
	forger.notary.badSig = true
	forger.notary.mu.Unlock()
	w.nodes[0].tnodeRefuse(true) // only the forger may take it
	d := w.submit(task("0.5", "print=x"))
	d = waitUntil(t, w.nodes[0].svc, d.ID, func(d *orchestrator.Deployment) bool {
		for _, c := range d.Candidates {
			// The refusal, or in later rounds its memory.
			why := strings.Join(c.Reasons, " ")
			if c.Peer == forger.host.Self() && (strings.Contains(why, "signature") || strings.Contains(why, "refused a commit earlier")) {
				return true
			}
		}
		return false
	})
	req := w.nodes[0].notary
	poll.Eventually(t, 10*time.Second, "every proposed contract abandoned", func() bool {
		req.mu.Lock()
		defer req.mu.Unlock()
		for id := range req.proposed {
			if req.abandoned[id] == "" || req.agreed[id] {
				return false
			}
		}
		return len(req.proposed) > 0
	})
	// The forger signed (badly) what was proposed.
	forger.notary.mu.Lock()
	signed := len(forger.notary.signed)
	forger.notary.mu.Unlock()
	if signed == 0 {
		t.Fatal("the provider signed no contract")
	}
	if _, err := w.nodes[0].svc.Shutdown(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, w.nodes[0].svc, d.ID, orchestrator.Stopped, orchestrator.Failed)
	w.nodes[0].tnodeRefuse(false)
	w.waitFree(start)
}

func (tn *tnode) tnodeRefuse(on bool) {
	tn.mu.Lock()
	tn.refuse = on
	tn.mu.Unlock()
}

// TestBudgetExhaustedStopsTheDeployment: the notary's word that the
// budget is spent fails the deployment with its reason and stops its
// allocations.
func TestBudgetExhaustedStopsTheDeployment(t *testing.T) {
	w := newWorld(t, 2, worldOpts{contracts: true})
	start := w.free()
	d := w.submit(`version: v1
contract: {budget: 0.000001}
allocations:
  svc: {type: service, executor: docker, resources: {cpu: 0.5, ram: 64MiB}, execution: {image: workload, cmd: [workload, sleep=1h]}}
`)
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Running)
	w.nodes[0].svc.Exhausted("no-such-deployment", "budget exhausted") // ignored
	w.nodes[0].svc.Exhausted(d.ID, orchestrator.MessageBudgetExhausted)
	d = waitState(t, w.nodes[0].svc, d.ID, orchestrator.Failed)
	if d.Reason != orchestrator.ReasonBudgetExhausted || d.Message != "budget exhausted" {
		t.Fatalf("deployment failed with reason %q message %q", d.Reason, d.Message)
	}
	if a := d.Allocations["svc"]; !a.State.Terminal() {
		t.Fatalf("allocation %s after the budget ran out", a.State)
	}
	w.waitFree(start)
	// Said again after the end: nothing changes.
	w.nodes[0].svc.Exhausted(d.ID, "again")
	if got, _ := w.nodes[0].svc.Get(d.ID); got.Message != "budget exhausted" || got.State != orchestrator.Failed {
		t.Fatalf("after a second word: %s %q", got.State, got.Message)
	}
}
