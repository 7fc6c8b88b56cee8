package subnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
)

// MaxRoutes bounds a routing table (a deployment's allocations).
const MaxRoutes = 1024

// Route says where an allocation's address lives: on the provider Peer
// (a libp2p peer ID).
type Route struct {
	Allocation string     `json:"allocation"`
	Addr       netip.Addr `json:"addr"`
	Peer       string     `json:"peer"`
}

// Table is a deployment's routing table. Version grows with every change
// (a redeploy moves a route to a new peer); a provider keeps the highest
// it has seen.
type Table struct {
	Deployment string       `json:"deployment"`
	Version    uint64       `json:"version"`
	Subnet     netip.Prefix `json:"subnet"`
	Routes     []Route      `json:"routes"` // sorted by allocation
}

// SignedTable is a Table as the orchestrator issues it: its JSON and the
// orchestrator's signature over it.
type SignedTable struct {
	Body   []byte       `json:"body"`
	Signer identity.DID `json:"signer"`
	Sig    []byte       `json:"sig"`
}

// ErrBadTable is wrapped by every reason a table is refused.
var ErrBadTable = errors.New("bad routing table")

// Sign checks the table and signs it with the orchestrator's key.
func (t Table) Sign(k *identity.Key) (SignedTable, error) {
	t.Routes = slices.Clone(t.Routes)
	slices.SortFunc(t.Routes, func(a, b Route) int { return strings.Compare(a.Allocation, b.Allocation) })
	if err := t.Validate(); err != nil {
		return SignedTable{}, err
	}
	body, err := json.Marshal(t)
	if err != nil {
		return SignedTable{}, err
	}
	return SignedTable{Body: body, Signer: k.DID(), Sig: k.Sign(signed(body))}, nil
}

// signed is what a signature covers: a domain tag and the body.
func signed(body []byte) []byte { return append([]byte("dms-subnet-table/1\x00"), body...) }

// Open checks that orchestrator signed s and returns its valid table.
func (s SignedTable) Open(orchestrator identity.DID) (*Table, error) {
	if s.Signer != orchestrator {
		return nil, fmt.Errorf("%w: signed by %s, not the deployment's orchestrator %s", ErrBadTable, s.Signer.Short(), orchestrator.Short())
	}
	if !identity.Verify(orchestrator, signed(s.Body), s.Sig) {
		return nil, fmt.Errorf("%w: the signature does not verify", ErrBadTable)
	}
	dec := json.NewDecoder(bytes.NewReader(s.Body))
	dec.DisallowUnknownFields()
	var t Table
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Validate checks a table: a deployment ID, an IPv4 subnet, at most
// MaxRoutes routes sorted by allocation name, each with a usable address
// of the subnet used once and a peer ID.
func (t *Table) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadTable, fmt.Sprintf(format, args...))
	}
	switch {
	case t.Deployment == "" || len(t.Deployment) > 64:
		return bad("no deployment")
	case !t.Subnet.IsValid() || !t.Subnet.Addr().Is4() || t.Subnet.Bits() > 30 || t.Subnet.Masked() != t.Subnet:
		return bad("subnet %s is not an IPv4 network of /30 or larger", t.Subnet)
	case t.Subnet.Contains(Resolver):
		return bad("subnet %s contains %s, the subnets' DNS address", t.Subnet, Resolver)
	case len(t.Routes) > MaxRoutes:
		return bad("%d routes, more than %d", len(t.Routes), MaxRoutes)
	}
	seen := map[netip.Addr]string{}
	for i, r := range t.Routes {
		switch {
		case !ensemble.IsName(r.Allocation):
			return bad("route %d: %q is not an allocation name", i, r.Allocation)
		case i > 0 && t.Routes[i-1].Allocation >= r.Allocation:
			return bad("routes not sorted by allocation, or %s twice", r.Allocation)
		case !usable(t.Subnet, r.Addr):
			return bad("route %s: %s is not a host address of %s", r.Allocation, r.Addr, t.Subnet)
		case seen[r.Addr] != "":
			return bad("address %s is both %s's and %s's", r.Addr, seen[r.Addr], r.Allocation)
		}
		if _, err := identity.DIDFromPeerID(r.Peer); err != nil {
			return bad("route %s: %v", r.Allocation, err)
		}
		seen[r.Addr] = r.Allocation
	}
	return nil
}

// PeerOf returns the provider that holds address a.
func (t *Table) PeerOf(a netip.Addr) (string, bool) {
	for _, r := range t.Routes {
		if r.Addr == a {
			return r.Peer, true
		}
	}
	return "", false
}

// Allows reports whether a packet from peer may carry source address
// src: only an address of one of that peer's allocations may (anything
// else is a spoofed source, to be dropped and counted).
func (t *Table) Allows(peer string, src netip.Addr) bool {
	p, ok := t.PeerOf(src)
	return ok && p == peer
}

// Names returns the address of each allocation, for .internal names.
func (t *Table) Names() map[string]netip.Addr {
	out := make(map[string]netip.Addr, len(t.Routes))
	for _, r := range t.Routes {
		out[r.Allocation] = r.Addr
	}
	return out
}
