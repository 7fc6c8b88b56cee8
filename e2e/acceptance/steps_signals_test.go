package acceptance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/internal/e2etest"
	"github.com/dmsnet/dms/internal/poll"
)

// Steps of a command that runs in the background and gets a signal, as
// when a user presses Ctrl-C (api_cli.feature): "alice starts `dms ...`",
// "it is sent SIGINT", "it exits with 130 within 10 seconds". A process a
// scenario leaves running is killed when it ends.
func signalSteps(sc *godog.ScenarioContext) {
	sc.Step("^([a-z]+) starts `dms (.+)`$", func(ctx context.Context, name, line string) error {
		w := worldOf(ctx)
		args, err := splitArgs(w.expand(line))
		if err != nil {
			return err
		}
		h := w.home(name)
		cmd := exec.Command(h.Bin, append([]string{"--home", h.Dir}, args...)...)
		cmd.Env = slices.Concat(os.Environ(), []string{"DMS_PASSPHRASE=" + e2etest.Passphrase}, h.Env)
		cmd.Dir = h.WorkDir
		bg := &background{name: name, line: line, done: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = &bg.stdout, &bg.stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start dms %s: %w", line, err)
		}
		bg.cmd = cmd
		go func() { bg.err = cmd.Wait(); close(bg.done) }()
		w.T.Cleanup(func() {
			select {
			case <-bg.done:
			default:
				cmd.Process.Kill()
				<-bg.done
			}
		})
		w.vals["background"] = bg
		return nil
	})
	sc.Step(`^within (\d+) seconds its error output says "(.*)"$`, func(ctx context.Context, secs int, want string) error {
		w := worldOf(ctx)
		bg := backgroundOf(w)
		want = w.expand(unquote(want))
		poll.Eventually(w.T, time.Duration(secs)*time.Second, fmt.Sprintf("dms %s says %q (stderr so far: %q)", bg.line, want, bg.stderr.String()), func() bool {
			return strings.Contains(bg.stderr.String(), want)
		})
		bg.keepDeployment(w)
		return nil
	})
	sc.Step(`^it is sent (SIGINT|SIGTERM)$`, func(ctx context.Context, sig string) error {
		bg := backgroundOf(worldOf(ctx))
		s := syscall.SIGINT
		if sig == "SIGTERM" {
			s = syscall.SIGTERM
		}
		return bg.cmd.Process.Signal(s)
	})
	sc.Step(`^it exits with (\d+) within (\d+) seconds$`, func(ctx context.Context, code, secs int) error {
		w := worldOf(ctx)
		bg := backgroundOf(w)
		select {
		case <-bg.done:
		case <-time.After(time.Duration(secs) * time.Second):
			return fmt.Errorf("dms %s still runs %ds after the signal; stderr: %q", bg.line, secs, bg.stderr.String())
		}
		got := 0
		var ee *exec.ExitError
		if errors.As(bg.err, &ee) {
			got = ee.ExitCode()
		} else if bg.err != nil {
			return bg.err
		}
		if got != code {
			return fmt.Errorf("dms %s exited with %d, want %d; stderr: %q", bg.line, got, code, bg.stderr.String())
		}
		return nil
	})
	sc.Step(`^its error output says "(.*)"$`, func(ctx context.Context, want string) error {
		w := worldOf(ctx)
		bg := backgroundOf(w)
		if want = w.expand(unquote(want)); !strings.Contains(bg.stderr.String(), want) {
			return fmt.Errorf("dms %s: stderr lacks %q: %q", bg.line, want, bg.stderr.String())
		}
		return nil
	})
}

// background is a dms command a scenario started and has not waited for.
type background struct {
	name, line     string
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error // set before done closes
}

func backgroundOf(w *World) *background {
	bg, ok := w.vals["background"].(*background)
	if !ok {
		w.T.Fatal("no command was started in the background in this scenario")
	}
	return bg
}

var submittedLine = regexp.MustCompile(`deployment (\S+) submitted`)

// keepDeployment makes the deployment a background `dms deploy` submitted
// the scenario's <deployment>, shut down when the scenario ends.
func (bg *background) keepDeployment(w *World) {
	m := submittedLine.FindStringSubmatch(bg.stderr.String())
	if m == nil || w.vals["deployment"] == m[1] {
		return
	}
	id := m[1]
	w.vals["deployment"], w.vals["orchestrator"] = id, bg.name
	w.T.Cleanup(func() {
		if !netOf(w).running(bg.name) {
			return
		}
		if d, ok := w.tryStatus(bg.name, id); ok && !d.Terminal() {
			w.home(bg.name).Run(w.T, "deployment", "shutdown", id)
		}
	})
}

// lockedBuffer is a strings.Builder safe for a writing process and a
// reading step.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
