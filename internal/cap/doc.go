// Package cap is dms's capability system: UCAN 1.0 delegations and
// invocations (built on github.com/ucan-wg/go-ucan), the node's trust
// context, revocation, replay protection and the token file format.
//
// It is pure: no disk, network or clock. Every function that needs the
// time takes it; state (anchors, revocations) is passed in, and persisted
// by package capstore.
//
// # Model
//
// A user's DID is the root of its own authority. A root delegation
// (issuer = subject) hands part of it, a command prefix and a policy over
// the invocation's arguments, to an audience, which may re-delegate a
// narrower part (same subject) and so on: a Chain, root first. An
// invocation is signed by the chain's final audience (or by anyone, with
// no chain, for its own authority) and names the receiving node as its
// audience. A node runs it when the chain's root is anchored in its Trust
// for a prefix covering the command.
//
// Usage:
//
//	d, _ := cap.Delegate(alice, cap.DelegationParams{Audience: bob.DID(), Command: "/dms/node/peers", Expiry: exp})
//	chain := cap.Chain{d}
//	text, _ := chain.Encode()                      // a token file (go-ucan container, base64)
//	inv, _ := cap.Invoke(bob, cap.InvocationParams{Audience: node, Command: "/dms/node/peers/list", Proofs: chain, Expiry: soon})
//
//	trust, _ := cap.NewTrust(cap.Anchor{Root: alice.DID(), Cmd: "/dms"})
//	v := cap.NewVerifier(cap.Config{Trust: trust, Revoked: revs, IsLocal: isLocal})
//	ok, err := v.Authorize(now, inv.Sealed(), [][]byte{d.Sealed()})
//	// err is a *DeniedError: errors.As it, switch on .Rule
//
// # Refusals
//
// Every refusal is a *DeniedError naming the Rule and the token (a CID, or
// "invocation"); its text "denied: RULE: token CID: detail" is what the CLI
// prints and remote invokers receive.
//
// # Caching
//
// A Verifier caches decoded, signature-checked delegations by CID and
// whole authorizations by the invocation's hash, so that a message reusing
// a known invocation costs a hash and a few comparisons. Time bounds,
// revocation (through RevocationSet.Generation), the audience and trust
// are checked on every hit.
//
// # Wire codec
//
// Delegations of the shape dms makes (Ed25519 did:key issuer, a subject,
// string meta values; on reading also an empty policy) are written and
// read by a codec of this package (fastcodec.go) instead of go-ucan's
// go-ipld-prime path: it writes go-ucan's bytes exactly, and reads only
// input that is already the canonical encoding go-ucan verifies the
// signature over. Every other input, and every refusal, is go-ucan's.
//
// # Concurrency
//
// Verifier, Revocations and NonceCache are safe for concurrent use;
// tokens, chains and Trust are immutable.
package cap
