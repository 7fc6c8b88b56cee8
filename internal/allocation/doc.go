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
//		Heartbeat: 2 * time.Second, StopAfter: 20 * time.Second, Logger: log,
//		// volumes (see Volumes): adapters of storage/local, s3, web, transfer
//		Mounter: mounter, ObjectStore: s3store, Fetcher: fetcher, Results: reader,
//		NodeKey: nodeKey, Credentials: operatorCreds, ResultsRetention: 24 * time.Hour,
//	})
//	err = m.Resume(ctx)                  // re-attach to running instances
//	h, err := m.Create(ctx, allocation.CreateRequest{ID: id, Reservation: res,
//		Deployment: dep, Orchestrator: orch, Spec: spec,
//		Epoch: epoch, StopAfter: stopAfter}) // actor "alloc/<ID>", pending
//	err = m.Revert(ctx, res)             // stop, remove, release (idempotent)
//	reports := m.List()                  // for the provider's status
//	err = m.Close(ctx)                   // workloads keep running
//
//	p := allocation.NewProvider(allocation.ProviderConfig{Node: root, Key: nodeKey,
//		Ledger: ledger, Allocations: m, ReservationTTL: 30 * time.Second})
//	err = p.Register() // bid, commit, revert and results behaviors on the node actor
//
// A bid reserves, for ReservationTTL, enough to host any one of the nodes
// that fit (a provider hosts at most one node of an ensemble). The provider
// answers in the form it was asked in: a JSON bid is signed with the node
// key (deployproto.SignBid), a binary one (deployproto.MarshalBid) is not —
// the link authenticates the provider and the commit is checked against
// the provider's own record of the reservation, its owner and its price; a
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
// of package deployproto. Start, stop, dependency notices and adoptions
// carry the sender's fencing epoch: one older than the allocation's is
// refused with an *actor.Error of code deployproto.CodeStaleEpoch, epoch 0
// means the sender gives none and passes, and a newer one raises the
// allocation's.
//
//   - BehaviorStart (StartRequest): checks the delegation chain (its holder
//     must be the allocation's DID; it goes into the Wallet so the actor can
//     present it) and the spec, answers at once, and fetches and starts in
//     the background: the reports say starting, then running (or failed).
//     Starting again does nothing; an ended allocation cannot start.
//   - BehaviorStop (StopRequest): stops the instance within Grace and
//     answers once the allocation is stopped; with Remove it also deletes
//     the instance, the record and the data directory (logs, volumes;
//     local out volumes are kept as results, see Volumes).
//   - BehaviorLogs (LogsRequest): long poll over the log file; entries
//     from Offset, or the first written within Wait; EOF once ended and
//     read to the end. Entries carry the time they were copied; the
//     request's LogFilter keeps one stream, entries since a time, or (first
//     answer only) the last Tail lines.
//   - BehaviorStatus: the current Report.
//   - BehaviorDependency (DependencyNotice): an allocation this one depends
//     on restarted or moved. The notice becomes a line of the log, on
//     stderr and prefixed "[dms] ", which `dms deployment logs` shows among
//     the workload's output; with Restart, a running instance is killed
//     and a new run starts at once. Such a restart counts in the Restarts
//     the reports show but is not charged to max_restarts. An allocation
//     without a running instance (pending, starting, restarting, ended: a
//     completed task is never run again) only logs the notice.
//   - BehaviorAdopt (AdoptRequest): a standby orchestrator took the
//     deployment over at a higher epoch. The request must name this
//     allocation's deployment and its sender as the orchestrator, and its
//     chain must be held by the allocation and root in the same issuer
//     (the same user) as the chain it was started with; an allocation that
//     was never started has no chain to compare with and cannot be
//     adopted. The allocation then reports to the new orchestrator, at
//     once, and presents the new chain.
//   - BehaviorExec, BehaviorExecInput, BehaviorExecOutput: an exec session
//     (`dms deployment exec`) in the running instance, for executors that
//     implement executor.ExecStreamer; bounded output buffer, at most 4
//     sessions, ended when unread for 2 minutes (exec.go).
//
// The actor invokes BehaviorReport on the orchestrator at every state
// change and every Heartbeat while not ended (Seq always increases, also
// across restarts; Report.Epoch is the allocation's epoch), and
// BehaviorArtifact to fetch "sha256:<hex>" content in ArtifactChunkSize
// chunks, checked and cached by digest under ArtifactDir. The orchestrator
// answers every report with a deployproto.ReportAck (an empty answer is an
// acknowledgement with no epoch): a higher Epoch raises the allocation's,
// and Stop means this copy was replaced or given up, so the allocation is
// stopped and removed and its resources released, as by a revert, after a
// line with the ack's Reason in its log. A heartbeat goes out on a
// goroutine of its own, so that a slow orchestrator does not hold up the
// state changes behind it; the final report is retried (backoff up to a
// minute) until it is acknowledged.
//
// # Volumes
//
// Before the first start (and after a node restart, if staging had not
// finished) every volume is mounted, in name order, through
// Config.Mounter (a size-bounded local volume is a loop-mounted image:
// writing past its size gives the job ENOSPC), and the inputs are
// staged: an s3 volume of mode in or inout is downloaded through
// Config.ObjectStore, a url volume fetched and checked through
// Config.Fetcher. Inputs and url volumes are given to the executor
// read-only. Staging done is recorded (Record.Staged); its progress goes
// to the log as "[dms] volume NAME: …" lines every few seconds. A
// failure fails the allocation without restarts, with one reason naming
// the volume (a *storage.VolumeError: "volume inputs: stage: s3 list
// http://… bucket nope: no such bucket"), and releases the reservation.
//
// S3 credentials are the operator's (Config.Credentials, by name) or the
// user's: the commit's secrets, sealed to this node's key, kept sealed in
// the Record, opened with Config.NodeKey only when a transfer needs them,
// and dropped when the allocation ends.
//
// After the workload exits (each run of a task; a service at its end)
// the s3 volumes of mode out and inout are uploaded to their prefix,
// default <deployment>/<allocation>/<attempt>/, with a journal in the
// allocation's directory. The end is reported only after the upload
// (Record.Final holds it meanwhile, so a node restart resumes the upload
// and then reports it); an upload failure fails the allocation with the
// volume's reason. sync_every also uploads while the allocation runs.
//
// When the allocation is removed, its local out volumes (the results) are
// moved to <ResultsDir>/<deployment>/<allocation>/<volume> and kept for
// ResultsRetention (a sweeper removes them, at Resume and periodically);
// its other volumes are unmounted and deleted. The node's
// deployproto.BehaviorResults (Provider) lists a deployment's out volumes
// (local: live or kept; s3: where the objects went, never the keys) and
// serves a local one's manifest and chunks (Config.Results), live or
// kept, to the deployment's orchestrator or the user who deployed it;
// anyone else gets actor.CodeDenied.
//
// # Subnets
//
// An allocation whose spec has a subnet address (its deployment's
// network.subnet) joins the deployment's subnet through Config.Subnets
// (the node wires it to subnet/router and subnet/link): at every start
// the executor's spec gets executor.Subnet hooks (docker calls
// AttachNetns in the new container's network namespace, which creates
// its interface dms0), when a run ends the allocation leaves the subnet,
// and once no allocation of the deployment on this node may run any more
// (all ended, by a shutdown, or removed, by a revert or a stale copy's
// stop) the deployment's subnet is dropped here (its routing table, in
// use and stored). After a node restart, a re-attached instance is put
// back on the subnet by an executor implementing executor.SubnetAttacher, else
// restarted at once. A node without Subnets, and a wasm allocation
// (WASI preview 1 has no sockets), refuse a subnet address at Create;
// vm guests cannot join one yet (planned). The Provider does not bid for
// a request that needs deployproto.FeatureSubnet when the node runs no
// subnets (ProviderConfig.NoSubnet says why).
//
// # Fencing
//
// An allocation that has not ended and has had no acknowledgement of a
// report for its StopAfter (the commit's, else Config.StopAfter: the
// node's orchestrator.stop_after, by default twice orchestrator.lost_after)
// stops its workload on its own: its orchestrator cannot be reached, and
// may have placed the node again elsewhere. It ends in state stopped with
// the message "fenced: no word from the orchestrator for 20s (stop_after);
// its node may run elsewhere now", its resources are released, and its
// record stays, so that the final report reaches the orchestrator when it
// is back (whose acknowledgement then says Stop, and the allocation is
// removed). The silence is measured on the monotonic clock from the
// sending of the last acknowledged report (creation, a start, an adoption
// and a resume count as acknowledgements), and checked at every reporter
// tick before anything is sent: a provider frozen by SIGSTOP past its
// StopAfter stops its workload as soon as it runs again.
//
// # States
//
//	pending → starting → running ⇄ healthy/unhealthy → completed | failed
//	                 ↘ restarting (on-failure/always, up to max_restarts,
//	                   backoff doubling to 1m) → starting …
//	unhealthy (the check failed retries times) → the instance is killed:
//	                   the run fails (reason unhealthy) and restarts as above
//	running/healthy/unhealthy → restarting → starting (a dependency notice
//	                   with Restart, at once, not charged to max_restarts)
//	any state → stopped (BehaviorStop, Revert, an ack's Stop, fencing)
//
// A run that ends with exit code 0 completes; any other end fails, with the
// executor's Result in the report. A service whose health check fails
// Retries times in a row (after its start period) ends its run like a
// crash: the instance is killed, the Result's reason is
// executor.ReasonUnhealthy, and the restart policy applies; after
// max_restarts the allocation fails (and the orchestrator redeploys it). A
// start that cannot succeed by retrying (an invalid spec, an artifact whose
// content does not match its digest) fails without restarts.
//
// # Tracing
//
// With Config.Tracer, an allocation whose start carries a trace (the
// deployment's, from its orchestrator) makes spans in it (trace.go): one
// "allocation" span per run segment, with every restart as a span event,
// and one "allocation start" span per start of an instance, with the
// executor's start latency. The traceparent is kept in the Record, so the
// spans after a restart of the node are in the same trace. Manager.Held
// says which orchestrators may read this node's spans of a deployment
// (docs/observability.md).
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
// checker while an instance runs, a reporter until its final report (and
// at most one heartbeat in flight beside it), and a remover while an
// acknowledgement's Stop is carried out;
// Close stops them all and waits. The actors' behaviors run concurrently
// (a long poll does not hold up a stop); start, stop and remove of one
// allocation are serialized.
package allocation
