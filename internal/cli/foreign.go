package cli

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/dmsnet/dms/internal/ensemble/translate"
)

// foreignFormat tells whether data is a job description of another system
// that `dms translate` converts: "compose", "kubernetes" or "nomad" (HCL or
// API JSON), by the content alone (translate.Detect, which dms translate
// uses without --from). It returns "" for an ensemble (allocations:) and for
// anything Detect does not recognise.
func foreignFormat(data []byte) string {
	var top map[string]yaml.Node
	if yaml.NewDecoder(bytes.NewReader(data)).Decode(&top) == nil {
		if _, ok := top["allocations"]; ok {
			return ""
		}
	}
	f, err := translate.Detect("", data)
	if err != nil {
		return ""
	}
	return string(f)
}

// translateHint is the line that points a user who gave dms another
// system's job file at `dms translate`, or "" when data looks like none.
func translateHint(file string, data []byte) string {
	f := foreignFormat(data)
	if f == "" {
		return ""
	}
	name := map[string]string{"compose": "a Docker Compose file", "kubernetes": "Kubernetes manifests", "nomad": "a Nomad job"}[f]
	return fmt.Sprintf("hint: %s looks like %s, not an ensemble: convert it with `dms translate --from %s %s -o job.yaml`", file, name, f, file)
}
