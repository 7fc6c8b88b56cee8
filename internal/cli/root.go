// Package cli is the dms command line, built on cobra.
//
// Main is the only entry point; cmd/dms calls it with the process arguments
// and a context from SignalContext, and exits with the code it returns: 0 on
// success, 1 on failure, 2 on a usage error, 130 or 143 when SIGINT or
// SIGTERM stopped the command (docs/cli.md lists them all). Every failure
// prints exactly one line on stderr.
//
// Commands that act on a running node talk to it only through the public
// client in package api (never through internal packages); commands that act
// on the local home (init, key, config, cap) use the internal packages
// directly, as they run without a daemon.
//
// Each command lives in its own file as newXxxCmd(*app) *cobra.Command and is
// registered in newRootCmd.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/internal/config"
	"github.com/dmsnet/dms/internal/telemetry/logs"
)

// Exit codes of the dms command.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// app holds what every command shares: the resolved global flags and the
// standard streams. It is created once per Main call.
type app struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	// Global flags.
	home      string // --home; resolved by resolveHome before any command runs
	output    string // -o: "table", "json" or "yaml"
	apiAddr   string // --api; empty means read <home>/api.addr
	logFormat string // --log-format: "text" or "json"
	logLevel  string // --log-level

	docs int // documents print wrote with -o yaml (the second and later get a "---" line)
}

// usageError marks an error as a usage error (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitError makes Main exit with a given code. With a nil err nothing is
// printed: used by `dms deploy` to propagate a job's exit code after the job
// already reported itself.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if in, ok := interruption(ctx); ok && !errors.As(err, new(exitError)) {
		msg := err.Error()
		switch {
		case strings.HasPrefix(msg, "interrupted"): // the command said what became of its work
		case errors.Is(err, context.Canceled), errors.As(err, new(interrupted)):
			msg = in.Error() // "Get ...: context canceled" says nothing more
		default:
			msg = in.Error() + ": " + msg
		}
		fmt.Fprintln(stderr, oneLine(msg))
		return in.code()
	}
	code := exitFailure
	var ue usageError
	var ee exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
		if ee.err == nil {
			return code
		}
	case errors.As(err, &ue), isCobraUsageError(err):
		code = exitUsage
	}
	fmt.Fprintln(stderr, oneLine(foldSuggestions(err.Error())))
	return code
}

// isCobraUsageError recognises the errors cobra itself returns for a bad
// command line (it has no typed errors for them).
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// oneLine folds a multi-line message into one line, so that every failure
// prints one line whatever produced it.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "dms",
		Short:         "Device Management Service: run jobs on a peer-to-peer compute network",
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `dms turns this machine into a node of a peer-to-peer compute network and drives it.

Start here:
  dms init                 create the home (~/.dms): node key, user key, API token
  dms run                  start the node in the foreground
  dms devnet up --nodes 3  start a local network of real nodes to try things on

Exit codes (docs/cli.md):
  0        success
  1        failure (one line on stderr says why)
  2        usage error: unknown command, flag or argument
  3        dms plan: some node has no placement
  130/143  interrupted by Ctrl-C (SIGINT) / SIGTERM; a submitted deployment goes on
  N        dms deploy of tasks: the job's own exit code;
           dms deployment exec: the command's exit code`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.resolveGlobals()
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	f := root.PersistentFlags()
	f.StringVar(&a.home, "home", "", "home directory (default $DMS_HOME, else ~/.dms)")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")
	f.StringVar(&a.apiAddr, "api", "", "address of the node's REST API (default: read from <home>/api.addr)")
	f.StringVar(&a.logFormat, "log-format", "", "log format: text or json (default text on a terminal, else json)")
	f.StringVar(&a.logLevel, "log-level", "", "log level: debug, info, warn or error (default from config, else info)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{flagDurationError(err)} })

	for _, c := range []*cobra.Command{
		newVersionCmd(a),
		newCompletionCmd(a),
		newInitCmd(a),
		newKeyCmd(a),
		newConfigCmd(a),
		newRunCmd(a),
		newPeersCmd(a),
		newInvokeCmd(a),
		newDeployCmd(a),
		newDeploymentsCmd(a),
		newDeploymentCmd(a),
		newBenchmarkCmd(a),
		newOnboardCmd(a),
		newOffboardCmd(a),
		newResourcesCmd(a),
		newValidateCmd(a),
		newTranslateCmd(a),
		newCapCmd(a),
		newDevnetCmd(a),
		newPlanCmd(a),
		newNodesCmd(a),
		newContractCmd(a),
	} {
		root.AddCommand(c)
	}
	refuseUnknownSubcommands(root)
	a.wireCompletion(root) // after every command: completion from the usage lines (complete.go)
	return root
}

// resolveGlobals checks the global flags and resolves the home directory.
func (a *app) resolveGlobals() error {
	switch a.output {
	case "table", "json", "yaml":
	default:
		return usagef("-o %q: want table, json or yaml", a.output)
	}
	switch a.logFormat {
	case "", "text", "json":
	default:
		return usagef("--log-format %q: want text or json", a.logFormat)
	}
	if a.home == "" {
		a.home = os.Getenv("DMS_HOME")
	}
	if a.home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("find home directory (set --home or DMS_HOME): %w", err)
		}
		a.home = filepath.Join(h, ".dms")
	}
	abs, err := filepath.Abs(a.home)
	if err != nil {
		return fmt.Errorf("home %s: %w", a.home, err)
	}
	a.home = abs
	return nil
}

// json reports whether the user asked for structured output (-o json or
// -o yaml): then commands print their results through a.print only.
func (a *app) json() bool { return a.output == "json" || a.output == "yaml" }

// print writes v as indented JSON with -o json, as YAML with -o yaml (the
// JSON form's fields: see printYAML), else calls table to write the human
// form.
func (a *app) print(v any, table func(w io.Writer) error) error {
	switch a.output {
	case "json":
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		return a.printYAML(v)
	}
	return table(a.stdout)
}

// logger builds the logger for long-running commands (dms run, devnet):
// records on the standard error and, with log.file, as JSON to that file
// (rotated; relative to the home). The configured level and format are
// overridden by --log-level and --log-format. Records get deployment_id,
// allocation_id, trace_id and span_id, and secrets are redacted (package
// telemetry/logs). Close it to close the file.
func (a *app) logger(c config.Log) (*logs.Logger, error) {
	level, format := c.Level, c.Format
	if a.logLevel != "" {
		level = a.logLevel
	}
	if a.logFormat != "" {
		format = a.logFormat
	}
	var lvl slog.Level
	if level == "" {
		level = "info"
	}
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("log level %q: want debug, info, warn or error", level)
	}
	if format == "" {
		format = "json"
		if isTerminal(a.stderr) {
			format = "text"
		}
	}
	return logs.NewLogger(logs.Options{
		Level: lvl, Format: format, Stderr: a.stderr,
		File: c.File, Home: a.home, MaxSize: int64(c.MaxSize), MaxFiles: c.MaxFiles,
	})
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
