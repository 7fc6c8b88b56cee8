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
