package cli

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dmsnet/dms/api"
)

// newDeploymentExecCmd is `dms deployment exec`.
func newDeploymentExecCmd(a *app) *cobra.Command {
	var interactive, tty bool
	cmd := &cobra.Command{
		Use:   "exec ID ALLOC [-i] [-t] -- COMMAND [ARG...]",
		Short: "Run a command inside a running allocation (docker, vm), like nomad alloc exec",
		Long: `Run a command inside a running allocation and print its output; dms exits
with the command's exit code. Put the command after --, so that its own
flags are not taken for dms's. -i sends dms's stdin to the command, -t gives it
a terminal (the local terminal is put in raw mode while it runs, so keys such as
Ctrl-C go to the command): -it runs a shell.

The command travels from this node to the provider as messages authorized by
the delegation you gave for the deployment, like the deployment's other
messages. docker and vm allocations can exec; wasm allocations are refused
("exec is not supported by executor wasm").

Examples:
  dms deployment exec 3f2a web -- cat /etc/os-release
  dms deployment exec -it 3f2a web -- sh`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 3 {
				return usagef("%s needs a deployment, an allocation and a command, got %d argument(s) (usage: %s)", cmd.CommandPath(), len(args), cmd.UseLine())
			}
			if dash := cmd.ArgsLenAtDash(); dash >= 0 && dash != 2 {
				return usagef("%s: put -- right after the allocation, before the command (usage: %s)", cmd.CommandPath(), cmd.UseLine())
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			req := api.ExecRequest{Cmd: args[2:], Stdin: interactive, TTY: tty}
			var stdin io.Reader
			if interactive {
				stdin = a.stdin
			}
			if tty {
				if out, ok := a.stdout.(*os.File); ok && term.IsTerminal(int(out.Fd())) {
					if w, h, err := term.GetSize(int(out.Fd())); err == nil {
						req.Cols, req.Rows = w, h
					}
					ctx, cancel := context.WithCancel(a.ctx)
					defer cancel()
					req.Resize = watchSize(ctx, out)
				}
				if in, ok := a.stdin.(*os.File); ok && interactive && term.IsTerminal(int(in.Fd())) {
					old, err := term.MakeRaw(int(in.Fd()))
					if err != nil {
						return err
					}
					defer term.Restore(int(in.Fd()), old)
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			code, err := c.Exec(a.ctx, args[0], args[1], req, stdin, a.stdout, a.stderr)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "send stdin to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal")
	return cmd
}
