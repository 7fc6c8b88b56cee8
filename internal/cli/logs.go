package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
)

// defaultFollowTail is how many lines `logs -f` starts with when --tail is
// not given.
const defaultFollowTail = 10

// newDeploymentLogsCmd is `dms deployment logs`.
func newDeploymentLogsCmd(a *app) *cobra.Command {
	var follow, timestamps, stderrOnly, healthChecks bool
	var alloc, since string
	var tail int
	logs := &cobra.Command{
		Use:   "logs ID [-f] [--allocation ALLOC] [--tail N] [--since DURATION|TIME] [--timestamps] [--stderr]",
		Short: "Print a deployment's logs (stdout and stderr of its allocations)",
		Long: `Print a deployment's logs: the stdout and stderr of its allocations, each on
the stream it was written to.

Without -f it prints everything logged so far; -f starts with the last 10 lines
of each allocation (--tail N to change it, --tail 0 for everything) and keeps
streaming until the allocations end. --since 10m (or an RFC 3339 time) leaves
out older lines. --timestamps prefixes each piece of output with the time the
provider read it (logs written before DMS kept times show "-").

The requests of the provider's own HTTP health checks (User-Agent
` + api.HealthCheckUserAgent + `) are left out of the output unless --health-checks.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := api.LogFilter{Tail: tail}
			if follow && !cmd.Flags().Changed("tail") {
				f.Tail = defaultFollowTail
			}
			if tail < 0 {
				return fmt.Errorf("--tail %d: want 0 (everything) or more lines", tail)
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				f.Since = t
			}
			if stderrOnly {
				f.Stream = "stderr"
			}
			f.HealthChecks = healthChecks
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.Deployment(a.ctx, args[0], 0, 0)
			if err != nil {
				return err
			}
			multi := len(d.Allocations) > 1 && alloc == ""
			return c.DeploymentLogsFiltered(a.ctx, d.ID, alloc, follow, f, func(l api.LogLine) {
				if a.json() {
					a.print(l, nil)
					return
				}
				if timestamps {
					a.printLogTimed(l, multi)
					return
				}
				a.printLog(l, multi)
			})
		},
	}
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming until the allocations end (starts with the last 10 lines)")
	logs.Flags().StringVar(&alloc, "allocation", "", "only this allocation")
	logs.Flags().IntVar(&tail, "tail", 0, "start with the last N lines of each allocation (0: everything; -f alone: 10)")
	logs.Flags().StringVar(&since, "since", "", "only lines written since a duration ago (10m, 2h) or a time (RFC 3339)")
	logs.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "prefix each line with the time it was logged")
	logs.Flags().BoolVar(&stderrOnly, "stderr", false, "only the stderr stream")
	logs.Flags().BoolVar(&healthChecks, "health-checks", false, "keep the lines of the node's own HTTP health checks")
	return logs
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: want a positive duration (10m) or a time", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (10m, 2h) or a time (2026-01-02T15:04:05Z)", s)
}

// printLogTimed is printLog with each line prefixed by the entry's time.
func (a *app) printLogTimed(l api.LogLine, multi bool) {
	w := a.stdout
	if l.Stream == "stderr" {
		w = a.stderr
	}
	stamp := "-"
	if !l.Time.IsZero() {
		stamp = l.Time.UTC().Format(time.RFC3339Nano)
	}
	for _, line := range strings.SplitAfter(l.Data, "\n") {
		if line == "" {
			continue
		}
		if multi {
			fmt.Fprintf(w, "%s [%s] %s", stamp, l.Allocation, line)
		} else {
			io.WriteString(w, stamp+" "+line)
		}
	}
}
