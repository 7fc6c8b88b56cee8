package acceptance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/cucumber/godog"
)

// translateSteps are the steps of the translation scenarios of
// job_format.feature: what dms translate wrote, and what it did not.
func translateSteps(sc *godog.ScenarioContext) {
	sc.Step(`^the file "([^"]+)" starts with "(.*)"$`, func(ctx context.Context, name, want string) error {
		w := worldOf(ctx)
		data, err := os.ReadFile(w.Path(name))
		if err != nil {
			return err
		}
		if want = w.expand(unquote(want)); !strings.HasPrefix(string(data), want) {
			return fmt.Errorf("%s does not start with %q:\n%s", name, want, data)
		}
		return nil
	})
	sc.Step(`^the file "([^"]+)" does not exist$`, func(ctx context.Context, name string) error {
		_, err := os.Stat(worldOf(ctx).Path(name))
		switch {
		case err == nil:
			return fmt.Errorf("%s exists", name)
		case errors.Is(err, fs.ErrNotExist):
			return nil
		}
		return err
	})
}
