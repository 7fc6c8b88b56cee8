package ensemble

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// yamlV3 writes n with yaml.v3 alone, as marshalNode did before emit.
func yamlV3(t testing.TB, n *yaml.Node) string {
	t.Helper()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		t.Fatalf("yaml.v3: %v", err)
	}
	if err := enc.Close(); err != nil {
		t.Fatalf("yaml.v3: %v", err)
	}
	return buf.String()
}

// checkEmit fails when emit writes n other than as yaml.v3 does, and
// reports whether emit wrote it.
func checkEmit(t testing.TB, n *yaml.Node) bool {
	t.Helper()
	got, ok := emit(n)
	if !ok {
		return false
	}
	if want := yamlV3(t, n); string(got) != want {
		t.Fatalf("emit writes\n%s\nwant (yaml.v3)\n%s", got, want)
	}
	return true
}

// emitDocs are the documents of a spec the tests write: the whole of it,
// each top-level key alone, each allocation and node alone (so one value
// emit leaves to yaml.v3 does not hide the rest from the comparison).
func emitDocs(s *Spec) []*yaml.Node {
	root := encode(reflect.ValueOf(s).Elem())
	docs := []*yaml.Node{root}
	for i := 0; i < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		docs = append(docs, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, v}})
		if v.Kind != yaml.MappingNode || k.Value != "allocations" && k.Value != "nodes" {
			continue
		}
		for j := 0; j < len(v.Content); j += 2 {
			docs = append(docs, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, {
				Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{v.Content[j], v.Content[j+1]}}}})
		}
	}
	return docs
}

func TestEmitMatchesYAML(t *testing.T) {
	specs := map[string]string{"full": full, "task": taskSpec}
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		specs[filepath.Base(f)] = string(data)
	}
	written := 0
	for name, text := range specs {
		s, err := Parse([]byte(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, doc := range emitDocs(s) {
			if checkEmit(t, doc) {
				written++
			}
		}
		if name == "task" {
			if _, ok := emit(encode(reflect.ValueOf(s).Elem())); !ok {
				t.Errorf("emit(task) left the spec to yaml.v3, want written by emit")
			}
		}
	}
	if written < 30 {
		t.Errorf("emit wrote %d documents of the specs, want at least 30", written)
	}
}

// emitScalarDoc puts a scalar made by mk in every position a spec puts
// one: a key, a block value, a flow list's items, a block list's items, a
// key and value in a block list's mapping, nested.
func emitScalarDoc(mk func() *yaml.Node) *yaml.Node {
	seq := func(style yaml.Style, items ...*yaml.Node) *yaml.Node {
		return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: style, Content: items}
	}
	mapping := func(content ...*yaml.Node) *yaml.Node {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: content}
	}
	return mapping(
		mk(), mk(),
		plain("!!str", "list"), seq(yaml.FlowStyle, mk(), mk()),
		plain("!!str", "block"), seq(0, mk(), mapping(mk(), mk(), plain("!!str", "x"), mk())),
		plain("!!str", "nested"), mapping(mk(), mapping(plain("!!str", "deep"), mk())),
	)
}

func TestEmitScalars(t *testing.T) {
	values := []string{
		"web", "alpine:3.19", "docker.io/library/nginx@sha256:0123", "app.example/tier",
		"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "a:", ":a", "a::b",
		"-c", "--to", "-", "--", "-1", "-1.5", "-.5", "-inf", "+1", "+a", "a+b", "a=b", "=a",
		"1h", "1h30m", "64MiB", "0x1F", "0b1", "0o7", "1e3", "1E3", "1_000", "0123", "12", "1.5", "0.01",
		"2001-12-14", "2001-12-14t21:59:43.10-05:00", "1.", ".5", ".inf", ".nan", "_a", "/bin/app", "//x",
		"true", "false", "True", "yes", "no", "on", "off", "y", "n", "null", "~", "<<", "a@b", "@a",
		"a.b.c", "a-", "a_", "A", "z", "inf", "nan", "NaN", "Infinity", "0", "00", "1d", "5s",
		"x" + string(make([]byte, 0)) + "0123456789012345678901234567890123456789012345678901234567890123456789",
	}
	tags := []string{"!!str", "!!int", "!!float", "!!bool"}
	written := 0
	for _, v := range values {
		for _, tag := range tags {
			for _, style := range []yaml.Style{0, yaml.DoubleQuotedStyle} {
				if checkEmit(t, emitScalarDoc(func() *yaml.Node { n := plain(tag, v); n.Style = style; return n })) {
					written++
				}
			}
		}
		if checkEmit(t, emitScalarDoc(func() *yaml.Node { return scalarNode(v) })) {
			written++
		}
	}
	if written < 40 {
		t.Errorf("emit wrote %d documents, want at least 40", written)
	}
}

// TestEmitDeclines checks emit leaves to yaml.v3 what it does not write:
// empty collections, comments, anchors, long lines, nested lists.
func TestEmitDeclines(t *testing.T) {
	long := plain("!!str", "a0123456789012345678901234567890123456789012345678901234567890123456789")
	tests := map[string]*yaml.Node{
		"empty mapping":  {Kind: yaml.MappingNode, Tag: "!!map"},
		"empty value":    {Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{plain("!!str", "k"), {Kind: yaml.MappingNode, Tag: "!!map"}}},
		"comment":        {Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{plain("!!str", "k"), {Kind: yaml.ScalarNode, Tag: "!!str", Value: "v", LineComment: "# c"}}},
		"anchor":         {Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{plain("!!str", "k"), {Kind: yaml.ScalarNode, Tag: "!!str", Value: "v", Anchor: "a"}}},
		"long flow list": {Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{plain("!!str", "k"), {Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle, Content: []*yaml.Node{long, long}}}},
		"nested list":    {Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{plain("!!str", "k"), {Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{plain("!!str", "a")}}}}}},
		"multi-line":     {Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{plain("!!str", "k"), plain("!!str", "a\nb")}},
	}
	for name, n := range tests {
		if out, ok := emit(n); ok {
			t.Errorf("%s: emit wrote %q, want it left to yaml.v3", name, out)
		}
		if _, err := marshalNode(n); err != nil {
			t.Errorf("%s: marshalNode: %v", name, err)
		}
	}
}

func FuzzEmit(f *testing.F) {
	for _, s := range []string{"web", "-c", "1h", "0x1", "a:b", "yes", "a b", "1e3", "--to", "é"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, kind uint8) {
		tag := []string{"!!str", "!!int", "!!float", "!!bool"}[kind%4]
		checkEmit(t, emitScalarDoc(func() *yaml.Node { return plain(tag, s) }))
		checkEmit(t, emitScalarDoc(func() *yaml.Node { return scalarNode(s) }))
	})
}
