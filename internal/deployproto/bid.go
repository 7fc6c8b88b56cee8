package deployproto

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/match"
)

// BidRequest asks providers to bid for the nodes of a deployment.
type BidRequest struct {
	Deployment   string        `json:"deployment"`
	Orchestrator actor.Handle  `json:"orchestrator"`
	Round        int           `json:"round"` // reservations are named per round, so a retry never collides
	Nodes        []NodeRequest `json:"nodes"`
}

// MaxNodes bounds the nodes of one BidRequest.
const MaxNodes = 64

// NodeRequest is what one node of the ensemble asks of its provider: the sum
// of its allocations' resources, the executors they use, and where it may
// be.
type NodeRequest struct {
	Name    string        `json:"name"`
	Request match.Request `json:"request"`
	// Peer pins the node to one provider (peer ID); others do not bid.
	Peer string `json:"peer,omitempty"`
	// Credentials are the operator credentials its volumes name
	// (credentials.provider): a provider without all of them does not bid.
	Credentials []string `json:"credentials,omitempty"`
}

// ReservationID names a provider's reservation for one bid round: one
// reservation covers whichever node of the request it is given (a
// provider hosts at most one node of an ensemble).
func ReservationID(deployment string, round int) string {
	return deployment + "." + strconv.Itoa(round)
}

// BidReply answers a BidRequest: a bid for the nodes the provider can host
// (any one of them: a provider hosts at most one node of an ensemble), with
// resources reserved for a while, and the reasons it cannot host the
// others.
type BidReply struct {
	Provider actor.Handle `json:"provider"`
	// Offer is what the provider had free before this request, so the
	// orchestrator can shortlist it for later deployments.
	Offer  *match.Offer `json:"offer,omitempty"`
	Bid    *SignedBid   `json:"bid,omitempty"`
	NoBids []NoBid      `json:"no_bids,omitempty"`
}

// SignedBid is a Bid as its provider sent it: Body is the bid's JSON (or,
// in a binary reply, its binary form: MarshalBid) and Signature, in a JSON
// reply, the provider node key's Ed25519 signature of SignedBytes. A
// binary reply's bid is not signed (Signature empty): the link it came on
// authenticates the provider, and a commit is checked against the
// provider's own record of its reservation (docs/security.md, "Bids"). A
// signature that is present must verify (placement.VerifyBids); it is
// checked over the very bytes the bid is decoded from, as JSON does not
// round-trip byte for byte.
type SignedBid struct {
	Body      json.RawMessage `json:"body"`
	Signature []byte          `json:"signature"`
}

// SignBid encodes b and signs it with the provider's node key for one
// deployment; provider is the key's peer ID.
func SignBid(key *identity.Key, deployment, provider string, b *Bid) (*SignedBid, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode bid: %w", err)
	}
	s := &SignedBid{Body: body}
	s.Signature = key.Sign(s.SignedBytes(deployment, provider))
	return s, nil
}

// SignedBytes is what the signature covers: the deployment and provider
// bind the bid to one request, the body is the bid.
func (s *SignedBid) SignedBytes(deployment, provider string) []byte {
	return fmt.Appendf(nil, "dms-bid|%s|%s|%s", deployment, provider, s.Body)
}

// Verify reports whether the signature is the provider's over this bid for
// this deployment.
func (s *SignedBid) Verify(deployment, provider string) bool {
	did, err := identity.DIDFromPeerID(provider)
	return err == nil && identity.Verify(did, s.SignedBytes(deployment, provider), s.Signature)
}

// Open decodes the signed bid, in either form (JSON, or binary:
// MarshalBid).
func (s *SignedBid) Open() (Bid, error) {
	b, err := UnmarshalBid(s.Body)
	if err != nil {
		return Bid{}, fmt.Errorf("bid: %w", err)
	}
	return b, nil
}

// Bid offers to host one of Nodes under one reservation.
type Bid struct {
	Nodes       []string    `json:"nodes"`
	Reservation string      `json:"reservation"`
	Expires     time.Time   `json:"expires"`
	Offer       match.Offer `json:"offer"` // Free is what the reservation holds
	// Latencies are the provider's measured round trips to the peers it
	// is connected to, in milliseconds by peer ID: the orchestrator checks
	// the ensemble's rtt edges with them.
	Latencies map[string]float64 `json:"latencies,omitempty"`
	// DryRun marks the answer to a BehaviorPlan request: no reservation
	// backs it (Reservation is empty), it is not signed, and no commit
	// can use it.
	DryRun bool `json:"dry_run,omitempty"`
}

// NoBid says why a provider does not bid for a node.
type NoBid struct {
	Node    string   `json:"node"`
	Reasons []string `json:"reasons"`
	// Kind classifies the first reason (one of the Kind constants).
	Kind string `json:"kind"`
}

// The kinds of reasons why a provider does not host a node: those a
// provider gives in a NoBid, and those the orchestrator adds when it rates
// bids and places nodes.
const (
	KindResource   = "resource"   // cpu, ram, disk, gpu or another amount
	KindExecutor   = "executor"   // an executor (or feature) it does not offer
	KindLocation   = "location"   // outside the accepted places, or in a rejected one
	KindPrice      = "price"      // above the price ceiling
	KindTime       = "time"       // not available in the window
	KindOnboarding = "onboarding" // no resources onboarded
	KindPinned     = "pinned"     // the node is pinned to another peer
	KindStorage    = "storage"    // lacks the operator credentials a volume names
	KindInvalid    = "invalid"    // a malformed request, offer or bid, or a bad signature
	KindRefused    = "refused"    // refused the request or a commit
	KindNoAnswer   = "no-answer"  // did not answer in the bid window
	KindDistinct   = "distinct"   // fits, but hosts another node of the ensemble
	KindRTT        = "rtt"        // too far from the provider of another node
	KindPeerLimit  = "peer-limit" // the requesting peer holds as many reservations there as it may
	KindOutscored  = "outscored"  // fits, but another provider scored higher (dms plan)
)

// KindOf classifies a match reason by its dimension.
func KindOf(dimension string) string {
	switch dimension {
	case match.DimExecutor:
		return KindExecutor
	case match.DimLocation:
		return KindLocation
	case match.DimPrice:
		return KindPrice
	case match.DimTime:
		return KindTime
	}
	return KindResource // cpu, ram, disk, gpu and extra kinds
}

// NoFit turns the reasons a match refused with into a NoBid.
func NoFit(node string, reasons []match.Reason) NoBid {
	nb := NoBid{Node: node, Kind: KindResource}
	if len(reasons) > 0 {
		nb.Kind = KindOf(reasons[0].Dimension)
	}
	for _, r := range reasons {
		nb.Reasons = append(nb.Reasons, r.String())
	}
	return nb
}

// CheckName refuses names that could not be a deployment, node or
// allocation name: they become parts of IDs, inboxes and labels. what
// names the field in the error.
func CheckName(what, s string) error {
	if s == "" || len(s) > 63 {
		return &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("%s name %q", what, s)}
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("%s name %q: lower-case letters, digits and '-' only", what, s)}
		}
	}
	return nil
}
