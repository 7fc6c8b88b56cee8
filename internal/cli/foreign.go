package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// foreignFormat guesses, from its top-level keys only, whether data is a job
// description of another system that `dms translate` converts: "compose"
// (services:), "kubernetes" (apiVersion: and kind:) or "nomad" (a job
// "name" { block of HCL, or the JSON of the Nomad API). It returns "" for an
// ensemble (allocations:) and for anything it does not recognise.
func foreignFormat(data []byte) string {
	if nomadHCL(data) {
		return "nomad"
	}
	var top map[string]any
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&top); err != nil {
		return ""
	}
	has := func(k string) bool { _, ok := top[k]; return ok }
	switch {
	case has("allocations"):
		return ""
	case has("services"):
		return "compose"
	case has("apiVersion") && has("kind"):
		return "kubernetes"
	case has("Job"), has("TaskGroups"), has("job"):
		return "nomad"
	}
	return ""
}

// nomadHCL reports whether the first statement of data (past blank lines
// and comments) opens a Nomad job block: job "name" {.
func nomadHCL(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "//") {
			continue
		}
		rest, ok := strings.CutPrefix(line, "job")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t' && rest[0] != '"') {
			return false
		}
		rest = strings.TrimSpace(rest)
		return strings.HasPrefix(rest, `"`) && strings.Contains(rest[1:], `"`)
	}
	return false
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
