package allocation

import (
	"context"
	"time"

	"github.com/dmsnet/dms/internal/deployproto"
)

const (
	// reportTimeout bounds one report.
	reportTimeout = 10 * time.Second
	// finalAttempts is how many attempts to deliver the final report fail
	// before a warning is logged.
	finalAttempts = 6
	// maxFinalBackoff bounds the wait between attempts to deliver the
	// final report.
	maxFinalBackoff = time.Minute
)

// queueReport queues a report of the current state (the first report
// after a create, or the final one again after a restart). The record is
// written again only when the report moved its Seq ceiling: nothing else
// changed (at a create, the record written a moment before holds it).
func (a *alloc) queueReport() {
	a.mu.Lock()
	ceiling := a.rec.Seq
	a.queue = append(a.queue, a.reportLocked())
	moved := a.rec.Seq != ceiling
	a.mu.Unlock()
	if moved {
		a.persist()
	}
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
		// Fencing comes first: after a long freeze (SIGSTOP), the
		// allocation stops before it does anything else.
		a.fenceIfSilent()
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
			if a.fenceIfSilent() {
				continue // the stopped state is queued behind r; r is stale
			}
			a.deliver(r)
		}
		select {
		case <-a.wake:
		case <-tick.C:
			if a.fenceIfSilent() {
				continue
			}
			a.heartbeat()
		case <-a.life.Done():
			return
		}
	}
}

// heartbeat sends a heartbeat report when nothing else is queued and no
// heartbeat is in flight, on a goroutine of its own: a slow orchestrator
// does not hold up the state changes queued behind it (the orchestrator
// orders reports by Seq).
func (a *alloc) heartbeat() {
	a.mu.Lock()
	if a.rec.State.Terminal() || a.beating || len(a.queue) > 0 {
		a.mu.Unlock()
		return
	}
	ceiling := a.rec.Seq
	r := a.reportLocked()
	moved := a.rec.Seq != ceiling
	a.beating = true
	a.mu.Unlock()
	if moved {
		a.persist() // the new Seq ceiling
	}
	if !a.m.goTracked(func() {
		defer func() {
			a.mu.Lock()
			a.beating = false
			a.mu.Unlock()
		}()
		a.deliver(r)
	}) {
		a.mu.Lock()
		a.beating = false
		a.mu.Unlock()
	}
}

// send invokes BehaviorReport on the orchestrator and takes its
// acknowledgement (an empty reply acknowledges with no epoch). The
// acknowledgement counts from the time the report was sent: a reply that
// was held up (the process frozen by SIGSTOP, a slow link) does not put
// off fencing.
func (a *alloc) send(r deployproto.Report) error {
	ctx, cancel := context.WithTimeout(a.life, reportTimeout)
	defer cancel()
	var ack deployproto.ReportAck
	sent := time.Now()
	if err := a.act.Invoke(ctx, a.record().Orchestrator, deployproto.BehaviorReport, r, &ack); err != nil {
		return err
	}
	a.acked(ack, sent)
	return nil
}

// deliver sends a report and takes its acknowledgement; a lost one is made
// up for by the next.
func (a *alloc) deliver(r deployproto.Report) {
	if err := a.send(r); err != nil {
		a.m.log.Debug("report not acknowledged", "allocation_id", a.id(), "seq", r.Seq, "err", err)
	}
}

// deliverFinal sends the final report until it is acknowledged, retrying
// with backoff (1s, 2s, 4s … up to maxFinalBackoff: the orchestrator may
// be restarting, or out of reach of a fenced allocation) until the
// allocation is removed or the manager closes; once acknowledged it is not
// sent again after a restart.
func (a *alloc) deliverFinal(r deployproto.Report) {
	backoff := time.Second
	for attempt := 1; a.life.Err() == nil; attempt++ {
		err := a.send(r)
		if err == nil {
			a.mu.Lock()
			a.rec.Reported = true
			a.mu.Unlock()
			a.persist()
			return
		}
		if a.life.Err() != nil {
			return
		}
		if attempt == finalAttempts {
			a.m.log.Warn("final report not delivered yet; still trying", "allocation_id", a.id(), "state", r.State, "attempts", attempt, "err", err)
		}
		if !sleep(a.life, backoff) {
			return
		}
		backoff = min(2*backoff, maxFinalBackoff)
	}
}
