package cli

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/internal/match"
)

// refuseUnknownSubcommands makes every command group under c (a command
// that only holds subcommands, like `dms deployment`) refuse an unknown
// subcommand with a usage error (exit 2) that suggests the near ones,
// rather than print its help and exit 0 as cobra does. Without arguments a
// group still prints its help.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !c.HasParent() || !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + quoteOr(s) + "?"
		} else {
			msg += fmt.Sprintf("; see %s --help", cmd.CommandPath())
		}
		return usagef("%s", msg)
	}
}

// foldSuggestions rewrites cobra's multi-line suggestion block
// ("...\n\nDid you mean this?\n\tdeploy\n") as one readable clause:
// `...; did you mean "deploy"?`.
func foldSuggestions(msg string) string {
	head, tail, ok := strings.Cut(msg, "\n\nDid you mean this?\n")
	if !ok {
		return msg
	}
	names := strings.Fields(tail)
	if len(names) == 0 {
		return head
	}
	return head + "; did you mean " + quoteOr(names) + "?"
}

// quoteOr is `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
func quoteOr(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// flagDurationError rewrites pflag's error for a duration flag
// (`invalid argument "9999999h" for "--timeout" flag: time: invalid
// duration "9999999h"`) as match.ParseDuration words it: `--timeout:
// "9999999h" is too large (at most 2562047h47m16.854775807s)` or `--timeout:
// "soon" is not a duration (examples: 30s, 10m, 1h)`. Other errors are
// returned as they are.
func flagDurationError(err error) error {
	m := flagDurationRE.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	_, perr := match.ParseDuration(m[1])
	if errors.Is(perr, match.ErrDurationRange) {
		return fmt.Errorf("%s: %w", m[2], perr)
	}
	return fmt.Errorf("%s: %q is not a duration (examples: 30s, 10m, 1h)", m[2], m[1])
}

var flagDurationRE = regexp.MustCompile(`^invalid argument "(.*)" for "(.*)" flag: time: invalid duration`)
