package cli

import (
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// printYAML writes v as YAML. sigs.k8s.io/yaml encodes through
// encoding/json, so the YAML has exactly the JSON form's fields, names and
// omissions (json tags, omitempty, custom MarshalJSON): -o yaml and -o json
// are the same data. A command that prints several results (a followed
// log) writes a stream of documents separated by "---".
func (a *app) printYAML(v any) error {
	out, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode yaml: %w", err)
	}
	if a.docs > 0 {
		if _, err := io.WriteString(a.stdout, "---\n"); err != nil {
			return err
		}
	}
	a.docs++
	_, err = a.stdout.Write(out)
	return err
}
