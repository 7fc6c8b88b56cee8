package ensemble

import (
	"fmt"
	"reflect"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// scalarDoc writes n, which must not be shared, in every position a spec
// puts a scalar: a mapping key, a block value and an item of a flow list.
func scalarDoc(t testing.TB, mk func() *yaml.Node) string {
	t.Helper()
	doc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		mk(), mk(),
		plain("!!str", "list"), {Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle, Content: []*yaml.Node{mk(), mk()}},
		plain("!!str", "nested"), {Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{mk(), mk()}},
	}}
	out, err := marshalNode(doc)
	if err != nil {
		t.Fatalf("marshalNode: %v", err)
	}
	return string(out)
}

// checkStringNode fails when stringNode(s) writes YAML other than
// yaml.v3's own encoding of s.
func checkStringNode(t testing.TB, s string) {
	t.Helper()
	if stringNode(s) == nil {
		return // scalarNode takes the encoder's path
	}
	got := scalarDoc(t, func() *yaml.Node { return stringNode(s) })
	want := scalarDoc(t, func() *yaml.Node { return encodedNode(s) })
	if got != want {
		t.Fatalf("stringNode(%q) writes\n%s\nwant (yaml.v3's encoding)\n%s", s, got, want)
	}
}

func TestStringNode(t *testing.T) {
	tests := []struct {
		s    string
		fast bool // stringNode answers, without the encoder
	}{
		{"web", true},
		{"alpine:3.19", true},
		{"docker.io/library/nginx@sha256:0123", true},
		{"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", true},
		{"app.example/tier", true},
		{"a: b", true},
		{"a #b", true},
		{"x, y", true},
		{"[x]", true},
		{"{x}", true},
		{"*ref", true},
		{"&anchor", true},
		{"!tag", true},
		{"%dir", true},
		{"@at", true},
		{"`tick", true},
		{"|lit", true},
		{">fold", true},
		{"'q'", true},
		{`"q"`, true},
		{"?", true},
		{"? x", true},
		{":x", true},
		{"#c", true},
		{" lead", true},
		{"trail ", true},
		{"tab\there", true},
		{"é", true},
		{"\u2028sep", true},
		{"\x00nul", true},
		{"\u00a0nbsp", true},
		{"<<x", true},
		{"<", true},
		{"yes", true},
		{"Yes", true},
		{"YES", true},
		{"yess", true},
		{"y", true},
		{"n", true},
		{"no", true},
		{"NO", true},
		{"on", true},
		{"off", true},
		{"Off", true},
		{"oFF", true},
		{"true", true},
		{"TRUE", true},
		{"tRUE", true},
		{"false", true},
		{"null", true},
		{"Null", true},
		{"nULL", true},
		{"~", true},
		{"~x", true},
		{"node", true},
		{"type", true},
		{"", false},
		{"<<", false},
		{"1", false},
		{"1.5", false},
		{"-x", false},
		{"+1", false},
		{".inf", false},
		{"2001-12-14", false},
		{"1:20", false},
		{"two\nlines", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			if fast := stringNode(tt.s) != nil; fast != tt.fast {
				t.Fatalf("stringNode(%q) != nil is %v, want %v", tt.s, fast, tt.fast)
			}
			checkStringNode(t, tt.s)
		})
	}
}

func TestScalarNodeNumbers(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"zero", int64(0)},
		{"negative", int64(-42)},
		{"large", int64(1) << 62},
		{"true", true},
		{"false", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scalarDoc(t, func() *yaml.Node { return scalarNode(tt.v) })
			want := scalarDoc(t, func() *yaml.Node { return encodedNode(tt.v) })
			if got != want {
				t.Fatalf("scalarNode(%v) writes\n%s\nwant\n%s", tt.v, got, want)
			}
		})
	}
}

func FuzzStringNode(f *testing.F) {
	for _, s := range []string{"web", "a: b", "yes", "x, y", " lead", "#c", "é", "<<x", "~x", "'q'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkStringNode(t, s)
	})
}

// BenchmarkMarshal writes the spec of every field; its anchor,
// scalar/encoder, is one string written by yaml.v3's encoder, the way
// every scalar was written before stringNode (scalar/direct).
func BenchmarkMarshal(b *testing.B) {
	s, err := Parse([]byte(full))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("spec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Marshal(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scalar/encoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = encodedNode("alpine:3.19")
		}
	})
	b.Run("scalar/direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = stringNode("alpine:3.19")
		}
	})
}

// BenchmarkValidateMarshal is what a node's Submit does with a usual spec:
// the spec of Scale/providers=100 (internal/orchestrator) and the spec of
// every field.
func BenchmarkValidateMarshal(b *testing.B) {
	for name, src := range map[string]string{"task": taskSpec, "full": full} {
		s, err := Parse([]byte(src))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.ValidateMarshal(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// taskSpec is the spec of internal/orchestrator's task("0.01", "exit=0").
const taskSpec = `version: v1
allocations:
  job:
    executor: docker
    resources: {cpu: 0.01, ram: 64MiB}
    execution:
      image: workload
      cmd: [workload, exit=0]
`

// TestEncoderReuse: an encoder's slabs, emptied, make the next document
// right (another spec, larger or smaller), a large one is not kept, and a
// kept one makes a usual spec's nodes without allocating them.
func TestEncoderReuse(t *testing.T) {
	many := "version: v1\nallocations:\n"
	for i := range 60 {
		many += fmt.Sprintf("  a%d:\n    executor: docker\n    resources: {cpu: 1, ram: 1GiB}\n    execution: {image: x, cmd: [a, b]}\n", i)
	}
	specs := map[string]*Spec{}
	for name, src := range map[string]string{"task": taskSpec, "full": full, "many": many} {
		s, err := Parse([]byte(src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		specs[name] = s
	}
	want := map[string]string{}
	for name, s := range specs {
		out, err := marshalNode(encode(reflect.ValueOf(s).Elem())) // new nodes
		if err != nil {
			t.Fatal(err)
		}
		want[name] = string(out)
	}
	var e encoder
	for _, name := range []string{"task", "full", "task", "task", "full", "task"} {
		out, err := marshalNode(e.encode(reflect.ValueOf(specs[name]).Elem()))
		if err != nil || string(out) != want[name] {
			t.Fatalf("%s after reuse: %v\n%s\nwant\n%s", name, err, out, want[name])
		}
		if !e.reset() {
			t.Fatalf("%s: an encoder of %d nodes not kept", name, e.size)
		}
	}
	e.encode(reflect.ValueOf(specs["many"]).Elem())
	if e.reset() {
		t.Errorf("an encoder of %d nodes kept, over maxKeptNodes (%d)", e.size, maxKeptNodes)
	}

	task := reflect.ValueOf(specs["task"]).Elem()
	fresh := testing.AllocsPerRun(20, func() { encode(task) })
	e = encoder{}
	e.encode(task)
	e.reset()
	kept := testing.AllocsPerRun(20, func() {
		e.encode(task)
		e.reset()
	})
	// What is left is the values' text (durations, numbers) and the maps' keys.
	if kept+2 > fresh {
		t.Errorf("the task's nodes: %v allocations with a kept encoder, %v with a new one; want 2 fewer (its slabs)", kept, fresh)
	}
}

// TestMarshalConcurrent: documents written at once from kept encoders do
// not share nodes (run with -race).
func TestMarshalConcurrent(t *testing.T) {
	specs := []string{taskSpec, full}
	want := make([]string, len(specs))
	parsed := make([]*Spec, len(specs))
	for i, src := range specs {
		s, err := Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		out, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		parsed[i], want[i] = s, string(out)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				i := (g + j) % len(specs)
				out, err := parsed[i].ValidateMarshal()
				if err != nil || string(out) != want[i] {
					t.Errorf("spec %d: %v, %d bytes, want %d", i, err, len(out), len(want[i]))
					return
				}
			}
		}()
	}
	wg.Wait()
}
