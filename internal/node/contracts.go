package node

import (
	"context"
	"fmt"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/allocation"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/contract/ledger"
	"github.com/dmsnet/dms/internal/contract/notary"
	"github.com/dmsnet/dms/internal/deployproto"
)

// stopGrace is how long a contract's allocations get to exit when the
// notary stops them (notes not countersigned, budget exhausted).
const stopGrace = 10 * time.Second

// openContracts opens the local ledger and the notary on the node store
// (package contract). The notary's provider side meters the allocations
// (Manager.Usage), sends notes to the requester node's root actor
// (deployproto.BehaviorNote) and stops allocations with the notary's
// reason; its requester side tells the orchestrator service when a
// deployment's budget is spent. It needs n.allocs; n.deploys is read
// when a budget runs out, after the start.
func (n *Node) openContracts() error {
	led, err := ledger.Open(n.db)
	if err != nil {
		return fmt.Errorf("contract ledger: %w", err)
	}
	n.ledger = led
	n.notary, err = notary.Open(notary.Config{
		DB: n.db, Key: n.cfg.Key, Ledger: led,
		Meter: n.allocs.Usage,
		Send:  n.sendNote,
		Stop: func(ctx context.Context, reservation, reason string) error {
			return n.allocs.StopReservation(ctx, reservation, reason, stopGrace)
		},
		Exhausted: func(deployment, reason string) {
			if n.deploys != nil {
				n.deploys.Exhausted(deployment, reason)
			}
		},
		Logger: n.log.With("component", "notary"),
	})
	if err != nil {
		return fmt.Errorf("notary: %w", err)
	}
	return nil
}

// sendNote delivers a provider's note to the requester node of its
// contract and returns it countersigned. The invocation carries the
// delegation the commit brought (CommitRequest.NoteChain), kept in the
// wallet.
func (n *Node) sendNote(ctx context.Context, c *contract.Contract, sn *contract.SignedNote) (*contract.SignedNote, error) {
	t := c.Terms()
	if t == nil {
		return nil, fmt.Errorf("contract %s: terms not decoded", c.ID)
	}
	peer, err := t.Requester.PeerID()
	if err != nil {
		return nil, fmt.Errorf("contract %s: requester %s: %w", c.ID, t.Requester, err)
	}
	h, err := actor.NodeHandle(peer)
	if err != nil {
		return nil, err
	}
	var reply deployproto.NoteReply
	if err := n.root.Invoke(ctx, h, deployproto.BehaviorNote, deployproto.NoteRequest{Note: *sn}, &reply); err != nil {
		return nil, err
	}
	return &reply.Note, nil
}

// addNoteBehavior registers deployproto.BehaviorNote on the root actor:
// a provider's note of a contract this node requested, checked and
// countersigned by the notary (or refused with its code).
func (n *Node) addNoteBehavior() {
	n.root.AddBehavior(deployproto.BehaviorNote, func(ctx context.Context, m *actor.Message) (any, error) {
		var req deployproto.NoteRequest
		if err := m.Decode(&req); err != nil {
			return nil, err
		}
		if len(req.Note.Body) > contract.MaxEncoded {
			return nil, &actor.Error{Code: deployproto.CodeNoteRefused, Msg: fmt.Sprintf("note of %d bytes (at most %d)", len(req.Note.Body), contract.MaxEncoded)}
		}
		sn, err := n.notary.HandleNote(ctx, m.From.DID, req.Note)
		if err != nil {
			return nil, err
		}
		return deployproto.NoteReply{Note: sn}, nil
	})
}

// providerContracts adapts the notary to the provider's side of a
// commit (allocation.Contracts).
type providerContracts struct{ n *notary.Notary }

func (p providerContracts) Sign(c *contract.Contract, want allocation.Expect) ([]byte, error) {
	return p.n.Sign(c, notary.Expect{Deployment: want.Deployment, Reservation: want.Reservation, Requester: want.Requester, Terms: want.Terms})
}

// runNotary runs the notary until the returned function is called.
func (n *Node) runNotary() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.notary.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("notary", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}
