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
		kind := "warning"
		switch w.Kind {
		case Dropped:
			kind = "dropped"
		case NotShipped:
			kind = "not shipped"
		}
		fmt.Fprintf(&b, "# %s: %s\n", kind, w)
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
		{"kubernetes no kind", FromKubernetes, "apiVersion: v1\nmetadata: {name: x}\n", "document 1, line 1: no kind"},
		{"kubernetes bad field in document 2", FromKubernetes, "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: x}]}\n---\n# b\napiVersion: v1\nkind: Pod\nspec: {containers: 3}\n", "document 2, line 7 (Pod): "},
		{"kubernetes only a service", FromKubernetes, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "nothing to translate: no workload could be carried over"},
		{"kubernetes bad field", FromKubernetes, "apiVersion: v1\nkind: Pod\nspec: {containers: 3}\n", "document 1, line 1 (Pod): "},
		{"kubernetes empty", FromKubernetes, "---\n", "parse kubernetes manifests: no documents"},
		{"nomad hcl no groups", FromNomad, "job \"x\" {}\n", "parse nomad job: no task groups"},
		{"nomad hcl json", FromNomad, `{"job": {"x": {}}}`, "parse nomad job: this is the HCL-in-JSON form; want the job file in HCL, or the API form (nomad job run -output job.nomad.hcl > job.json)"},
		{"nomad no groups", FromNomad, `{"Job": {"ID": "x"}}`, "parse nomad job: no task groups"},
		{"nomad bad json line", FromNomad, "{\"ID\": \n 3,}", "parse nomad job: line 2, column 5: invalid character"},
		{"nomad hcl syntax", FromNomad, "job \"x\" {\n  group \"g\" {\n    count = \n  }\n}\n", "parse nomad job: line 3, column 13: Invalid expression"},
		{"nomad hcl no job", FromNomad, "variable \"x\" { default = 1 }\n", "parse nomad job: no job block"},
		{"nomad hcl two jobs", FromNomad, "job \"a\" {}\njob \"b\" {}\n", "parse nomad job: line 2, column 1: a second job block"},
		{"nomad hcl unlabelled job", FromNomad, "job {}\n", "parse nomad job: line 1, column 1: the job block needs one name"},
		{"nomad hcl unlabelled group", FromNomad, "job \"x\" {\n  group {}\n}\n", "parse nomad job: line 2, column 3: a group block needs a name"},
		{"nomad hcl variable without default", FromNomad, "variable \"img\" {}\njob \"x\" {}\n", "parse nomad job: line 1, column 1: variable img has no default"},
		{"nomad hcl unknown variable", FromNomad, "job \"x\" {\n  region = var.nope\n}\n", "parse nomad job: line 2, column 15: Unsupported attribute: This object does not have an attribute named \"nope\""},
		{"nomad hcl function", FromNomad, "job \"x\" {\n  region = file(\"x\")\n}\n", "parse nomad job: line 2, column 12: Function calls not allowed"},
		{"nomad hcl bad duration", FromNomad, "job \"x\" {\n  group \"g\" {\n    restart { delay = \"soon\" }\n  }\n}\n", "parse nomad job: line 3, column 23: delay = \"soon\" is not a duration"},
		{"nomad hcl duplicate resources", FromNomad, "job \"x\" {\n group \"g\" {\n  task \"t\" {\n   resources {}\n   resources {}\n  }\n }\n}\n", "parse nomad job: line 5, column 4: a second resources block"},
		{"nomad hcl block in env", FromNomad, "job \"x\" {\n group \"g\" {\n  task \"t\" {\n   env {\n    x {}\n   }\n  }\n }\n}\n", "parse nomad job: line 5, column 5: unexpected block x"},
		{"nomad hcl wrong type", FromNomad, "job \"x\" {\n group \"g\" {\n  count = \"two\"\n }\n}\n", "parse nomad job: TaskGroups.Count: want a whole number, not a string"},
		{"nomad json wrong type", FromNomad, `{"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": {"a": 1}}]}`, "parse nomad job: TaskGroups.Tasks: want a list, not an object"},
		{"nomad hcl fractional count", FromNomad, "job \"x\" {\n group \"g\" {\n  count = 1.5\n }\n}\n", "parse nomad job: TaskGroups.Count: want a whole number, not a number 1.5"},
		{"nomad hcl outside job", FromNomad, "region = \"x\"\n", "parse nomad job: line 1, column 1: unexpected attribute region outside the job block"},
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

// TestNomadHCLMatchesJSON checks that a job file in HCL and the same job in
// the API JSON form translate alike: HCL is read into the JSON form.
func TestNomadHCLMatchesJSON(t *testing.T) {
	hclData, err := os.ReadFile(filepath.Join("testdata", "nomad", "web.nomad.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	jsonData, err := os.ReadFile(filepath.Join("testdata", "nomad", "service.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The same ensemble and warnings; the HCL's name the file's blocks,
	// with their lines.
	hs, hws, herr := FromNomad(hclData)
	js, jws, jerr := FromNomad(jsonData)
	if fromHCL, fromJSON := render(hs, nil, herr), render(js, nil, jerr); fromHCL != fromJSON {
		t.Errorf("HCL translates to\n%s\nJSON to\n%s", fromHCL, fromJSON)
	}
	if len(hws) != len(jws) {
		t.Fatalf("HCL warnings %v, JSON warnings %v", hws, jws)
	}
	for i := range hws {
		if hws[i].Msg != jws[i].Msg || hws[i].Kind != jws[i].Kind || hws[i].Line == 0 || jws[i].Line != 0 ||
			strings.HasPrefix(hws[i].Path, "TaskGroups") || strings.HasPrefix(hws[i].Path, "Job") {
			t.Errorf("HCL warning %+v, JSON warning %+v", hws[i], jws[i])
		}
	}
}

// TestNomadServerFields checks that the fields the Nomad server fills in
// (nomad job inspect) and its defaults raise no warning, and that no
// warning is given twice.
func TestNomadServerFields(t *testing.T) {
	job := `{"ID": "x", "Name": "x", "Type": "batch", "Status": "running", "StatusDescription": "", "CreateIndex": 12,
	"ModifyIndex": 14, "JobModifyIndex": 12, "SubmitTime": 1733300000000000000, "Version": 3, "Stable": true, "Stop": false,
	"Dispatched": false, "ParentID": "", "NomadTokenID": "", "VersionTag": null, "Periodic": null, "ParameterizedJob": null,
	"NodePool": "default", "Consul": {"Namespace": "", "Cluster": "default", "Partition": ""},
	"TaskGroups": [{"Name": "g", "Consul": {"Cluster": "default"}, "Tasks": [
		{"Name": "t", "Driver": "docker", "Config": {"image": "alpine", "work_dir": "/srv/${NOMAD_TASK_DIR}"}, "Env": {"A": "${NOMAD_TASK_DIR}"},
		 "Resources": {"CPU": 100, "MemoryMB": 64}, "KillTimeout": 5000000000, "LogConfig": {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": false}}]}]}`
	_, ws, err := FromNomad([]byte(job))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, w := range ws {
		if seen[w.String()] {
			t.Errorf("warning given twice: %s", w)
		}
		seen[w.String()] = true
		for _, f := range append(serverFields, "KillTimeout", "LogConfig", "NodePool", "Consul") {
			if strings.Contains(w.Path, f) {
				t.Errorf("warning about a server field: %s", w)
			}
		}
	}
	if len(ws) != 3 { // the CPU in MHz, ${...} in work_dir and in Env
		t.Errorf("warnings %v, want 3", ws)
	}
}

// TestRefusedKinds checks that what would turn a job that runs many times
// into one run is a Dropped warning, and so are the parts left out.
func TestRefusedKinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func([]byte) (*ensemble.Spec, []Warning, error)
		in   string
		want string // the path of the dropped warning
	}{
		{"nomad periodic hcl", FromNomad, "job \"p\" {\n type = \"batch\"\n periodic {\n  crons = [\"13 13 31 1 7\"]\n  prohibit_overlap = true\n }\n group \"g\" {\n  task \"t\" {\n   driver = \"docker\"\n   config { image = \"busybox:1\" }\n  }\n }\n}\n", "job.periodic"},
		{"nomad parameterized hcl", FromNomad, "job \"p\" {\n type = \"batch\"\n parameterized {\n  payload = \"required\"\n }\n group \"g\" {\n  task \"t\" {\n   driver = \"docker\"\n   config { image = \"busybox:1\" }\n  }\n }\n}\n", "job.parameterized"},
		{"nomad parameterized json", FromNomad, `{"ID": "p", "ParameterizedJob": {"Payload": "optional"}, "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": "a"}}]}]}`, "Job.ParameterizedJob"},
		{"nomad exec task", FromNomad, "job \"p\" {\n group \"g\" {\n  task \"a\" {\n   driver = \"docker\"\n   config { image = \"busybox:1\" }\n  }\n  task \"b\" {\n   driver = \"exec\"\n   config { command = \"/bin/true\" }\n  }\n }\n}\n", "group.g.task.b"},
		{"kubernetes cronjob", FromKubernetes, "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: '@daily'\n  jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: busybox}]}}}}\n", "CronJob/c.spec.schedule"},
		{"compose build only", FromCompose, "services:\n  a: {image: nginx}\n  b: {build: .}\n", "services.b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ws, err := tc.fn([]byte(tc.in))
			if err != nil || s == nil {
				t.Fatalf("error %v", err)
			}
			dropped := OfKind(ws, Dropped)
			if len(dropped) != 1 || dropped[0].Path != tc.want {
				t.Errorf("dropped %v, want one at %s (all: %v)", dropped, tc.want, ws)
			}
		})
	}
	// A periodic block that is disabled is no schedule.
	_, ws, err := FromNomad([]byte("job \"p\" {\n periodic {\n  cron = \"@daily\"\n  enabled = false\n }\n group \"g\" {\n  task \"t\" {\n   driver = \"docker\"\n   config { image = \"busybox:1\" }\n  }\n }\n}\n"))
	if err != nil || len(OfKind(ws, Dropped)) != 0 {
		t.Errorf("disabled periodic: %v, %v", ws, err)
	}
}
