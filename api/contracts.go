package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Contracts: the wire types of GET /api/v1/contracts, /api/v1/contracts/{id},
// /api/v1/deployments/{id}/usage and /api/v1/ledger (docs/contracts.md).

// Money is an amount of the network's currency as the node writes it: a
// decimal string with at most six decimals ("0.25", "3"). The node counts
// in integer millionths; the string is exact, so two amounts are equal
// when their strings are.
type Money string

// ContractUsage is the cumulative usage under a contract, as its last
// note states it.
type ContractUsage struct {
	CPUMicros         uint64 `json:"cpu_us"`              // CPU time used, µs
	MemoryByteSeconds uint64 `json:"memory_byte_s"`       // memory in use integrated over time
	WallMillis        uint64 `json:"wall_ms"`             // time the allocations ran
	NetBytes          uint64 `json:"net_bytes,omitempty"` // bytes in and out (not priced)
}

// ContractPrice is the price a contract was agreed at, per hour: CPU per
// core-hour of CPU time, RAM per GiB-hour of memory in use, Disk per
// GiB-hour and GPU per GPU-hour reserved.
type ContractPrice struct {
	CPU  Money `json:"cpu,omitempty"`
	RAM  Money `json:"ram,omitempty"`
	Disk Money `json:"disk,omitempty"`
	GPU  Money `json:"gpu,omitempty"`
}

// Contract is one contract as this node keeps it: the terms both parties
// signed, this node's side of it and where it stands.
type Contract struct {
	ID          string   `json:"id"`
	Deployment  string   `json:"deployment"`
	Node        string   `json:"node"`        // the ensemble node placed
	Reservation string   `json:"reservation"` // the provider's reservation
	Allocations []string `json:"allocations"`
	// Role is this node's side: requester or provider.
	Role string `json:"role"`
	// State is proposed, active, closed, closed-no-invoice (requester: the
	// deployment ended or the placement was replaced, and no invoice came
	// within two intervals) or stopped; Reason says why a contract stopped or closed early
	// ("budget exhausted").
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Refusal is the provider's last refusal or failed delivery of a note
	// (provider side), empty once a note is countersigned again.
	Refusal   string        `json:"refusal,omitempty"`
	Requester string        `json:"requester"` // the orchestrating node's DID
	User      string        `json:"user,omitempty"`
	Provider  string        `json:"provider"` // the provider node's DID
	Price     ContractPrice `json:"price"`
	// IntervalMS is the metering interval: one note per interval.
	IntervalMS int64 `json:"interval_ms"`
	// Budget caps the whole deployment's cost; empty: no cap.
	Budget     Money     `json:"budget,omitempty"`
	Settlement string    `json:"settlement"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	// Notes is the sequence number of the last note (0: none yet).
	Notes  uint64        `json:"notes"`
	Usage  ContractUsage `json:"usage"`  // of the last note
	Amount Money         `json:"amount"` // of the last note
	// Owed is the amount of the last countersigned note: what the
	// requester agreed to pay.
	Owed  Money `json:"owed"`
	Final bool  `json:"final"` // the last note is the invoice
}

// ContractDetail answers GET /api/v1/contracts/{id}: the contract and its
// whole signed chain.
type ContractDetail struct {
	Contract Contract      `json:"contract"`
	Chain    ContractChain `json:"chain"`
}

// ContractChain is a contract with all its notes as both parties signed
// them: what `dms contract show -o json` prints and `dms contract verify
// --file` reads. Bodies are the signed bytes; a verifier hashes them as
// they are.
type ContractChain struct {
	Contract *SignedContract `json:"contract"`
	Notes    []SignedNote    `json:"notes"`
}

// SignedContract is a contract's signed terms.
type SignedContract struct {
	ID           string          `json:"id"` // hex SHA-256 of Body
	Body         json.RawMessage `json:"body"`
	RequesterSig []byte          `json:"requester_sig"`
	ProviderSig  []byte          `json:"provider_sig,omitempty"`
}

// SignedNote is a provider's note, countersigned by the requester once
// accepted.
type SignedNote struct {
	Hash         string          `json:"hash"` // hex SHA-256 of Body
	Body         json.RawMessage `json:"body"`
	ProviderSig  []byte          `json:"provider_sig"`
	RequesterSig []byte          `json:"requester_sig,omitempty"`
}

// Compact removes the whitespace an indenting printer (jq, -o json) put in
// the signed bodies, giving back the bytes as signed: the signer encodes
// them compactly.
func (ch *ContractChain) Compact() error {
	compact := func(b *json.RawMessage, what string) error {
		if len(*b) == 0 {
			return nil
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, *b); err != nil {
			return fmt.Errorf("%s: body is not JSON: %w", what, err)
		}
		*b = buf.Bytes()
		return nil
	}
	if ch.Contract != nil {
		if err := compact(&ch.Contract.Body, "contract"); err != nil {
			return err
		}
	}
	for i := range ch.Notes {
		if err := compact(&ch.Notes[i].Body, fmt.Sprintf("note %d", i+1)); err != nil {
			return err
		}
	}
	return nil
}

// DeploymentUsage answers GET /api/v1/deployments/{id}/usage: what each of
// the deployment's contracts metered and costs, and the totals.
type DeploymentUsage struct {
	Deployment string         `json:"deployment"`
	Contracts  []ContractUsed `json:"contracts"`
	Usage      ContractUsage  `json:"usage"`  // summed over the contracts
	Amount     Money          `json:"amount"` // summed
	Owed       Money          `json:"owed"`   // summed
	Budget     Money          `json:"budget,omitempty"`
}

// ContractUsed is one contract's line of a deployment's usage.
type ContractUsed struct {
	Contract    string        `json:"contract"`
	Node        string        `json:"node"`
	Provider    string        `json:"provider"`
	Allocations []string      `json:"allocations"`
	Usage       ContractUsage `json:"usage"`
	Amount      Money         `json:"amount"` // so far: the last note's
	Owed        Money         `json:"owed"`   // the last countersigned note's
	Notes       uint64        `json:"notes"`
	Final       bool          `json:"final"`
	State       string        `json:"state"`
	Reason      string        `json:"reason,omitempty"`
}

// LedgerBalance is one DID's account in the node's ledger: GET
// /api/v1/ledger, and the ledger field of GET /api/v1/resources.
type LedgerBalance struct {
	DID      string `json:"did"`
	Paid     Money  `json:"paid"`     // settled to others
	Received Money  `json:"received"` // settled from others
	Escrowed Money  `json:"escrowed"` // held for open contracts' budgets
}

// Contracts lists the node's contracts, newest first: those of one
// deployment, or all with deployment "".
func (c *Client) Contracts(ctx context.Context, deployment string) ([]Contract, error) {
	path := "/api/v1/contracts"
	if deployment != "" {
		path += "?deployment=" + url.QueryEscape(deployment)
	}
	var cs []Contract
	return cs, c.do(ctx, http.MethodGet, path, nil, &cs)
}

// Contract returns a contract (by ID or a unique prefix of it) with its
// signed chain, bodies as signed.
func (c *Client) Contract(ctx context.Context, id string) (*ContractDetail, error) {
	var d ContractDetail
	if err := c.do(ctx, http.MethodGet, "/api/v1/contracts/"+url.PathEscape(id), nil, &d); err != nil {
		return nil, err
	}
	return &d, d.Chain.Compact()
}

// DeploymentUsage returns what a deployment's contracts metered and cost.
func (c *Client) DeploymentUsage(ctx context.Context, id string) (*DeploymentUsage, error) {
	var u DeploymentUsage
	return &u, c.do(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id)+"/usage", nil, &u)
}

// Ledger returns this node's account in its ledger.
func (c *Client) Ledger(ctx context.Context) (*LedgerBalance, error) {
	var b LedgerBalance
	return &b, c.do(ctx, http.MethodGet, "/api/v1/ledger", nil, &b)
}
