package acceptance

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cucumber/godog"
)

// Steps of the messages a user reads (api_cli.feature): a command run with
// a given passphrase, and an error that says something exactly once.
func msgSteps(sc *godog.ScenarioContext) {
	sc.Step("^([a-z]+) runs `dms (.+)` with the passphrase \"([^\"]*)\"$", func(ctx context.Context, name, line, pass string) error {
		w := worldOf(ctx)
		line = w.expand(line)
		args, err := splitArgs(line)
		if err != nil {
			return err
		}
		h := w.home(name)
		h.Env = slices.Concat(h.Env, []string{"DMS_PASSPHRASE=" + pass}) // the last value of a variable wins
		r := h.Run(w.T, args...)
		w.Last, w.LastCmd = &r, fmt.Sprintf("%s: DMS_PASSPHRASE=%s dms %s", name, pass, line)
		return nil
	})
	sc.Step(`^the error says "(.*)" once$`, func(ctx context.Context, want string) error {
		w := worldOf(ctx)
		if want = w.expand(unquote(want)); strings.Count(w.last().Stderr, want) != 1 {
			return fmt.Errorf("want %q once on stderr: %s", want, w.lastString())
		}
		return nil
	})
}
