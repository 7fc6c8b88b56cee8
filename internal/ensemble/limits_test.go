package ensemble

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// aliased writes an ensemble of n allocations, the first written out (its
// mapping is body) and anchored, the others aliases of it.
func aliased(n int, body string) string {
	var b strings.Builder
	b.WriteString("version: v1\nallocations:\n  a0: &x " + body + "\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  a%d: *x\n", i)
	}
	return b.String()
}

// envBody is a wasm allocation with an env of n entries, each value v.
func envBody(n int, v string) string {
	var b strings.Builder
	b.WriteString("{executor: wasm, execution: {module: m.wasm, env: {")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "K%d: %s", i, v)
	}
	b.WriteString("}}}")
	return b.String()
}

// TestValidateEnforcesNodeLimits checks that what Parse accepts (and so
// `dms validate`) the node accepts too: the ensemble as the CLI ships it
// (aliases expanded, defaults filled in, files as sha256 references)
// parses again. Ensembles over a limit fail at the first Parse, with a
// problem that names the limit and the count.
func TestValidateEnforcesNodeLimits(t *testing.T) {
	small := "{executor: wasm, execution: {module: m.wasm}}"
	for _, tc := range []struct {
		name string
		src  string
		want string // a substring of the problem; "" = valid
	}{
		{"the red team's 10000 allocations", aliased(10000, small), "allocations: 10000 allocations, at most 1000 (ensemble.MaxAllocations)"},
		{"one allocation over", aliased(MaxAllocations+1, small), fmt.Sprintf("allocations: %d allocations, at most %d", MaxAllocations+1, MaxAllocations)},
		{"at the allocation limit", aliased(MaxAllocations, small), ""},
		{"values as deployed", aliased(550, envBody(175, "v")), "document too complex as deployed (aliases expanded, defaults filled in): "},
		{"size as deployed", aliased(500, envBody(1, strings.Repeat("x", 10000))), "too large as deployed (aliases expanded, defaults filled in): "},
		{"under both as deployed", aliased(100, envBody(150, "v")), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.src) > MaxSize {
				t.Fatalf("the source is %d bytes, over MaxSize: the case tests nothing", len(tc.src))
			}
			got := problems(t, tc.src)
			if tc.want != "" {
				if len(got) != 1 || !strings.Contains(got[0], tc.want) {
					t.Errorf("Parse problems = %.300q, want one containing %q", got, tc.want)
				}
				return
			}
			if len(got) > 0 {
				t.Fatalf("Parse problems = %.300q, want none", got)
			}
			// What validates, the node accepts: ship it as the CLI does.
			s, _ := Parse([]byte(tc.src))
			if err := s.ReplaceFiles(func(FileRef) (string, error) { return DigestPrefix + strings.Repeat("ab", 32), nil }); err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if got := problems(t, string(out)); len(got) > 0 {
				t.Errorf("the node refuses what validated: %.300q", got)
			}
		})
	}
}

// TestCountValuesMatchesParse checks that the values deployable counts are
// the values the node's Parse visits.
func TestCountValuesMatchesParse(t *testing.T) {
	s, err := Parse([]byte(aliased(3, envBody(4, "v"))))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	root, p := parseYAML(out)
	if p != nil {
		t.Fatal(p)
	}
	d := &decoder{pos: map[string]int{}, bad: map[string]bool{}, active: map[*yaml.Node]bool{}}
	var back Spec
	d.value(root, reflect.ValueOf(&back).Elem(), "", root.Line)
	if got, want := countValues(encode(reflect.ValueOf(s).Elem())), d.visits; got != want {
		t.Errorf("countValues = %d, want %d (the visits of Parse)", got, want)
	}
}

// TestValidateMarshal checks that ValidateMarshal is Validate then Marshal:
// the same problems, and the same bytes when there are none.
func TestValidateMarshal(t *testing.T) {
	parse := func(src string) *Spec {
		t.Helper()
		s, err := Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	small := "version: v1\nallocations:\n  a: {executor: wasm, execution: {module: " + DigestPrefix + strings.Repeat("ab", 32) + "}}\n"
	for _, tc := range []struct {
		name string
		spec func() *Spec
		ok   bool
	}{
		{"valid", func() *Spec { return parse(small) }, true},
		{"many values", func() *Spec { return parse(aliased(100, envBody(150, "v"))) }, true},
		{"a local file", func() *Spec { return parse(aliased(3, envBody(2, "v"))) }, true},
		{"invalid", func() *Spec {
			s := parse(small)
			a := s.Allocations["a"]
			a.Executor = "nope"
			s.Allocations["a"] = a
			return s
		}, false},
		{"too large", func() *Spec {
			s := parse(small)
			a := s.Allocations["a"]
			a.Execution.Env = map[string]string{"K": strings.Repeat("x", MaxSize)}
			s.Allocations["a"] = a
			return s
		}, false},
		{"too large with a local file", func() *Spec {
			s := parse(aliased(1, envBody(1, "v")))
			a := s.Allocations["a0"]
			a.Execution.Env = map[string]string{"K": strings.Repeat("x", MaxSize)}
			s.Allocations["a0"] = a
			return s
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec()
			got, err := s.ValidateMarshal()
			wantErr := s.Validate()
			if (err == nil) != tc.ok || (wantErr == nil) != tc.ok {
				t.Fatalf("ValidateMarshal error %v, Validate error %v, want ok=%v", err, wantErr, tc.ok)
			}
			if !tc.ok {
				if err.Error() != wantErr.Error() {
					t.Errorf("ValidateMarshal error %q, Validate's %q", err, wantErr)
				}
				return
			}
			want, err := Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("ValidateMarshal wrote\n%s\nMarshal\n%s", got, want)
			}
		})
	}
}
