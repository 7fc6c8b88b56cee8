package acceptance

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/cucumber/godog"
)

// timestamped is a line of `dms deployment logs --timestamps`.
var timestamped = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z `)

// execSteps: commands with input (dms deployment exec -i), and the shape of
// log output (logs --timestamps, --tail).
func execSteps(sc *godog.ScenarioContext) {
	sc.Step("^([a-z]+) runs `dms (.+)` with the input \"(.*)\"$", func(ctx context.Context, name, line, input string) error {
		w := worldOf(ctx)
		line = w.expand(line)
		args, err := splitArgs(line)
		if err != nil {
			return err
		}
		r := w.home(name).RunInput(w.T, strings.ReplaceAll(input, `\n`, "\n"), args...)
		w.Last, w.LastCmd = &r, name+": dms "+line
		return nil
	})
	sc.Step("^([a-z]+) runs `dms (.+)` on a terminal$", func(ctx context.Context, name, line string) error {
		w := worldOf(ctx)
		line = w.expand(line)
		args, err := splitArgs(line)
		if err != nil {
			return err
		}
		r, ok := w.home(name).RunTerminal(w.T, args...)
		if !ok {
			w.T.Skip("script(1) (util-linux) is not installed: no pseudo-terminal to run on")
		}
		w.Last, w.LastCmd = &r, name+": dms "+line+" (on a terminal)"
		return nil
	})
	sc.Step(`^every line of the output starts with a timestamp$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		out := strings.TrimRight(w.last().Stdout, "\n")
		if out == "" {
			return fmt.Errorf("no output: %s", w.lastString())
		}
		for _, l := range strings.Split(out, "\n") {
			if !timestamped.MatchString(l) {
				return fmt.Errorf("line %q has no RFC 3339 timestamp: %s", l, w.lastString())
			}
		}
		return nil
	})
	sc.Step(`^the output has (\d+) lines?$`, func(ctx context.Context, n int) error {
		w := worldOf(ctx)
		out := strings.TrimRight(w.last().Stdout, "\n")
		got := 0
		if out != "" {
			got = strings.Count(out, "\n") + 1
		}
		if got != n {
			return fmt.Errorf("want %d lines, got %d: %s", n, got, w.lastString())
		}
		return nil
	})
}
