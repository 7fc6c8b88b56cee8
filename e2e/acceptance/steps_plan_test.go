package acceptance

import (
	"context"
	"fmt"
	"strings"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/api"
)

// planSteps are the steps of dms plan and dms nodes (api_cli.feature):
// what a plan leaves on the providers, and which peers dms nodes names.
func planSteps(sc *godog.ScenarioContext) {
	// Read at once, not eventually: a plan must reserve nothing, not
	// reserve and release.
	sc.Step(`^no provider holds a reservation right now$`, func(ctx context.Context) error {
		w := worldOf(ctx)
		n := netOf(w)
		for name := range n.nodes {
			if !n.running(name) {
				continue
			}
			s := w.resources(name)
			if len(s.Reservations) != 0 || s.Reserved.CPU != 0 {
				return fmt.Errorf("%s holds %d reservations (%v cpu reserved)", name, len(s.Reservations), s.Reserved.CPU)
			}
		}
		return nil
	})
	sc.Step(`^([a-z]+) has no deployment$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		var ds []api.Deployment
		w.home(name).JSON(w.T, &ds, "deployments")
		if len(ds) != 0 {
			return fmt.Errorf("%s has %d deployments, the first %s (%s)", name, len(ds), ds[0].ID, ds[0].State)
		}
		return nil
	})
	sc.Step(`^the output names the peers of `+names+`$`, func(ctx context.Context, list string) error {
		w := worldOf(ctx)
		out := w.last().Stdout
		for _, name := range splitNames(list) {
			if id := netOf(w).id(w.T, name, "peer"); !strings.Contains(out, id) {
				return fmt.Errorf("the output does not name %s (%s):\n%s", name, id, out)
			}
		}
		return nil
	})
}
