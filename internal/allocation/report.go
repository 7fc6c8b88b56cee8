package allocation

import (
	"context"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
)

const (
	// reportTimeout bounds one report.
	reportTimeout = 10 * time.Second
	// finalAttempts is how often the final report is tried (1s, 2s, 4s …
	// apart): the orchestrator may be restarting.
	finalAttempts = 6
)

// queueReport queues a report of the current state (the first report
// after a create, or the final one again after a restart).
func (a *alloc) queueReport() {
	a.mu.Lock()
	a.queue = append(a.queue, a.reportLocked())
	a.mu.Unlock()
	a.persist()
	a.poke()
}

// poke wakes the reporter.
func (a *alloc) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// startReporter starts the goroutine that sends the queued reports in
// order, and a heartbeat every interval while the allocation has not
// ended. It ends after the final report.
func (a *alloc) startReporter() {
	a.mu.Lock()
	if a.reporting {
		a.mu.Unlock()
		return
	}
	a.reporting = true
	a.mu.Unlock()
	if !a.m.goTracked(a.reporter) {
		a.mu.Lock()
		a.reporting = false
		a.mu.Unlock()
	}
}

func (a *alloc) reporter() {
	defer func() {
		a.mu.Lock()
		a.reporting = false
		a.mu.Unlock()
	}()
	tick := time.NewTicker(a.m.cfg.Heartbeat)
	defer tick.Stop()
	for {
		for {
			a.mu.Lock()
			if len(a.queue) == 0 {
				a.mu.Unlock()
				break
			}
			r := a.queue[0]
			a.queue = a.queue[1:]
			a.mu.Unlock()
			if r.State.Terminal() {
				a.deliverFinal(r)
				return
			}
			a.deliver(r)
		}
		select {
		case <-a.wake:
		case <-tick.C:
			a.mu.Lock()
			ceiling := a.rec.Seq
			if !a.rec.State.Terminal() && len(a.queue) == 0 {
				a.queue = append(a.queue, a.reportLocked())
			}
			moved := a.rec.Seq != ceiling
			a.mu.Unlock()
			if moved {
				a.persist() // the new Seq ceiling
			}
		case <-a.life.Done():
			return
		}
	}
}

// deliver sends a report one way; a lost one is made up for by the next.
// The send is not cut short by Close: a send cancelled half-way can leave
// the link's session state out of step (see the actor runtime's
// link.sendEnvelope), and a one-way send does not wait long anyway.
func (a *alloc) deliver(r deployproto.Report) {
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	if err := a.act.Send(ctx, a.rec.Orchestrator, deployproto.BehaviorReport, r); err != nil {
		a.m.log.Debug("report not sent", "allocation_id", a.id(), "seq", r.Seq, "err", err)
	}
}

// deliverFinal sends the final report and waits for it to be accepted,
// retrying with backoff; once accepted it is not sent again after a
// restart.
func (a *alloc) deliverFinal(r deployproto.Report) {
	backoff := time.Second
	for attempt := 1; a.life.Err() == nil; attempt++ {
		ctx, cancel := context.WithTimeout(a.life, reportTimeout)
		err := a.act.Invoke(ctx, a.rec.Orchestrator, deployproto.BehaviorReport, r, nil)
		cancel()
		if err == nil {
			a.mu.Lock()
			a.rec.Reported = true
			a.mu.Unlock()
			a.persist()
			return
		}
		if attempt == finalAttempts || a.life.Err() != nil {
			a.m.log.Warn("final report not delivered", "allocation_id", a.id(), "state", r.State, "attempts", attempt, "err", err)
			return
		}
		if !sleep(a.life, backoff) {
			return
		}
		backoff *= 2
	}
}
