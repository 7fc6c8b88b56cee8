package cli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/ensemble"
)

// Shell completion by convention: a command's usage line says what its
// arguments and flag values are, and wireCompletion (run once on the whole
// tree) makes every command and flag complete from it, so that no command
// wires completion by hand. The placeholders:
//
//	ID         a deployment ID, asked of the running node (nothing when it is down)
//	ALLOC      an allocation name of the deployment given as ID
//	FILE       a file; DIR a directory
//	a|b|c      one of these words (lower case): --from compose|kubernetes|nomad
//	NAME...    the last positional repeats
//
// Any other placeholder (D, N, KEY, DID...) completes nothing, not even
// files. A flag whose usage-line placeholder is not one of the above, or
// that the usage line does not show, falls back on its name
// (flagPlaceholders): -o completes table|json|yaml, --allocation ALLOC,
// --file FILE, --executor docker|vm|wasm. Failing that, a flag shown with
// a placeholder completes nothing and one not shown completes files
// (cobra's default). A command with its own ValidArgs or
// ValidArgsFunction, or a flag with its own completion function, keeps it.

// flagPlaceholders are the placeholders of flags whose usage line does not
// give one, by flag name.
var flagPlaceholders = map[string]string{
	"output":     "table|json|yaml",
	"allocation": "ALLOC",
	"file":       "FILE",
	"executor":   "docker|vm|wasm",
	"from":       "compose|kubernetes|nomad",
	"home":       "DIR",
	"log-format": "text|json",
	"log-level":  "debug|info|warn|error",
}

// completionTimeout bounds the questions a completion asks the node.
const completionTimeout = 2 * time.Second

// usage is what a usage line says about a command's arguments.
type usage struct {
	args     []string          // positional placeholders, in order
	variadic bool              // the last one repeats
	flags    map[string]string // flag name or shorthand → value placeholder
}

// parseUsage reads a cobra Use line: "logs ID [ALLOC] [-f] [--since D]".
func parseUsage(use string) usage {
	u := usage{flags: map[string]string{}}
	toks := strings.Fields(use)
	if len(toks) > 0 {
		toks = toks[1:] // the command's name
	}
	for i := 0; i < len(toks); i++ {
		raw := toks[i]
		if raw == "--" {
			break // the rest is a command line of its own
		}
		t := strings.TrimLeft(raw, "[]")
		if strings.HasPrefix(t, "-") {
			name, value, hasValue := strings.Cut(strings.TrimLeft(strings.TrimRight(t, "]."), "-"), "=")
			if !hasValue && !strings.HasSuffix(raw, "]") && i+1 < len(toks) && !strings.HasPrefix(toks[i+1], "-") && !strings.HasPrefix(toks[i+1], "[") {
				i++
				value = toks[i]
			}
			u.flags[name] = placeholder(value)
			continue
		}
		if strings.HasSuffix(t, "...") {
			u.variadic = true
		}
		u.args = append(u.args, placeholder(t))
	}
	return u
}

// placeholder strips the brackets and ellipsis around a usage word:
// "[NAME]..." is NAME.
func placeholder(s string) string {
	for {
		t := strings.TrimSuffix(strings.Trim(s, "[]"), "...")
		if t == s {
			return s
		}
		s = t
	}
}

// wireCompletion gives every command of the tree under root a completion
// of its arguments, and every flag one of its value, from the usage lines.
func (a *app) wireCompletion(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.HasSubCommands() && c.ValidArgsFunction == nil && len(c.ValidArgs) == 0 {
			c.ValidArgsFunction = a.completeArgs
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Value.Type() == "bool" {
				return
			}
			if _, ok := c.GetFlagCompletionFunc(f.Name); ok {
				return
			}
			c.RegisterFlagCompletionFunc(f.Name, a.completeFlag(f))
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeArgs completes the positional argument being typed.
func (a *app) completeArgs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	u := parseUsage(cmd.Use)
	i := len(args)
	if i >= len(u.args) {
		if !u.variadic {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		i = len(u.args) - 1
	}
	return a.complete(cmd, u, args, u.args[i], toComplete, false)
}

// completeFlag returns the completion of flag f's value.
func (a *app) completeFlag(f *pflag.Flag) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		u := parseUsage(cmd.Use)
		ph, ok := u.flags[f.Name]
		if !ok && f.Shorthand != "" {
			ph, ok = u.flags[f.Shorthand]
		}
		if !ok || !known(ph) {
			byName, found := flagPlaceholders[f.Name]
			switch {
			case found:
				ph = byName
			case ok && ph != "":
				// The usage line says what it is (D, N, DID), not a file.
				return nil, cobra.ShellCompDirectiveNoFileComp
			default:
				return nil, cobra.ShellCompDirectiveDefault
			}
		}
		return a.complete(cmd, u, args, ph, toComplete, strings.HasSuffix(f.Value.Type(), "Slice"))
	}
}

// known reports whether a placeholder completes something.
func known(ph string) bool {
	switch ph {
	case "ID", "ALLOC", "FILE", "DIR":
		return true
	}
	return isChoice(ph)
}

// isChoice reports whether ph lists words to choose from: "json|yaml".
func isChoice(ph string) bool {
	return strings.Contains(ph, "|") && ph == strings.ToLower(ph)
}

// complete returns the candidates for placeholder ph. With list the value
// is a comma-separated list (--executor wasm,docker): the last element is
// completed ("all" is offered alone).
func (a *app) complete(cmd *cobra.Command, u usage, args []string, ph, toComplete string, list bool) ([]cobra.Completion, cobra.ShellCompDirective) {
	switch {
	case ph == "ID":
		return filter(a.deploymentIDs(), toComplete), cobra.ShellCompDirectiveNoFileComp
	case ph == "ALLOC":
		k := slices.Index(u.args, "ID")
		if k < 0 || k >= len(args) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return filter(a.allocationNames(args[k]), toComplete), cobra.ShellCompDirectiveNoFileComp
	case ph == "DIR":
		return nil, cobra.ShellCompDirectiveFilterDirs
	case isChoice(ph):
		choices := strings.Split(ph, "|")
		if !list {
			return filter(choices, toComplete), cobra.ShellCompDirectiveNoFileComp
		}
		done, last := "", toComplete
		if k := strings.LastIndexByte(toComplete, ','); k >= 0 {
			done, last = toComplete[:k+1], toComplete[k+1:]
		}
		given := strings.Split(done, ",")
		var out []cobra.Completion
		for _, c := range choices {
			if strings.HasPrefix(c, last) && !slices.Contains(given, c) && !(c == "all" && done != "") {
				out = append(out, done+c)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	case strings.Contains(ph, "FILE"): // FILE, FILE|CID
		return nil, cobra.ShellCompDirectiveDefault
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// filter keeps the candidates (with their "\tdescription") that begin with
// prefix.
func filter(cands []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, c := range cands {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// completionClient returns a client of the home's node for a completion,
// which runs without the root's pre-run: the globals are resolved here,
// leaving -o alone (it may be half typed).
func (a *app) completionClient() (*api.Client, context.Context, context.CancelFunc, error) {
	output := a.output
	a.output = "table"
	err := a.resolveGlobals()
	a.output = output
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := a.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx := a.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	return c, ctx, cancel, nil
}

// deploymentIDs lists the node's deployments as completions ("ID\tstate,
// created"), newest first; nothing when the node cannot be asked.
func (a *app) deploymentIDs() []string {
	c, ctx, cancel, err := a.completionClient()
	if err != nil {
		return nil
	}
	defer cancel()
	ds, err := c.Deployments(ctx)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s\t%s, %d allocation(s), created %s", d.ID, d.State, len(d.Allocations), d.Created.Local().Format("2006-01-02 15:04")))
	}
	return out
}

// allocationNames lists the allocations of the deployment id (a prefix
// will do: the node resolves it); nothing when the node cannot be asked.
func (a *app) allocationNames(id string) []string {
	c, ctx, cancel, err := a.completionClient()
	if err != nil {
		return nil
	}
	defer cancel()
	d, err := c.Deployment(ctx, id, 0, 0)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, al := range d.Allocations {
		if !seen[al.Name] {
			seen[al.Name] = true
			out = append(out, al.Name+"\t"+al.State)
		}
	}
	// Before placement the allocations are only in the ensemble.
	if spec, err := ensemble.Parse([]byte(d.Ensemble)); err == nil {
		for name := range spec.Allocations {
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}
