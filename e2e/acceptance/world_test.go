package acceptance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/internal/e2etest"
)

// The state of a run: scenarios run one at a time (godog's concurrency 1),
// so the run knows the feature and the scenario in progress.

// World is what the steps of one scenario share. Steps get it with
// worldOf(ctx).
type World struct {
	// T fails the running step (Fatal stops it, Error marks it failed),
	// skips it (Skip), and runs its Cleanups when the scenario ends.
	T *Scope
	// Feature holds what the feature's scenarios share.
	Feature *Feature
	// Name and Tags are the scenario's (tags with their @, the feature's
	// included).
	Name string
	Tags []string
	// Dir is the scenario's working directory: commands run there, and
	// files named in steps are there.
	Dir string
	// Last is the result of the last command a step ran, and LastCmd the
	// command.
	Last    *e2etest.Result
	LastCmd string

	vals    map[string]any
	start   time.Time
	status  godog.StepResultStatus // the worst step status so far
	skipped string                 // why the scenario was skipped
	failure string                 // the first failing step and its error
}

// Feature is what the scenarios of one feature file share.
type Feature struct {
	// T is the feature's scope: its Cleanups run after the feature's last
	// scenario. Fatal and Error fail the running step.
	T *Scope
	// URI is the feature file (features/NAME.feature), Name its NAME.
	URI, Name string

	vals map[string]any
}

// featureValue returns the value the feature keeps under key, making it with
// make (which registers its cleanups on t, the feature's scope) the first
// time a scenario of the feature asks for it.
func featureValue[V any](f *Feature, key string, make func(t testing.TB) V) V {
	if v, ok := f.vals[key]; ok {
		return v.(V)
	}
	v := make(f.T)
	f.vals[key] = v
	return v
}

// scenarioValue is featureValue for one scenario.
func scenarioValue[V any](w *World, key string, make func(t testing.TB) V) V {
	if v, ok := w.vals[key]; ok {
		return v.(V)
	}
	v := make(w.T)
	w.vals[key] = v
	return v
}

type worldKey struct{}

// worldOf returns the scenario's World; the suite's Before hook put it in
// ctx.
func worldOf(ctx context.Context) *World {
	w, ok := ctx.Value(worldKey{}).(*World)
	if !ok {
		panic("acceptance: no World in the step's context (are the suite's hooks registered?)")
	}
	return w
}

// Path returns name relative to the scenario's directory (absolute names
// unchanged).
func (w *World) Path(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(w.Dir, name)
}

// HasTag reports whether the scenario has tag (with its @).
func (w *World) HasTag(tag string) bool { return slices.Contains(w.Tags, tag) }

// suiteRun is one run of the suite.
type suiteRun struct {
	t   *testing.T
	out io.Writer // live progress

	mu      sync.Mutex
	feature *Feature
	world   *World
	gt      godog.TestingT // the running step's, nil between steps
	// teardown holds, per feature URI, what failed when its scope closed.
	teardown map[string][]string
	// skips holds why scenarios were skipped, by feature URI and name.
	skips map[string]string
}

func newSuiteRun(t *testing.T, out io.Writer) *suiteRun {
	return &suiteRun{t: t, out: out, teardown: map[string][]string{}, skips: map[string]string{}}
}

// stepT returns godog's TestingT of the running step, or nil outside a
// step (hooks, cleanups).
func (r *suiteRun) stepT() godog.TestingT {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gt
}

// hooks registers the suite's hooks on a scenario.
func (r *suiteRun) hooks(sc *godog.ScenarioContext) {
	sc.Before(func(ctx context.Context, p *godog.Scenario) (context.Context, error) {
		w := r.enter(p)
		ctx = context.WithValue(ctx, worldKey{}, w)
		if w.HasTag("@pending") {
			w.status = godog.StepPending
			return ctx, godog.ErrPending
		}
		if why := missingPart(w.Tags); why != "" {
			r.skip(w, why)
			return ctx, godog.ErrSkip
		}
		return ctx, nil
	})
	sc.StepContext().Before(func(ctx context.Context, _ *godog.Step) (context.Context, error) {
		r.mu.Lock()
		r.gt = godog.T(ctx)
		r.mu.Unlock()
		return ctx, nil
	})
	sc.StepContext().After(func(ctx context.Context, st *godog.Step, status godog.StepResultStatus, err error) (context.Context, error) {
		r.mu.Lock()
		r.gt = nil
		r.mu.Unlock()
		w := worldOf(ctx)
		if worse(status, w.status) {
			w.status = status
		}
		if status == godog.StepFailed && w.failure == "" {
			w.failure = fmt.Sprintf("step %q: %v", st.Text, err)
		}
		return ctx, nil
	})
	sc.After(func(ctx context.Context, p *godog.Scenario, err error) (context.Context, error) {
		w := worldOf(ctx)
		errs := r.leave(w)
		if len(errs) > 0 {
			return ctx, fmt.Errorf("cleanup: %s", strings.Join(errs, "; "))
		}
		return ctx, nil
	})
}

// worse orders step statuses for a scenario's verdict: failed, undefined,
// pending, skipped, passed.
func worse(a, b godog.StepResultStatus) bool {
	rank := map[godog.StepResultStatus]int{godog.StepPassed: 0, godog.StepSkipped: 1, godog.StepPending: 2, godog.StepUndefined: 3, godog.StepAmbiguous: 4, godog.StepFailed: 5}
	return rank[a] > rank[b]
}

// enter starts a scenario: the feature's scope when it is the first of its
// feature (closing the previous feature's), a World.
func (r *suiteRun) enter(p *godog.Scenario) *World {
	if r.world != nil { // the previous scenario's After hook did not run
		r.leave(r.world)
	}
	if r.feature == nil || r.feature.URI != p.Uri {
		r.closeFeature()
		name := strings.TrimSuffix(filepath.Base(p.Uri), ".feature")
		r.feature = &Feature{T: newScope(r, name), URI: p.Uri, Name: name, vals: map[string]any{}}
		fmt.Fprintf(r.out, "\n%s (%s)\n", name, p.Uri)
	}
	w := &World{T: newScope(r, r.feature.Name+": "+p.Name), Feature: r.feature, Name: p.Name, vals: map[string]any{}, start: time.Now(), status: godog.StepPassed}
	for _, tag := range p.Tags {
		w.Tags = append(w.Tags, tag.Name)
	}
	w.Dir = w.T.TempDir()
	r.world = w
	return w
}

// leave ends a scenario: runs its cleanups and prints its verdict. It
// returns what failed in the cleanups.
func (r *suiteRun) leave(w *World) []string {
	r.world = nil
	errs := w.T.close()
	verdict := "PASS"
	switch w.status {
	case godog.StepFailed, godog.StepAmbiguous:
		verdict = "FAIL"
	case godog.StepUndefined:
		verdict = "FAIL"
		if w.failure == "" {
			w.failure = "a step is undefined"
		}
	case godog.StepPending:
		verdict = "PENDING"
		if !w.HasTag("@pending") {
			verdict = "FAIL"
			w.failure = "a step is pending but the scenario is not tagged @pending"
		}
	case godog.StepSkipped:
		verdict = "SKIP"
	}
	if len(errs) > 0 {
		verdict = "FAIL"
	}
	line := fmt.Sprintf("  %-7s %s", verdict, w.Name)
	if verdict == "PASS" || verdict == "FAIL" {
		line += fmt.Sprintf(" (%.1fs)", time.Since(w.start).Seconds())
	}
	fmt.Fprintln(r.out, line)
	switch verdict {
	case "SKIP":
		if w.skipped != "" {
			fmt.Fprintf(r.out, "          %s\n", w.skipped)
		}
	case "FAIL":
		if w.failure != "" {
			fmt.Fprintf(r.out, "%s\n", indent(w.failure, "          "))
		}
		for _, e := range errs {
			fmt.Fprintf(r.out, "%s\n", indent("cleanup: "+e, "          "))
		}
		w.Feature.T.markFailed()
		if logs := w.T.logText(); logs != "" {
			fmt.Fprintf(r.out, "%s\n", indent(logs, "          | "))
		}
	}
	return errs
}

// skip records why a scenario is skipped.
func (r *suiteRun) skip(w *World, why string) {
	w.skipped = why
	w.status = godog.StepSkipped
	r.mu.Lock()
	r.skips[w.Feature.URI+"\x00"+w.Name] = why
	r.mu.Unlock()
}

// closeFeature runs the cleanups of the feature in progress.
func (r *suiteRun) closeFeature() {
	f := r.feature
	if f == nil {
		return
	}
	r.feature = nil
	if errs := f.T.close(); len(errs) > 0 {
		r.teardown[f.URI] = errs
		for _, e := range errs {
			fmt.Fprintf(r.out, "%s\n", indent("teardown of "+f.Name+": "+e, "  FAIL    "))
		}
	}
	if f.T.Failed() {
		if logs := f.T.logText(); logs != "" {
			fmt.Fprintf(r.out, "  logs of %s:\n%s\n", f.Name, indent(logs, "          | "))
		}
	}
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// Scope is the testing.TB that steps hand to internal/e2etest and to
// their own helpers: the scenario's (World.T) or the feature's
// (Feature.T). During a step, Error and Fatal fail that step, Skip skips
// the scenario (through godog's TestingT, so godog reports the step failed
// or skipped); outside a step (cleanups) failures are collected and
// reported by whoever closes the scope. Logs are kept and printed when the
// scenario fails. Cleanups run, last first, when the scope closes.
type Scope struct {
	testing.TB // the suite's test, for what a Scope does not override

	name string
	r    *suiteRun

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	skipped  bool
	errs     []string // failures outside a step
	logs     []string
	dir      string
	dirs     int
}

var _ testing.TB = (*Scope)(nil)

// errAbort stops a function that called FailNow outside a step.
var errAbort = errors.New("acceptance: FailNow outside a step")

func newScope(r *suiteRun, name string) *Scope { return &Scope{TB: r.t, name: name, r: r} }

func (s *Scope) Name() string { return s.name }
func (s *Scope) Helper()      {}

func (s *Scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *Scope) Log(args ...any) { s.log(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }

func (s *Scope) Logf(format string, args ...any) { s.log(fmt.Sprintf(format, args...)) }

func (s *Scope) log(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs = append(s.logs, tail(msg, 60))
}

// tail keeps the last n lines of s (node logs can be long).
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= n {
		return strings.Join(lines, "\n")
	}
	return fmt.Sprintf("[%d lines before]\n%s", len(lines)-n, strings.Join(lines[len(lines)-n:], "\n"))
}

func (s *Scope) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.logs, "\n")
}

func (s *Scope) Error(args ...any) { s.fail(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }

func (s *Scope) Errorf(format string, args ...any) { s.fail(fmt.Sprintf(format, args...)) }

func (s *Scope) Fail() { s.fail("failed") }

func (s *Scope) fail(msg string) {
	s.markFailed()
	if gt := s.r.stepT(); gt != nil {
		gt.Errorf("%s", msg)
		return
	}
	s.mu.Lock()
	s.errs = append(s.errs, msg)
	s.mu.Unlock()
}

func (s *Scope) markFailed() {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
}

func (s *Scope) FailNow() {
	s.markFailed()
	if gt := s.r.stepT(); gt != nil {
		gt.FailNow() // panics with godog's sentinel; godog fails the step
	}
	panic(errAbort)
}

func (s *Scope) Fatal(args ...any) {
	s.Error(args...)
	s.FailNow()
}

func (s *Scope) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	s.FailNow()
}

func (s *Scope) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *Scope) Skip(args ...any) { s.skip(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }

func (s *Scope) Skipf(format string, args ...any) { s.skip(fmt.Sprintf(format, args...)) }

func (s *Scope) SkipNow() { s.skip("") }

// skip skips the running scenario: godog reports the step and those after
// it skipped.
func (s *Scope) skip(why string) {
	s.mu.Lock()
	s.skipped = true
	s.mu.Unlock()
	if w := s.r.world; w != nil && why != "" {
		s.r.skip(w, why)
	}
	if gt := s.r.stepT(); gt != nil {
		gt.SkipNow() // panics with godog's sentinel; godog skips the step
	}
	panic(errAbort)
}

func (s *Scope) Skipped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

// TempDir returns a new directory, removed when the scope closes.
func (s *Scope) TempDir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		d, err := os.MkdirTemp("", "dms-acceptance-")
		if err != nil {
			panic(fmt.Sprintf("acceptance: temp dir: %v", err))
		}
		s.dir = d
	}
	s.dirs++
	d := filepath.Join(s.dir, fmt.Sprint(s.dirs))
	if err := os.Mkdir(d, 0o755); err != nil {
		panic(fmt.Sprintf("acceptance: temp dir: %v", err))
	}
	return d
}

// close runs the cleanups, last registered first, removes the scope's
// directories, and returns what failed outside a step.
func (s *Scope) close() []string {
	for {
		s.mu.Lock()
		n := len(s.cleanups)
		if n == 0 {
			s.mu.Unlock()
			break
		}
		f := s.cleanups[n-1]
		s.cleanups = s.cleanups[:n-1]
		s.mu.Unlock()
		s.runCleanup(f)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir != "" {
		os.RemoveAll(s.dir)
		s.dir = ""
	}
	errs := s.errs
	s.errs = nil
	return errs
}

func (s *Scope) runCleanup(f func()) {
	defer func() {
		if e := recover(); e != nil && e != errAbort {
			s.mu.Lock()
			s.errs = append(s.errs, fmt.Sprintf("cleanup panicked: %v\n%s", e, debug.Stack()))
			s.failed = true
			s.mu.Unlock()
		}
	}()
	f()
}
