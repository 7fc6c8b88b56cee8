package cli

import (
	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/api"
)

// newDeploymentLogsCmd is `dms deployment logs`.
func newDeploymentLogsCmd(a *app) *cobra.Command {
	var follow bool
	var alloc string
	logs := &cobra.Command{
		Use:   "logs ID [-f] [--allocation NAME]",
		Short: "Print a deployment's logs (stdout and stderr of its allocations)",
		Args:  exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.Deployment(a.ctx, args[0], 0, 0)
			if err != nil {
				return err
			}
			multi := len(d.Allocations) > 1 && alloc == ""
			return c.DeploymentLogs(a.ctx, args[0], alloc, follow, func(l api.LogLine) {
				if a.json() {
					a.print(l, nil)
					return
				}
				a.printLog(l, multi)
			})
		},
	}
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming until the allocations end")
	logs.Flags().StringVar(&alloc, "allocation", "", "only this allocation")
	return logs
}
