// Package actor is the actor runtime: every node, orchestrator and
// allocation is an actor with its own key, addressed by a Handle (DID, host
// peer ID, inbox), that talks to other actors only by envelopes.
//
// # Usage
//
//	sys, _ := actor.NewSystem(actor.Config{Transport: host, Auth: verifier, Issuer: issuer})
//	node, _ := sys.Spawn(nodeKey, actor.RootInbox, actor.SpawnOptions{})
//	node.AddBehavior("/public/hello", func(ctx context.Context, m *actor.Message) (any, error) {
//		return map[string]string{"hello": m.From.DID.String()}, nil
//	})
//	err := node.Invoke(ctx, other, "/public/hello", nil, &reply)  // request/reply
//	err = node.Send(ctx, other, "/dms/x", payload)                 // one way
//	err = node.Broadcast(ctx, "topic", "/dms/y", payload, collect) // gossip, collect replies
//
// example_test.go teaches the API in one page.
//
// # Security
//
// Every envelope is authorized before dispatch: its UCAN invocation must
// chain to a root the receiving node trusts for the behavior (an Authorizer,
// backed by internal/cap), the sender's claimed host must be the
// authenticated transport peer, its nonce must be new (a per-sender
// anti-replay window) and its expiry near. A link carries each invocation
// once, as a session that later envelopes name by number, so verification
// is paid per link and not per message; policies in the chain are still
// evaluated against every payload. A session definition costs the peer one
// envelope of its rate, one that fails authorization is not kept, and a
// link keeps at most Config.MaxSessionsPerLink (the oldest is evicted; an
// Invoke or a recent one-way Send refused for an evicted session defines it
// again and is resent once).
//
// Invocations are not bearer tokens. Each one the runtime issues is bound,
// in its arguments, to the host it is sent from (IssueParams.Host), and the
// receiver's Authorizer refuses it from any other peer (AuthRequest.Host):
// a captured invocation is useless to anyone else. A one-shot invocation —
// a broadcast, or a user's command relayed by a node — also commits to the
// SHA-256 of its payload, and is accepted once (its own nonce, not only the
// envelope's, recorded by the node until it expires, across restarts). A
// link session's invocation serves many payloads on one authenticated link
// and is bound to the host only.
//
// # No silent drops
//
// Every refusal or failure — denied, expired, replay, unknown behavior, no
// such actor, mailbox full, rate-limited, too large, host mismatch, bad
// envelope, handler error or panic — is answered to the sender as a typed
// *Error with a stable Code, and counted (System.Stats). The one exception is
// a flood: refusals answered to a peer over its rate are themselves capped
// (100/s), and the rest are counted as refused_unanswered. A behavior panic
// is recovered and answered; it never takes the node down.
//
// # Tracing
//
// Envelopes carry a W3C traceparent: the OpenTelemetry span of the
// sender's context, else WithTrace's string — when that trace is sampled;
// an unsampled trace is not sent (no receiver would act on it), and a
// receiver drops an unsampled traceparent. The receiver parses it
// strictly (ParseTraceparent; a malformed one is counted as
// bad_traceparent and the message is handled untraced), the behavior's
// context carries it as the remote parent, and with Config.Tracer set a
// sampled trace gets a server span around the behaviors that
// Config.TraceBehavior opts in (the others pass the trace on). Receiving
// a trace costs no allocation (trace.go).
//
// # Concurrency
//
// Each actor has a bounded mailbox drained by up to SpawnOptions.Workers
// workers (1 keeps messages in order), started when messages wait and
// returning when the mailbox is empty: an idle actor holds no goroutine. Behaviors must be safe
// for concurrent use when Workers > 1. The *Message a behavior gets is
// valid until it returns: the runtime reuses it for later messages (a
// behavior keeps a copy, *m, to use it afterwards). A link's reader queues
// the envelopes of one read burst and starts each actor's worker once,
// when the burst ends (mailbox.go); a worker that is running takes queued
// messages without another being started, and one that takes a message
// while more wait, with no other worker looking, starts another, so a
// behavior that blocks does not hold up the rest of the mailbox.
// Transports are internal/p2p (libp2p)
// and MemNetwork (in memory, for tests).
package actor
