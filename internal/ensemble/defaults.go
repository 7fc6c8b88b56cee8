package ensemble

import (
	"reflect"
	"strconv"
	"time"

	"github.com/dmsnet/dms/internal/mapkeys"
	"github.com/dmsnet/dms/internal/match"
)

// Defaults that depend on other fields (the others are in the ens tags of
// spec.go).
const (
	DefaultMaxRestarts        = 5
	DefaultBackoff            = time.Second
	DefaultHealthcheckTimeout = 5 * time.Second

	DefaultRescheduleInterval = time.Hour
	DefaultRescheduleDelay    = time.Second
	DefaultRescheduleMaxDelay = time.Minute
	// DefaultRescheduleAttempts is for an ensemble with a service; one of
	// tasks only gets DefaultRescheduleTaskAttempts (as Nomad's batch jobs).
	DefaultRescheduleAttempts     = 3
	DefaultRescheduleTaskAttempts = 1

	// maxOrchestrators is the max of the ens tag of
	// Supervision.Orchestrators.
	maxOrchestrators = 5
)

// SetDefaults fills every field left zero with its default:
//
//   - type: task; resources: cpu 1, ram 256MiB; gpus[].count 1;
//     ports[].protocol tcp; node redundancy 1;
//   - volumes: kind local; s3.region us-east-1; read_only true for a url
//     volume and an s3 volume of mode in (inputs are never writable);
//   - healthcheck: interval 10s, timeout 5s (or the interval if shorter),
//     retries 3, http.path /;
//   - restart: policy never for a task, always for a service; unless the
//     policy is never, max_restarts 5 and backoff 1s;
//   - nodes: when there are none, one node per allocation, named after it;
//   - reschedule: attempts 3 when the ensemble has a service, else 1;
//     interval 1h, delay 1s, delay_function exponential, max_delay 1m;
//   - supervision: strategy one_for_one; orchestrators 1, or, when
//     standbys are listed, one more than their number (at most 5).
//
// Parse calls it (for the keys absent from the file); call it on a Spec
// built in Go before Validate.
func (s *Spec) SetDefaults() { setDefaults(s, func(string) bool { return false }) }

// setDefaults fills zero fields whose path is not present in the source.
func setDefaults(s *Spec, present func(path string) bool) {
	setSupervisionDefaults(s, present)
	defaultWalk(reflect.ValueOf(s).Elem(), "", present)
	setRescheduleDefaults(s, present)
	for _, name := range mapkeys.Sorted(s.Allocations) {
		a := s.Allocations[name]
		p := keyPath("allocations", name)
		rp := keyPath(p, "restart")
		if a.Restart.Policy == "" && !present(keyPath(rp, "policy")) {
			a.Restart.Policy = Never
			if a.Type == Service {
				a.Restart.Policy = Always
			}
		}
		if a.Restart.Policy != Never {
			if a.Restart.MaxRestarts == 0 && !present(keyPath(rp, "max_restarts")) {
				a.Restart.MaxRestarts = DefaultMaxRestarts
			}
			if a.Restart.Backoff == 0 && !present(keyPath(rp, "backoff")) {
				a.Restart.Backoff = DefaultBackoff
			}
		}
		for vn, vol := range a.Volumes {
			// An input is read-only, said or not (an output that says
			// read_only is refused by Validate).
			if !vol.ReadOnly && (vol.Kind == URL || vol.Kind == S3 && vol.Mode == ModeIn) {
				vol.ReadOnly = true
				a.Volumes[vn] = vol
			}
		}
		if h := a.Healthcheck; h != nil && h.Timeout == 0 && !present(keyPath(keyPath(p, "healthcheck"), "timeout")) {
			h.Timeout = DefaultHealthcheckTimeout
			if h.Interval > 0 && h.Interval < h.Timeout {
				h.Timeout = h.Interval
			}
		}
		s.Allocations[name] = a
	}
	if len(s.Nodes) == 0 && !present("nodes") && len(s.Allocations) > 0 {
		s.Nodes = map[string]Node{}
		for name := range s.Allocations {
			s.Nodes[name] = Node{Allocations: []string{name}, Redundancy: 1}
		}
	}
}

// defaultWalk sets the ens:"default=..." of every zero field under v.
func defaultWalk(v reflect.Value, path string, present func(string) bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			defaultWalk(v.Elem(), path, present)
		}
	case reflect.Struct:
		if v.Type() == durationType {
			return
		}
		for _, f := range fieldsOf(v.Type()) {
			fv := v.Field(f.index)
			fp := keyPath(path, f.name)
			if f.def != "" && fv.IsZero() && !present(fp) {
				setScalar(fv, f.def)
			}
			defaultWalk(fv, fp, present)
		}
	case reflect.Map:
		if v.Type().Elem().Kind() != reflect.Struct {
			return
		}
		for _, k := range v.MapKeys() {
			ev := reflect.New(v.Type().Elem()).Elem()
			ev.Set(v.MapIndex(k))
			defaultWalk(ev, keyPath(path, k.String()), present)
			v.SetMapIndex(k, ev)
		}
	case reflect.Slice:
		for i := range v.Len() {
			defaultWalk(v.Index(i), indexPath(path, i), present)
		}
	}
}

// setScalar sets v from the text of a default; the defaults in the tags are
// checked by TestDefaultsParse, so errors cannot happen here.
func setScalar(v reflect.Value, s string) {
	switch v.Type() {
	case durationType:
		d, _ := time.ParseDuration(s)
		v.SetInt(int64(d))
		return
	case bytesType:
		b, _ := match.ParseBytes(s)
		v.SetUint(uint64(b))
		return
	case cpuType:
		c, _ := match.ParseCPU(s)
		v.SetInt(int64(c))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int:
		n, _ := strconv.Atoi(s)
		v.SetInt(int64(n))
	}
}

// setRescheduleDefaults fills the reschedule block: attempts 3 when the
// ensemble has a service (else 1), interval 1h, delay 1s, max_delay 1m.
func setRescheduleDefaults(s *Spec, present func(path string) bool) {
	r := &s.Reschedule
	if r.Attempts == 0 && !present("reschedule.attempts") {
		r.Attempts = DefaultRescheduleTaskAttempts
		for _, a := range s.Allocations {
			if a.Type == Service {
				r.Attempts = DefaultRescheduleAttempts
			}
		}
	}
	if r.Interval == 0 && !present("reschedule.interval") {
		r.Interval = DefaultRescheduleInterval
	}
	if r.Delay == 0 && !present("reschedule.delay") {
		r.Delay = DefaultRescheduleDelay
	}
	if r.MaxDelay == 0 && !present("reschedule.max_delay") {
		r.MaxDelay = DefaultRescheduleMaxDelay
	}
}

// setSupervisionDefaults sets orchestrators, when absent, to the
// orchestrating node plus the standbys listed: listing standbys asks for
// them, and the default of 1 would leave no room for any. It runs before
// the ens tag default of 1, which then fills the case without standbys.
// The count stops at the maximum, so that too many standbys are reported
// on standbys rather than on an orchestrators key that is not written.
func setSupervisionDefaults(s *Spec, present func(path string) bool) {
	sv := &s.Supervision
	if sv.Orchestrators == 0 && len(sv.Standbys) > 0 && !present("supervision.orchestrators") {
		sv.Orchestrators = min(len(sv.Standbys)+1, maxOrchestrators)
	}
}

// Wait returns how long to wait before the n-th redeploy (1-based) within
// the interval.
//
// With delay_function constant every redeploy waits delay; with exponential
// the n-th waits delay·2^(n-1). Either way the wait is at most max_delay
// when max_delay is positive, and never negative.
func (r Reschedule) Wait(n int) time.Duration {
	d := max(r.Delay, 0)
	if r.DelayFunction == DelayExponential {
		for i := 1; i < n && d > 0 && d < r.MaxDelay; i++ {
			if d > r.MaxDelay/2 {
				d = r.MaxDelay
				break
			}
			d *= 2
		}
	}
	if r.MaxDelay > 0 && d > r.MaxDelay {
		d = r.MaxDelay
	}
	return d
}
