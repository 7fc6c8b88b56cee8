package orchestrator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/contract"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/subnet"
)

// Wallet holds the delegation chains the node's actors present (the node's
// wallet): an orchestrator acts with the chains its node delegates to it.
type Wallet interface {
	Add(chain cap.Chain)
}

// Config configures a Service.
type Config struct {
	System *actor.System
	// S3 reads the s3 out volumes of dms deployment results; nil: they
	// are not fetched through this node.
	S3     S3Reader
	Node   *actor.Actor  // the node's root actor
	Key    *identity.Key // the node key: delegates to orchestrators
	Store  Store
	Wallet Wallet
	Sealer *identity.Sealer // seals orchestrator keys at rest
	// Peers lists the peers this node is connected to: the candidates a
	// bid round waits for (it ends early when all of them answered).
	Peers func() []string

	BidWindow    time.Duration // default 1s
	QueueTimeout time.Duration // default 10m; a spec's timeouts.queue overrides it
	RetryMax     time.Duration // longest wait between bid rounds while queued; default 15s
	LostAfter    time.Duration // an allocation silent this long is lost; default 10s
	// StopAfter is how long a provider runs an allocation on without an
	// acknowledgement from the orchestrator (sent with every commit);
	// default deployproto.DefaultStopAfterFactor × LostAfter.
	StopAfter     time.Duration
	CommitTimeout time.Duration // default 15s
	// Lease is how long a primary orchestrator may decide after a standby
	// acknowledged it; a standby takes over after 1.5 × Lease without word
	// (standby.go). Default 10s.
	Lease time.Duration
	// Pool is where the subnets of deployments that ask for one
	// (network.subnet) are carved from; nil: subnet.DefaultPool in blocks
	// of subnet.DefaultBits, unchecked against the host's networks.
	Pool *subnet.Pool
	// Contracts proposes the contract of every placed node, completes it
	// with the provider's signature and abandons it when the placement is
	// reverted (contracts.go); nil: commits carry no contract.
	// ContractInterval is the metering interval of a contract whose
	// ensemble sets none; default contract.DefaultInterval.
	Contracts        Contracts
	ContractInterval time.Duration
	Logger           *slog.Logger
	Now              func() time.Time
	// Tracer starts the deployments' spans (trace.go); default a no-op
	// tracer: deployments are not traced.
	Tracer trace.Tracer
}

func (c *Config) setDefaults() {
	if c.BidWindow <= 0 {
		c.BidWindow = time.Second
	}
	if c.QueueTimeout <= 0 {
		c.QueueTimeout = 10 * time.Minute
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 15 * time.Second
	}
	if c.LostAfter <= 0 {
		c.LostAfter = 10 * time.Second
	}
	if c.StopAfter <= 0 {
		c.StopAfter = deployproto.DefaultStopAfterFactor * c.LostAfter
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 15 * time.Second
	}
	if c.ContractInterval <= 0 {
		c.ContractInterval = contract.DefaultInterval
	}
	if c.Lease <= 0 {
		c.Lease = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Tracer == nil {
		c.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if c.Peers == nil {
		c.Peers = func() []string { return nil }
	}
	if c.Pool == nil {
		c.Pool, _ = subnet.NewPool(subnet.DefaultPool, subnet.DefaultBits, nil)
	}
}

// Service runs the deployments submitted to this node, one orchestrator
// actor each.
type Service struct {
	cfg Config
	log *slog.Logger

	offers *offerCache
	known  *knownProviders

	// resumed is set once Resume has loaded the persisted deployments:
	// replicates wait for it, so that one arriving at a restarting node
	// does not overwrite a record before it is loaded (standby.go).
	resumed atomic.Bool

	mu   sync.Mutex
	deps map[string]*run // guarded by mu
	// ha serializes replicas, takeovers and step-downs (standby.go).
	ha   sync.Mutex
	wg   sync.WaitGroup
	ctx  context.Context
	stop context.CancelFunc

	// secrets seals the deployments' secrets at rest (secrets.go).
	secrets *identity.Sealer

	// pool hands out the deployments' subnets (subnet.go).
	pool *subnetPool

	fetchMu  sync.Mutex
	fetching map[string]bool // guarded by fetchMu: artifact digests a standby is fetching (standby_artifacts.go)

	stats serviceStats // stats.go
}

// NewService returns a service with no deployments; call Resume to pick up
// those persisted.
func NewService(cfg Config) (*Service, error) {
	if cfg.System == nil || cfg.Node == nil || cfg.Key == nil || cfg.Store == nil || cfg.Wallet == nil || cfg.Sealer == nil {
		return nil, errors.New("orchestrator: incomplete config")
	}
	cfg.setDefaults()
	secrets, err := identity.NewSealer(cfg.Key, secretsPurpose)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, log: cfg.Logger.With("component", "orchestrator"), offers: newOfferCache(), known: newKnownProviders(maxKnownProviders), deps: map[string]*run{}, ctx: ctx, stop: stop,
		fetching: map[string]bool{}, secrets: secrets, pool: &subnetPool{pool: &subnet.Pool{Prefix: cfg.Pool.Prefix, Bits: cfg.Pool.Bits}}}
	// This node may be a standby orchestrator of others' deployments (standby.go).
	cfg.Node.AddBehavior(deployproto.BehaviorReplicate, s.onReplicate)
	return s, nil
}

// Submission is an ensemble to deploy.
type Submission struct {
	// Spec is validated, its local files replaced by their digests.
	Spec  *ensemble.Spec
	Owner identity.DID
	// Chains are the owner's delegations to this node of CmdDeployment and
	// CmdAllocation, with which the orchestrator acts on the network.
	Chains []cap.Chain
	// Artifacts are the files the spec references, by digest.
	Artifacts map[string][]byte
	// Secrets are the secrets the spec names (an s3 volume's
	// credentials.secret): the text of a credentials file, by name. They
	// are kept sealed and given only to the providers that need them
	// (secrets.go).
	Secrets map[string]string
}

// deployable checks an ensemble as Submit and Plan take it: present, valid,
// and using nothing this release cannot deploy.
func deployable(spec *ensemble.Spec) error {
	_, err := deployableYAML(spec)
	return err
}

// deployableYAML checks spec as deployable does and returns its YAML
// (ensemble.Marshal), written once for both.
func deployableYAML(spec *ensemble.Spec) ([]byte, error) {
	if spec == nil {
		return nil, errors.New("no ensemble")
	}
	raw, err := spec.ValidateMarshal()
	if err != nil {
		return nil, err
	}
	if probs := spec.Unsupported(); len(probs) > 0 {
		return nil, fmt.Errorf("cannot deploy this ensemble: %w", probs)
	}
	return raw, nil
}

// Submit accepts a deployment and starts its orchestrator.
func (s *Service) Submit(ctx context.Context, sub Submission) (*Deployment, error) {
	began := time.Now() // the root span's start (trace.go)
	raw, err := deployableYAML(sub.Spec)
	if err != nil {
		return nil, err
	}
	if err := CheckSecrets(sub.Spec, sub.Secrets); err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	chains, err := s.checkChains(sub.Chains, now)
	if err != nil {
		return nil, err
	}
	if files := sub.Spec.LocalFiles(); len(files) > 0 {
		return nil, fmt.Errorf("%s: local file %s was not shipped (the CLI replaces local files by their sha256 digests)", files[0].Path, files[0].File)
	}
	var digests []string
	for d, data := range sub.Artifacts {
		sum := sha256.Sum256(data)
		if d != "sha256:"+hex.EncodeToString(sum[:]) {
			return nil, fmt.Errorf("artifact %s: content does not match its digest", d)
		}
		if err := s.cfg.Store.PutArtifact(d, data); err != nil {
			return nil, fmt.Errorf("store artifact: %w", err)
		}
		digests = append(digests, d)
	}
	sort.Strings(digests)
	for _, ref := range referencedFiles(sub.Spec) {
		if _, ok := sub.Artifacts[ref]; !ok {
			if _, _, err := s.cfg.Store.Artifact(ref, 0, 1); err != nil {
				return nil, fmt.Errorf("the ensemble references %s, which was not shipped with it", ref)
			}
			digests = append(digests, ref)
		}
	}
	key, err := identity.NewKey()
	if err != nil {
		return nil, err
	}
	id := newID()
	sealed, err := s.sealSecrets(id, sub.Secrets)
	if err != nil {
		return nil, err
	}
	d := &Deployment{
		ID: id, Owner: sub.Owner, Spec: raw, State: Queued, Created: now, Updated: now,
		Message:       "waiting for bids",
		Orchestrator:  actor.Handle{DID: key.DID(), Host: s.cfg.System.Self(), Inbox: "orch/" + id},
		SealedKey:     s.cfg.Sealer.SealKey(key),
		SealedSecrets: sealed,
		Artifacts:     digests,
		Placement:     map[string]Placement{},
		Allocations:   map[string]*Allocation{},
	}
	if sub.Spec.Network.Subnet {
		if err := s.planSubnet(d, allocNames(sub.Spec)); err != nil { // subnet.go
			return nil, err
		}
	}
	submitted := false
	defer func() {
		if !submitted && d.Subnet.IsValid() {
			s.pool.release(d.ID)
		}
	}()
	queue := s.cfg.QueueTimeout
	if sub.Spec.Timeouts.Queue > 0 {
		queue = sub.Spec.Timeouts.Queue
	}
	d.QueueDeadline = now.Add(queue)
	if sub.Spec.Timeouts.Total > 0 {
		d.EndDeadline = now.Add(sub.Spec.Timeouts.Total)
	}
	// The node delegates its authority (from the owner) to the
	// orchestrator actor, and nothing more.
	var ocs []cap.Chain
	for _, c := range chains {
		leaf := c.Leaf()
		oc, err := cap.Redelegate(s.cfg.Key, c, cap.DelegationParams{Audience: key.DID(), Command: leaf.Command(), Expiry: leaf.Expiry()}, now)
		if err != nil {
			return nil, fmt.Errorf("delegate to the orchestrator: %w", err)
		}
		text, err := oc.Encode()
		if err != nil {
			return nil, err
		}
		d.Chains = append(d.Chains, text)
		ocs = append(ocs, oc)
	}
	// Standby orchestrators, asked now: one that cannot serve refuses the
	// deployment (standby.go).
	if err := s.withStandbys(ctx, d, sub.Spec, chains); err != nil {
		return nil, err
	}
	// One trace per deployment: its root span, kept in the record (trace.go).
	root := s.startRoot(d, sub.Spec.Metadata, allocNames(sub.Spec), began)
	if err := s.cfg.Store.PutDeployment(d); err != nil {
		endSpan(root, err)
		return nil, fmt.Errorf("persist deployment: %w", err)
	}
	r, err := s.start(d, key, sub.Spec, ocs, root)
	if err != nil {
		endSpan(root, err)
		return nil, err
	}
	submitted = true
	s.log.Info("deployment submitted", "deployment_id", id, "owner", sub.Owner.Short(), "allocations", len(sub.Spec.Allocations))
	return r.snapshot(), nil
}

// checkChains returns the chains for CmdDeployment and CmdAllocation held
// by this node.
func (s *Service) checkChains(chains []cap.Chain, now time.Time) ([]cap.Chain, error) {
	need := map[string]cap.Chain{deployproto.CmdDeployment: nil, deployproto.CmdAllocation: nil}
	for _, c := range chains {
		if len(c) == 0 || c.Holder() != s.cfg.Key.DID() {
			continue
		}
		leaf := c.Leaf()
		if exp := leaf.Expiry(); !exp.IsZero() && now.After(exp) {
			continue
		}
		for cmd := range need {
			if cap.Covers(leaf.Command(), cmd) && need[cmd] == nil {
				need[cmd] = c
			}
		}
	}
	var out []cap.Chain
	for _, cmd := range []string{deployproto.CmdDeployment, deployproto.CmdAllocation} {
		if need[cmd] == nil {
			return nil, fmt.Errorf("the deployment carries no delegation of %s to this node (dms deploy makes one with the user key)", cmd)
		}
		if len(out) == 0 || out[len(out)-1].Leaf().CID() != need[cmd].Leaf().CID() {
			out = append(out, need[cmd])
		}
	}
	return out, nil
}

// referencedFiles lists the digests a spec's executions reference.
func referencedFiles(spec *ensemble.Spec) []string {
	var out []string
	for _, a := range spec.Allocations {
		for _, ref := range []string{a.Execution.Module, a.Execution.Kernel, a.Execution.Initrd, a.Execution.Rootfs} {
			if ensemble.IsDigest(ref) {
				out = append(out, ref)
			}
		}
	}
	sort.Strings(out)
	return compact(out)
}

func compact(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a deployment ID: "d" and 12 random base32 characters.
func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "d" + idEncoding.EncodeToString(b)[:12]
}

// start spawns the orchestrator actor of d and its run loop.
// chains are d.Chains decoded, or nil to decode them here; root is the
// deployment's live root span (trace.go), nil but at submit.
func (s *Service) start(d *Deployment, key *identity.Key, spec *ensemble.Spec, chains []cap.Chain, root trace.Span) (*run, error) {
	if chains == nil {
		for _, text := range d.Chains {
			c, err := cap.DecodeChain([]byte(text))
			if err != nil {
				return nil, fmt.Errorf("deployment %s: chain: %w", d.ID, err)
			}
			chains = append(chains, c)
		}
	}
	for _, c := range chains {
		s.cfg.Wallet.Add(c)
	}
	if d.Subnet.IsValid() && !d.State.Terminal() {
		s.pool.mark(d.ID, d.Subnet) // resumed or taken over: its block stays its own (subnet.go)
	}
	workers := 4
	if d.State.Terminal() {
		workers = 1 // log reads and late reports only
	}
	a, err := s.cfg.System.Spawn(key, d.Orchestrator.Inbox, actor.SpawnOptions{Workers: workers})
	if err != nil {
		return nil, err
	}
	r := newRun(s, d, a, spec, key, chains)
	r.root = root
	r.ha = newHAState(s.cfg.Now(), d.Standbys)
	a.AddBehavior(deployproto.BehaviorReport, r.onReport)
	a.AddBehavior(deployproto.BehaviorArtifact, r.onArtifact)
	a.AddBehavior(deployproto.BehaviorShutdown, r.onShutdown) // forwarded by standbys (standby.go)
	// A step-down (standby.go) cancels ctx: the loop and replication end.
	ctx, cancel := context.WithCancel(s.ctx)
	r.ha.cancel = cancel // before r is shared
	s.mu.Lock()
	s.deps[d.ID] = r
	s.mu.Unlock()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if !r.rejoin(ctx) { // standby.go: a primary asks its standbys first
			return
		}
		r.resendSubnet(ctx) // subnet.go: a resumed or taken-over deployment signs its table anew
		r.loop(ctx)
	}()
	go func() {
		defer s.wg.Done()
		defer cancel()
		r.replicate(ctx) // standby.go
	}()
	return r, nil
}

// Resume restarts the orchestrators of persisted deployments that had not
// ended, after a node restart; their allocations keep reporting to the same
// actor handles.
func (s *Service) Resume(ctx context.Context) error {
	ds, err := s.cfg.Store.Deployments()
	if err != nil {
		return err
	}
	for _, d := range ds {
		d = d.clone()      // what the store gave is read-only: it may be what it was given (Store)
		if d.IsStandby() { // a replica: no actor, no loop, only its watcher (standby.go)
			if err := s.startStandby(d, false); err != nil {
				return err
			}
			continue
		}
		key, err := s.cfg.Sealer.OpenKey(d.SealedKey, d.Orchestrator.DID)
		if err != nil {
			return fmt.Errorf("deployment %s: orchestrator key: %w", d.ID, err)
		}
		spec, err := ensemble.Parse(d.Spec)
		if err != nil {
			return fmt.Errorf("deployment %s: %w", d.ID, err)
		}
		d.Orchestrator.Host = s.cfg.System.Self()
		// The allocations reported while this node was down: give them a
		// whole lost_after to report again before they count as lost.
		now := s.cfg.Now()
		for _, a := range d.Allocations {
			if !a.State.Terminal() {
				a.LastSeen = now
			}
		}
		state := d.State // d is the run's once started
		if _, err := s.start(d, key, spec, nil, nil); err != nil {
			return err
		}
		if !state.Terminal() {
			s.log.Info("deployment resumed", "deployment_id", d.ID, "state", state)
		}
	}
	s.resumed.Store(true)
	return nil
}

func (s *Service) get(id string) (*run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.deps[id]
	if !ok {
		return nil, fmt.Errorf("deployment %s: %w", id, ErrNotFound)
	}
	return r, nil
}

// Get returns a copy of a deployment.
func (s *Service) Get(id string) (*Deployment, error) {
	r, err := s.get(id)
	if err != nil {
		return nil, err
	}
	return r.snapshot(), nil
}

// List returns copies of every deployment, newest first.
func (s *Service) List() []*Deployment {
	s.mu.Lock()
	rs := make([]*run, 0, len(s.deps))
	for _, r := range s.deps {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	out := make([]*Deployment, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// Wait blocks until the deployment's version exceeds after (or ctx is
// done) and returns it: a long poll for progress. What it returns is
// shared with the other readers of that version (the copy persisted with
// it, most of the time): the caller must not change it (Get returns a
// copy of its own).
func (s *Service) Wait(ctx context.Context, id string, after uint64) (*Deployment, error) {
	r, err := s.get(id)
	if err != nil {
		return nil, err
	}
	for {
		r.mu.Lock()
		d, ch := r.d, r.changed
		ready := d.Version > after || d.State.Terminal() && d.Version >= after
		r.mu.Unlock()
		if ready { // a later version than this one is as good
			return r.view(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return r.view(), nil
		}
	}
}

// Shutdown stops a deployment: its allocations are stopped and its
// resources released. It returns once the request is recorded.
func (s *Service) Shutdown(ctx context.Context, id string) (*Deployment, error) {
	r, err := s.get(id)
	if err != nil {
		return nil, err
	}
	if r.snapshot().IsStandby() { // standby.go: the primary shuts it down
		return s.forwardShutdown(ctx, r)
	}
	r.requestShutdown()
	return r.snapshot(), nil
}

// Close stops every run loop (the deployments stay persisted and resume at
// the next start) and waits for them.
func (s *Service) Close(ctx context.Context) error {
	s.stop()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Logs streams the logs of a deployment's allocations (all, or the one
// named) that pass filter to emit, from the beginning (or the last
// filter.Tail lines of each); with follow it keeps streaming until they end
// or ctx is done.
func (s *Service) Logs(ctx context.Context, id, alloc string, follow bool, filter deployproto.LogFilter, emit func(alloc string, e deployproto.LogEntry)) error {
	r, err := s.get(id)
	if err != nil {
		return err
	}
	return r.logs(ctx, alloc, follow, filter, emit)
}

// allocNames returns the allocation names of a spec, sorted.
func allocNames(spec *ensemble.Spec) []string {
	names := make([]string, 0, len(spec.Allocations))
	for n := range spec.Allocations {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func joinNames(s []string) string { return strings.Join(s, ", ") }

// ForgetOffers empties the offer cache, so that the next bid rounds
// broadcast (for benchmarks and tests).
func (s *Service) ForgetOffers() {
	s.offers.mu.Lock()
	clear(s.offers.offers)
	s.offers.mu.Unlock()
}
