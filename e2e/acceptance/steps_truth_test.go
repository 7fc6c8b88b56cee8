package acceptance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/api"
)

// truthSteps are the steps of the docs-tell-the-truth scenarios (issue 13,
// job_format and api_cli features): warnings of dms validate, and the
// message of a deployment that waits for an executor nobody offers.
func truthSteps(sc *godog.ScenarioContext) {
	sc.Step(`^the error has (\d+) lines? starting with "(.*)"$`, func(ctx context.Context, n int, prefix string) error {
		w := worldOf(ctx)
		prefix = w.expand(unquote(prefix))
		got := 0
		for _, line := range strings.Split(w.last().Stderr, "\n") {
			if strings.HasPrefix(line, prefix) {
				got++
			}
		}
		if got != n {
			return fmt.Errorf("%d lines of stderr start with %q, want %d: %s", got, prefix, n, w.lastString())
		}
		return nil
	})
	sc.Step(`^the output lists (\d+) warnings?, the first at "([^"]+)"$`, func(ctx context.Context, n int, path string) error {
		w := worldOf(ctx)
		var res struct {
			Warnings []struct {
				Path    string `json:"path"`
				Message string `json:"message"`
			} `json:"warnings"`
		}
		if err := json.Unmarshal([]byte(w.last().Stdout), &res); err != nil {
			return fmt.Errorf("stdout is not the JSON of dms validate: %v: %s", err, w.lastString())
		}
		if len(res.Warnings) != n || n > 0 && res.Warnings[0].Path != path {
			return fmt.Errorf("warnings %+v, want %d, the first at %s", res.Warnings, n, path)
		}
		return nil
	})
	sc.Step(`^within (\d+) seconds the deployment is queued with the message "(.*)"$`, func(ctx context.Context, secs, want string) error {
		w := worldOf(ctx)
		want = unquote(want)
		_, err := w.waitState(seconds(secs), "queued saying "+want, func(d api.Deployment) bool {
			return d.State == "queued" && strings.Contains(d.Message, want)
		})
		return err
	})
}
