package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/internal/config"
)

// loadConfig returns the effective configuration: file, environment, and the
// given flag overrides (key path → value), validated.
func (a *app) loadConfig(flags map[string]string) (config.Config, error) {
	cfg, err := config.Load(config.Source{Home: a.home, Env: os.Environ(), Flags: flags})
	if err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show and change the node configuration (<home>/config.yaml)",
		Long: `Show and change the node configuration.

The effective configuration is the defaults, overridden by <home>/config.yaml,
then by DMS_<KEY> environment variables, then by flags. docs/config.md lists
every key with its meaning and default.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := config.Load(config.Source{Home: a.home, Env: os.Environ()})
			if err != nil {
				return err
			}
			tree, err := config.Tree(cfg)
			if err != nil {
				return err
			}
			return a.print(tree, func(w io.Writer) error {
				data, err := config.Encode(cfg)
				if err != nil {
					return err
				}
				_, err = w.Write(data)
				return err
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "get KEY",
		Short: "Print the effective value of one key (e.g. api.listen)",
		Args:  exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, err := config.Load(config.Source{Home: a.home, Env: os.Environ()})
			if err != nil {
				return err
			}
			v, err := config.Get(cfg, args[0])
			if err != nil {
				return err
			}
			return a.print(map[string]string{"key": args[0], "value": v}, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, v)
				return err
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Set a key in <home>/config.yaml (lists are comma-separated)",
		Args:  exactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := os.MkdirAll(a.home, 0o700); err != nil {
				return err
			}
			file, err := config.ReadFile(a.home)
			if err != nil {
				return err
			}
			if err := config.Set(&file, args[0], args[1]); err != nil {
				return err
			}
			if err := file.Validate(); err != nil {
				return fmt.Errorf("refusing to write an invalid configuration: %w", err)
			}
			if err := config.Save(a.home, file); err != nil {
				return fmt.Errorf("write config: %w", err)
			}
			v, _ := config.Get(file, args[0])
			if !a.json() {
				fmt.Fprintf(a.stdout, "%s = %s\n", args[0], v)
				return nil
			}
			return a.print(map[string]string{"key": args[0], "value": v}, nil)
		},
	})
	return cmd
}
