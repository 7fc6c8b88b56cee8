// Package allocation is the provider side of a deployment's work. The
// Provider answers the deployment protocol's bid requests, commits and
// reverts (package deployproto) against the node's resource ledger; for
// each allocation of a committed reservation the Manager makes an actor
// with its own key that owns one executor instance. The allocation actor
// fetches the artifacts the workload needs from the orchestrator, starts
// the instance, copies its output into a log file that survives restarts,
// checks its health, applies the restart policy, reports every state
// change and a heartbeat to the orchestrator, and releases the
// reservation's resources once its work is done.
//
// # Usage
//
// The node builds one Manager and one Provider, resumes what an earlier
// run left; the Provider creates allocations when an orchestrator commits:
//
//	m, err := allocation.New(allocation.Config{
//		System: sys, Executors: executors, Store: store, Ledger: resources,
//		Wallet: wallet, Sealer: sealer, DataDir: filepath.Join(home, "data", "allocations"),
//		Heartbeat: 2 * time.Second, Logger: log,
//	})
//	err = m.Resume(ctx)                  // re-attach to running instances
//	h, err := m.Create(ctx, allocation.CreateRequest{ID: id, Reservation: res,
//		Deployment: dep, Orchestrator: orch, Spec: spec}) // actor "alloc/<ID>", pending
//	err = m.Revert(ctx, res)             // stop, remove, release (idempotent)
//	reports := m.List()                  // for the provider's status
//	err = m.Close(ctx)                   // workloads keep running
//
//	p := allocation.NewProvider(allocation.ProviderConfig{Node: root, Key: nodeKey,
//		Ledger: ledger, Allocations: m, ReservationTTL: 30 * time.Second})
//	err = p.Register() // bid, commit and revert behaviors on the node actor
//
// A bid reserves, for ReservationTTL, enough to host any one of the nodes
// that fit (a provider hosts at most one node of an ensemble) and is signed with the node key (deployproto.SignBid); a
// commit turns the reservation into allocations, all or nothing; a revert
// stops and removes them and releases the reservation. Only the
// orchestrator that a reservation was made for may commit or revert it,
// and a commit must name its sender as the orchestrator.
//
// Reservations are bounded per requesting peer (its host), so that one
// orchestrator, trusted but misbehaving, cannot hold all the free
// resources with bids it never commits: a peer holds at most
// ReservationsPerPeer live (uncommitted, unexpired) reservations, and
// beyond its first they hold together at most ReservedSharePerPeer of the
// onboarded resources in every dimension. A request over a bound gets a
// NoBid of kind deployproto.KindPeerLimit.
//
// The orchestrator then drives each allocation actor through the behaviors
// of package deployproto:
//
//   - BehaviorStart (StartRequest): checks the delegation chain (its holder
//     must be the allocation's DID; it goes into the Wallet so the actor can
//     present it) and the spec, answers at once, and fetches and starts in
//     the background: the reports say starting, then running (or failed).
//     Starting again does nothing; an ended allocation cannot start.
//   - BehaviorStop (StopRequest): stops the instance within Grace and
//     answers once the allocation is stopped; with Remove it also deletes
//     the instance, the record and the data directory (logs, volumes).
//   - BehaviorLogs (LogsRequest): long poll over the log file; entries
//     from Offset, or the first written within Wait; EOF once ended and
//     read to the end. Entries carry the time they were copied; the
//     request's LogFilter keeps one stream, entries since a time, or (first
//     answer only) the last Tail lines.
//   - BehaviorStatus: the current Report.
//   - BehaviorExec, BehaviorExecInput, BehaviorExecOutput: an exec session
//     (`dms deployment exec`) in the running instance, for executors that
//     implement executor.ExecStreamer; bounded output buffer, at most 4
//     sessions, ended when unread for 2 minutes (exec.go).
//
// The actor invokes BehaviorReport on the orchestrator at every state
// change and every Heartbeat while not ended (Seq always increases, also
// across restarts), and BehaviorArtifact to fetch "sha256:<hex>" content in
// ArtifactChunkSize chunks, checked and cached by digest under ArtifactDir.
//
// # States
//
//	pending → starting → running ⇄ healthy/unhealthy → completed | failed
//	                 ↘ restarting (on-failure/always, up to max_restarts,
//	                   backoff doubling to 1m) → starting …
//	any state → stopped (BehaviorStop, Revert)
//
// A run that ends with exit code 0 completes; any other end fails, with the
// executor's Result in the report. A start that cannot succeed by retrying
// (an invalid spec, an artifact whose content does not match its digest)
// fails without restarts.
//
// # Persistence
//
// A Record is written at every state change; Resume respawns every
// allocation's actor with its sealed key, and re-attaches unfinished ones
// to their instances (found by the labels executor.LabelAllocation and
// LabelNode through executor.Lister, or by ID). An instance that is gone
// ends its run as failed with a message saying so, and the restart policy
// applies.
//
// # Concurrency
//
// Manager's methods are safe for concurrent use. Each allocation has a
// supervisor goroutine while its workload runs, a log copier and a health
// checker while an instance runs, and a reporter until its final report;
// Close stops them all and waits. The actors' behaviors run concurrently
// (a long poll does not hold up a stop); start, stop and remove of one
// allocation are serialized.
package allocation
