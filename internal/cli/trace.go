package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/telemetry"
)

func newDeploymentTraceCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "trace ID",
		Short: "Show a deployment's trace: its spans on every node, as a tree with durations",
		Long: `Show a deployment's trace, gathered by the node that orchestrates it from its
own record of spans and from every node that ran the deployment's allocations
(no collector needed). Each line is a span: its name, the node that recorded
it, its duration, its start after the trace's first span (@+), its
attributes and its error; span events (restarts, redeploys) are indented
below it. A span whose parent was not gathered is shown under the root,
marked as an orphan. A node that could not be asked is named at the end: the
trace is then partial.

A deployment submitted with tracing off, or whose trace was not sampled
(telemetry.sampling), has no trace: the command says so and exits 1.
Spans show once they end: an allocation's span ends when it stops.`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.DeploymentTrace(a.ctx, args[0])
			if err != nil {
				return err
			}
			return a.print(t, func(w io.Writer) error { return printTrace(w, t) })
		},
	}
}

// printTrace writes the human form of dms deployment trace.
func printTrace(w io.Writer, t *api.DeploymentTrace) error {
	recs := make([]telemetry.SpanRecord, len(t.Spans))
	for i, s := range t.Spans {
		recs[i] = telemetry.SpanRecord{TraceID: s.TraceID, SpanID: s.SpanID, ParentID: s.ParentID, Name: s.Name, Node: s.Node,
			Start: s.Start, End: s.End, Attrs: s.Attrs, Error: s.Error}
		for _, e := range s.Events {
			recs[i].Events = append(recs[i].Events, telemetry.SpanEvent{Time: e.Time, Name: e.Name, Attrs: e.Attrs})
		}
	}
	asked := 0
	for _, n := range t.Nodes {
		if n.Error == "" {
			asked++
		}
	}
	fmt.Fprintf(w, "trace %s of deployment %s: %d spans from %d of %d nodes\n", t.TraceID, t.Deployment, len(t.Spans), asked, len(t.Nodes))
	if err := telemetry.Render(w, telemetry.Tree(recs)); err != nil {
		return err
	}
	for _, n := range t.Nodes {
		switch {
		case n.Error != "":
			fmt.Fprintf(w, "partial: node %s gave no spans: %s\n", short(n.Node), oneLine(n.Error))
		case n.Omitted > 0:
			fmt.Fprintf(w, "partial: node %s left out %d spans (its answer is bounded)\n", short(n.Node), n.Omitted)
		}
	}
	return nil
}
