package allocation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/executor"
	"github.com/dmsnet/dms/internal/storage"
)

const (
	// logDrain bounds the wait for a log copier after its instance ended.
	logDrain = 10 * time.Second
	// stopMargin is added to a stop's grace for the executor to report
	// the end.
	stopMargin = 30 * time.Second
)

// runPlan says how a supervisor begins: attach to a running instance,
// account for a lost one, or (zero) start a new instance.
type runPlan struct {
	attach string           // instance to re-attach to
	lost   *executor.Result // the previous run ended this way while nobody watched
	upload bool             // the workload ended: upload the out volumes and record the end (Record.Final)
}

// permanentError marks a start failure that restarting cannot cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// launch starts the supervisor goroutine. Setting runDone and reading
// stopping happen under one lock, so a stop either finds the supervisor
// (and cancels it) or has already asked for the stop, and then the
// supervisor starts cancelled: it stops the instance it attaches to,
// starts none, and ends the allocation as stopped.
func (a *alloc) launch(p runPlan) {
	ctx, cancel := context.WithCancel(a.life)
	done := make(chan struct{})
	a.mu.Lock()
	a.cancelRun, a.runDone = cancel, done
	if a.stopping {
		cancel()
	}
	a.mu.Unlock()
	if !a.m.goTracked(func() {
		defer close(done)
		defer cancel()
		a.supervise(ctx, p)
	}) {
		cancel()
		close(done)
	}
}

// supervise runs the workload until it has ended for good: it starts (or
// re-attaches to) an instance, waits for it, applies the restart policy
// and records the final state. It returns early, leaving the state as it
// is, when the manager closes.
func (a *alloc) supervise(ctx context.Context, p runPlan) {
	if p.upload {
		a.completeUpload()
		return
	}
	ctx, span := a.startSegment(ctx, p.attach != "" || p.lost != nil) // trace.go
	defer a.endSegment(span)
	for {
		var res executor.Result
		var ran string // the instance that ran, if any
		switch {
		case p.lost != nil:
			res = *p.lost
		default:
			id := p.attach
			if id == "" {
				var err error
				id, err = a.startInstance(ctx)
				if err != nil {
					if ctx.Err() != nil {
						a.interrupted(nil)
						return
					}
					res = executor.Result{ExitCode: -1, Reason: executor.ReasonFailed, Error: err.Error(), FinishedAt: a.m.cfg.Now()}
					var perm *permanentError
					if errors.As(err, &perm) {
						msg := "could not start: " + err.Error()
						var ve *storage.VolumeError
						if errors.As(err, &ve) {
							msg = ve.Error() // the one reason, naming the volume
							a.dmsLine("%s", msg)
						}
						a.finish(deployproto.AllocFailed, &res, msg)
						return
					}
					break
				}
			}
			if p.attach != "" {
				if err := a.reattachSubnet(ctx, id); err != nil && ctx.Err() == nil {
					// Without its interface the instance is cut off from
					// the subnet: a new run gets one.
					a.m.log.Warn("subnet re-attach", "allocation_id", a.id(), "instance", id, "err", err)
					a.dmsLine("%v: restarting the instance", err)
					a.killRun(id, err.Error(), true)
				}
			}
			var ok bool
			if res, ok = a.runInstance(ctx, id, p.attach == ""); !ok {
				return
			}
			ran = id
		}
		p = runPlan{}
		if a.isStopping() {
			a.conclude(deployproto.AllocStopped, &res, a.stopMessage("stopped on request"))
			return
		}
		if why, dep := a.takeKill(ran); why != "" && !succeeded(res) {
			if dep {
				// A dependency restarted: start again at once, not charged
				// to max_restarts.
				a.transition(deployproto.AllocRestarting, why, func(r *Record) {
					r.Restarts++
					r.DependencyRestarts++
					r.Result = &res
					r.InstanceID = ""
				})
				restartEvent(ctx, why, 0)
				continue
			}
			res = executor.Result{ExitCode: res.ExitCode, Reason: executor.ReasonUnhealthy, Error: why, FinishedAt: res.FinishedAt}
		}
		restart, delay, n, max := a.shouldRestart(res)
		if !restart {
			state := deployproto.AllocFailed
			if succeeded(res) {
				state = deployproto.AllocCompleted
			}
			a.conclude(state, &res, describe(res))
			return
		}
		if rec := a.record(); rec.Spec.Type != ensemble.Service && len(outputs(&rec.Spec)) > 0 {
			// A task's outputs go up at every run's end.
			if err := a.uploadOutputs(a.life); err != nil {
				if a.life.Err() != nil {
					return
				}
				a.dmsLine("%v", err)
				a.finish(deployproto.AllocFailed, &res, err.Error())
				return
			}
		}
		why := fmt.Sprintf("%s; restart %d of %d in %s", describe(res), n, max, delay)
		a.transition(deployproto.AllocRestarting, why,
			func(r *Record) {
				r.Restarts++
				r.Result = &res
				r.InstanceID = ""
			})
		restartEvent(ctx, why, n)
		if !sleep(ctx, delay) {
			a.interrupted(&res)
			return
		}
	}
}

// shouldRestart applies the restart policy to a run that ended with res;
// n is the restart's number among those charged to max_restarts (the
// restarts for a dependency are not).
func (a *alloc) shouldRestart(res executor.Result) (restart bool, delay time.Duration, n, max int) {
	rec := a.record()
	policy, max, backoff := restartPolicy(&rec.Spec)
	charged := rec.Restarts - rec.DependencyRestarts
	switch {
	case policy == ensemble.Never:
		return false, 0, 0, 0
	case policy == ensemble.OnFailure && succeeded(res):
		return false, 0, 0, 0
	case charged >= max:
		return false, 0, 0, 0
	}
	n = charged + 1
	return true, backoffFor(backoff, n), n, max
}

// interrupted handles the supervisor's context ending outside a run: a
// stop ends the allocation (last is the run before, if any); a closing
// manager leaves it as it is.
func (a *alloc) interrupted(last *executor.Result) {
	if a.isStopping() {
		a.conclude(deployproto.AllocStopped, last, a.stopMessage("stopped on request"))
	}
}

// startInstance fetches the artifacts, builds the spec and starts an
// instance, moving to starting and then running.
func (a *alloc) startInstance(ctx context.Context) (_ string, err error) {
	ctx, span := a.startSpan(ctx) // trace.go
	var took time.Duration
	defer func() { endStart(span, took, err) }()
	rec := a.record()
	if a.ex == nil {
		return "", &permanentError{fmt.Errorf("executor %q is not available on this node", rec.Spec.Executor)}
	}
	if rec.State != deployproto.AllocStarting || rec.InstanceID != "" {
		a.transition(deployproto.AllocStarting, "", func(r *Record) { r.InstanceID = "" })
	}
	if err := a.prepareVolumes(ctx); err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return "", &permanentError{err}
	}
	files := map[string]string{}
	for _, ref := range artifacts(&rec.Spec) {
		p, err := a.m.artifacts.get(ctx, a.act, rec.Orchestrator, rec.Deployment, ref)
		if err != nil {
			if errors.Is(err, ErrDigest) {
				return "", &permanentError{err}
			}
			return "", err
		}
		files[ref] = p
	}
	spec, err := a.buildSpec(files)
	if err != nil {
		return "", &permanentError{err}
	}
	began := time.Now()
	id, err := a.ex.Start(ctx, spec)
	took = time.Since(began)
	if err != nil {
		if errors.Is(err, executor.ErrInvalidSpec) {
			return "", &permanentError{err}
		}
		return "", err
	}
	if a.m.cfg.OnStart != nil {
		a.m.cfg.OnStart(string(rec.Spec.Executor), time.Since(began))
	}
	if err := a.log.mark(id); err != nil {
		a.m.log.Warn("log mark", "allocation_id", a.id(), "err", err)
	}
	ports := a.publishedPorts(context.WithoutCancel(ctx), id, spec.Ports)
	a.transition(deployproto.AllocRunning, "", func(r *Record) {
		r.InstanceID = id
		r.Ports = ports
		r.Result = nil
		r.Ran = true
	})
	return id, nil
}

// publishedPorts returns the instance's published ports as bound on the
// host: from the executor's listing when it can list, else the ports
// asked for with a fixed host port.
func (a *alloc) publishedPorts(ctx context.Context, id string, asked []executor.Port) []executor.Port {
	if len(asked) == 0 {
		return nil
	}
	if l, ok := a.ex.(executor.Lister); ok {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ins, err := l.List(ctx, a.labels())
		if err == nil {
			for _, in := range ins {
				if in.ID == id {
					return in.Ports
				}
			}
		}
	}
	var out []executor.Port
	for _, p := range asked {
		if p.Host != 0 {
			out = append(out, p)
		}
	}
	return out
}

// runInstance watches instance id until it ends: it copies its logs, runs
// the health check and waits for its result, and removes the instance
// afterwards. A stop request stops it within its grace. ok is false when
// the manager closes first (the instance is left running).
func (a *alloc) runInstance(ctx context.Context, id string, fresh bool) (res executor.Result, ok bool) {
	cctx, stopCopy := context.WithCancel(a.life)
	defer stopCopy()
	copied := a.copyLogs(cctx, id)

	hctx, stopHealth := context.WithCancel(ctx)
	healthDone := make(chan struct{})
	started := a.record().Spec.Healthcheck != nil && a.m.goTracked(func() {
		defer close(healthDone)
		a.health(hctx, id, fresh)
	})
	if !started {
		close(healthDone)
	}
	sctx, stopSync := context.WithCancel(ctx)
	syncDone := a.syncOutputs(sctx)
	defer func() { stopSync(); syncDone() }()

	stopMeter := a.meterRun(a.life, id)
	res, err := a.ex.Wait(ctx, id)
	if err != nil && ctx.Err() != nil {
		if !a.isStopping() {
			stopHealth()
			<-healthDone
			stopMeter()
			a.persist() // the instance runs on: keep what was metered
			return res, false
		}
		res, err = a.stopInstance(id)
	}
	stopMeter()
	// The instance has ended: its subnet interface goes with it.
	a.leaveSubnet()
	stopHealth()
	<-healthDone
	stopSync()
	syncDone()
	switch {
	case errors.Is(err, executor.ErrNotFound):
		res = a.vanished(id, !fresh)
	case err != nil:
		res = executor.Result{ExitCode: -1, Reason: executor.ReasonFailed, Error: "wait: " + err.Error(), FinishedAt: a.m.cfg.Now()}
	}
	if err == nil {
		a.meterEnd(id, &res)
	} else {
		a.meterEnd(id, nil) // its end is unknown
	}
	drain := time.NewTimer(logDrain)
	select {
	case <-copied:
	case <-drain.C:
		a.m.log.Warn("log copier did not finish", "allocation_id", a.id(), "instance", id)
	case <-a.life.Done():
	}
	drain.Stop()
	stopCopy()
	if a.life.Err() != nil && !a.isStopping() {
		return res, false
	}
	a.removeInstances(context.Background(), id)
	return res, true
}

// stopInstance stops instance id within the stop's grace and returns its
// result.
func (a *alloc) stopInstance(id string) (executor.Result, error) {
	a.mu.Lock()
	grace := a.grace
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), grace+stopMargin)
	defer cancel()
	if err := a.ex.Stop(ctx, id, grace); err != nil {
		return executor.Result{}, fmt.Errorf("stop: %w", err)
	}
	return a.ex.Wait(ctx, id)
}

// vanished is the result of a run whose instance the executor no longer
// knows.
func (a *alloc) vanished(id string, restarted bool) executor.Result {
	kind := a.record().Spec.Executor
	msg := fmt.Sprintf("executor instance %s is gone", id)
	if restarted {
		msg = fmt.Sprintf("executor instance %s is gone after the node restarted", id)
		if _, ok := a.ex.(executor.Lister); !ok {
			msg += fmt.Sprintf(" (%s instances do not survive a restart)", kind)
		}
	}
	return executor.Result{ExitCode: -1, Reason: executor.ReasonFailed, Error: msg, FinishedAt: a.m.cfg.Now()}
}

// copyLogs copies the instance's output into the log file until the
// instance ends (or ctx is done); the channel closes when it returns. Output
// already in the log (before a re-attach) is skipped.
func (a *alloc) copyLogs(ctx context.Context, id string) <-chan struct{} {
	done := make(chan struct{})
	skipOut, skipErr, err := a.log.copied(id)
	if err != nil {
		a.m.log.Warn("log scan", "allocation_id", a.id(), "err", err)
	}
	a.mu.Lock()
	a.copying++
	a.mu.Unlock()
	ended := func() {
		a.mu.Lock()
		a.copying--
		a.notifyLocked()
		a.mu.Unlock()
		close(done)
	}
	if !a.m.goTracked(func() {
		defer ended()
		out := &streamWriter{log: a.log, stream: streamStdout, skip: skipOut, now: a.m.cfg.Now}
		errw := &streamWriter{log: a.log, stream: streamStderr, skip: skipErr, now: a.m.cfg.Now}
		if a.rec.Spec.ShipLogs && a.m.cfg.ShipLogs != nil { // the ensemble's logs.ship
			out.ship = a.m.cfg.ShipLogs(a.rec.Deployment, a.id(), a.rec.Name, "stdout")
			errw.ship = a.m.cfg.ShipLogs(a.rec.Deployment, a.id(), a.rec.Name, "stderr")
			defer out.ship.Close()
			defer errw.ship.Close()
		}
		err := a.ex.Logs(ctx, id, executor.LogOptions{Follow: true}, out, errw)
		if err != nil && ctx.Err() == nil && !errors.Is(err, executor.ErrNotFound) {
			a.m.log.Warn("copy logs", "allocation_id", a.id(), "instance", id, "err", err)
		}
	}) {
		ended()
	}
	return done
}

// finish records a final state with the last run's result, releases the
// reservation when it was the last allocation running, and queues the
// final report.
func (a *alloc) finish(state deployproto.AllocationState, res *executor.Result, msg string) {
	if !a.transition(state, msg, func(r *Record) {
		if res != nil {
			r.Result = res
		}
		r.Final = nil
		r.Secrets = nil // no transfer needs them any more
	}) {
		return
	}
	if err := a.m.releaseIfDone(a.reservation()); err != nil {
		a.m.log.Error("release", "allocation_id", a.id(), "err", err)
	}
}

// resume picks the allocation up after a restart. instances are the
// executor instances labelled with its ID (when listed is true, the
// executor listed them, so an instance not among them is gone).
func (a *alloc) resume(ctx context.Context, instances []executor.Instance, listed bool) {
	rec := a.record()
	switch {
	case rec.State.Terminal():
		for _, in := range instances {
			a.removeInstances(ctx, in.ID) // left behind by a crash
		}
		if !rec.Reported {
			a.queueReport()
			a.startReporter()
		}
		return
	case rec.State == deployproto.AllocPending:
		a.startReporter()
		return
	case rec.Final != nil:
		// The workload had ended; its out volumes were being uploaded.
		a.startReporter()
		a.dmsLine("the node restarted during the upload of the out volumes: resuming it")
		a.launch(runPlan{upload: true})
		return
	}
	a.startReporter()
	if a.ex == nil {
		// No restart can help.
		res := executor.Result{ExitCode: -1, Reason: executor.ReasonFailed, FinishedAt: a.m.cfg.Now(),
			Error: fmt.Sprintf("executor %q is no longer available on this node", rec.Spec.Executor)}
		a.finish(deployproto.AllocFailed, &res, describe(res))
		return
	}
	// Find the instance of the current run.
	id := rec.InstanceID
	var in *executor.Instance
	if listed {
		slices.SortFunc(instances, func(x, y executor.Instance) int { return y.StartedAt.Compare(x.StartedAt) })
		for i := range instances {
			if instances[i].ID == id || (id == "" && rec.State == deployproto.AllocStarting) {
				in = &instances[i]
				break
			}
		}
		// Instances of earlier runs left behind by a crash: each one by
		// its ID (removeInstances would remove the current one too).
		for _, x := range instances {
			if in == nil || x.ID != in.ID {
				a.removeInstance(ctx, x.ID)
			}
		}
	}
	switch {
	case in != nil:
		a.reattach(in.ID, in.Ports)
	case rec.State == deployproto.AllocStarting || rec.State == deployproto.AllocRestarting:
		// No instance had started (or the last run had ended): start one.
		a.launch(runPlan{})
	case listed || id == "":
		a.launchEnded(a.vanished(id, true))
	default:
		// The executor cannot list: ask it about the ID (Wait answers
		// ErrNotFound when it does not know it).
		a.reattach(id, rec.Ports)
	}
}

// reattach resumes watching instance id.
func (a *alloc) reattach(id string, ports []executor.Port) {
	st := a.state()
	if st == deployproto.AllocStarting || st == deployproto.AllocRestarting {
		st = deployproto.AllocRunning
	}
	a.transition(st, fmt.Sprintf("re-attached to instance %s after the node restarted", id), func(r *Record) {
		r.InstanceID = id
		if ports != nil {
			r.Ports = ports
		}
	})
	a.launch(runPlan{attach: id})
}

// launchEnded starts a supervisor for a run that ended unseen.
func (a *alloc) launchEnded(res executor.Result) {
	if res.Error != "" {
		a.m.log.Warn("allocation instance lost", "allocation_id", a.id(), "reason", res.Error)
	}
	a.launch(runPlan{lost: &res})
}
