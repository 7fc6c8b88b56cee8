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
	// Deployments of earlier scenarios of the feature (its network is
	// shared) do not count: only those created since this scenario began.
	sc.Step(`^([a-z]+) has no deployment$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		var ds []api.Deployment
		w.home(name).JSON(w.T, &ds, "deployments")
		for _, d := range ds {
			if !d.Created.Before(w.start) {
				return fmt.Errorf("%s has a deployment created in this scenario: %s (%s)", name, d.ID, d.State)
			}
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
