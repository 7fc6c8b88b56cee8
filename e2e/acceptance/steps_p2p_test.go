package acceptance

import (
	"context"
	"fmt"

	"github.com/cucumber/godog"
)

// Steps of the peer-to-peer network.

func p2pSteps(sc *godog.ScenarioContext) {
	sc.Step(`^([a-z]+) and ([a-z]+) list each other as connected within (\d+) seconds$`, func(ctx context.Context, a, b, secs string) error {
		w := worldOf(ctx)
		n := netOf(w)
		if !eventually(seconds(secs), func() bool { return n.connected(w.T, a, b) && n.connected(w.T, b, a) }) {
			return fmt.Errorf("%s and %s do not list each other as connected within %ss (%s: %v, %s: %v)", a, b, secs, a, n.connected(w.T, a, b), b, n.connected(w.T, b, a))
		}
		return nil
	})
}
