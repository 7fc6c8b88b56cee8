package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newPeersCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "The node's view of the network: list, self, connect, ping",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List known peers",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			peers, err := c.Peers(a.ctx)
			if err != nil {
				return err
			}
			return a.print(peers, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PEER ID\tCONNECTED\tLATENCY\tADDRS")
				for _, p := range peers {
					lat := "-"
					if p.LatencyMS > 0 {
						lat = fmt.Sprintf("%.2fms", p.LatencyMS)
					}
					fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", p.ID, p.Connected, lat, strings.Join(p.Addrs, ","))
				}
				return tw.Flush()
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "self",
		Short: "Print this node's peer ID, DID and full multiaddrs",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			n, err := c.Node(a.ctx)
			if err != nil {
				return err
			}
			return a.print(n, func(w io.Writer) error {
				fmt.Fprintf(w, "peer id  %s\ndid      %s\n", n.PeerID, n.DID)
				for _, addr := range n.Addrs {
					fmt.Fprintf(w, "addr     %s\n", addr)
				}
				return nil
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "connect MULTIADDR",
		Short: "Connect to a peer, e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…",
		Args:  exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Connect(a.ctx, args[0])
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "connected to %s\n", res.PeerID)
				return err
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "ping PEER",
		Short: "Measure the round trip to a peer (peer ID or DID)",
		Args:  exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Ping(a.ctx, args[0])
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s: %.3f ms\n", res.PeerID, res.RTTMS)
				return err
			})
		},
	})
	return cmd
}
