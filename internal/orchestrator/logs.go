package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
)

// logs streams allocation logs that pass filter (its Tail counts per
// allocation).
func (r *run) logs(ctx context.Context, only string, follow bool, filter deployproto.LogFilter, emit func(string, deployproto.LogEntry)) error {
	d := r.snapshot()
	var names []string
	for _, name := range allocNames(r.specOf(d)) {
		if only == "" || only == name {
			names = append(names, name)
		}
	}
	if only != "" && len(names) == 0 {
		return fmt.Errorf("deployment %s has no allocation %s: %w", d.ID, only, ErrNotFound)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.logsOf(ctx, name, follow, filter, func(e deployproto.LogEntry) {
				mu.Lock()
				emit(name, e)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *run) specOf(d *Deployment) *ensemble.Spec {
	if r.spec != nil {
		return r.spec
	}
	spec, err := ensemble.Parse(d.Spec)
	if err != nil {
		return &ensemble.Spec{}
	}
	return spec
}

func (r *run) logsOf(ctx context.Context, name string, follow bool, filter deployproto.LogFilter, emit func(deployproto.LogEntry)) error {
	var offset int64
	for ctx.Err() == nil {
		d := r.snapshot()
		a := d.Allocations[name]
		if a == nil || a.Handle.IsZero() {
			if !follow || d.State.Terminal() {
				return nil
			}
			r.waitChange(ctx, time.Second)
			continue
		}
		wait := time.Duration(0)
		if follow {
			wait = 5 * time.Second
		}
		var chunk deployproto.LogsChunk
		tailed := filter.Tail > 0
		cctx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
		err := r.actor.Invoke(cctx, a.Handle, deployproto.BehaviorLogs, deployproto.LogsRequest{Offset: offset, Wait: wait, LogFilter: filter}, &chunk)
		cancel()
		filter.Tail = 0 // the tail came with the first answer; follow from there
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("logs of %s: %w", name, err)
		}
		for _, e := range chunk.Entries {
			emit(e)
		}
		offset = chunk.Next
		if chunk.EOF || !follow && len(chunk.Entries) == 0 && !tailed {
			return nil
		}
	}
	return nil
}
