package orchestrator

import (
	"time"
)

// EventKind names a supervision decision or what caused one.
type EventKind string

// The kinds of events on a deployment's timeline.
const (
	EventPlaced       EventKind = "placed"        // a node was placed (first placement or redeploy)
	EventLost         EventKind = "lost"          // no heartbeat for lost_after
	EventBack         EventKind = "back"          // a lost allocation reports again before it was replaced
	EventFailed       EventKind = "failed"        // an allocation failed on its provider (after its restarts)
	EventRestarted    EventKind = "restarted"     // an allocation restarted on its provider
	EventRedeploying  EventKind = "redeploying"   // a node is to be placed again, after a delay
	EventRedeployed   EventKind = "redeployed"    // a node runs on another provider
	EventWaiting      EventKind = "waiting"       // a pinned node waits for its provider, or no provider fits
	EventStaleStopped EventKind = "stale-stopped" // a replaced copy was stopped
	EventNotified     EventKind = "notified"      // an allocation was told that a dependency restarted or moved
	EventBudgetSpent  EventKind = "budget-spent"  // the reschedule budget is spent: the deployment fails
	EventTakeover     EventKind = "takeover"      // a standby orchestrator took over
	EventStepDown     EventKind = "step-down"     // an orchestrator saw a higher epoch and stepped down
)

// Event is one entry of a deployment's timeline: a supervision decision,
// persisted with the deployment and shown by `dms deployment events`.
type Event struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	Kind       EventKind `json:"kind"`
	Allocation string    `json:"allocation,omitempty"`
	Node       string    `json:"node,omitempty"`
	From       string    `json:"from,omitempty"` // provider peer ID
	To         string    `json:"to,omitempty"`   // provider peer ID
	Epoch      uint64    `json:"epoch,omitempty"`
	Message    string    `json:"message"`
}

// maxEvents is how many events a deployment keeps (the oldest go first).
const maxEvents = 500

// addEvent appends e to d's timeline, numbering and dating it.
func (d *Deployment) addEvent(now time.Time, e Event) {
	d.EventSeq++
	e.Seq, e.Time = d.EventSeq, now
	d.Events = append(d.Events, e)
	if n := len(d.Events) - maxEvents; n > 0 {
		d.Events = append(d.Events[:0:0], d.Events[n:]...)
	}
}

// event records e on the timeline, persisted, and logs it.
func (r *run) event(e Event) {
	r.update(true, func(d *Deployment) { d.addEvent(r.s.cfg.Now(), e) })
	r.s.log.Info("supervision", "deployment_id", r.d.ID, "kind", e.Kind, "allocation", e.Allocation, "node", e.Node, "message", e.Message)
}

// announce records an event and makes its message the deployment's, in one
// update: a reader never sees one without the other.
func (r *run) announce(e Event) {
	r.update(true, func(d *Deployment) {
		d.addEvent(r.s.cfg.Now(), e)
		d.Message = e.Message
	})
	r.s.log.Info("supervision", "deployment_id", r.d.ID, "kind", e.Kind, "allocation", e.Allocation, "node", e.Node, "message", e.Message)
}
