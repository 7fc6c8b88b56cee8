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
	cmd := &cobra.Command{
		Use:   "translate --from compose|kubernetes|nomad FILE [-o FILE]",
		Short: "Translate a docker-compose file, Kubernetes manifests or a Nomad job into an ensemble",
		Long: `Translate a job description of another system into an ensemble and write it as
YAML on standard output (or to the file given with -o). Each thing that cannot
be carried over is reported on standard error as "warning: ...".

  --from compose      a docker-compose file; ${VAR} is taken from the environment
  --from kubernetes   Pods, Jobs, CronJobs, Deployments, StatefulSets, ReplicaSets,
                      DaemonSets (one or more YAML documents, or a List)
  --from nomad        a job in JSON (nomad job run -output job.nomad.hcl > job.json)

FILE - reads standard input. The mapping is described in docs/ensemble.md.
For this command, -o names the output file.`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			file := args[0]
			var fn func([]byte) (*ensemble.Spec, []translate.Warning, error)
			switch from {
			case "compose", "docker-compose":
				env := map[string]string{}
				for _, kv := range os.Environ() {
					if k, v, ok := strings.Cut(kv, "="); ok {
						env[k] = v
					}
				}
				fn = func(data []byte) (*ensemble.Spec, []translate.Warning, error) {
					return translate.FromComposeEnv(data, env)
				}
			case "kubernetes", "k8s":
				fn = translate.FromKubernetes
			case "nomad":
				fn = translate.FromNomad
			case "":
				return usagef("dms translate needs --from compose, kubernetes or nomad")
			default:
				return usagef("--from %q: want compose, kubernetes or nomad", from)
			}
			data, err := readSource(a, file)
			if err != nil {
				return err
			}
			spec, warnings, err := fn(data)
			if err != nil {
				return fmt.Errorf("translate %s: %w", file, err)
			}
			yml, err := ensemble.Marshal(spec)
			if err != nil {
				return fmt.Errorf("translate %s: %w", file, err)
			}
			var buf bytes.Buffer
			fmt.Fprintf(&buf, "# Translated from %s (%s) by dms translate", file, from)
			if n := len(warnings); n > 0 {
				fmt.Fprintf(&buf, "; %s: review them before deploying", plural(n, "warning"))
			}
			buf.WriteString(".\n")
			buf.Write(yml)
			for _, w := range warnings {
				fmt.Fprintf(a.stderr, "warning: %s\n", w)
			}
			printHostWarnings(a.stderr, spec)
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
	cmd.Flags().StringVar(&from, "from", "", "the source format: compose, kubernetes or nomad")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the ensemble to this file instead of standard output")
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
