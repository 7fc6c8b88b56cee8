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
// every other as connected. Each round it asks every peer for its peers
// and dials again each pair not yet connected both ways (libp2p backs
// off from an address it just failed to dial, and connections close
// after a partition), until timeout. The error names a pair still apart.
func Mesh(ctx context.Context, peers []Peer, timeout time.Duration) error {
	var (
		missing string // the first pair apart in the last round
		fatal   error  // a peer that does not answer
		dialMu  sync.Mutex
		dialErr error // the last failed dial
	)
	err := poll.Until(ctx, timeout, "every node connected to every other", func(ctx context.Context) (bool, error) {
		conn := make([]map[string]bool, len(peers))
		errs := make([]error, len(peers))
		var wg sync.WaitGroup
		for i, p := range peers {
			wg.Go(func() {
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
		for j, p := range peers {
			for i, q := range peers[:j] {
				switch {
				case missing != "":
				case !conn[i][p.PeerID]:
					missing = fmt.Sprintf("%s is not connected to %s", q.Name, p.Name)
				case !conn[j][q.PeerID]:
					missing = fmt.Sprintf("%s is not connected to %s", p.Name, q.Name)
				}
			}
			wg.Go(func() {
				for i, q := range peers[:j] {
					if conn[j][q.PeerID] && conn[i][p.PeerID] {
						continue
					}
					if _, err := p.API.Connect(ctx, q.Addr); err != nil {
						dialMu.Lock()
						dialErr = fmt.Errorf("%s to %s: %w", p.Name, q.Name, err)
						dialMu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		return missing == "", nil
	})
	var te *poll.TimeoutError
	switch {
	case err == nil:
		return nil
	case fatal != nil && errors.Is(err, fatal):
		return fatal
	case errors.As(err, &te) && missing != "":
		err = fmt.Errorf("%s within %s", missing, timeout)
		if dialErr != nil {
			err = fmt.Errorf("%w (last dial: %v)", err, dialErr)
		}
		return err
	}
	return err
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

// each runs fn for 0..n-1 at once and returns the first error by index.
func each(n int, fn func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
