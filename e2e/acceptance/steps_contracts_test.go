package acceptance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/match"
)

// Steps of contracts (docs/contracts.md): providers' prices, the
// contracts of the scenario's deployment as each side lists them (dms
// contract list, show), the ledgers in dms resources, and chains saved,
// altered and verified.

// contractsOf returns the contracts name's node keeps for the scenario's
// deployment.
func (w *World) contractsOf(name string) []api.Contract {
	id, _ := w.vals["deployment"].(string)
	if id == "" {
		w.T.Fatal("no deployment was submitted in this scenario")
	}
	var cs []api.Contract
	w.home(name).JSON(w.T, &cs, "contract", "list", "--deployment", id)
	return cs
}

// theContract returns the one contract name keeps for the deployment,
// with the provider named, or says why not.
func (w *World) theContract(name, role string) (api.Contract, error) {
	var mine []api.Contract
	for _, c := range w.contractsOf(name) {
		if c.Role == role {
			mine = append(mine, c)
		}
	}
	if len(mine) != 1 {
		return api.Contract{}, fmt.Errorf("%s keeps %d %s contracts for deployment %v, want 1: %+v", name, len(mine), role, w.vals["deployment"], mine)
	}
	w.vals["contract"] = mine[0].ID
	return mine[0], nil
}

// chainOf returns the signed chain of contract id as name's node has it.
func (w *World) chainOf(name, id string) api.ContractChain {
	var ch api.ContractChain
	w.home(name).JSON(w.T, &ch, "contract", "show", id)
	return ch
}

func countersigned(ch api.ContractChain) []string {
	var hs []string
	for _, n := range ch.Notes {
		if len(n.RequesterSig) > 0 {
			hs = append(hs, n.Hash)
		}
	}
	return hs
}

// ledgerOf returns name's ledger account from dms resources.
func (w *World) ledgerOf(name string) (api.LedgerBalance, error) {
	s := w.resources(name)
	if s.Ledger == nil {
		return api.LedgerBalance{}, fmt.Errorf("dms resources of %s shows no ledger", name)
	}
	return *s.Ledger, nil
}

func money(m api.Money) (match.Money, error) {
	if m == "" {
		return 0, nil
	}
	return match.ParseMoney(string(m))
}

func contractSteps(sc *godog.ScenarioContext) {
	sc.Step(`^([a-z]+) charges "([^"]+)" per hour( for this scenario)?$`, func(ctx context.Context, name, price, scoped string) error {
		w := worldOf(ctx)
		s := w.resources(name)
		if s.Onboarded == nil {
			return fmt.Errorf("%s is not a provider", name)
		}
		p := s.Onboarded.Price
		before := fmt.Sprintf("cpu=%g,ram=%g,disk=%g,gpu=%g", p.CPU, p.RAM, p.Disk, p.GPU)
		w.home(name).MustRun(w.T, "onboard", "--price", price)
		if scoped != "" {
			w.T.Cleanup(func() {
				if netOf(w).running(name) {
					if r := w.home(name).Run(w.T, "onboard", "--price", before); r.Code != 0 {
						w.T.Errorf("%s back to the price %s: %s", name, before, r)
					}
				}
			})
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds ([a-z]+)'s contract for the deployment with ([a-z]+) has (\d+) countersigned notes$`, func(ctx context.Context, secs, req, prov string, n int) error {
		w := worldOf(ctx)
		did := netOf(w).id(w.T, prov, "did")
		var last error
		if eventually(seconds(secs), func() bool {
			c, err := w.theContract(req, "requester")
			if err != nil {
				last = err
				return false
			}
			if c.Provider != did || c.Requester != netOf(w).id(w.T, req, "did") {
				last = fmt.Errorf("contract %s is between %s and %s, want %s and %s", c.ID, c.Requester, c.Provider, req, prov)
				return false
			}
			hs := countersigned(w.chainOf(req, c.ID))
			owed, err := money(c.Owed)
			if err != nil {
				last = err
				return false
			}
			if len(hs) < n || owed <= 0 {
				last = fmt.Errorf("contract %s has %d countersigned notes and owes %s, want %d and above zero (state %s %s)", c.ID, len(hs), c.Owed, n, c.State, c.Reason)
				return false
			}
			w.vals["countersigned"] = hs
			return true
		}) {
			return nil
		}
		return last
	})
	sc.Step(`^([a-z]+) holds the same contract as provider, with those notes countersigned$`, func(ctx context.Context, prov string) error {
		w := worldOf(ctx)
		id, _ := w.vals["contract"].(string)
		want, _ := w.vals["countersigned"].([]string)
		var last error
		if eventually(10*time.Second, func() bool {
			c, err := w.theContract(prov, "provider")
			if err != nil {
				last = err
				return false
			}
			if c.ID != id {
				last = fmt.Errorf("%s's contract is %s, the requester's %s", prov, c.ID, id)
				return false
			}
			have := countersigned(w.chainOf(prov, id))
			for _, h := range want {
				if !strings.Contains(strings.Join(have, " "), h) {
					last = fmt.Errorf("%s's chain of %s lacks the countersigned note %s (has %v)", prov, id, h, have)
					return false
				}
			}
			return true
		}) {
			return nil
		}
		return last
	})
	sc.Step(`^within (\d+) seconds the deployment's contract is closed with its invoice countersigned$`, func(ctx context.Context, secs string) error {
		w := worldOf(ctx)
		orch, _ := w.vals["orchestrator"].(string)
		var last error
		if eventually(seconds(secs), func() bool {
			c, err := w.theContract(orch, "requester")
			if err != nil {
				last = err
				return false
			}
			if c.State != "closed" || !c.Final || c.Owed != c.Amount || c.Owed == "" || c.Owed == "0" {
				last = fmt.Errorf("contract %s is %s (%s), final %v, amount %s, owed %s; want closed, final, owed = amount > 0", c.ID, c.State, c.Reason, c.Final, c.Amount, c.Owed)
				return false
			}
			w.vals["owed"] = c.Owed
			return true
		}) {
			return nil
		}
		return last
	})
	sc.Step(`^the ledgers of ([a-z]+) and ([a-z]+) are noted$`, func(ctx context.Context, req, prov string) error {
		// The feature's earlier deployments settle on both sides (the
		// provider's last settlement may follow the requester's): wait
		// until the two ledgers agree, then note them.
		w := worldOf(ctx)
		var last error
		if eventually(20*time.Second, func() bool {
			a, err := w.ledgerOf(req)
			if err != nil {
				last = err
				return false
			}
			b, err := w.ledgerOf(prov)
			if err != nil {
				last = err
				return false
			}
			if a.Paid != b.Received {
				last = fmt.Errorf("%s paid %s and %s received %s: the earlier settlements do not agree", req, a.Paid, prov, b.Received)
				return false
			}
			w.vals["paid:"+req], w.vals["received:"+prov] = a.Paid, b.Received
			return true
		}) {
			return nil
		}
		return last
	})
	sc.Step(`^within (\d+) seconds ([a-z]+) paid and ([a-z]+) received the amount owed under the deployment's contract$`, func(ctx context.Context, secs, req, prov string) error {
		w := worldOf(ctx)
		owed, err := money(w.vals["owed"].(api.Money))
		if err != nil {
			return err
		}
		paid0, err := money(w.vals["paid:"+req].(api.Money))
		if err != nil {
			return err
		}
		recv0, err := money(w.vals["received:"+prov].(api.Money))
		if err != nil {
			return err
		}
		var last error
		if eventually(seconds(secs), func() bool {
			a, err := w.ledgerOf(req)
			if err != nil {
				last = err
				return false
			}
			b, err := w.ledgerOf(prov)
			if err != nil {
				last = err
				return false
			}
			paid, err1 := money(a.Paid)
			recv, err2 := money(b.Received)
			if err1 != nil || err2 != nil {
				last = fmt.Errorf("ledger amounts %q, %q: %v %v", a.Paid, b.Received, err1, err2)
				return false
			}
			if paid-paid0 != owed || recv-recv0 != owed {
				last = fmt.Errorf("%s paid %s (+%s) and %s received %s (+%s), want both +%s, the invoice", req, a.Paid, paid-paid0, prov, b.Received, recv-recv0, owed)
				return false
			}
			return true
		}) {
			return nil
		}
		return last
	})
	sc.Step(`^([a-z]+) verifies the deployment's contract$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		id, _ := w.vals["contract"].(string)
		if id == "" {
			return fmt.Errorf("no contract was read in this scenario")
		}
		w.run(name, "contract verify "+id)
		return nil
	})
	sc.Step(`^([a-z]+) has saved the chain of the deployment's contract as "([^"]+)"$`, func(ctx context.Context, name, file string) error {
		w := worldOf(ctx)
		id, _ := w.vals["contract"].(string)
		if id == "" {
			return fmt.Errorf("no contract was read in this scenario")
		}
		r := w.run(name, "-o json contract show "+id)
		if r.Code != 0 {
			return fmt.Errorf("dms contract show: %s", w.lastString())
		}
		return os.WriteFile(w.Path(file), []byte(r.Stdout), 0o644)
	})
	sc.Step(`^the amount of the last note in "([^"]+)" is raised by ([\d.]+), its hash recomputed$`, func(ctx context.Context, file, by string) error {
		w := worldOf(ctx)
		data, err := os.ReadFile(w.Path(file))
		if err != nil {
			return err
		}
		var ch api.ContractChain
		if err := json.Unmarshal(data, &ch); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if len(ch.Notes) == 0 {
			return fmt.Errorf("%s holds no notes", file)
		}
		delta, err := match.ParseMoney(by)
		if err != nil {
			return err
		}
		n := &ch.Notes[len(ch.Notes)-1]
		// Change the figure in the signed bytes, nothing else.
		re := regexp.MustCompile(`"amount":"?([0-9.]+)"?`)
		m := re.FindSubmatchIndex(n.Body)
		if m == nil {
			return fmt.Errorf("the last note has no amount: %s", n.Body)
		}
		was, err := match.ParseMoney(string(n.Body[m[2]:m[3]]))
		if err != nil {
			return err
		}
		body := append(append(append([]byte{}, n.Body[:m[2]]...), (was+delta).String()...), n.Body[m[3]:]...)
		if bytes.Equal(body, n.Body) {
			return fmt.Errorf("the amount did not change")
		}
		sum := sha256.Sum256(body)
		n.Body, n.Hash = body, hex.EncodeToString(sum[:])
		out, err := json.Marshal(ch)
		if err != nil {
			return err
		}
		return os.WriteFile(w.Path(file), out, 0o644)
	})
	sc.Step(`^within (\d+) seconds the deployment has ended with the reason "([^"]+)"$`, func(ctx context.Context, secs, reason string) error {
		w := worldOf(ctx)
		d, err := w.waitState(seconds(secs), "ended", func(d api.Deployment) bool { return d.Terminal() })
		if err != nil {
			return err
		}
		said := []string{d.Message, d.Reason}
		for _, a := range d.Allocations {
			said = append(said, a.Reason, a.Message)
		}
		if !strings.Contains(strings.Join(said, " | "), reason) {
			return fmt.Errorf("deployment %s ended %s (%s, reason %s), not for %q: %s", d.ID, d.State, d.Message, d.Reason, reason, allocSummary(d))
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds ([a-z]+)'s contract for the deployment is stopped with the reason "([^"]+)"$`, func(ctx context.Context, secs, prov, reason string) error {
		w := worldOf(ctx)
		var last error
		if eventually(seconds(secs), func() bool {
			c, err := w.theContract(prov, "provider")
			if err != nil {
				last = err
				return false
			}
			if c.State != "stopped" || !strings.Contains(c.Reason, reason) {
				last = fmt.Errorf("%s's contract %s is %s (%s), want stopped (%s)", prov, c.ID, c.State, c.Reason, reason)
				return false
			}
			return true
		}) {
			return nil
		}
		return last
	})
	sc.Step(`^the amount ([a-z]+) owes under the deployment's contract is at most ([\d.]+)$`, func(ctx context.Context, req, limit string) error {
		w := worldOf(ctx)
		c, err := w.theContract(req, "requester")
		if err != nil {
			return err
		}
		owed, err := money(c.Owed)
		if err != nil {
			return err
		}
		most, err := match.ParseMoney(limit)
		if err != nil {
			return err
		}
		if owed > most || owed == 0 {
			return fmt.Errorf("%s owes %s under contract %s, want above zero and at most %s", req, c.Owed, c.ID, limit)
		}
		return nil
	})
}
