package devnet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/poll"
)

// A Member is a started node as WaitReady reaches it: a dms devnet
// process, an e2etest process, a featureenv container.
type Member interface {
	// API returns a client for the node's API, or an error while the
	// node has published none (no api.addr yet).
	API() (*api.Client, error)
	// Exited returns nil while the node runs, and once it has ended an
	// error saying how (its last log line, its exit code).
	Exited(ctx context.Context) error
}

// ErrExited is matched (errors.Is) by WaitReady's error when the node
// ended before its API answered.
var ErrExited = errors.New("exited before its API answered")

// nodeCallTimeout bounds each call WaitReady makes to a node's API.
const nodeCallTimeout = 2 * time.Second

// WaitReady waits until m's API answers and returns a client for it and
// the node's identity and addresses. It fails early when m exits (an
// error matching ErrExited and saying how), with a *poll.TimeoutError
// after timeout, or with ctx's error.
func WaitReady(ctx context.Context, m Member, timeout time.Duration) (*api.Client, *api.Node, error) {
	var (
		c       *api.Client
		self    *api.Node
		exited  error
		lastErr error // why the API did not answer, last time
	)
	err := poll.Until(ctx, timeout, "its API answers", func(ctx context.Context) (bool, error) {
		cl, err := m.API()
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, nodeCallTimeout)
			var n *api.Node
			n, err = cl.Node(cctx)
			cancel()
			if err == nil {
				c, self = cl, n
				return true, nil
			}
		}
		lastErr = err
		if err := m.Exited(ctx); err != nil {
			exited = fmt.Errorf("%w: %w", ErrExited, err)
			return false, exited
		}
		return false, nil
	})
	var te *poll.TimeoutError
	switch {
	case err == nil:
		return c, self, nil
	case exited != nil:
		return nil, nil, exited
	case errors.As(err, &te):
		te.Last = lastErr
		return nil, nil, te
	case ctx.Err() != nil:
		return nil, nil, ctx.Err()
	}
	return nil, nil, err
}

// A Peer is a node whose API answers, as the network steps use it.
type Peer struct {
	Name   string // for errors: node1, eu-2
	PeerID string
	Addr   string // the full multiaddr the other nodes dial it on
	API    *api.Client
}

// Mesh connects every peer to every other and returns once each lists
// every other as connected: MeshWith with no grace and the default bound
// on dials.
func Mesh(ctx context.Context, peers []Peer, timeout time.Duration) error {
	_, err := MeshWith(ctx, peers, MeshOptions{Timeout: timeout})
	return err
}

// MeshOptions say how MeshWith connects the peers.
type MeshOptions struct {
	Timeout time.Duration // for every peer to list every other as connected
	// Grace is how long the peers' own discovery (bootstrap, DHT) may
	// connect them before MeshWith dials the pairs still apart; 0 dials
	// at once.
	Grace time.Duration
	// Dials bounds the Connect calls in flight, all peers together
	// (0: DefaultMeshDials), so that a hundred nodes are not asked for
	// 4,950 connections at once.
	Dials int
}

// DefaultMeshDials is MeshOptions.Dials when it is 0.
const DefaultMeshDials = 16

// MeshResult says how the peers came to be connected.
type MeshResult struct {
	Took time.Duration // until every peer listed every other
	// Discovered says the peers' discovery connected every pair on its
	// own, within the grace: no pair was dialed.
	Discovered bool
	// Dialed counts the Connect calls MeshWith made (pairs dialed, each
	// round).
	Dialed int
	// Apart is the number of pairs (of n·(n−1)/2) still apart when the
	// grace ended; 0 when discovery connected them all.
	Apart int
}

// MeshWith connects every peer to every other and returns once each lists
// every other as connected. Each round it asks every peer for its peers;
// once opts.Grace has passed it dials again each pair not yet connected
// both ways (libp2p backs off from an address it just failed to dial, and
// connections close after a partition), at most opts.Dials at once, until
// opts.Timeout. The error names a pair still apart.
func MeshWith(ctx context.Context, peers []Peer, opts MeshOptions) (MeshResult, error) {
	var (
		res     MeshResult
		missing string // the first pair apart in the last round
		fatal   error  // a peer that does not answer
		dialMu  sync.Mutex
		dialErr error // the last failed dial
		dialing bool  // the grace is over
	)
	dials := opts.Dials
	if dials <= 0 {
		dials = DefaultMeshDials
	}
	start := time.Now()
	// A round asks every peer for its list: a hundred peers are asked
	// once a second at most, not ten times (poll's pace), which would
	// load the nodes whose discovery it waits for.
	gap := time.Duration(len(peers)) * 10 * time.Millisecond
	var last time.Time
	err := poll.Until(ctx, opts.Timeout, "every node connected to every other", func(ctx context.Context) (bool, error) {
		if time.Since(last) < gap {
			return false, nil
		}
		last = time.Now()
		conn := make([]map[string]bool, len(peers))
		errs := make([]error, len(peers))
		var wg sync.WaitGroup
		list := make(chan struct{}, max(dials, eachLimit))
		for i, p := range peers {
			wg.Go(func() {
				list <- struct{}{}
				defer func() { <-list }()
				ps, err := p.API.Peers(ctx)
				if err != nil {
					errs[i] = fmt.Errorf("%s: list peers: %w", p.Name, err)
					return
				}
				conn[i] = map[string]bool{}
				for _, q := range ps {
					conn[i][q.ID] = q.Connected
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			fatal = err // unless only ctx ended: then Until goes on
			return false, err
		}
		missing = ""
		type pair struct{ from, to int }
		var apart []pair
		for j, p := range peers {
			for i, q := range peers[:j] {
				switch {
				case !conn[i][p.PeerID]:
					apart = append(apart, pair{j, i})
					if missing == "" {
						missing = fmt.Sprintf("%s is not connected to %s", q.Name, p.Name)
					}
				case !conn[j][q.PeerID]:
					apart = append(apart, pair{j, i})
					if missing == "" {
						missing = fmt.Sprintf("%s is not connected to %s", p.Name, q.Name)
					}
				}
			}
		}
		if len(apart) == 0 {
			return true, nil
		}
		if !dialing {
			if time.Since(start) < opts.Grace {
				return false, nil
			}
			dialing, res.Apart = true, len(apart)
		}
		sem := make(chan struct{}, dials)
		for _, pr := range apart {
			p, q := peers[pr.from], peers[pr.to]
			res.Dialed++
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if _, err := p.API.Connect(ctx, q.Addr); err != nil {
					dialMu.Lock()
					dialErr = fmt.Errorf("%s to %s: %w", p.Name, q.Name, err)
					dialMu.Unlock()
				}
			})
		}
		wg.Wait()
		return false, nil
	})
	res.Took = time.Since(start)
	res.Discovered = err == nil && res.Dialed == 0
	var te *poll.TimeoutError
	switch {
	case err == nil:
		return res, nil
	case fatal != nil && errors.Is(err, fatal):
		return res, fatal
	case errors.As(err, &te) && missing != "":
		err = fmt.Errorf("%s within %s", missing, opts.Timeout)
		if dialErr != nil {
			err = fmt.Errorf("%w (last dial: %v)", err, dialErr)
		}
		return res, err
	}
	return res, err
}

// TrustOperator makes every peer trust operator (a user's DID) for every
// command (api.CmdRoot), at once through their APIs. The error is the
// first peer's that failed.
func TrustOperator(ctx context.Context, peers []Peer, operator string) error {
	return each(len(peers), func(i int) error {
		if err := peers[i].API.Anchor(ctx, api.AnchorRequest{Root: operator, Cmd: api.CmdRoot}); err != nil {
			return fmt.Errorf("%s: trust the operator: %w", peers[i].Name, err)
		}
		return nil
	})
}

// Onboard onboards req on every peer at once, then, when benchmark > 0,
// runs each one's machine benchmark for up to that long. The error is the
// first peer's that failed; a refusal (too much asked) is an *api.Error
// with code api.CodeRefused.
func Onboard(ctx context.Context, peers []Peer, req api.OnboardRequest, benchmark time.Duration) error {
	return each(len(peers), func(i int) error {
		p := peers[i]
		if _, err := p.API.Onboard(ctx, req); err != nil {
			return fmt.Errorf("%s: onboard: %w", p.Name, err)
		}
		if benchmark > 0 {
			if _, err := p.API.Benchmark(ctx, api.BenchmarkRequest{BudgetMS: benchmark.Milliseconds()}); err != nil {
				return fmt.Errorf("%s: benchmark: %w", p.Name, err)
			}
		}
		return nil
	})
}

// each runs fn for 0..n-1, at most eachLimit at once, and returns the
// first error by index.
func each(n int, fn func(i int) error) error { return eachN(n, eachLimit, fn) }

// eachLimit bounds the API calls each makes at once: a hundred nodes
// answer as fast 32 at a time, without a hundred sockets opened at once.
const eachLimit = 32

// eachN runs fn for 0..n-1, at most limit at once, and returns the first
// error by index.
func eachN(n, limit int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
