package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// signedChain is a real chain: a contract both parties signed and two
// notes, the first countersigned, the second final and countersigned.
func signedChain(t *testing.T) *contract.Chain {
	t.Helper()
	req, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	prov, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	c, err := contract.New(contract.Terms{
		Version: 1, Deployment: "d1", Node: "job", Reservation: "r1", Allocations: []string{"job"},
		Requester: req.DID(), Provider: prov.DID(),
		Price:    match.Price{CPU: 2 * 1_000_000, RAM: 100_000},
		Reserved: match.Resources{CPU: 1000, RAM: 1 << 30},
		Interval: time.Second, Settlement: contract.SettleLocal, Created: created,
	}, req)
	if err != nil {
		t.Fatalf("contract.New: %v", err)
	}
	if err := c.SignAsProvider(prov); err != nil {
		t.Fatalf("SignAsProvider: %v", err)
	}
	n1, err := c.Issue(prov, nil, created.Add(time.Second), contract.Usage{CPUMicros: 900_000, MemoryByteSeconds: 1 << 30, WallMillis: 1000}, false)
	if err != nil {
		t.Fatalf("Issue 1: %v", err)
	}
	n1.Countersign(req)
	n2, err := c.Issue(prov, n1, created.Add(2*time.Second), contract.Usage{CPUMicros: 1_800_000, MemoryByteSeconds: 2 << 30, WallMillis: 2000}, true)
	if err != nil {
		t.Fatalf("Issue 2: %v", err)
	}
	n2.Countersign(req)
	return &contract.Chain{Contract: c, Notes: []contract.SignedNote{*n1, *n2}}
}

// fakeContractAPI serves one chain as contract "d1"'s.
type fakeContractAPI struct{ ch *contract.Chain }

func (f fakeContractAPI) summary() api.Contract {
	t := f.ch.Contract.Terms()
	last := f.ch.Notes[len(f.ch.Notes)-1].Note()
	return api.Contract{
		ID: f.ch.Contract.ID, Deployment: t.Deployment, Node: t.Node, Allocations: t.Allocations,
		Role: "requester", State: "closed", Requester: string(t.Requester), Provider: string(t.Provider),
		Notes: last.Seq, Amount: api.Money(last.Amount.String()), Owed: api.Money(last.Amount.String()), Final: last.Final,
	}
}

func (f fakeContractAPI) Contracts(_ context.Context, deployment string) ([]api.Contract, error) {
	if deployment != "" && deployment != "d1" {
		return nil, nil
	}
	return []api.Contract{f.summary()}, nil
}

func (f fakeContractAPI) Contract(_ context.Context, id string) (*api.ContractDetail, error) {
	if len(id) < 4 || !strings.HasPrefix(f.ch.Contract.ID, id) {
		return nil, &apiserver.NotFound{Err: fmt.Errorf("no contract %s on this node", id)}
	}
	ch := api.ContractChain{Contract: &api.SignedContract{ID: f.ch.Contract.ID, Body: f.ch.Contract.Body, RequesterSig: f.ch.Contract.RequesterSig, ProviderSig: f.ch.Contract.ProviderSig}}
	for _, n := range f.ch.Notes {
		ch.Notes = append(ch.Notes, api.SignedNote{Hash: n.Hash, Body: n.Body, ProviderSig: n.ProviderSig, RequesterSig: n.RequesterSig})
	}
	return &api.ContractDetail{Contract: f.summary(), Chain: ch}, nil
}

func (f fakeContractAPI) Usage(_ context.Context, deployment string) (*api.DeploymentUsage, error) {
	c := f.summary()
	last := f.ch.Notes[len(f.ch.Notes)-1].Note()
	u := api.ContractUsage{CPUMicros: last.Usage.CPUMicros, MemoryByteSeconds: last.Usage.MemoryByteSeconds, WallMillis: last.Usage.WallMillis}
	return &api.DeploymentUsage{
		Deployment: deployment,
		Contracts:  []api.ContractUsed{{Contract: c.ID, Node: c.Node, Provider: c.Provider, Allocations: c.Allocations, Usage: u, Amount: c.Amount, Owed: c.Owed, Notes: c.Notes, Final: true, State: c.State}},
		Usage:      u, Amount: c.Amount, Owed: c.Owed,
	}, nil
}

func (f fakeContractAPI) Ledger(context.Context) (*api.LedgerBalance, error) {
	return &api.LedgerBalance{DID: "did:key:z6Mkalice", Paid: "0.3", Received: "0", Escrowed: "0"}, nil
}

func TestContractCommands(t *testing.T) {
	ch := signedChain(t)
	home := serveAPI(t, apiserver.Config{Contracts: fakeContractAPI{ch}})
	id := ch.Contract.ID
	last := ch.Notes[1].Note()
	dir := t.TempDir()

	// The chain as dms contract show -o json prints it, and altered copies.
	code, shown, stderr := run(t, "--home", home, "-o", "json", "contract", "show", id[:8])
	if code != 0 {
		t.Fatalf("contract show -o json: exit %d: %s", code, stderr)
	}
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	chainFile := write("chain.json", shown)
	var indented bytes.Buffer
	if err := json.Indent(&indented, []byte(shown), "", "    "); err != nil {
		t.Fatalf("show -o json is not JSON: %v: %s", err, shown)
	}
	indentedFile := write("indented.json", indented.String())
	amount := fmt.Sprintf(`"amount":%s,"final":true`, last.Amount)
	if !strings.Contains(shown, amount) {
		t.Fatalf("the chain does not hold %s: %s", amount, shown)
	}
	// A changed amount: the body says another figure than was signed.
	tamperedFile := write("tampered.json", strings.Replace(shown, amount, fmt.Sprintf(`"amount":%s,"final":true`, last.Amount+1), 1))
	notAChain := write("other.json", `{"hello": "world"}`)

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"list", []string{"contract", "list"}, 0, []string{id[:12], "d1", "requester", "closed (final)", last.Amount.String()}, ""},
		{"list of another deployment", []string{"contract", "list", "--deployment", "d2"}, 0, []string{"no contracts"}, ""},
		{"show", []string{"contract", "show", id[:8]}, 0, []string{id, "2 final", "yes"}, ""},
		{"show unknown", []string{"contract", "show", "ffffffff"}, 1, nil, "no contract ffffffff"},
		{"verify from the node", []string{"contract", "verify", id[:8]}, 0, []string{"2 verified, 2 countersigned", "final", last.Amount.String() + " (the last countersigned note)"}, ""},
		{"verify a file", []string{"contract", "verify", "--file", chainFile}, 0, []string{"2 verified, 2 countersigned"}, ""},
		{"verify every signature", []string{"contract", "verify", "--all", "--file", chainFile}, 0, []string{"2 verified, 2 countersigned"}, ""},
		{"verify an indented file", []string{"contract", "verify", "--file", indentedFile}, 0, []string{"2 verified"}, ""},
		{"verify a changed amount", []string{"contract", "verify", "--file", tamperedFile}, 1, nil, "the chain does not verify"},
		{"verify what is not a chain", []string{"contract", "verify", "--file", notAChain}, 1, nil, "not a contract chain"},
		{"verify a missing file", []string{"contract", "verify", "--file", filepath.Join(dir, "nope.json")}, 1, nil, "no such file"},
		{"verify nothing", []string{"contract", "verify"}, 2, nil, "give a CONTRACT"},
		{"verify both", []string{"contract", "verify", id[:8], "--file", chainFile}, 2, nil, "not both"},
		{"usage", []string{"deployment", "usage", "d1"}, 0, []string{"job", "1.800 s", "total", last.Amount.String(), "no budget"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := run(t, append([]string{"--home", home}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit = %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, out, stderr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, out)
				}
			}
			if tt.wantErr != "" && (!strings.Contains(stderr, tt.wantErr) || strings.Count(stderr, "\n") != 1) {
				t.Errorf("stderr = %q, want one line containing %q", stderr, tt.wantErr)
			}
		})
	}
}

// TestVerifyJSON: dms contract verify -o json is the summary VerifyChain
// found.
func TestVerifyJSON(t *testing.T) {
	ch := signedChain(t)
	home := serveAPI(t, apiserver.Config{Contracts: fakeContractAPI{ch}})
	code, out, stderr := run(t, "--home", home, "-o", "json", "contract", "verify", ch.Contract.ID)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Contract string      `json:"contract"`
		Notes    int         `json:"notes"`
		Accepted int         `json:"accepted"`
		Owed     match.Money `json:"owed"`
		Final    bool        `json:"final"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("verify -o json = %s: %v", out, err)
	}
	if want := ch.Notes[1].Note().Amount; got.Contract != ch.Contract.ID || got.Notes != 2 || got.Accepted != 2 || got.Owed != want || !got.Final {
		t.Fatalf("verify -o json = %+v, want contract %s, 2 notes, 2 accepted, owed %s, final", got, ch.Contract.ID, want)
	}
}

// FuzzVerifyFile: whatever a chain file holds, dms contract verify
// --file answers with a result or an error, never a panic, and never
// verifies a chain without a contract.
func FuzzVerifyFile(f *testing.F) {
	f.Add([]byte(`{"contract":{"id":"x","body":{"v":1},"requester_sig":"AQ=="},"notes":[{"hash":"h","body":{"seq":1},"provider_sig":"AQ=="}]}`))
	f.Add([]byte(`{"chain":{"contract":null,"notes":[]}}`))
	f.Add([]byte(`{"contract":{"body":"not an object"}}`))
	f.Add([]byte(`[]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "chain.json")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ch, err := readContractChain(p)
		if err != nil {
			return
		}
		if _, err := verifyChain(ch, false); err == nil && ch.Contract == nil {
			t.Fatalf("a chain without a contract verified: %s", data)
		}
	})
}
