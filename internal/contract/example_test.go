package contract_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// The life of a contract: the requester proposes, the provider signs,
// notes are issued, checked and countersigned, and the chain verifies
// offline.
func Example() {
	req, _ := identity.KeyFromSeed(bytes.Repeat([]byte{1}, 32))
	prov, _ := identity.KeyFromSeed(bytes.Repeat([]byte{2}, 32))
	start := time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)

	c, err := contract.New(contract.Terms{
		Version: contract.Version, Deployment: "d1", Node: "web", Reservation: "r1",
		Allocations: []string{"d1.web.0"},
		Requester:   req.DID(), Provider: prov.DID(),
		Price:      match.Price{CPU: 1_000_000}, // 1 per core-hour
		Interval:   time.Minute,
		Budget:     2_000_000, // 2
		Settlement: contract.SettleLocal, Created: start,
	}, req)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.SignAsProvider(prov); err != nil {
		fmt.Println(err)
		return
	}

	ch := &contract.Chain{Contract: c}
	var last *contract.SignedNote
	for i := 1; i <= 3; i++ {
		// One core busy for i minutes.
		u := contract.Usage{CPUMicros: uint64(i) * 60_000_000, WallMillis: uint64(i) * 60_000}
		n, err := c.Issue(prov, last, start.Add(time.Duration(i)*time.Minute), u, i == 3)
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := contract.CheckNote(c, last, n); err != nil {
			fmt.Println(err)
			return
		}
		if err := contract.CheckBudget(c.Terms(), 0, n.Note().Amount); err != nil {
			fmt.Println(err)
			return
		}
		n.Countersign(req)
		fmt.Println("note", n.Note().Seq, "amount", n.Note().Amount, "accepted", n.Accepted(c))
		ch.Notes = append(ch.Notes, *n)
		last = n
	}
	s, err := contract.VerifyChain(ch)
	fmt.Println("owed", s.Owed, "final", s.Final, "signatures verified", s.Signatures, err)
	// Output:
	// note 1 amount 0.016666 accepted true
	// note 2 amount 0.033333 accepted true
	// note 3 amount 0.05 accepted true
	// owed 0.05 final true signatures verified 4 <nil>
}
