package orchestrator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/dmsnet/dms/internal/actor"
	"github.com/dmsnet/dms/internal/cap"
	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/identity"
)

// provision starts the allocations level by level (depends_on order,
// parallel within a level); a level starts when every allocation of the
// previous one is ready: a service running (healthy when it has a
// healthcheck), a task completed.
func (r *run) provision(ctx context.Context) {
	levels, err := r.spec.Levels()
	if err != nil {
		r.fail(ctx, err.Error(), nil)
		return
	}
	for i, level := range levels {
		r.startLevel(ctx, level)
		if i == len(levels)-1 {
			break
		}
		for {
			if ctx.Err() != nil || r.shutdownRequested() {
				return
			}
			ready, failed := r.levelReady(level)
			if ready {
				break
			}
			r.checkLost()
			if failed != "" && !r.heal(ctx) {
				return
			}
			r.propagate(ctx)
			r.waitChange(ctx, r.nextWake(time.Second))
		}
	}
	r.setState(Running, "all allocations started")
}

// startLevel starts the allocations of a level not started yet, in
// parallel. An allocation that cannot be started is marked failed (heal
// places it again).
func (r *run) startLevel(ctx context.Context, level []string) {
	type res struct {
		name string
		err  error
	}
	results := make(chan res, len(level))
	started := 0
	for _, name := range level {
		a := r.view().Allocations[name]
		if a == nil || a.Started {
			continue
		}
		started++
		go func() { results <- res{name, r.startOne(ctx, a)} }()
	}
	for range started {
		rr := <-results
		r.update(true, func(d *Deployment) {
			a := d.Allocations[rr.name]
			if a == nil {
				return
			}
			a.Started = true
			a.LastSeen = r.s.cfg.Now()
			if rr.err != nil {
				a.State, a.Message = deployproto.AllocFailed, "start: "+rr.err.Error()
				d.addEvent(r.s.cfg.Now(), Event{Kind: EventFailed, Allocation: a.Name, Node: a.Node, From: a.Handle.Host, Epoch: a.Epoch,
					Message: fmt.Sprintf("allocation %s could not be started on %s: %v", a.Name, identity.ShortPeerID(a.Handle.Host), rr.err)})
				return
			}
			if a.State == deployproto.AllocPending {
				a.State = deployproto.AllocStarting
			}
		})
	}
}

// startOne delegates to the allocation actor and starts it.
func (r *run) startOne(ctx context.Context, a *Allocation) (err error) {
	ctx, span := r.startSpan(ctx, SpanStart, attribute.String(attrAllocation, strings.TrimPrefix(a.Handle.Inbox, "alloc/")), attribute.String("allocation.name", a.Name),
		attribute.String("provider", a.Handle.Host), attribute.Int("attempt", a.Attempt))
	defer func() { endSpan(span, err) }() // trace.go
	chain, err := r.delegateTo(a.Handle.DID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.s.cfg.CommitTimeout)
	defer cancel()
	err = r.actor.Invoke(ctx, a.Handle, deployproto.BehaviorStart, deployproto.StartRequest{Chain: chain, Epoch: a.Epoch, Contract: a.Contract}, nil)
	r.noteStale(err) // replaced by a standby? (standby.go)
	return err
}

// delegateTo gives an allocation actor CmdDeployment from the
// orchestrator's own chain, so that it can report here.
func (r *run) delegateTo(aud identity.DID) (string, error) {
	for _, c := range r.chains {
		if !cap.Covers(c.Leaf().Command(), deployproto.CmdDeployment) {
			continue
		}
		nc, err := cap.Redelegate(r.key, c, cap.DelegationParams{Audience: aud, Command: deployproto.CmdDeployment, Expiry: c.Leaf().Expiry()}, r.s.cfg.Now())
		if err != nil {
			return "", err
		}
		return nc.Encode()
	}
	return "", fmt.Errorf("the orchestrator holds no %s delegation", deployproto.CmdDeployment)
}

// levelReady reports whether every allocation of a level is ready, or the
// name of one that failed.
func (r *run) levelReady(level []string) (ready bool, failed string) {
	d := r.view()
	ready = true
	for _, name := range level {
		a := d.Allocations[name]
		spec := r.spec.Allocations[name]
		switch {
		case a == nil:
			return false, name
		case a.State == deployproto.AllocFailed || a.State == deployproto.AllocLost || a.State == deployproto.AllocStopped:
			ready = false
			failed = name
		case spec.Type == ensemble.Task && a.State == deployproto.AllocCompleted:
		case spec.Type == ensemble.Service && spec.Healthcheck == nil && (a.State == deployproto.AllocRunning || a.State == deployproto.AllocHealthy):
		case spec.Type == ensemble.Service && a.State == deployproto.AllocHealthy:
		default:
			ready = false
		}
	}
	return ready, failed
}

// onArtifact serves a chunk of an artifact shipped with the deployment.
func (r *run) onArtifact(ctx context.Context, m *actor.Message) (any, error) {
	var req deployproto.ArtifactRequest
	if err := m.Decode(&req); err != nil {
		return nil, err
	}
	d := r.snapshot()
	known := false
	for _, a := range d.Artifacts {
		known = known || a == req.Digest
	}
	if !known || req.Deployment != d.ID {
		return nil, &actor.Error{Code: actor.CodeBadEnvelope, Msg: fmt.Sprintf("deployment %s has no artifact %s", d.ID, req.Digest)}
	}
	data, size, err := r.s.cfg.Store.Artifact(req.Digest, req.Offset, deployproto.ArtifactChunkSize)
	if err != nil {
		if _, _, lacks := r.s.cfg.Store.Artifact(req.Digest, 0, 0); lacks != nil {
			// A standby that took over before it had fetched it (standby_artifacts.go).
			return nil, fmt.Errorf("the orchestrator of deployment %s on %s does not hold artifact %s (a standby that took over before it had fetched it from the previous orchestrator lacks it): %w",
				d.ID, identity.ShortPeerID(r.s.cfg.System.Self()), req.Digest, err)
		}
		return nil, err
	}
	return deployproto.ArtifactChunk{Data: data, Size: size}, nil
}
