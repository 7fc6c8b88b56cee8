package ensemble

import (
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
