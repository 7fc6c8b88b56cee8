package telemetry

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Node is a span in a trace's tree: the span and its children, ordered by
// start.
type Node struct {
	Span SpanRecord
	// Orphan is set when the span's parent is not among the records (a
	// node that was unreachable, or a record pruned): it is shown under
	// the root, marked.
	Orphan   bool
	Children []*Node
}

// Tree builds the tree of one trace's spans: the roots (spans without a
// parent) with their children sorted by start. A span whose parent is not
// among spans is attached under the first root with Orphan set (or is a
// root itself, marked, when there is no root). A span ID seen twice is
// kept once; spans whose parent links form a loop are treated as orphans.
func Tree(spans []SpanRecord) []*Node {
	byID := map[string]*Node{}
	var order []*Node
	for _, s := range spans {
		if _, dup := byID[s.SpanID]; dup {
			continue
		}
		n := &Node{Span: s}
		byID[s.SpanID] = n
		order = append(order, n)
	}
	children := map[string][]*Node{}
	var roots, orphans []*Node
	for _, n := range order {
		switch p := n.Span.ParentID; {
		case p == "":
			roots = append(roots, n)
		case byID[p] == nil || p == n.Span.SpanID:
			n.Orphan = true
			orphans = append(orphans, n)
		default:
			children[p] = append(children[p], n)
		}
	}
	visited := map[*Node]bool{}
	var link func(n *Node)
	link = func(n *Node) {
		visited[n] = true
		for _, c := range children[n.Span.SpanID] {
			if !visited[c] {
				n.Children = append(n.Children, c)
				link(c)
			}
		}
		sortNodes(n.Children)
	}
	sortNodes(roots)
	for _, r := range roots {
		link(r)
	}
	for _, o := range orphans {
		link(o)
	}
	// What is still unvisited hangs in a loop of parent links.
	for _, n := range order {
		if !visited[n] {
			n.Orphan = true
			orphans = append(orphans, n)
			link(n)
		}
	}
	sortNodes(orphans)
	if len(roots) == 0 {
		return orphans
	}
	roots[0].Children = append(roots[0].Children, orphans...)
	sortNodes(roots[0].Children)
	return roots
}

func sortNodes(ns []*Node) {
	slices.SortStableFunc(ns, func(a, b *Node) int {
		return cmp.Or(a.Span.Start.Compare(b.Span.Start), strings.Compare(a.Span.Name, b.Span.Name), strings.Compare(a.Span.SpanID, b.Span.SpanID))
	})
}

// Render writes the trees as text, one span a line: the name, the node
// that recorded it (short), its duration and its offset from the start of
// the trace (the earliest span), its attributes but the deployment's ID,
// and its error; its events indented below it.
func Render(w io.Writer, roots []*Node) error {
	var start time.Time
	var walk func(ns []*Node)
	walk = func(ns []*Node) {
		for _, n := range ns {
			if start.IsZero() || n.Span.Start.Before(start) {
				start = n.Span.Start
			}
			walk(n.Children)
		}
	}
	walk(roots)
	r := &renderer{w: w, start: start}
	for _, n := range roots {
		r.node(n, "", "")
	}
	return r.err
}

type renderer struct {
	w     io.Writer
	start time.Time
	err   error
}

func (r *renderer) printf(format string, args ...any) {
	if r.err == nil {
		_, r.err = fmt.Fprintf(r.w, format, args...)
	}
}

// node writes n, its events and its children; first prefixes its own line,
// rest the lines below it.
func (r *renderer) node(n *Node, first, rest string) {
	s := n.Span
	var b strings.Builder
	b.WriteString(first)
	b.WriteString(oneLine(s.Name)) // records come from other nodes: one line each, no control characters
	if s.Node != "" {
		b.WriteString("  [" + shortNode(s.Node) + "]")
	}
	if s.End.IsZero() || s.End.Before(s.Start) {
		b.WriteString("  (not ended)")
	} else {
		b.WriteString("  " + FormatDuration(s.End.Sub(s.Start)))
	}
	b.WriteString("  @+" + FormatDuration(s.Start.Sub(r.start)))
	if a := attrText(s.Attrs); a != "" {
		b.WriteString("  " + a)
	}
	if n.Orphan {
		b.WriteString("  (orphan: parent " + shortID(s.ParentID) + " not gathered)")
	}
	if s.Error != "" {
		b.WriteString("  ERROR: " + oneLine(s.Error))
	}
	r.printf("%s\n", b.String())
	below := rest + "│  "
	if len(n.Children) == 0 {
		below = rest + "   "
	}
	for _, e := range s.Events {
		line := below + "· " + oneLine(e.Name) + "  @+" + FormatDuration(e.Time.Sub(r.start))
		if a := attrText(e.Attrs); a != "" {
			line += "  " + a
		}
		r.printf("%s\n", line)
	}
	for i, c := range n.Children {
		if i == len(n.Children)-1 {
			r.node(c, rest+"└─ ", rest+"   ")
		} else {
			r.node(c, rest+"├─ ", rest+"│  ")
		}
	}
}

// maxAttrValue bounds an attribute's value as Render shows it.
const maxAttrValue = 60

// attrText is attrs as k=v in key order, but the deployment's ID (the
// same on every span); long values are cut.
func attrText(attrs map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		if k == AttrDeployment {
			continue
		}
		v := shortValue(oneLine(attrs[k]))
		if len([]rune(v)) > maxAttrValue {
			v = string([]rune(v)[:maxAttrValue]) + "…"
		}
		if strings.ContainsAny(v, " =") || v == "" {
			v = fmt.Sprintf("%q", v)
		}
		parts = append(parts, oneLine(k)+"="+v)
	}
	return strings.Join(parts, " ")
}

// oneLine keeps a value on one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// shortNode shortens a peer ID: its first 4 and last 6 characters.
func shortNode(id string) string {
	if r := []rune(oneLine(id)); len(r) > 12 {
		return string(r[:4]) + "…" + string(r[len(r)-6:])
	}
	return oneLine(id)
}

// shortValue shortens an attribute's value that is a peer ID or a
// did:key, as nodes are shown.
func shortValue(v string) string {
	switch {
	case strings.HasPrefix(v, "did:key:") && len(v) > 24:
		return v[:12] + "…" + v[len(v)-6:]
	case strings.HasPrefix(v, "12D3KooW") && len(v) > 40 && !strings.ContainsAny(v, " ,"):
		return shortNode(v)
	}
	return v
}

// shortID is a span ID's first 8 characters.
func shortID(id string) string {
	if r := []rune(oneLine(id)); len(r) > 8 {
		return string(r[:8])
	}
	return oneLine(id)
}

// FormatDuration prints d with a precision that suits its size: 850µs,
// 12.3ms, 1.25s, 2m3s.
func FormatDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Millisecond:
		s = d.Round(time.Microsecond).String()
	case d < time.Second:
		s = d.Round(100 * time.Microsecond).String()
	case d < time.Minute:
		s = d.Round(10 * time.Millisecond).String()
	default:
		s = d.Round(time.Second).String()
	}
	if neg {
		return "-" + s
	}
	return s
}
