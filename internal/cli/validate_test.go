package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateCmd(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	good := writeFile(t, dir, "good.yaml", `version: v1
allocations:
  web: {type: service, executor: docker, execution: {image: nginx}}
  hello: {executor: wasm, execution: {module: hello.wasm}}
nodes:
  main: {allocations: [web, hello]}
`)
	writeFile(t, dir, "hello.wasm", "\x00asm")
	bad := writeFile(t, dir, "bad.yaml", `version: v1
allocations:
  web:
    executor: docker
    execution: {image: nginx}
    resources:
      cpu: 1
      ram: 4 GB
  db:
    executor: dockr
`)
	standby := writeFile(t, dir, "standby.yaml", `version: v1
allocations:
  web: {type: service, executor: docker, execution: {image: nginx}}
nodes:
  front: {allocations: [web], redundancy: 2}
`)
	missing := writeFile(t, dir, "missing.yaml", `version: v1
allocations:
  hello:
    executor: wasm
    execution:
      module: nothere.wasm
`)

	for _, tc := range []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout string
	}{
		{"valid", []string{"validate", "-f", good}, "", 0, good + ": valid (2 allocations on 1 node)\n"},
		{"problems", []string{"validate", "-f", bad}, "", 1,
			`allocations.web.resources.ram: "4 GB" is not a size (line 8)` + "\n" +
				`allocations.db.executor: unknown value "dockr" (did you mean "docker"?) (line 10)` + "\n"},
		{"missing module", []string{"validate", "-f", missing}, "", 1,
			"allocations.hello.execution.module: nothere.wasm: no such file (line 6)\n"},
		{"not supported", []string{"validate", "-f", standby}, "", 1,
			"nodes.front.redundancy: 2 copies: standby copies are not supported by this release of dms (use 1)\n"},
		{"skip files", []string{"validate", "--skip-files", "-f", missing}, "", 0, missing + ": valid (1 allocation on 1 node)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"--home", home}, tc.args...)...)
			if code != tc.code || stdout != tc.stdout || stderr != "" {
				t.Errorf("dms %v = exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout %q", tc.args, code, stdout, stderr, tc.code, tc.stdout)
			}
		})
	}

	code, stdout, _ := run(t, "--home", home, "-o", "json", "validate", "-f", bad)
	var res ValidateResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 1 || res.Valid || len(res.Problems) != 2 || res.Problems[0].Line != 8 {
		t.Errorf("dms validate -o json = exit %d, %+v (%v)", code, res, err)
	}
	code, stdout, _ = run(t, "--home", home, "-o", "json", "validate", "-f", good)
	res = ValidateResult{}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 || !res.Valid || res.Allocations != 2 || res.Nodes != 1 || res.Problems == nil {
		t.Errorf("dms validate -o json (valid) = exit %d, %+v (%v)", code, res, err)
	}

	for _, args := range [][]string{{"validate"}, {"validate", "x.yaml"}, {"validate", "-f"}} {
		if code, _, stderr := run(t, append([]string{"--home", home}, args...)...); code != 2 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("dms %v = exit %d, stderr %q, want a one-line usage error", args, code, stderr)
		}
	}
	if code, _, stderr := run(t, "--home", home, "validate", "-f", filepath.Join(dir, "nope.yaml")); code != 1 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("dms validate of a missing file = exit %d, %q, want a one-line failure", code, stderr)
	}
}

func TestValidateStdin(t *testing.T) {
	var out, errb strings.Builder
	code := Main(t.Context(), []string{"--home", t.TempDir(), "validate", "-f", "-"},
		strings.NewReader("version: v1\nallocations: {a: {executor: wasm, execution: {module: a.wasm}}}\n"), &out, &errb)
	if code != 0 || out.String() != "-: valid (1 allocation on 1 node)\n" {
		t.Errorf("dms validate -f - = exit %d, %q, %q", code, out.String(), errb.String())
	}
}

// TestValidateExamples runs dms validate on every example, with the hello
// module built beside it when it is missing (skipped when it is not).
func TestValidateExamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	for _, f := range files {
		code, stdout, stderr := run(t, "--home", t.TempDir(), "validate", "--skip-files", "-f", f)
		if code != 0 || !strings.Contains(stdout, ": valid (") {
			t.Errorf("dms validate -f %s = exit %d, %q, %q", f, code, stdout, stderr)
		}
	}
}
