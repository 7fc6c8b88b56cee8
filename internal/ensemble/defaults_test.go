package ensemble

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRescheduleWait(t *testing.T) {
	exp := Reschedule{Delay: time.Second, DelayFunction: DelayExponential, MaxDelay: time.Minute}
	for _, tc := range []struct {
		name string
		r    Reschedule
		n    int
		want time.Duration
	}{
		{"constant first", Reschedule{Delay: 5 * time.Second, DelayFunction: DelayConstant, MaxDelay: time.Minute}, 1, 5 * time.Second},
		{"constant tenth", Reschedule{Delay: 5 * time.Second, DelayFunction: DelayConstant, MaxDelay: time.Minute}, 10, 5 * time.Second},
		{"constant capped", Reschedule{Delay: 2 * time.Minute, DelayFunction: DelayConstant, MaxDelay: time.Minute}, 1, time.Minute},
		{"exponential first", exp, 1, time.Second},
		{"exponential second", exp, 2, 2 * time.Second},
		{"exponential sixth", exp, 6, 32 * time.Second},
		{"exponential capped", exp, 7, time.Minute},
		{"exponential far past the cap", exp, 1000, time.Minute},
		{"exponential zero delay", Reschedule{DelayFunction: DelayExponential, MaxDelay: time.Minute}, 5, 0},
		{"exponential without a max", Reschedule{Delay: time.Second, DelayFunction: DelayExponential}, 5, time.Second},
		{"exponential near overflow", Reschedule{Delay: 1 << 61, DelayFunction: DelayExponential, MaxDelay: 1<<63 - 1}, 10, 1<<63 - 1},
		{"zeroth", exp, 0, time.Second},
		{"negative delay", Reschedule{Delay: -time.Second, DelayFunction: DelayExponential, MaxDelay: time.Minute}, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Wait(tc.n); got != tc.want {
				t.Errorf("%+v.Wait(%d) = %s, want %s", tc.r, tc.n, got, tc.want)
			}
		})
	}
}

func TestRescheduleAndSupervisionDefaults(t *testing.T) {
	const (
		peer1 = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
		peer2 = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	)
	service := "version: v1\nallocations:\n  web:\n    type: service\n    executor: docker\n    execution: {image: nginx}\n"
	task := "version: v1\nallocations:\n  job:\n    executor: docker\n    execution: {image: alpine}\n"
	defaults := Reschedule{Attempts: 3, Interval: time.Hour, Delay: time.Second, DelayFunction: DelayExponential, MaxDelay: time.Minute}
	for _, tc := range []struct {
		name       string
		src        string
		reschedule Reschedule
		supervise  Supervision
	}{
		{"service", service, defaults, Supervision{Strategy: OneForOne, Orchestrators: 1}},
		{"task", task, Reschedule{Attempts: 1, Interval: time.Hour, Delay: time.Second, DelayFunction: DelayExponential, MaxDelay: time.Minute}, Supervision{Strategy: OneForOne, Orchestrators: 1}},
		{"redeploys off", task + "reschedule: {attempts: 0}\n", Reschedule{Interval: time.Hour, Delay: time.Second, DelayFunction: DelayExponential, MaxDelay: time.Minute}, Supervision{Strategy: OneForOne, Orchestrators: 1}},
		{"some set", service + "reschedule: {delay: 5s, delay_function: constant}\nsupervision: {strategy: rest_for_one}\n",
			Reschedule{Attempts: 3, Interval: time.Hour, Delay: 5 * time.Second, DelayFunction: DelayConstant, MaxDelay: time.Minute}, Supervision{Strategy: RestForOne, Orchestrators: 1}},
		{"standbys set the orchestrators", service + "supervision: {standbys: [" + peer1 + ", " + peer2 + "]}\n", defaults,
			Supervision{Strategy: OneForOne, Orchestrators: 3, Standbys: []string{peer1, peer2}}},
		{"orchestrators written with fewer standbys", service + "supervision: {orchestrators: 3, standbys: [" + peer1 + "]}\n", defaults,
			Supervision{Strategy: OneForOne, Orchestrators: 3, Standbys: []string{peer1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if s.Reschedule != tc.reschedule {
				t.Errorf("reschedule = %+v, want %+v", s.Reschedule, tc.reschedule)
			}
			if !reflect.DeepEqual(s.Supervision, tc.supervise) {
				t.Errorf("supervision = %+v, want %+v", s.Supervision, tc.supervise)
			}
		})
	}
}

// TestSupervisionBuiltInGo checks the defaults and the validation of a
// spec built in Go, where no key counts as absent.
func TestSupervisionBuiltInGo(t *testing.T) {
	const peer = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
	s := &Spec{
		Version: Version,
		Allocations: map[string]Allocation{
			"web": {Type: Service, Executor: Docker, Execution: Execution{Image: "nginx"}},
		},
		Supervision: Supervision{Standbys: []string{peer}},
	}
	s.SetDefaults()
	if s.Supervision.Orchestrators != 2 {
		t.Errorf("orchestrators = %d, want 2", s.Supervision.Orchestrators)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s.Reschedule.Delay = 2 * time.Minute
	s.Supervision.Orchestrators = 1
	want := Problems{
		{Path: "reschedule.delay", Msg: "2m is longer than max_delay (1m)"},
		{Path: "supervision.standbys", Msg: "1 standby, but orchestrators: 1 leaves room for 0 (the orchestrating node plus its standbys)"},
	}
	var got Problems
	if err := s.Validate(); err == nil || !errors.As(err, &got) || !reflect.DeepEqual(got, want) {
		t.Errorf("Validate = %v, want %v", err, want)
	}
}

// TestMaxOrchestratorsMatchesTag keeps maxOrchestrators and the ens tag of
// Supervision.Orchestrators in step.
func TestMaxOrchestratorsMatchesTag(t *testing.T) {
	for _, f := range fieldsOf(reflect.TypeFor[Supervision]()) {
		if f.name == "orchestrators" && (f.max == nil || *f.max != int64(maxOrchestrators)) {
			t.Errorf("ens tag max of orchestrators = %v, want %d", f.max, maxOrchestrators)
		}
	}
}

// TestRescheduleZeroesRoundTrip: a zero that differs from its default
// (attempts: 0, delay: 0s) survives Marshal, as the node receives the
// ensemble marshaled.
func TestRescheduleZeroesRoundTrip(t *testing.T) {
	for _, src := range []string{
		"reschedule: {attempts: 0, interval: 0s}\n",
		"reschedule: {delay: 0s, max_delay: 0s}\n",
		"reschedule: {delay: 0s, delay_function: constant}\n",
		"reschedule: {attempts: 7, interval: 10m, delay: 3s, max_delay: 2m}\n",
	} {
		src = "version: v1\nallocations:\n  web:\n    type: service\n    executor: docker\n    execution: {image: nginx}\n" + src
		s, err := Parse([]byte(src))
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		out, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(s)) = %v\n%s", err, out)
		}
		if again.Reschedule != s.Reschedule {
			t.Errorf("round trip of %q: reschedule = %+v, want %+v\n%s", src, again.Reschedule, s.Reschedule, out)
		}
	}
}
