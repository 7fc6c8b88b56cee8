package cli

import (
	"github.com/spf13/cobra"
)

func newCompletionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print a shell completion script for dms.

  source <(dms completion bash)                     # bash, this shell
  dms completion zsh > "${fpath[1]}/_dms"           # zsh
  dms completion fish > ~/.config/fish/completions/dms.fish

Besides commands and flags it completes deployment IDs and allocation names
(asking the running node), and the values of --from, --executor and -o.`,
		Args:      exactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			case "fish":
				return root.GenFishCompletion(a.stdout, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(a.stdout)
			}
			return usagef("completion %q: want bash, zsh, fish or powershell", args[0])
		},
	}
}
