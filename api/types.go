package api

import (
	"encoding/json"
	"strings"
	"time"
)

// Health is the answer of GET /api/v1/health (no token needed).
type Health struct {
	Status  string `json:"status"` // "ok"
	Version string `json:"version"`
}

// Node describes the local node: GET /api/v1/node.
type Node struct {
	PeerID  string    `json:"peer_id"`
	DID     string    `json:"did"`
	Addrs   []string  `json:"addrs"` // full multiaddrs with /p2p/<peer ID>
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// UserDID is the DID of the home's user key, trusted by this node.
	UserDID string `json:"user_did,omitempty"`
}

// Peer is a known peer: GET /api/v1/peers.
type Peer struct {
	ID        string   `json:"id"`
	DID       string   `json:"did,omitempty"`
	Addrs     []string `json:"addrs"`
	Connected bool     `json:"connected"`
	// LatencyMS is the last measured round trip, 0 when unknown.
	LatencyMS float64 `json:"latency_ms,omitempty"`
}

// ConnectRequest is the body of POST /api/v1/peers/connect.
type ConnectRequest struct {
	Addr string `json:"addr"` // full multiaddr: /ip4/127.0.0.1/tcp/9000/p2p/12D3KooW…
}

// ConnectResult answers a connect.
type ConnectResult struct {
	PeerID string `json:"peer_id"`
}

// PingRequest is the body of POST /api/v1/peers/ping.
type PingRequest struct {
	Peer string `json:"peer"` // peer ID or DID
}

// PingResult answers a ping.
type PingResult struct {
	PeerID string  `json:"peer_id"`
	RTTMS  float64 `json:"rtt_ms"`
}

// Handle addresses an actor.
type Handle struct {
	DID   string `json:"did"`
	Host  string `json:"host"`
	Inbox string `json:"inbox"`
}

// ActorRequest is the body of POST /api/v1/actor/send, /invoke and
// /broadcast: a behavior invocation the CLI signed with the user key, for
// the node to relay.
type ActorRequest struct {
	To       Handle          `json:"to"`              // ignored for broadcast
	Topic    string          `json:"topic,omitempty"` // broadcast only
	Behavior string          `json:"behavior"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	// From is the DID of the invocation's issuer (the user).
	From string `json:"from"`
	// Invocation is the UCAN invocation container (base64 in JSON).
	Invocation []byte `json:"invocation"`
	// TimeoutMS bounds an invoke (or how long a broadcast collects replies);
	// 0 means the node's default.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// ActorReply is the answer of /actor/invoke, and one element of a
// broadcast's replies. Error is set when the remote actor refused or failed.
type ActorReply struct {
	From    Handle          `json:"from"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Error   *ErrorBody      `json:"error,omitempty"`
	// AfterMS (broadcast replies only) is when the reply reached the
	// relaying node, in milliseconds after it was asked to publish it:
	// the gossip's way to the replier and the reply's way back.
	AfterMS float64 `json:"after_ms,omitempty"`
}

// BroadcastResult answers /actor/broadcast with the replies collected.
type BroadcastResult struct {
	Replies []ActorReply `json:"replies"`
}

// ErrorBody is the JSON of every error: {"error": {"code": ..., "message": ...}}.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Candidates are what an ambiguous prefix matches (code ambiguous).
	Candidates []string `json:"candidates,omitempty"`
}

// ErrorResponse wraps ErrorBody on the wire.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// Error codes of the API itself. Actor refusals relayed from a node keep
// their actor codes (denied, unknown-behavior, timeout, ...).
const (
	CodeUnauthorized = "unauthorized" // 401: no or wrong token
	CodeForbidden    = "forbidden"    // 403: not from loopback
	CodeBadRequest   = "bad-request"  // 400: malformed body or parameter
	CodeNotFound     = "not-found"    // 404
	CodeAmbiguous    = "ambiguous"    // 400: an ID or name prefix matches several; ErrorBody.Candidates lists them
	CodeInternal     = "internal"     // 500
	CodeUnavailable  = "unavailable"  // 503: the node is starting or stopping
	// CodeDenied (403) is a capability refusal; the message starts with
	// the failing rule: "untrusted-root: ...". Relayed actor refusals
	// carry it too.
	CodeDenied = "denied"
)

// Error is an API error as the client returns it: the HTTP status and the
// body's code and message. Error() is "code: message", so the CLI prints
// "denied: ..." for a relayed denial.
type Error struct {
	Status  int
	Code    string
	Message string
	// Candidates are what an ambiguous prefix matches (code ambiguous).
	Candidates []string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	// A message that already says it ("deployment x: not found") does not
	// need the code in front of it ("not-found: deployment x: not found").
	if e.Code == CodeNotFound && strings.Contains(e.Message, "not found") {
		return e.Message
	}
	return e.Code + ": " + e.Message
}
