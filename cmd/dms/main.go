// Command dms is the Device Management Service: one binary that makes this
// machine a node of a peer-to-peer compute network, and the command line that
// drives it. See the README for the two commands a newcomer needs.
package main

import (
	"context"
	"os"

	"github.com/dmsnet/dms/internal/cli"
)

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
