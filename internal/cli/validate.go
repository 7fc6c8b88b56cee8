package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/internal/ensemble"
)

// ValidateResult is what `dms validate -o json` prints.
type ValidateResult struct {
	File        string             `json:"file"`
	Valid       bool               `json:"valid"`
	Allocations int                `json:"allocations,omitempty"`
	Nodes       int                `json:"nodes,omitempty"`
	Problems    []ensemble.Problem `json:"problems"`
	// Warnings do not make the file invalid: values naming another
	// allocation as a host, which nothing resolves yet (docs/ensemble.md).
	Warnings []ensemble.Problem `json:"warnings"`
}

func newValidateCmd(a *app) *cobra.Command {
	var file string
	var skipFiles bool
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check an ensemble file and print every problem in it",
		Long: `Check an ensemble file (docs/ensemble.md) and print every problem, one per
line, as "path: message (line N)"; exit 1 if there is any.

What the format allows but this release of dms does not do yet (standby
copies of a node, bandwidth constraints) is reported too: a node refuses to
deploy it.

A value that names another allocation or node as a host (DB_HOST=db,
mysql://db/x, db:3306, db.internal) gets a warning on standard error (in
"warnings" with -o json) unless the name resolves: allocation names do as
<name>.internal on the deployment's subnet, which network: {subnet: true}
asks for (docs/ensemble.md, "Networking"). Warnings
do not change the exit code.

Local files the ensemble refers to (wasm modules, vm kernels and disks) are
looked up relative to the ensemble file unless --skip-files is given.
-f - reads the ensemble from standard input.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			if file == "" {
				return usagef("dms validate needs -f FILE")
			}
			data, err := readEnsemble(a, file)
			if err != nil {
				return err
			}
			res := ValidateResult{File: file, Problems: []ensemble.Problem{}, Warnings: []ensemble.Problem{}}
			spec, err := ensemble.Parse(data)
			var probs ensemble.Problems
			switch {
			case errors.As(err, &probs):
				res.Problems = probs
			case err != nil:
				if hint := translateHint(file, data); hint != "" {
					return fmt.Errorf("validate %s: %w; %s", file, err, hint)
				}
				return fmt.Errorf("validate %s: %w", file, err)
			default:
				res.Allocations, res.Nodes = len(spec.Allocations), len(spec.Nodes)
				res.Problems = append(res.Problems, spec.Unsupported()...)
				res.Warnings = hostWarnings(spec, data)
				if !skipFiles && file != "-" {
					res.Problems = append(res.Problems, checkLocalFiles(spec, data, filepath.Dir(file))...)
				}
			}
			res.Valid = len(res.Problems) == 0
			err = a.print(res, func(w io.Writer) error {
				printHostWarnings(a.stderr, spec)
				if res.Valid {
					_, err := fmt.Fprintf(w, "%s: valid (%s on %s)\n", file, plural(res.Allocations, "allocation"), plural(res.Nodes, "node"))
					return err
				}
				for _, p := range res.Problems {
					if _, err := fmt.Fprintln(w, p.String()); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !res.Valid {
				if hint := translateHint(file, data); hint != "" {
					fmt.Fprintln(a.stderr, hint)
				}
				return exitError{code: exitFailure} // the problems are the report
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the ensemble file (- for standard input)")
	cmd.Flags().BoolVar(&skipFiles, "skip-files", false, "do not check that local files the ensemble refers to exist")
	return cmd
}

// readEnsemble reads an ensemble file, or standard input for "-", reading
// at most one byte more than ensemble.MaxSize (Parse reports the excess).
func readEnsemble(a *app, file string) ([]byte, error) {
	var r io.Reader = a.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read ensemble: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, ensemble.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read ensemble %s: %w", file, err)
	}
	return data, nil
}

// checkLocalFiles reports the local files a spec refers to that are not
// regular files, relative to dir.
func checkLocalFiles(spec *ensemble.Spec, data []byte, dir string) []ensemble.Problem {
	var probs []ensemble.Problem
	for _, f := range spec.LocalFiles() {
		path := f.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		msg := ""
		switch st, err := os.Stat(path); {
		case errors.Is(err, os.ErrNotExist):
			msg = fmt.Sprintf("%s: no such file", f.File)
		case err != nil:
			msg = fmt.Sprintf("%s: %v", f.File, errors.Unwrap(err))
		case !st.Mode().IsRegular():
			msg = fmt.Sprintf("%s: not a regular file", f.File)
		}
		if msg != "" {
			probs = append(probs, ensemble.Problem{Path: f.Path, Line: ensemble.LineOf(data, f.Path), Msg: msg})
		}
	}
	return probs
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
