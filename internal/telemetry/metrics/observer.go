package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dmsnet/dms/internal/actor"
)

// MaxBehaviors bounds the behavior names with a label of their own; the
// rest are counted as OtherBehavior.
const MaxBehaviors = 256

// OtherBehavior and OtherCode label what has no label of its own: a
// behavior name this node does not know, a code outside actor's set.
const (
	OtherBehavior = "other"
	OtherCode     = "other"
	// OKCode labels a message whose behavior succeeded.
	OKCode = "ok"
)

// codes are the codes with a label of their own, by index; index 0 is
// success ("" in actor.Observer.Handled).
var codes = [...]actor.Code{
	"", actor.CodeDenied, actor.CodeUnknownBehavior, actor.CodeNoSuchActor, actor.CodeExpired,
	actor.CodeReplay, actor.CodeMailboxFull, actor.CodeRateLimited, actor.CodeTooLarge,
	actor.CodeHostMismatch, actor.CodeBadEnvelope, actor.CodeHandler, actor.CodePanic,
	actor.CodeShuttingDown, actor.CodeTimeout, actor.CodeUnreachable,
}

// codeIndex maps a code to its index in codes; absent: otherCode.
var codeIndex = func() map[actor.Code]int {
	m := make(map[actor.Code]int, len(codes))
	for i, c := range codes {
		m[c] = i
	}
	return m
}()

// otherCode is the index of OtherCode.
const otherCode = len(codes)

func codeLabel(i int) string {
	switch {
	case i == 0:
		return OKCode
	case i == otherCode:
		return OtherCode
	}
	return string(codes[i])
}

// Observer counts the actor runtime's messages (actor.Observer):
//
//	dms_messages_total{behavior,code}          messages a behavior ran for, by answer code
//	dms_message_duration_seconds{behavior}     how long the behavior ran
//	dms_refusals_total{behavior,code}          envelopes refused before any behavior ran
//
// Its methods allocate nothing once a (behavior, code) pair was seen.
type Observer struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refused  *prometheus.CounterVec

	// series holds the known behaviors; replaced (copy on write) under mu.
	series atomic.Pointer[map[string]*series]
	mu     sync.Mutex
	other  *series
}

// series are one behavior's pre-resolved metrics; a counter is resolved at
// its first use, so that only pairs seen are exported.
type series struct {
	name     string
	o        *Observer
	duration atomic.Pointer[prometheus.Observer]
	handled  [len(codes) + 1]atomic.Pointer[prometheus.Counter]
	refused  [len(codes) + 1]atomic.Pointer[prometheus.Counter]
}

var _ actor.Observer = (*Observer)(nil)

func newObserver() *Observer {
	o := &Observer{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dms_messages_total",
			Help: "Actor messages a behavior of this node ran for, by behavior and answer code (ok: it succeeded).",
		}, []string{"behavior", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dms_message_duration_seconds",
			Help:    "How long behaviors of this node ran, by behavior.",
			Buckets: []float64{0.001, 0.01, 0.1, 1, 10},
		}, []string{"behavior"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dms_refusals_total",
			Help: "Envelopes refused before a behavior ran (denied, expired, replay, rate-limited, unknown-behavior…), by behavior and code; behavior names this node does not know are counted as other.",
		}, []string{"behavior", "code"}),
	}
	empty := map[string]*series{}
	o.series.Store(&empty)
	o.other = o.newSeries(OtherBehavior)
	return o
}

func (o *Observer) newSeries(name string) *series {
	return &series{name: name, o: o}
}

func (o *Observer) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.handled, o.duration, o.refused}
}

// Known gives names (the behaviors registered on this node's actors) a
// label of their own, up to MaxBehaviors names in all.
func (o *Observer) Known(names ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cur := *o.series.Load()
	var next map[string]*series
	for _, n := range names {
		if _, ok := cur[n]; ok || n == OtherBehavior {
			continue
		}
		if next == nil {
			next = make(map[string]*series, len(cur)+len(names))
			for k, v := range cur {
				next[k] = v
			}
		}
		if len(next) >= MaxBehaviors {
			break
		}
		next[n] = o.newSeries(n)
	}
	if next != nil {
		o.series.Store(&next)
	}
}

// lookup returns the series of behavior; an unknown one is learned when
// learn (a behavior ran for it, so it is registered here), else it is
// counted as other.
func (o *Observer) lookup(behavior string, learn bool) *series {
	if s, ok := (*o.series.Load())[behavior]; ok {
		return s
	}
	if !learn {
		return o.other
	}
	o.Known(behavior)
	if s, ok := (*o.series.Load())[behavior]; ok {
		return s
	}
	return o.other
}

func index(code actor.Code) int {
	if i, ok := codeIndex[code]; ok {
		return i
	}
	return otherCode
}

// counter returns the pre-resolved counter of code i in slots, resolving
// it from vec at its first use.
func (s *series) counter(slots *[len(codes) + 1]atomic.Pointer[prometheus.Counter], vec *prometheus.CounterVec, i int) prometheus.Counter {
	if c := slots[i].Load(); c != nil {
		return *c
	}
	c := vec.WithLabelValues(s.name, codeLabel(i))
	slots[i].CompareAndSwap(nil, &c)
	return c
}

// Handled counts a message a behavior ran for (actor.Observer).
func (o *Observer) Handled(behavior string, code actor.Code, d time.Duration) {
	s := o.lookup(behavior, true)
	s.counter(&s.handled, o.handled, index(code)).Inc()
	s.histogram().Observe(d.Seconds())
}

// histogram returns the behavior's duration histogram, resolving it at
// its first use.
func (s *series) histogram() prometheus.Observer {
	if h := s.duration.Load(); h != nil {
		return *h
	}
	h := s.o.duration.WithLabelValues(s.name)
	s.duration.CompareAndSwap(nil, &h)
	return h
}

// Refused counts an envelope refused before a behavior ran
// (actor.Observer).
func (o *Observer) Refused(behavior string, code actor.Code) {
	s := o.lookup(behavior, false)
	s.counter(&s.refused, o.refused, index(code)).Inc()
}
