package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/match"
	"github.com/dmsnet/dms/internal/poll"
)

// crashEnv configures the nodes of the crash tests: the cluster's, with
// a loss detection slower than a restart, so that the deployment stays
// where it is while its provider restarts.
var crashEnv = append(slices.Clip(clusterEnv), "DMS_ORCHESTRATOR_LOST_AFTER=30s")

// crashEnsemble is a wasm service that sleeps, under a contract with a
// note every interval (%s). The price of the reserved disk makes every
// note cost more than the one before, whatever the CPU does.
const crashEnsemble = `version: v1
allocations:
  svc:
    type: service
    executor: wasm
    resources: {cpu: 0.5, ram: 64MiB, disk: 512MiB}
    execution: {module: workload.wasm, args: [sleep=1h]}
contract:
  interval: %s
`

// TestContractCrash kills (SIGKILL) either node of a contract in the
// middle of a deployment and starts it again on its home: the notes
// countersigned before the kill are still there on both sides, the
// chain goes on from them (no gap, no fork: dms contract verify passes
// on both nodes), and once the deployment is shut down the requester's
// ledger paid, the provider's received and the invoice agree.
//
// In "requester away", the requester stays down until the provider has
// stopped the allocations for want of countersignatures and given up
// sending its invoice: what was countersigned before the kill is what
// both ledgers settle.
func TestContractCrash(t *testing.T) {
	tests := []struct {
		name     string
		victim   int    // node 0 requests, node 1 provides
		interval string // the contract's: the provider stops after two without a countersignature
		away     bool   // restart only once the provider gave up its invoice
	}{
		{name: "provider", victim: 1, interval: "1s"},
		// The requester is back within two intervals (its restart and
		// the provider's new link to it take seconds).
		{name: "requester", victim: 0, interval: "3s"},
		{name: "requester away", victim: 0, interval: "1s", away: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { contractCrash(t, tc.victim, tc.interval, tc.away) })
	}
}

// contractCrash runs the scenario on a fresh pair: node 0 requests, node
// 1 provides; victim is the index of the node killed, away says it
// stays down until the provider gave up its invoice.
func contractCrash(t *testing.T, victim int, interval string, away bool) {
	c := newClusterEnv(t, crashEnv, "", "1")
	c.homes[1].MustRun(t, "onboard", "--price", "cpu=2,ram=0.1,disk=3600")
	f := ensembleFile(t, fmt.Sprintf(crashEnsemble, interval))
	id := strings.TrimSpace(c.homes[0].MustRun(t, "deploy", "-f", f, "--detach"))

	// Three countersigned notes before the kill, on the requester; the
	// provider holds them too once its lazy commit has run.
	var before []string
	var cid string
	poll.Eventually(t, 60*time.Second, "three countersigned notes", func() bool {
		cs := contractsAs(t, c.nodes[0], id, "requester")
		if len(cs) != 1 {
			return false
		}
		cid = cs[0].ID
		before = countersignedNotes(chainAt(t, c.nodes[0], cid))
		return len(before) >= 3
	})
	poll.Eventually(t, 10*time.Second, "the provider holds the countersigned notes", func() bool {
		return hasPrefix(countersignedNotes(chainAt(t, c.nodes[1], cid)), before)
	})
	// The latest countersigned notes, read again just before the kill.
	before = countersignedNotes(chainAt(t, c.nodes[0], cid))
	t.Logf("contract %s: %d countersigned notes before the kill of the %s", cid[:12], len(before), map[int]string{0: "requester", 1: "provider"}[victim])

	killed := time.Now()
	c.nodes[victim].Kill()
	other := 1 - victim
	if away {
		poll.Eventually(t, 60*time.Second, "the provider gives up its invoice", func() bool {
			return strings.Contains(c.nodes[1].Log(), "final note not countersigned, giving up")
		})
	}
	c.nodes[victim] = c.homes[victim].Start(t, "--bootstrap", c.nodes[other].Addr(t))
	t.Logf("down for %s", time.Since(killed).Round(time.Millisecond))

	// The notes countersigned before the kill are still there on both
	// sides, and (unless the provider stopped) the chain goes on from
	// them: two more notes are countersigned.
	more := 2
	if away {
		more = 0
	}
	poll.Eventually(t, 60*time.Second, "the countersigned notes after the restart on both sides", func() bool {
		req := countersignedNotes(chainAt(t, c.nodes[0], cid))
		prov := countersignedNotes(chainAt(t, c.nodes[1], cid))
		return len(req) >= len(before)+more && hasPrefix(req, before) && hasPrefix(prov, before)
	})

	// Shut the deployment down: every contract of it ends with its
	// invoice countersigned (the provider may also have stopped it while
	// the requester was away, or the orchestrator placed it again).
	if r := c.homes[0].Run(t, "deployment", "shutdown", id); r.Code != 0 && !away {
		t.Fatalf("dms deployment shutdown: %s", r)
	}
	var owed match.Money
	var ids []string
	var seen []api.Contract
	if err := poll.Until(context.Background(), 60*time.Second, "every contract closed with its invoice countersigned", func(context.Context) (bool, error) {
		owed, ids = 0, nil
		seen = contractsAs(t, c.nodes[0], id, "requester")
		for _, k := range seen {
			o, err := match.ParseMoney(string(k.Owed))
			// The contract the provider stopped while the requester was
			// away has no invoice: what was countersigned is owed. Two
			// intervals after the shutdown the requester closes it at
			// that note.
			if away && k.ID == cid {
				if k.Final || k.State != "closed-no-invoice" || err != nil {
					return false, nil
				}
			} else if k.State != "closed" || !k.Final || k.Owed != k.Amount || err != nil {
				return false, nil
			}
			owed += o
			ids = append(ids, k.ID)
		}
		return len(ids) > 0, nil
	}); err != nil {
		for _, k := range seen {
			t.Logf("requester's contract %s: %s %s, %d notes, final %v, amount %s, owed %s", k.ID[:12], k.State, k.Reason, k.Notes, k.Final, k.Amount, k.Owed)
		}
		t.Fatal(err)
	}
	if owed <= 0 {
		t.Fatalf("the deployment's contracts owe %s, want more than 0", owed)
	}

	// Both chains verify (dms contract verify checks them in the CLI
	// process), the provider's is the requester's, and it extends the
	// notes countersigned before the kill.
	for _, k := range ids {
		// The provider commits countersignatures lazily (within a
		// second): its chain catches up with the requester's.
		var req, prov []string
		if err := poll.Until(context.Background(), 10*time.Second, "the same countersigned notes on both sides", func(context.Context) (bool, error) {
			req, prov = countersignedNotes(chainAt(t, c.nodes[0], k)), countersignedNotes(chainAt(t, c.nodes[1], k))
			return slices.Equal(req, prov), nil
		}); err != nil {
			t.Errorf("contract %s: the requester's countersigned notes %v differ from the provider's %v", k[:12], req, prov)
		}
		for i, h := range c.homes {
			if r := h.Run(t, "contract", "verify", k); r.Code != 0 || !strings.Contains(r.Stdout, "countersigned") {
				t.Errorf("node %d: dms contract verify %s: %s", i, k, r)
			}
		}
		if k == cid && !hasPrefix(req, before) {
			t.Errorf("contract %s: the notes countersigned before the kill %v are not the start of the final chain %v", k[:12], before, req)
		}
	}

	// The ledgers agree with the invoices: settled once each, on both
	// sides (the provider settles its invoice when the countersignature
	// comes back, maybe just after the requester).
	var paid, recv match.Money
	if err := poll.Until(context.Background(), 20*time.Second, "both ledgers settled what is owed", func(context.Context) (bool, error) {
		paid, recv = ledgerAt(t, c.nodes[0]).paid, ledgerAt(t, c.nodes[1]).received
		return paid == owed && recv == owed, nil
	}); err != nil {
		t.Fatalf("%v: requester paid %s, provider received %s, owed %s", err, paid, recv, owed)
	}
	prov := contractsAs(t, c.nodes[1], id, "provider")
	for _, k := range prov {
		t.Logf("provider's contract %s: %s %s, %d notes, owed %s", k.ID[:12], k.State, k.Reason, k.Notes, k.Owed)
	}
	t.Logf("%d contract(s); owed %s; requester paid %s; provider received %s", len(ids), owed, paid, recv)
}

// contractsAs returns the contracts of deployment that n keeps in role.
func contractsAs(t *testing.T, n *e2etest.Node, deployment, role string) []api.Contract {
	t.Helper()
	cl, err := n.API()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := cl.Contracts(ctx, deployment)
	if err != nil {
		t.Fatalf("contracts of %s: %v", deployment, err)
	}
	var mine []api.Contract
	for _, k := range cs {
		if k.Role == role {
			mine = append(mine, k)
		}
	}
	return mine
}

// chainAt returns the signed chain of contract id as n keeps it (none
// when n does not know it yet).
func chainAt(t *testing.T, n *e2etest.Node, id string) api.ContractChain {
	t.Helper()
	cl, err := n.API()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := cl.Contract(ctx, id)
	if err != nil {
		if ae, ok := errors.AsType[*api.Error](err); ok && ae.Code == api.CodeNotFound {
			return api.ContractChain{}
		}
		t.Fatalf("contract %s: %v", id, err)
	}
	return d.Chain
}

// countersignedNotes returns the hashes of a chain's countersigned notes.
func countersignedNotes(ch api.ContractChain) []string {
	var hs []string
	for _, n := range ch.Notes {
		if len(n.RequesterSig) > 0 {
			hs = append(hs, n.Hash)
		}
	}
	return hs
}

func hasPrefix(hs, prefix []string) bool {
	return len(hs) >= len(prefix) && slices.Equal(hs[:len(prefix)], prefix)
}

type ledgerAmounts struct{ paid, received match.Money }

// ledgerAt returns n's ledger account.
func ledgerAt(t *testing.T, n *e2etest.Node) ledgerAmounts {
	t.Helper()
	cl, err := n.API()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := cl.Ledger(ctx)
	if err != nil {
		t.Fatalf("ledger: %v", err)
	}
	var out ledgerAmounts
	for _, m := range []struct {
		s api.Money
		v *match.Money
	}{{b.Paid, &out.paid}, {b.Received, &out.received}} {
		if m.s == "" {
			continue
		}
		v, err := match.ParseMoney(string(m.s))
		if err != nil {
			t.Fatal(fmt.Errorf("ledger amount %q: %w", m.s, err))
		}
		*m.v = v
	}
	return out
}
