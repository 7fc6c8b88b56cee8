package translate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       Format
		err        string
	}{
		{"compose.yaml", "anything", Compose, ""},
		{"docker-compose.prod.yml", "", Compose, ""},
		{"dir/Compose.YML", "x: 1", Compose, ""},
		{"job.nomad", "", Nomad, ""},
		{"job.nomad.hcl", "", Nomad, ""},
		{`c:\jobs\web.hcl`, "", Nomad, ""},
		{"app.yaml", "services:\n  web: {image: nginx}\n", Compose, ""},
		{"app.yaml", "name: shop\nservices: {}\n", Compose, ""},
		{"app.json", `{"services": {"web": {"image": "nginx"}}}`, Compose, ""},
		{"app.yaml", "apiVersion: v1\nkind: Pod\n", Kubernetes, ""},
		{"app.yaml", "# comment\n---\napiVersion: apps/v1\nkind: Deployment\n---\napiVersion: v1\nkind: Service\n", Kubernetes, ""},
		{"app.yaml", "---\n---\napiVersion: v1\nkind: List\nitems: []\n", Kubernetes, ""},
		{"app.json", `{"apiVersion": "v1", "kind": "Pod"}`, Kubernetes, ""},
		{"job.json", `{"Job": {"ID": "x"}}`, Nomad, ""},
		{"job.json", `  {"ID": "x", "TaskGroups": []}`, Nomad, ""},
		{"job.json", `{"job": {"x": {}}}`, Nomad, ""},
		{"job", "# a job\njob \"x\" {\n}\n", Nomad, ""},
		{"job", "variable \"v\" {\n  default = 1\n}\n\njob \"x\" {\n}\n", Nomad, ""},
		{"\xef\xbb\xbfbom.yaml", "\xef\xbb\xbfservices: {}\n", Compose, ""},
		{"x.yaml", "", "", "cannot tell the format of x.yaml: it is empty"},
		{"x.yaml", "  \n\t", "", "cannot tell the format of x.yaml: it is empty"},
		{"x.yaml", "foo: bar\n", "", "cannot tell the format of x.yaml: not a compose file (no services)"},
		{"x.yaml", "- a\n- b\n", "", "cannot tell the format of x.yaml: not a compose file"},
		{"x.yaml", "kind: Pod\n", "", "cannot tell the format of x.yaml: not a compose file"},
		{"x.json", `{"ID": "x"`, "", "cannot tell the format of x.json: not a compose file"},
		{"x.txt", "job x {", "", "cannot tell the format of x.txt: not a compose file"},
		{"-", "foo: 1", "", "cannot tell the format of standard input: not a compose file"},
	} {
		got, err := Detect(tc.name, []byte(tc.data))
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("Detect(%q, %q) = %s, %v; want error %q", tc.name, tc.data, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Detect(%q, %q) = %s, %v; want %s", tc.name, tc.data, got, err, tc.want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"compose": Compose, "docker-compose": Compose, "K8s": Kubernetes, "kubernetes": Kubernetes, "nomad": Nomad} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %s, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("swarm"); err == nil || err.Error() != `"swarm": want compose, kubernetes or nomad` {
		t.Errorf("ParseFormat(swarm) error = %v", err)
	}
	if _, _, err := Translate("swarm", "x", nil, nil); err == nil {
		t.Error("Translate of an unknown format gave no error")
	}
}

// TestTranslateNamesTheFile checks that compose-go's messages name the
// file given, not a name of its own.
func TestTranslateNamesTheFile(t *testing.T) {
	_, _, err := Translate(Compose, "shop/stack.yml", []byte("services:\n  a:\n    image: x\n    bogus: 1\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "shop/stack.yml") || strings.Contains(err.Error(), "compose.yaml") {
		t.Errorf("error = %v, want it to name shop/stack.yml", err)
	}
}

// FuzzDetect checks that Detect never panics, answers one of the formats
// or an error that names the file, and answers the same twice.
func FuzzDetect(f *testing.F) {
	for _, dir := range []string{"compose", "kubernetes", "nomad", "realworld"} {
		inputs, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
		for _, in := range inputs {
			if data, err := os.ReadFile(in); err == nil && !strings.HasSuffix(in, ".golden") {
				f.Add("input", data)
			}
		}
	}
	f.Add("compose.yaml", []byte("x"))
	f.Add("x.hcl", []byte(""))
	f.Add("x", []byte("{\"Job\": 1}"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		got, err := Detect(name, data)
		again, err2 := Detect(name, data)
		if got != again || (err == nil) != (err2 == nil) {
			t.Fatalf("Detect answered %s, %v then %s, %v", got, err, again, err2)
		}
		if err != nil {
			if name == "" || name == "-" {
				name = "standard input"
			}
			if got != "" || !strings.Contains(err.Error(), name) {
				t.Fatalf("Detect = %q, %v", got, err)
			}
			return
		}
		if got != Compose && got != Kubernetes && got != Nomad {
			t.Fatalf("Detect = %q", got)
		}
	})
}

func FuzzNomadHCL(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "realworld", "nomad-*"))
	inputs = append(inputs, filepath.Join("testdata", "nomad", "web.nomad.hcl"))
	for _, in := range inputs {
		if data, err := os.ReadFile(in); err == nil && !strings.HasSuffix(in, ".golden") {
			f.Add(data)
		}
	}
	f.Add([]byte("job \"x\" { group \"g\" { task \"t\" { driver = \"docker\"\n config { image = \"${var.x}\" } } } }"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 0 && data[0] == '{' {
			return // the JSON form: FuzzFromNomad
		}
		s, _, err := FromNomad(data)
		if err != nil {
			if s != nil {
				t.Fatal("a spec came with an error")
			}
			return
		}
		if s == nil {
			t.Fatal("no spec and no error")
		}
	})
}
