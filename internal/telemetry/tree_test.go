package telemetry

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)

func span(id, parent, name string, startMS, endMS int) SpanRecord {
	return SpanRecord{TraceID: strings.Repeat("a", 32), SpanID: id, ParentID: parent, Name: name, Node: "12D3KooWAbCdEfGhIjKl",
		Start: t0.Add(time.Duration(startMS) * time.Millisecond), End: t0.Add(time.Duration(endMS) * time.Millisecond)}
}

// shape is a tree as text: name, "!" when an orphan, children in brackets.
func shape(ns []*Node) string {
	var parts []string
	for _, n := range ns {
		s := n.Span.Name
		if n.Orphan {
			s += "!"
		}
		if len(n.Children) > 0 {
			s += "[" + shape(n.Children) + "]"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestTree(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spans []SpanRecord
		want  string
	}{
		{"empty", nil, ""},
		{"children by start", []SpanRecord{
			span("r", "", "deployment", 0, 100),
			span("c", "r", "start", 50, 60),
			span("b", "r", "commit", 20, 30),
			span("a", "r", "bid round", 0, 10),
			span("x", "c", "allocation", 55, 200),
		}, "deployment[bid round commit start[allocation]]"},
		{"orphan under the root", []SpanRecord{
			span("r", "", "deployment", 0, 100),
			span("o", "gone", "allocation", 40, 90),
			span("a", "r", "bid round", 0, 10),
			span("s", "o", "allocation start", 41, 45),
		}, "deployment[bid round allocation![allocation start]]"},
		{"no root: orphans are the roots", []SpanRecord{
			span("b", "gone", "second", 20, 30),
			span("a", "gone", "first", 10, 30),
		}, "first! second!"},
		{"duplicate span kept once", []SpanRecord{
			span("r", "", "deployment", 0, 100),
			span("a", "r", "bid round", 0, 10),
			span("a", "r", "bid round", 0, 10),
		}, "deployment[bid round]"},
		{"loop of parents", []SpanRecord{
			span("r", "", "deployment", 0, 100),
			span("a", "b", "a", 10, 20),
			span("b", "a", "b", 20, 30),
		}, "deployment[a![b]]"},
		{"own parent", []SpanRecord{
			span("r", "", "deployment", 0, 100),
			span("a", "a", "self", 10, 20),
		}, "deployment[self!]"},
		{"two roots", []SpanRecord{
			span("r2", "", "later", 50, 60),
			span("r1", "", "earlier", 0, 10),
		}, "earlier later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shape(Tree(tc.spans)); got != tc.want {
				t.Errorf("Tree = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRender(t *testing.T) {
	root := span("r", "", "deployment", 0, 1500)
	root.Attrs = map[string]string{AttrDeployment: "dabc", "ensemble.allocations": "job"}
	start := span("c", "r", "start", 300, 320)
	start.Attrs = map[string]string{"provider": "12D3KooWKspnh32UJFRQrWCSVLBhcMtu7JkGLypQomRD5aGMUDKt", "owner": "did:key:z6MkjTYqdq7HcWWdcF5tCGmAFvKm7Up69976w8JnLdQfktKs"}
	alloc := span("x", "c", "allocation", 310, 2500)
	alloc.Node = "12D3KooWProviderNode99"
	alloc.Error = "exit code 3\nafter 2 restarts"
	alloc.Events = []SpanEvent{{Time: t0.Add(time.Second), Name: "restart", Attrs: map[string]string{"message": "exit 3; restart 1 of 2"}}}
	orphan := span("o", "missing1234567", "allocation start", 400, 400)
	var b strings.Builder
	if err := Render(&b, Tree([]SpanRecord{root, start, alloc, orphan, span("a", "r", "bid round", 1, 301)})); err != nil {
		t.Fatal(err)
	}
	want := `deployment  [12D3…GhIjKl]  1.5s  @+0s  ensemble.allocations=job
├─ bid round  [12D3…GhIjKl]  300ms  @+1ms
├─ start  [12D3…GhIjKl]  20ms  @+300ms  owner=did:key:z6Mk…QfktKs provider=12D3…GMUDKt
│  └─ allocation  [12D3…Node99]  2.19s  @+310ms  ERROR: exit code 3 after 2 restarts
│        · restart  @+1s  message="exit 3; restart 1 of 2"
└─ allocation start  [12D3…GhIjKl]  0s  @+400ms  (orphan: parent missing1 not gathered)
`
	if b.String() != want {
		t.Errorf("Render =\n%s\nwant\n%s", b.String(), want)
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{850 * time.Microsecond, "850µs"},
		{12345 * time.Microsecond, "12.3ms"},
		{1254 * time.Millisecond, "1.25s"},
		{123 * time.Second, "2m3s"},
		{-5 * time.Millisecond, "-5ms"},
	} {
		if got := FormatDuration(tc.d); got != tc.want {
			t.Errorf("FormatDuration(%s) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

// FuzzTree: spans gathered from other nodes are untrusted. Whatever their
// IDs and parent links, Tree keeps each span ID once, loses none, and
// Render writes every one of them without failing.
func FuzzTree(f *testing.F) {
	f.Add([]byte("r\x00\x00a\x00r\x00b\x00a\x00"))
	f.Add([]byte("a\x00b\x00b\x00a\x00"))
	f.Add([]byte("a\x00a\x00"))
	f.Add([]byte("x\x00gone\x00\n\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fields := strings.Split(string(data), "\x00")
		var spans []SpanRecord
		ids := map[string]bool{}
		for i := 0; i+1 < len(fields) && len(spans) < 200; i += 2 {
			s := span(fields[i], fields[i+1], "s"+fields[i], i, i+len(fields[i]))
			spans = append(spans, s)
			ids[s.SpanID] = true
		}
		roots := Tree(spans)
		seen := map[string]int{}
		var walk func(ns []*Node, depth int)
		walk = func(ns []*Node, depth int) {
			if depth > len(spans)+1 {
				t.Fatal("the tree is deeper than its spans: a loop")
			}
			for _, n := range ns {
				seen[n.Span.SpanID]++
				walk(n.Children, depth+1)
			}
		}
		walk(roots, 0)
		for id := range ids {
			if seen[id] != 1 {
				t.Fatalf("span %q is in the tree %d times, want once", id, seen[id])
			}
		}
		if len(seen) != len(ids) {
			t.Fatalf("%d spans in the tree, %d distinct given", len(seen), len(ids))
		}
		var b strings.Builder
		if err := Render(&b, roots); err != nil {
			t.Fatal(err)
		}
		if lines := strings.Count(b.String(), "\n"); lines != len(ids) {
			t.Fatalf("Render wrote %d lines for %d spans:\n%s", lines, len(ids), b.String())
		}
	})
}
