package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/internal/node"
)

func newRunCmd(a *app) *cobra.Command {
	var listen []string
	var apiListen string
	var bootstrap []string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Start the node in the foreground (stop with Ctrl-C)",
		Long: `Start the node: the libp2p host, the actor runtime and the REST API.

Flags override the configuration (<home>/config.yaml, DMS_* variables). The
API listens on loopback only; its address is written to <home>/api.addr
once it listens. The node key's passphrase comes from $DMS_PASSPHRASE,
$DMS_PASSPHRASE_FILE or a prompt. SIGINT or SIGTERM stops the node cleanly.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireHome(); err != nil {
				return err
			}
			flags := map[string]string{}
			if cmd.Flags().Changed("listen") {
				flags["p2p.listen"] = strings.Join(listen, ",")
			}
			if cmd.Flags().Changed("api-listen") {
				flags["api.listen"] = apiListen
			}
			if cmd.Flags().Changed("bootstrap") {
				flags["p2p.bootstrap"] = strings.Join(bootstrap, ",")
			}
			cfg, err := a.loadConfig(flags)
			if err != nil {
				return err
			}
			log, err := a.logger(cfg.Log)
			if err != nil {
				return err
			}
			defer log.Close()
			key, err := a.loadKey("node")
			if err != nil {
				return err
			}
			user, err := a.keystore().DID("user")
			if err != nil {
				return err
			}
			token, err := a.token()
			if err != nil {
				return err
			}
			return node.Run(a.ctx, node.Config{
				Home: a.home, Config: cfg, Key: key, UserDID: user, Token: token,
				Version: version, Logger: log.Logger,
				Ready: func(addr string) {
					if !a.json() {
						fmt.Fprintf(a.stderr, "dms node %s running; API on %s\n", key.DID().Short(), addr)
					}
				},
			})
		},
	}
	cmd.Flags().StringSliceVar(&listen, "listen", nil, "multiaddr(s) to listen on (overrides p2p.listen), e.g. /ip4/127.0.0.1/tcp/4001")
	cmd.Flags().StringVar(&apiListen, "api-listen", "", "loopback host:port for the REST API (overrides api.listen; port 0 picks one)")
	cmd.Flags().StringSliceVar(&bootstrap, "bootstrap", nil, "full multiaddr(s) of peers to join through (overrides p2p.bootstrap)")
	return cmd
}

// token reads the API token.
func (a *app) token() (string, error) {
	data, err := os.ReadFile(a.path(apiTokenFile))
	if err != nil {
		return "", fmt.Errorf("read API token: %w (run `dms init`)", err)
	}
	return strings.TrimSpace(string(data)), nil
}
