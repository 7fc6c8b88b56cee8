package ensemble

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDocsNameEveryField checks that docs/ensemble.md mentions every key of
// the format as `key`.
func TestDocsNameEveryField(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "ensemble.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	seen := map[reflect.Type]bool{}
	var check func(rt reflect.Type)
	check = func(rt reflect.Type) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || seen[rt] {
			return
		}
		seen[rt] = true
		for _, f := range fieldsOf(rt) {
			if !strings.Contains(doc, "`"+f.name+"`") {
				t.Errorf("docs/ensemble.md does not mention `%s` (%s)", f.name, rt.Name())
			}
			check(rt.Field(f.index).Type)
		}
	}
	check(reflect.TypeFor[Spec]())
}

// TestDocsExamples parses every ```yaml block of docs/ensemble.md that
// starts with "version:".
func TestDocsExamples(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "ensemble.md"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, block := range strings.Split(string(data), "```yaml\n")[1:] {
		src, _, _ := strings.Cut(block, "```")
		if !strings.HasPrefix(src, "version:") {
			continue
		}
		n++
		if _, err := Parse([]byte(src)); err != nil {
			t.Errorf("example %d of docs/ensemble.md: %v", n, err)
		}
	}
	if n == 0 {
		t.Error("no example in docs/ensemble.md")
	}
}
