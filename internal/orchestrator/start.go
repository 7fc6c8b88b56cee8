package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

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
		if err := r.startLevel(ctx, level); err != nil {
			r.fail(ctx, err.Error(), nil)
			return
		}
		if i == len(levels)-1 {
			break
		}
		for {
			if ctx.Err() != nil || r.shutdownRequested() {
				return
			}
			ready, failed := r.levelReady(level)
			if failed != "" {
				r.fail(ctx, failed, r.exitOf(failed))
				return
			}
			if ready {
				break
			}
			r.checkLost()
			r.waitChange(ctx, time.Second)
		}
	}
	r.setState(Running, "all allocations started")
}

func (r *run) startLevel(ctx context.Context, level []string) error {
	type res struct {
		name string
		err  error
	}
	results := make(chan res, len(level))
	started := 0
	for _, name := range level {
		a := r.snapshot().Allocations[name]
		if a == nil || a.Started {
			continue
		}
		started++
		go func() { results <- res{name, r.startOne(ctx, a)} }()
	}
	var errs []error
	for range started {
		rr := <-results
		if rr.err != nil {
			errs = append(errs, fmt.Errorf("start %s: %w", rr.name, rr.err))
			continue
		}
		r.update(true, func(d *Deployment) {
			if a := d.Allocations[rr.name]; a != nil {
				a.Started = true
				if a.State == deployproto.AllocPending {
					a.State = deployproto.AllocStarting
				}
				a.LastSeen = r.s.cfg.Now()
			}
		})
	}
	return errors.Join(errs...)
}

// startOne delegates to the allocation actor and starts it.
func (r *run) startOne(ctx context.Context, a *Allocation) error {
	chain, err := r.delegateTo(a.Handle.DID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.s.cfg.CommitTimeout)
	defer cancel()
	return r.actor.Invoke(ctx, a.Handle, deployproto.BehaviorStart, deployproto.StartRequest{Chain: chain}, nil)
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
func (r *run) levelReady(level []string) (bool, string) {
	d := r.snapshot()
	ready := true
	for _, name := range level {
		a := d.Allocations[name]
		spec := r.spec.Allocations[name]
		switch {
		case a == nil:
			return false, name
		case a.State == deployproto.AllocFailed || a.State == deployproto.AllocLost || a.State == deployproto.AllocStopped:
			return false, name
		case spec.Type == ensemble.Task && a.State == deployproto.AllocCompleted:
		case spec.Type == ensemble.Service && spec.Healthcheck == nil && (a.State == deployproto.AllocRunning || a.State == deployproto.AllocHealthy):
		case spec.Type == ensemble.Service && a.State == deployproto.AllocHealthy:
		default:
			ready = false
		}
	}
	return ready, ""
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
		return nil, err
	}
	return deployproto.ArtifactChunk{Data: data, Size: size}, nil
}
