package actor

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dmsnet/dms/internal/identity"
)

// Handle addresses an actor: its DID, the host it lives on (a libp2p peer ID)
// and its inbox on that host ("root" for the node actor).
type Handle struct {
	DID   identity.DID `json:"did"`
	Host  string       `json:"host"`
	Inbox string       `json:"inbox"`
}

// RootInbox is the inbox of a node's root actor.
const RootInbox = "root"

func (h Handle) String() string {
	return fmt.Sprintf("%s@%s/%s", h.DID.Short(), shortHost(h.Host), h.Inbox)
}

func shortHost(h string) string {
	if len(h) > 12 {
		return "…" + h[len(h)-6:]
	}
	return h
}

// IsZero reports whether h is the zero handle.
func (h Handle) IsZero() bool { return h == Handle{} }

// Envelope is one message between actors, as it travels. Envelopes are
// immutable once sent.
type Envelope struct {
	Nonce    uint64    // unique per sending runtime; replies refer to it
	Expiry   time.Time // refused after this instant
	To       Handle    // zero for broadcasts
	From     Handle
	Behavior string // the behavior invoked; also the UCAN command
	Topic    string // set for broadcasts
	// WantReply asks for a reply (Invoke, and broadcasts that collect
	// answers). Failures are answered even without it.
	WantReply bool
	// Invocation is a UCAN invocation container authorizing this envelope
	// (inline), or empty when Session names one sent before on the link.
	Invocation []byte
	Session    uint32
	Trace      string // W3C traceparent, may be empty
	Payload    []byte // JSON
}

// Message is what a behavior receives.
type Message struct {
	From     Handle
	To       Handle
	Behavior string
	Topic    string // non-empty for broadcasts
	Expiry   time.Time
	Trace    string
	Payload  []byte
	// Issuer is the DID the invocation was issued by (the user, for
	// commands relayed from the CLI; else the sending actor).
	Issuer identity.DID
}

// Decode unmarshals the JSON payload into v. A malformed payload gives a
// bad-envelope error, which the runtime answers to the sender.
func (m *Message) Decode(v any) error {
	if len(m.Payload) == 0 {
		m.Payload = []byte("null")
	}
	if err := json.Unmarshal(m.Payload, v); err != nil {
		return errorf(CodeBadEnvelope, "payload of %s: %v", m.Behavior, err)
	}
	return nil
}

// Reply is the answer to an envelope: a payload, or an error.
type Reply struct {
	InReplyTo uint64
	From      Handle
	Err       *Error
	Payload   []byte
}

// Decode unmarshals the reply payload into v, or returns the reply's error.
func (r *Reply) Decode(v any) error {
	if r.Err != nil {
		return r.Err
	}
	if v == nil || len(r.Payload) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Payload, v); err != nil {
		return fmt.Errorf("decode reply from %s: %w", r.From, err)
	}
	return nil
}

// encodePayload turns a value into a JSON payload; []byte and
// json.RawMessage pass through.
func encodePayload(v any) ([]byte, error) {
	switch p := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return p, nil
	case json.RawMessage:
		return p, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	return b, nil
}
