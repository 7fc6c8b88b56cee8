// Package node is the composition root of the dms daemon: it builds every
// subsystem from the configuration and the node key, runs them, and stops
// them in reverse order. Only cmd/dms (through internal/cli) imports it, and
// it is the only package that imports the concrete adapters (libp2p, bbolt,
// executors).
//
// Start order (Run; each step registers its undo, run in reverse at
// shutdown or on a failed start):
//
//  0. debug         pprof on loopback and the memory limit, when configured;
//     the metrics registry (metrics.go), when telemetry.metrics is on: its
//     scrape-time sources are wired after step 5, /metrics served in 6
//  1. store         <home>/data/dms.db (bbolt): capability state, deployments,
//     allocations, resource accounting and the nonces of one-shot
//     invocations accepted (replay.go); then tracing (telemetry.go):
//     the tracer, the export to a collector and the local record of
//     spans in the store, stopped after the network
//  2. cap           the verifier, with this node's trust anchors and
//     revocations (startCaps)
//  3. resource      the machine: detection and the ledger of onboarded and
//     reserved resources (startResources; onboarding benchmarks the
//     machine when no scores of the current version exist)
//  4. p2p, actor    the libp2p host (TCP, QUIC, discovery, gossip), the actor
//     runtime on it and the node's root actor with its behaviors
//     (startNetwork, addResourceBehaviors)
//  5. orchestration the subnet data path (when the machine can run it:
//     startSubnets), the executors, the allocation manager, the contract
//     ledger and notary (contracts.go), the provider (allocation), the
//     orchestrator service; what an earlier run left is resumed
//     (startOrchestration), the stored routing tables before the
//     allocations; then the notary runs
//  6. apiserver     the REST API on loopback; <home>/api.addr is written once
//     it listens
//
// Run returns when its context is cancelled (SIGINT, SIGTERM): the API stops
// taking requests, running behaviors finish or are answered, links close,
// and the store is closed last, so nothing committed is lost.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/allocation"
	"github.com/dmsnet/dms/internal/apiserver"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/cap/capstore"
	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/contract/ledger"
	"github.com/dmsnet/dms/internal/contract/notary"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/identity"
	"github.com/dmsnet/dms/internal/orchestrator"
	"github.com/dmsnet/dms/internal/p2p"
	"github.com/dmsnet/dms/internal/resource"
	"github.com/dmsnet/dms/internal/storage/s3"
	"github.com/dmsnet/dms/internal/store"
	"github.com/dmsnet/dms/internal/telemetry"
	"github.com/dmsnet/dms/internal/telemetry/logs"
	"github.com/dmsnet/dms/internal/telemetry/metrics"
)

// SpanSource is the local record of the spans this node finished.
type SpanSource interface {
	// Spans returns the records of one trace (32 hex digits), oldest first.
	Spans(traceID string) ([]telemetry.SpanRecord, error)
}

// Files of a dms home the node uses.
const (
	StoreFile   = "data/dms.db"
	APIAddrFile = "api.addr"
)

// Config is what the daemon needs from its caller.
type Config struct {
	Home    string
	Config  config.Config
	Key     *identity.Key // the node key, decrypted
	UserDID identity.DID  // the home's user key, shown in /api/v1/node
	Token   string        // the REST API token
	Version string
	Logger  *slog.Logger
	// Ready, when set, is called once the API listens, with its address.
	Ready func(apiAddr string)
}

// Node is a running dms node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	started time.Time
	s3      *s3.Transfer // S3 transfers of volumes and results (storage.go)

	db     *store.DB
	caps   *capstore.Store
	verify *cap.Verifier
	wallet *wallet
	host   *p2p.Host
	// allocs and deploys are the orchestration (deploy.go).
	allocs  *allocation.Manager
	deploys *orchestrator.Service
	// notary and ledger run this node's contracts (contracts.go), as
	// provider and requester.
	notary *notary.Notary
	ledger *ledger.Local
	// testExecs, set by tests, replaces the configured executors.
	testExecs map[ensemble.Executor]executor.Executor
	// runnable are the executors this node runs; set once at start.
	runnable map[string]bool
	// rtts are the last probes' round trips, by peer (deploy.go).
	rttMu sync.Mutex
	rtts  map[string][]time.Duration // guarded by rttMu
	sys   *actor.System
	root  *actor.Actor
	api   *apiserver.Server

	// resources is the resource accounting (resources.go): onboarding,
	// and Bid/Reserve/Commit/Release for the orchestration.
	resources *resource.Ledger
	res       resourceRuntime

	// tracer starts this node's spans (telemetry.go); a no-op tracer
	// until tracing starts. spans is the local record of finished spans,
	// nil when tracing is off.
	tracer  trace.Tracer
	spans   SpanSource
	tracing *telemetry.Tracing // nil until tracing starts
	// logSink exports log records to an Elasticsearch-API store (logs.go);
	// nil when none is configured.
	logSink *logs.Sink
	// metrics are the node's Prometheus metrics (metrics.go), nil when
	// telemetry.metrics is off; provider counts its bids for them.
	metrics  *metrics.Metrics
	provider *allocation.Provider

	// subnets is the provider side of the deployments' subnets
	// (subnet.go), nil when this node runs none: noSubnet says why.
	subnets  *subnets
	noSubnet string
}

// Run starts the node and blocks until ctx is cancelled, then shuts down.
func Run(ctx context.Context, cfg Config) (err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, started: time.Now(), wallet: newWallet(), tracer: noop.NewTracerProvider().Tracer(""),
		metrics: newMetrics(cfg.Config.Telemetry.Metrics)}
	// Every step registers its undo; on failure or shutdown they run in
	// reverse order.
	var undo []func() error
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			if e := undo[i](); e != nil {
				n.log.Warn("shutdown step failed", "err", e)
				err = errors.Join(err, e)
			}
		}
		if err == nil {
			n.log.Info("node stopped")
		}
	}()

	// 0. log export (first: every later step logs to it)
	stopLogs, err := n.startLogs()
	if err != nil {
		return err
	}
	undo = append(undo, stopLogs)

	// 0. debug
	stopDebug, err := n.startDebug()
	if err != nil {
		return err
	}
	undo = append(undo, stopDebug)

	// 1. store
	if err := os.MkdirAll(filepath.Join(cfg.Home, "data"), 0o700); err != nil {
		return err
	}
	sopts := store.Options{Timeout: 2 * time.Second}
	if n.metrics != nil {
		sopts.OnCommit = n.metrics.StoreCommit
	}
	n.db, err = store.Open(filepath.Join(cfg.Home, StoreFile), sopts)
	if err != nil {
		return err
	}
	undo = append(undo, n.db.Close)

	// 1b. tracing, on the store, before the network (telemetry.go)
	stopTracing, err := n.startTracing()
	if err != nil {
		return err
	}
	undo = append(undo, stopTracing)

	// 2, 3. capabilities, resource accounting
	if err := n.startCaps(); err != nil {
		return err
	}
	if err := n.startResources(ctx); err != nil {
		return err
	}

	// 4. p2p and actors
	stop, err := n.startNetwork(ctx)
	if err != nil {
		return err
	}
	undo = append(undo, stop)
	n.addResourceBehaviors()

	// 5. orchestration: deployments, bids, allocations
	stopOrch, err := n.startOrchestration(ctx)
	if err != nil {
		return err
	}
	undo = append(undo, stopOrch)
	if err := n.watchMetrics(); err != nil {
		return err
	}

	// 6. REST API
	n.api, err = apiserver.New(apiserver.Config{
		Addr:        cfg.Config.API.Listen,
		Token:       cfg.Token,
		Version:     cfg.Version,
		Logger:      n.log,
		Node:        nodeInfo{n},
		Peers:       peerService{n},
		Actors:      newRelay(n.sys),
		Resources:   resourceService{n},
		Caps:        capService{n},
		Deployments: deploymentService{n},
		Plans:       planService{n},
		Results:     resultService{n},
		Contracts:   newContractService(n.notary, n.ledger, cfg.Key.DID()),
		Traces:      traceService{n},
		Metrics:     n.metricsHandler(),
		UserKey:     userKeyService{n},
	})
	if err != nil {
		return err
	}
	addr, err := n.api.Listen()
	if err != nil {
		return err
	}
	addrFile := filepath.Join(cfg.Home, APIAddrFile)
	if err := os.WriteFile(addrFile, []byte(addr.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", addrFile, err)
	}
	undo = append(undo, func() error { return os.Remove(addrFile) })
	n.log.Info("node running", "peer_id", n.host.ID(), "did", cfg.Key.DID(), "api", addr.String(), "addrs", n.host.Addrs())
	if cfg.Ready != nil {
		cfg.Ready(addr.String())
	}
	// Unlocking the node key (scrypt, 32 MiB) and starting up leave tens of
	// MiB of garbage; return it now rather than at the first GC, so an
	// idle node stays small.
	debug.FreeOSMemory()
	if size, err := trimBinary(); err != nil {
		n.log.Debug("binary pages not trimmed", "err", err)
	} else {
		n.log.Debug("binary pages trimmed", "bytes", size)
	}
	err = n.api.Serve(ctx)
	n.log.Info("shutting down")
	return err
}

// startNetwork starts the libp2p host, the actor runtime on it and the root
// actor with its behaviors. The returned function stops them.
func (n *Node) startNetwork(ctx context.Context) (stop func() error, err error) {
	c := n.cfg.Config
	n.host, err = p2p.New(ctx, p2p.Config{
		Listen:          c.P2P.Listen,
		Bootstrap:       c.P2P.Bootstrap,
		MDNS:            c.P2P.MDNS,
		DHT:             c.P2P.DHT,
		ProtocolPrefix:  c.P2P.ProtocolPrefix,
		Relay:           c.P2P.Relay,
		RelayService:    c.P2P.RelayService,
		HolePunching:    c.P2P.HolePunching,
		ConnLow:         c.P2P.ConnLow,
		ConnHigh:        c.P2P.ConnHigh,
		MaxMemory:       int64(c.P2P.MaxMemory),
		MaxFDs:          c.P2P.MaxFDs,
		MaxInboundConns: c.P2P.MaxInboundConns,
		InboundReserve:  c.P2P.InboundReserve,
		MaxConnsPerPeer: c.P2P.MaxConnsPerPeer,
		MaxConnsPerIP:   c.P2P.MaxConnsPerIP,
		LimitLoopback:   c.P2P.LimitLoopback,
		MaxFrame:        int(c.Actor.MaxEnvelope) + 64<<10,
	}, n.cfg.Key, n.log)
	if err != nil {
		return nil, fmt.Errorf("start p2p: %w", err)
	}
	seen, err := newReplayCache(n.db, max(relayWindow, c.Actor.MaxExpiry.D()+time.Minute), c.Cap.ClockSkew.D(), n.log, time.Now())
	if err != nil {
		n.host.Close()
		return nil, fmt.Errorf("replay cache: %w", err)
	}
	n.sys, err = actor.NewSystem(actor.Config{
		Transport:          n.host,
		Auth:               &authorizer{v: n.verify, seen: seen},
		Issuer:             &issuer{wallet: n.wallet},
		Logger:             n.log,
		Tracer:             n.actorTracer(),
		TraceBehavior:      tracedBehavior,
		Observer:           n.actorObserver(),
		Mailbox:            c.Actor.Mailbox,
		PeerRate:           c.Actor.PeerRate,
		PeerBurst:          c.Actor.PeerBurst,
		MaxEnvelope:        int(c.Actor.MaxEnvelope),
		DefaultTimeout:     c.Actor.DefaultTimeout.D(),
		MaxExpiry:          c.Actor.MaxExpiry.D(),
		MaxSessionsPerLink: c.Actor.MaxSessionsPerLink,
	})
	if err != nil {
		seen.close()
		n.host.Close()
		return nil, err
	}
	stop = func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err := errors.Join(n.sys.Close(sctx), n.host.Close())
		seen.close() // after the runtime: nothing is accepted any more
		return err
	}
	if n.root, err = n.sys.Spawn(n.cfg.Key, actor.RootInbox, actor.SpawnOptions{Workers: 32}); err == nil {
		err = n.addBehaviors()
	}
	if err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}
