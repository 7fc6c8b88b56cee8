package cli

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dmsnet/dms/internal/ensemble"
	"github.com/dmsnet/dms/internal/ensemble/translate"
)

func newTranslateCmd(a *app) *cobra.Command {
	var from, out string
	var allowPartial bool
	cmd := &cobra.Command{
		Use:   "translate [--from compose|kubernetes|nomad] FILE [-o FILE]",
		Short: "Translate a docker-compose file, Kubernetes manifests or a Nomad job into an ensemble",
		Long: `Translate a job description of another system into an ensemble and write it as
YAML on standard output (or to the file given with -o). Each thing that cannot
be carried over is reported on standard error as "warning: ...".

  --from compose      a docker-compose file; ${VAR} is taken from the environment
  --from kubernetes   Pods, Jobs, CronJobs, Deployments, StatefulSets, ReplicaSets,
                      DaemonSets (one or more YAML documents, or a List)
  --from nomad        a job file in HCL (job "x" { group ... }), or the job in
                      JSON (nomad job run -output, nomad job inspect)

Without --from the format is told from the file's name (compose.yaml,
*.nomad, *.hcl) or content.

When a whole part would be dropped (a service with only build:, a task of
another driver, a container without an image) or the source runs more than
once (a periodic or parameterized Nomad job, a Kubernetes CronJob), nothing is
written and dms translate exits 1, listing them as "dropped: ...";
--allow-partial writes the ensemble anyway, with a "# PARTIAL: dropped" block
at its top that lists them. Files the source mounts from the host (bind
mounts, ConfigMaps, Nomad templates) do not travel with the ensemble: they
are listed in a "# NOT SHIPPED" block.

FILE - reads standard input. The mapping is described in docs/ensemble.md.
For this command, -o names the output file.`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			file, name := args[0], args[0] // name is how messages call it
			if file == "-" {
				name = "standard input"
			}
			var format translate.Format
			if from != "" {
				f, err := translate.ParseFormat(from)
				if err != nil {
					return usagef("--from %w", err)
				}
				format = f
			}
			data, err := readSource(a, file)
			if err != nil {
				return err
			}
			if format == "" {
				if format, err = translate.Detect(file, data); err != nil {
					return err
				}
			}
			env := map[string]string{}
			if format == translate.Compose {
				for _, kv := range os.Environ() {
					if k, v, ok := strings.Cut(kv, "="); ok {
						env[k] = v
					}
				}
			}
			spec, warnings, err := translate.Translate(format, file, data, env)
			for _, w := range warnings {
				prefix := "warning"
				if w.Kind == translate.Dropped {
					prefix = "dropped"
				}
				fmt.Fprintf(a.stderr, "%s: %s\n", prefix, w)
			}
			if err != nil {
				return fmt.Errorf("translate %s: %w", name, err)
			}
			printHostWarnings(a.stderr, spec)
			dropped := translate.OfKind(warnings, translate.Dropped)
			if len(dropped) > 0 && !allowPartial {
				return fmt.Errorf("translate %s: %s would be dropped (above, as \"dropped:\"): nothing written; --allow-partial writes the ensemble without them", name, plural(len(dropped), "part"))
			}
			yml, err := ensemble.Marshal(spec)
			if err != nil {
				return fmt.Errorf("translate %s: %w", name, err)
			}
			var buf bytes.Buffer
			if len(dropped) > 0 {
				fmt.Fprintf(&buf, "# PARTIAL: dropped %s of %s (dms translate --allow-partial):\n", plural(len(dropped), "part"), name)
				for _, w := range dropped {
					fmt.Fprintf(&buf, "#   %s\n", oneLine(w.String()))
				}
			}
			if files := translate.OfKind(warnings, translate.NotShipped); len(files) > 0 {
				fmt.Fprintf(&buf, "# NOT SHIPPED: %s the source mounts or renders do not travel with this ensemble:\n", plural(len(files), "file"))
				for _, w := range files {
					fmt.Fprintf(&buf, "#   %s\n", oneLine(w.String()))
				}
			}
			fmt.Fprintf(&buf, "# Translated from %s (%s) by dms translate", name, format)
			if n := len(warnings); n > 0 {
				fmt.Fprintf(&buf, "; %s: review them before deploying", plural(n, "warning"))
			}
			buf.WriteString(".\n")
			buf.Write(yml)
			if out == "" || out == "-" {
				_, err = a.stdout.Write(buf.Bytes())
				return err
			}
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				return fmt.Errorf("write ensemble: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the source format: compose, kubernetes or nomad (told from the file when omitted)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the ensemble to this file instead of standard output")
	cmd.Flags().BoolVar(&allowPartial, "allow-partial", false, "write the ensemble even when parts of the source are dropped (listed in its header)")
	return cmd
}

// readSource reads a file to translate, or standard input for "-", up to
// a limit that no job description reaches.
func readSource(a *app, file string) ([]byte, error) {
	data, err := readEnsemble(a, file)
	if err != nil {
		return nil, err
	}
	if len(data) > ensemble.MaxSize {
		return nil, fmt.Errorf("read %s: larger than %d bytes", file, ensemble.MaxSize)
	}
	return data, nil
}
