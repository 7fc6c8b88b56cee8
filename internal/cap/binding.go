package cap

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ucan-wg/go-ucan/pkg/args"
)

// The arguments that bind an invocation to the host it travels from and to
// the one payload it authorizes. The actor runtime issues every invocation
// with them, the CLI signs user invocations with them, and a receiver
// refuses an invocation that does not match the authenticated peer and the
// payload it came with (RuleBinding).
const (
	ArgHost    = "dms.host"           // string: the libp2p peer ID the invocation is sent from
	ArgPayload = "dms.payload-sha256" // bytes: SHA-256 of the payload (one-shot invocations only)
)

// Binding is what an invocation commits to in its arguments.
type Binding struct {
	// Host is the peer ID of the host that sends the invocation: the
	// issuing actor's host, or the node that relays a user's invocation.
	Host string
	// Payload is the SHA-256 of the one payload the invocation authorizes,
	// or nil for an invocation that serves many payloads (a link session,
	// whose link is authenticated).
	Payload []byte
}

// Bind returns the binding of a one-shot invocation: sent from host with
// payload (nil and empty are the same, no payload).
func Bind(host string, payload []byte) Binding {
	d := sha256.Sum256(payload)
	return Binding{Host: host, Payload: d[:]}
}

// Args returns the binding as invocation arguments (InvocationParams.Args).
func (b Binding) Args() map[string]any {
	m := map[string]any{ArgHost: b.Host}
	if b.Payload != nil {
		m[ArgPayload] = b.Payload
	}
	return m
}

// bindingOf reads an invocation's binding from its arguments. An absent
// argument leaves its field empty; one of the wrong type or size is
// malformed.
func bindingOf(a args.ReadOnly) (Binding, error) {
	var b Binding
	if n, err := a.GetNode(ArgHost); err == nil {
		s, err := n.AsString()
		if err != nil || s == "" || n.Kind() != datamodel.Kind_String {
			return Binding{}, fmt.Errorf("argument %s is not a peer ID", ArgHost)
		}
		b.Host = s
	}
	if n, err := a.GetNode(ArgPayload); err == nil {
		d, err := n.AsBytes()
		if err != nil || len(d) != sha256.Size {
			return Binding{}, fmt.Errorf("argument %s is not a SHA-256 digest", ArgPayload)
		}
		b.Payload = d
	}
	return b, nil
}

// Binding returns what the invocation's arguments bind it to; a malformed
// binding argument is a *DeniedError (RuleMalformed).
func (inv *Invocation) Binding() (Binding, error) {
	b, err := bindingOf(inv.tok.Arguments())
	if err != nil {
		return Binding{}, deny(RuleMalformed, TokenInvocation, "%v", err)
	}
	return b, nil
}

// Check refuses (RuleBinding) an invocation bound thus that did not come
// from the host it is bound to, and, when oneShot, one that does not commit
// to exactly this payload. A link session's invocation (oneShot false) is
// checked once per link; a one-shot invocation costs one SHA-256 of its
// payload.
func (b Binding) Check(host string, payload []byte, oneShot bool) error {
	switch {
	case b.Host == "":
		return deny(RuleBinding, TokenInvocation, "the invocation is bound to no host (argument %s): anyone holding it could send it", ArgHost)
	case b.Host != host:
		return deny(RuleBinding, TokenInvocation, "bound to host %s, but sent by %s", shortPeer(b.Host), shortPeer(host))
	case !oneShot:
		return nil
	case b.Payload == nil:
		return deny(RuleBinding, TokenInvocation, "a one-shot invocation must commit to its payload (argument %s)", ArgPayload)
	}
	if d := sha256.Sum256(payload); !bytes.Equal(d[:], b.Payload) {
		return deny(RuleBinding, TokenInvocation, "the payload is not the one the invocation commits to")
	}
	return nil
}

func shortPeer(h string) string {
	if len(h) > 12 {
		return "…" + h[len(h)-6:]
	}
	return h
}
