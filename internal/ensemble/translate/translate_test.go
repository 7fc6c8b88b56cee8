package translate

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmsnet/dms/internal/ensemble"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata")

// render is what a golden file holds: the warnings as comments, then the
// ensemble (or the error).
func render(s *ensemble.Spec, ws []Warning, err error) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "# warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(&b, "# error: %v\n", err)
		return b.String()
	}
	out, merr := ensemble.Marshal(s)
	if merr != nil {
		return b.String() + "# marshal error: " + merr.Error() + "\n"
	}
	b.Write(out)
	return b.String()
}

// TestGolden translates every input in testdata/<source>/ and compares the
// result with its .golden file (go test -run TestGolden -rewrite updates
// them). Every translated ensemble must parse and validate.
func TestGolden(t *testing.T) {
	sources := map[string]func([]byte) (*ensemble.Spec, []Warning, error){
		"compose":    FromCompose,
		"kubernetes": FromKubernetes,
		"nomad":      FromNomad,
	}
	for src, fn := range sources {
		inputs, _ := filepath.Glob(filepath.Join("testdata", src, "*"))
		n := 0
		for _, in := range inputs {
			if strings.HasSuffix(in, ".golden") {
				continue
			}
			n++
			t.Run(src+"/"+filepath.Base(in), func(t *testing.T) {
				data, err := os.ReadFile(in)
				if err != nil {
					t.Fatal(err)
				}
				s, ws, err := fn(data)
				got := render(s, ws, err)
				golden := strings.TrimSuffix(in, filepath.Ext(in)) + ".golden"
				if *rewrite {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				} else if want, err := os.ReadFile(golden); err != nil || string(want) != got {
					t.Errorf("%s differs from %s (run with -rewrite to update):\n%s", in, golden, got)
				}
				if s != nil {
					out, _ := ensemble.Marshal(s)
					if _, err := ensemble.Parse(out); err != nil {
						t.Errorf("the translation does not parse back: %v\n%s", err, out)
					}
				}
			})
		}
		if n == 0 {
			t.Errorf("no %s inputs in testdata", src)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func([]byte) (*ensemble.Spec, []Warning, error)
		in   string
		want string
	}{
		{"compose not yaml", FromCompose, "services: [", "parse compose file: "},
		{"compose empty", FromCompose, "", "parse compose file: empty"},
		{"compose no image", FromCompose, "services:\n  a:\n    build: .\n", "nothing to translate: no workload could be carried over"},
		{"compose bad schema", FromCompose, "services:\n  a:\n    image: x\n    ports: {a: b}\n", "load compose file: "},
		{"compose extends file", FromCompose, "services:\n  a:\n    image: x\n    extends: {file: 3, service: b}\n", ""},
		{"kubernetes no kind", FromKubernetes, "apiVersion: v1\nmetadata: {name: x}\n", "document 1: no kind"},
		{"kubernetes only a service", FromKubernetes, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "nothing to translate: no workload could be carried over"},
		{"kubernetes bad field", FromKubernetes, "apiVersion: v1\nkind: Pod\nspec: {containers: 3}\n", "document 1 (Pod): "},
		{"kubernetes empty", FromKubernetes, "---\n", "parse kubernetes manifests: no documents"},
		{"nomad hcl", FromNomad, "job \"x\" {}\n", "parse nomad job: want the job as JSON (convert HCL with nomad job run -output job.nomad.hcl > job.json)"},
		{"nomad hcl json", FromNomad, `{"job": {"x": {}}}`, "parse nomad job: this is the HCL-in-JSON form; want the API form (nomad job run -output job.nomad.hcl > job.json)"},
		{"nomad no groups", FromNomad, `{"Job": {"ID": "x"}}`, "parse nomad job: no TaskGroups"},
		{"nomad exec only", FromNomad, `{"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "exec"}]}]}`, "nothing to translate: no workload could be carried over"},
		{"nomad bad json", FromNomad, `{"ID": `, "parse nomad job: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := tc.fn([]byte(tc.in))
			if tc.want == "" {
				if err != nil {
					t.Errorf("error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error = %v, want %q", err, tc.want)
			}
			if s != nil {
				t.Error("a spec came with the error")
			}
		})
	}
}

func TestLabel(t *testing.T) {
	for in, want := range map[string]string{
		"web":                   "web",
		"Web_App":               "web-app",
		"--x--":                 "x",
		"":                      "x",
		"a..b":                  "a-b",
		"ü":                     "x",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
	} {
		if got := label(in); got != want || !ensemble.IsName(got) {
			t.Errorf("label(%q) = %q, want %q", in, got, want)
		}
	}
	var ws warnings
	n := newNamer()
	if a, b := n.name(&ws, "p", "web"), n.name(&ws, "q", "Web"); a != "web" || b != "web-2" || len(ws) != 1 {
		t.Errorf("names web, Web = %q, %q with warnings %v", a, b, ws)
	}
}

// fuzzTranslator checks that a translator never panics and that what it
// returns is a valid ensemble.
func fuzzTranslator(f *testing.F, dir string, fn func([]byte) (*ensemble.Spec, []Warning, error)) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
	for _, in := range inputs {
		if !strings.HasSuffix(in, ".golden") {
			if data, err := os.ReadFile(in); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _, err := fn(data)
		if err != nil {
			if s != nil {
				t.Fatal("a spec came with an error")
			}
			return
		}
		out, err := ensemble.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ensemble.Parse(out); err != nil {
			t.Fatalf("translated ensemble does not parse: %v\n%s", err, out)
		}
	})
}

func FuzzFromCompose(f *testing.F)    { fuzzTranslator(f, "compose", FromCompose) }
func FuzzFromKubernetes(f *testing.F) { fuzzTranslator(f, "kubernetes", FromKubernetes) }
func FuzzFromNomad(f *testing.F)      { fuzzTranslator(f, "nomad", FromNomad) }
