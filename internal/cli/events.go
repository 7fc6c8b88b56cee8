package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
)

// eventsPoll is how long one request of `events -f` waits for an event.
const eventsPoll = 30 * time.Second

// statusEvents is how many of the last events `deployment status` shows.
const statusEvents = 5

// newDeploymentEventsCmd is `dms deployment events`.
func newDeploymentEventsCmd(a *app) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "events ID [-f]",
		Short: "Print a deployment's timeline: placements, losses, restarts, redeploys, takeovers",
		Long: `Print a deployment's timeline: every supervision decision its orchestrator
took and what caused it, oldest first: a node placed, a provider lost (no
heartbeat), an allocation restarted or failed, a node redeployed on another
provider, a stale copy stopped, a dependent notified, the reschedule budget
spent, a standby orchestrator taking over. The node keeps the last 500.

The table shows the local time (with the date when not today), the kind, the
allocation (or node) and the message. -f keeps printing new events until the
deployment ends (then exits 0) or Ctrl-C. With -o json it prints a JSON array,
or with -f one JSON object per line (-o yaml: a stream of documents).`,
		Example: `  dms deployment events dk3f
  dms deployment events dk3f -f -o json | jq -r .message`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			evs, err := c.DeploymentEvents(a.ctx, args[0], 0, 0)
			if err != nil {
				return err
			}
			if !follow {
				if evs.Events == nil {
					evs.Events = []api.DeploymentEvent{}
				}
				return a.print(evs.Events, func(w io.Writer) error {
					now := time.Now()
					printEventHeader(w)
					for _, e := range evs.Events {
						printEvent(w, e, now)
					}
					return nil
				})
			}
			if !a.json() {
				printEventHeader(a.stdout)
			}
			for {
				for _, e := range evs.Events {
					if err := a.printFollowedEvent(e); err != nil {
						return err
					}
				}
				if evs.Ended {
					return nil
				}
				id, next := evs.ID, evs.Next
				if evs, err = c.DeploymentEvents(a.ctx, id, next, eventsPoll); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until the deployment ends")
	return cmd
}

// printFollowedEvent prints one event of `events -f`: a table row, one
// JSON object on a line, or one YAML document.
func (a *app) printFollowedEvent(e api.DeploymentEvent) error {
	switch a.output {
	case "json":
		return json.NewEncoder(a.stdout).Encode(e)
	case "yaml":
		return a.printYAML(e)
	}
	return printEvent(a.stdout, e, time.Now())
}

func printEventHeader(w io.Writer) {
	fmt.Fprintf(w, "%-12s  %-13s  %-12s  %s\n", "TIME", "KIND", "ALLOCATION", "MESSAGE")
}

// printEvent writes one row of the events table. The columns have fixed
// widths, wider cells push the next: rows printed one by one (-f) line up
// as a table does.
func printEvent(w io.Writer, e api.DeploymentEvent, now time.Time) error {
	_, err := fmt.Fprintf(w, "%-12s  %-13s  %-12s  %s\n", eventTime(e.Time, now), e.Kind, eventSubject(e), oneLine(e.Message))
	return err
}

// eventTime writes t in local time to the millisecond, with the date when
// it is not the day of now.
func eventTime(t, now time.Time) string {
	t, now = t.Local(), now.Local()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04:05.000")
	}
	return t.Format("2006-01-02 15:04:05.000")
}

// eventSubject is what an event is about: its allocation, else its node.
func eventSubject(e api.DeploymentEvent) string {
	switch {
	case e.Allocation != "":
		return e.Allocation
	case e.Node != "":
		return "node " + e.Node
	}
	return "-"
}

// printRecentEvents writes the last statusEvents events of d under an
// "Events:" heading, saying how to see the others.
func printRecentEvents(w io.Writer, d *api.Deployment, now time.Time) {
	if len(d.Events) == 0 {
		return
	}
	evs := d.Events
	fmt.Fprintln(w, "\nEvents:")
	if n := len(evs) - statusEvents; n > 0 {
		evs = evs[n:]
		fmt.Fprintf(w, "  (%d earlier: dms deployment events %s)\n", n, d.ID)
	}
	var b strings.Builder
	printEventHeader(&b)
	for _, e := range evs {
		printEvent(&b, e, now)
	}
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if line != "" {
			io.WriteString(w, "  "+line)
		}
	}
}
