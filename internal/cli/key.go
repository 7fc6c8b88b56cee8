package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/internal/identity"
)

func newKeyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the keys of this home (encrypted at rest)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "new NAME",
		Short: "Create a key",
		Args:  exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := a.requireHome(); err != nil {
				return err
			}
			name := args[0]
			if err := identity.ValidKeyName(name); err != nil {
				return usageError{err}
			}
			ks := a.keystore()
			if ks.Exists(name) {
				return fmt.Errorf("key %s already exists; refusing to overwrite", name)
			}
			pass, err := a.passphrase(name, true)
			if err != nil {
				return err
			}
			k, err := ks.Create(name, pass)
			if err != nil {
				return err
			}
			info := identity.KeyInfo{Name: name, DID: k.DID()}
			return a.print(info, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, k.DID())
				return err
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List keys with their DIDs (no passphrase needed)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := a.requireHome(); err != nil {
				return err
			}
			keys, err := a.keystore().List()
			if err != nil {
				return err
			}
			if keys == nil {
				keys = []identity.KeyInfo{}
			}
			return a.print(keys, func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tDID\tCREATED")
				for _, k := range keys {
					if k.Error != "" {
						fmt.Fprintf(tw, "%s\t(unreadable: %s)\t\n", k.Name, k.Error)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, k.DID, k.Created.Format("2006-01-02 15:04"))
				}
				return tw.Flush()
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "did [NAME]",
		Short: "Print the DID of a key (default: user); no passphrase needed",
		Args:  rangeArgs(0, 1),
		RunE: func(_ *cobra.Command, args []string) error {
			name := "user"
			if len(args) == 1 {
				name = args[0]
			}
			if err := a.requireHome(); err != nil {
				return err
			}
			did, err := a.keystore().DID(name)
			if err != nil {
				return err
			}
			return a.print(identity.KeyInfo{Name: name, DID: did}, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, did)
				return err
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "check [NAME]",
		Short: "Check that the passphrase opens a key (default: user)",
		Args:  rangeArgs(0, 1),
		RunE: func(_ *cobra.Command, args []string) error {
			name := "user"
			if len(args) == 1 {
				name = args[0]
			}
			if err := a.requireHome(); err != nil {
				return err
			}
			k, err := a.loadKey(name)
			if err != nil {
				return err
			}
			return a.print(identity.KeyInfo{Name: name, DID: k.DID()}, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "key %s opens: %s\n", name, k.DID())
				return err
			})
		},
	})
	return cmd
}
