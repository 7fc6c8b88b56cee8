package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/dmsnet/dms/internal/ensemble"
)

// Format is a job description format Translate reads.
type Format string

// The formats.
const (
	Compose    Format = "compose"    // a docker-compose file
	Kubernetes Format = "kubernetes" // Kubernetes manifests
	Nomad      Format = "nomad"      // a Nomad job, in HCL or API JSON
)

// Formats lists the formats, in the order they are documented.
var Formats = []Format{Compose, Kubernetes, Nomad}

// ParseFormat reads a format name, or one of its aliases (docker-compose,
// k8s).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "compose", "docker-compose":
		return Compose, nil
	case "kubernetes", "k8s":
		return Kubernetes, nil
	case "nomad":
		return Nomad, nil
	}
	return "", fmt.Errorf("%q: want compose, kubernetes or nomad", s)
}

// detectDocuments bounds the YAML documents Detect looks at.
const detectDocuments = 16

var (
	composeName = regexp.MustCompile(`^(docker-)?compose(\.[^/]*)?\.ya?ml$`)
	hclJob      = regexp.MustCompile(`(?m)^[ \t]*job[ \t]+"[^"\n]*"[ \t]*\{`)
)

// Detect tells the format of a file from its name (compose.yaml,
// docker-compose.*.yml, *.nomad, *.hcl) and else from its content: a job
// block (Nomad HCL), the keys Job or TaskGroups (Nomad API JSON), apiVersion
// and kind (Kubernetes), services (compose). name is only looked at, never
// opened; it names the file in the error when the format cannot be told
// ("-" or "" is standard input).
func Detect(name string, data []byte) (Format, error) {
	display := name
	if name == "" || name == "-" {
		display = "standard input"
	}
	base := strings.ToLower(path.Base(strings.ReplaceAll(name, `\`, "/")))
	switch {
	case strings.HasSuffix(base, ".nomad") || strings.HasSuffix(base, ".hcl"):
		return Nomad, nil
	case composeName.MatchString(base):
		return Compose, nil
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return "", fmt.Errorf("cannot tell the format of %s: it is empty", display)
	}
	if trimmed[0] == '{' || trimmed[0] == '[' {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &top); err == nil {
			if f, ok := formatOfKeys(top); ok {
				return f, nil
			}
		}
	}
	if hclJob.Match(data) {
		return Nomad, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for range detectDocuments {
		var top map[string]yaml.Node
		err := dec.Decode(&top)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			break // not YAML, or not a mapping: what was found so far decides
		}
		if f, ok := formatOfKeys(top); ok {
			return f, nil
		}
	}
	return "", fmt.Errorf("cannot tell the format of %s: not a compose file (no services), Kubernetes manifests (no apiVersion and kind) or a Nomad job (no job block, no TaskGroups); give --from", display)
}

// formatOfKeys tells the format from the top-level keys of a document.
func formatOfKeys[V any](top map[string]V) (Format, bool) {
	has := func(k string) bool { _, ok := top[k]; return ok }
	switch {
	case has("Job") || has("TaskGroups") || has("job"):
		return Nomad, true
	case has("apiVersion") && has("kind"):
		return Kubernetes, true
	case has("services"):
		return Compose, true
	}
	return "", false
}

// Translate translates data, read from the file name, from format f. env
// holds the variables for ${VAR} interpolation in compose files. name is
// only used in messages (compose-go names the file it validates).
func Translate(f Format, name string, data []byte, env map[string]string) (*ensemble.Spec, []Warning, error) {
	switch f {
	case Compose:
		if name == "" || name == "-" {
			name = "standard input"
		}
		return fromCompose(name, data, env)
	case Kubernetes:
		return FromKubernetes(data)
	case Nomad:
		return FromNomad(data)
	}
	return nil, nil, fmt.Errorf("unknown format %q", f)
}
