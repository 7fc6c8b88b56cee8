package allocation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/resource"
)

// signer is the provider's side of contracts for these tests: it checks
// the expectations as the notary does (the Terms callback included) and
// signs the contract's ID.
type signer struct {
	key  *identity.Key
	mu   sync.Mutex
	seen []Expect
}

func (s *signer) Sign(c *contract.Contract, want Expect) ([]byte, error) {
	var t contract.Terms
	if err := json.Unmarshal(c.Body, &t); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.seen = append(s.seen, want)
	s.mu.Unlock()
	if t.Requester != want.Requester || t.Deployment != want.Deployment || t.Reservation != want.Reservation {
		return nil, &contract.RefusalError{Err: contract.ErrWrongParty, Detail: "not the commit's"}
	}
	if want.Terms != nil {
		if err := want.Terms(&t); err != nil {
			return nil, &contract.RefusalError{Err: contract.ErrTerms, Detail: err.Error()}
		}
	}
	return s.key.Sign([]byte("dms-contract|" + c.ID)), nil
}

// proposal is a contract for a commit of the test job, signed by the
// orchestrator's node key.
func proposal(t *testing.T, requester *identity.Key, terms contract.Terms) *contract.Contract {
	t.Helper()
	body, err := json.Marshal(terms)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	c := &contract.Contract{ID: hex.EncodeToString(sum[:]), Body: body}
	c.RequesterSig = requester.Sign([]byte("dms-contract|" + c.ID))
	return c
}

func TestCommitUnderAContract(t *testing.T) {
	price := match.Price{CPU: 250_000}
	spec := task("sleep=1h")
	spec.Resources = cores(1)
	tests := []struct {
		name      string
		signs     bool                               // the provider runs a notary
		contract  bool                               // the commit brings one
		edit      func(t *contract.Terms)            // the terms as proposed
		noteChain func(provider identity.DID) string // "" none
		want      string                             // in the refusal; "" accepted
	}{
		{name: "no contract", want: "no contract: this provider's price is cpu=0.25"},
		{name: "no notary", contract: true, want: "signs no contracts"},
		{name: "accepted", signs: true, contract: true},
		{name: "another price", signs: true, contract: true, edit: func(t *contract.Terms) { t.Price.CPU = 1 }, want: "not the price bid"},
		{name: "other resources", signs: true, contract: true, edit: func(t *contract.Terms) { t.Reserved = cores(2) }, want: "the contract reserves"},
		{name: "other allocations", signs: true, contract: true, edit: func(t *contract.Terms) { t.Allocations = []string{"job", "x"} }, want: "covers allocations"},
		{name: "other node", signs: true, contract: true, edit: func(t *contract.Terms) { t.Node = "n2" }, want: "for node n2"},
		{name: "note chain held by another", signs: true, contract: true, noteChain: func(identity.DID) string { return noteChain(t, mustKey(t).DID(), deployproto.BehaviorNote) }, want: "not by this node"},
		{name: "note chain of another command", signs: true, contract: true, noteChain: func(p identity.DID) string { return noteChain(t, p, deployproto.BehaviorStart) }, want: "does not cover"},
		{name: "note chain kept", signs: true, contract: true, noteChain: func(p identity.DID) string { return noteChain(t, p, deployproto.BehaviorNote) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sg := &signer{}
			wallet := &fakeWallet{}
			w := newProvWorld(t, func(c *ProviderConfig) {
				if tc.signs {
					sg.key = c.Key
					c.Contracts = sg
				}
				c.Wallet = wallet
			})
			if _, err := w.ledger.Onboard(resource.OnboardRequest{Price: &price}); err != nil {
				t.Fatal(err)
			}
			o := w.orchestrator()
			reply := w.bid(o, "dep", cores(1))
			if reply.Bid == nil {
				t.Fatalf("no bid: %v", reply.NoBids)
			}
			bid, err := reply.Bid.Open()
			if err != nil {
				t.Fatal(err)
			}
			// The provider's price changes after its bid: the contract
			// must still carry the price bid.
			later := match.Price{CPU: 9_000_000}
			if _, err := w.ledger.Onboard(resource.OnboardRequest{Price: &later}); err != nil {
				t.Fatal(err)
			}
			req := deployproto.CommitRequest{Deployment: "dep", Node: "job", Reservation: bid.Reservation, Orchestrator: o.Handle(),
				Allocations: []deployproto.AllocationSpec{spec}}
			requester, _ := identity.DIDFromPeerID(o.Handle().Host)
			if tc.contract {
				terms := contract.Terms{Version: 1, Deployment: "dep", Node: "job", Reservation: bid.Reservation, Allocations: []string{"job"},
					Requester: requester, Provider: w.key.DID(), Price: price, Reserved: cores(1), Interval: time.Second, Settlement: contract.SettleLocal}
				if tc.edit != nil {
					tc.edit(&terms)
				}
				// The orchestrator actor's key is its node's here (one
				// actor per host in this world).
				req.Contract = proposal(t, o.Key(), terms)
			}
			if tc.noteChain != nil {
				req.NoteChain = tc.noteChain(w.key.DID())
			}
			var cr deployproto.CommitReply
			err = o.Invoke(context.Background(), w.root, deployproto.BehaviorCommit, req, &cr)
			if tc.want != "" {
				var ae *actor.Error
				if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ae) {
					t.Fatalf("commit: %v, want a refusal saying %q", err, tc.want)
				}
				// Nothing stays committed.
				if recs, _ := w.store.List(); len(recs) != 0 {
					t.Fatalf("%d allocation records after a refused commit", len(recs))
				}
				return
			}
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
			if !identity.Verify(w.key.DID(), []byte("dms-contract|"+req.Contract.ID), cr.ProviderSig) {
				t.Fatal("the reply carries no valid provider signature")
			}
			if len(sg.seen) != 1 || sg.seen[0].Requester != requester {
				t.Fatalf("signer saw %+v, want the requester %s", sg.seen, requester)
			}
			recs, _ := w.store.List()
			if len(recs) != 1 || recs[0].Contract != req.Contract.ID {
				t.Fatalf("records %+v, want one under contract %s", recs, req.Contract.ID)
			}
			// The note chain is kept with the allocation, for a resume.
			if recs[0].NoteChain != req.NoteChain {
				t.Fatalf("record keeps the note chain %q, want %q", recs[0].NoteChain, req.NoteChain)
			}
			wallet.mu.Lock()
			kept := len(wallet.chains)
			wallet.mu.Unlock()
			if want := map[bool]int{true: 1, false: 0}[tc.noteChain != nil]; kept != want {
				t.Fatalf("%d note chains kept, want %d", kept, want)
			}
		})
	}
}

// noteChain is a delegation of cmd from a fresh key to holder.
func noteChain(t *testing.T, holder identity.DID, cmd string) string {
	t.Helper()
	d, err := cap.Delegate(mustKey(t), cap.DelegationParams{Audience: holder, Command: cmd, Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	text, err := cap.Chain{d}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return text
}
