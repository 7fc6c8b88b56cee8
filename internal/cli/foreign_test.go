package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestForeignFormat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"compose", "services:\n  web:\n    image: nginx\n", "compose"},
		{"compose with version", "version: '3.8'\nservices:\n  db: {image: mysql}\n", "compose"},
		{"kubernetes", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n", "kubernetes"},
		{"kubernetes list, first document", "---\napiVersion: v1\nkind: List\nitems: []\n---\nx: 1\n", "kubernetes"},
		{"nomad hcl", "# a job\n\njob \"web\" {\n  group \"g\" {}\n}\n", "nomad"},
		{"nomad hcl tab", "job\t\"web\" {}\n", "nomad"},
		{"nomad api json", `{"Job": {"ID": "web", "TaskGroups": []}}`, "nomad"},
		{"nomad bare job json", `{"ID": "web", "TaskGroups": []}`, "nomad"},
		{"ensemble", "version: v1\nallocations:\n  a: {executor: wasm}\n", ""},
		{"ensemble with a services label", "version: v1\nmetadata: {services: x}\nallocations: {}\n", ""},
		{"not hcl: jobs", "jobs \"x\" {}\n", ""},
		{"not hcl: no name", "job {\n}\n", ""},
		{"kind without apiVersion", "kind: Pod\n", ""},
		{"scalar", "hello\n", ""},
		{"empty", "", ""},
		{"garbage", "\x00\xff{[", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := foreignFormat([]byte(tt.in)); got != tt.want {
				t.Fatalf("foreignFormat(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzForeignFormat checks that any input gives one of the known answers
// without panicking, and that an ensemble is never taken for another format.
func FuzzForeignFormat(f *testing.F) {
	for _, s := range []string{
		"services:\n  web: {image: nginx}\n",
		"apiVersion: v1\nkind: Pod\n",
		"job \"x\" {\n}\n",
		`{"Job": {}}`,
		"version: v1\nallocations: {}\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		switch got := foreignFormat(data); got {
		case "", "compose", "kubernetes", "nomad":
		default:
			t.Fatalf("foreignFormat(%q) = %q", data, got)
		}
		ens := append([]byte("allocations: {}\n"), data...)
		if got := foreignFormat(ens); got == "compose" || got == "kubernetes" {
			t.Fatalf("foreignFormat(%q) = %q for a document with allocations", ens, got)
		}
	})
}

func TestDeployAndValidateHintAtTranslate(t *testing.T) {
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(compose, []byte("services:\n  web:\n    image: nginx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hcl := filepath.Join(dir, "web.nomad.hcl")
	if err := os.WriteFile(hcl, []byte("job \"web\" {\n  group \"g\" {}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"validate compose", []string{"validate", "-f", compose}, "hint: " + compose + " looks like a Docker Compose file, not an ensemble: convert it with `dms translate --from compose " + compose},
		{"validate nomad", []string{"validate", "-f", hcl}, "looks like a Nomad job, not an ensemble: convert it with `dms translate --from nomad " + hcl},
		{"deploy compose", []string{"--home", dir, "deploy", "-f", compose}, "convert it with `dms translate --from compose " + compose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.args...)
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("dms %s: exit %d, stderr %q; want 1 and %q", strings.Join(tt.args, " "), code, stderr, tt.want)
			}
		})
	}
}
