package main

import (
	"flag"
	"fmt"
	"go/doc"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite docs/PACKAGES.md")

// regenerate is the command that brings docs/PACKAGES.md up to date.
const regenerate = "go test ./cmd/dms -run TestPackagesDoc -rewrite"

// TestPackagesDoc keeps docs/PACKAGES.md, the package map, in sync with the
// tree: it is generated from the packages' doc comments and imports.
func TestPackagesDoc(t *testing.T) {
	want := packagesDoc(modulePackages(t))
	path := filepath.Join("..", "..", "docs", "PACKAGES.md")
	if *rewrite {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("docs/PACKAGES.md: %v; create it with: %s", err, regenerate)
	}
	if string(got) != want {
		t.Fatalf("docs/PACKAGES.md is out of date (%s); regenerate it with: %s", firstDiff(string(got), want), regenerate)
	}
}

// pkgInfo is what the page says of one package.
type pkgInfo struct {
	Path     string   // relative to the module: "internal/cap"
	Synopsis string   // the doc comment's first sentence
	Imports  []string // other packages of the module it imports, relative, sorted
}

// modulePackages reads every package of the module (the directories
// pkgDirs finds) from its non-test files, whatever their build constraints.
func modulePackages(t *testing.T) []pkgInfo {
	t.Helper()
	var out []pkgInfo
	for dir, files := range pkgDirs(t) {
		slices.Sort(files)
		p := pkgInfo{Path: filepath.ToSlash(dir)}
		imports := map[string]bool{}
		for _, f := range files {
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if p.Synopsis == "" && af.Doc != nil {
				p.Synopsis = new(doc.Package).Synopsis(af.Doc.Text())
			}
			for _, im := range af.Imports {
				path, _ := strconv.Unquote(im.Path.Value)
				if rel, ok := moduleRel(path); ok {
					imports[rel] = true
				}
			}
		}
		p.Imports = slices.Sorted(maps.Keys(imports))
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b pkgInfo) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// moduleRel returns an import path relative to the module, and whether it
// is in the module at all.
func moduleRel(path string) (string, bool) {
	if path == module {
		return ".", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

// diagramGroup returns the node that stands for pkg in the diagram: its
// top-level package under internal/, api or cmd/dms; "" leaves it out. A
// pure package and an adapter keep a node of their own, so that the seams
// the house tests keep (a pure core inside orchestrator, the capability
// store beside the pure capability rules, the executors beside their
// contract) show.
func diagramGroup(pkg string) string {
	if slices.Contains(pure, pkg) || slices.Contains(adapters, pkg) {
		return pkg
	}
	parts := strings.Split(pkg, "/")
	switch {
	case parts[0] == "internal" && len(parts) >= 2:
		return "internal/" + parts[1]
	case parts[0] == "api" || pkg == "cmd/dms":
		return pkg
	}
	return ""
}

// importGraph folds pkgs into their diagram groups and returns the groups
// (sorted), how many subpackages each one stands for, and the imports
// between groups after transitive reduction.
func importGraph(pkgs []pkgInfo) (nodes []string, folded map[string]int, edges map[string][]string) {
	folded = map[string]int{}
	all := map[string]map[string]bool{}
	for _, p := range pkgs {
		g := diagramGroup(p.Path)
		if g == "" {
			continue
		}
		if all[g] == nil {
			all[g] = map[string]bool{}
			nodes = append(nodes, g)
		}
		if p.Path != g {
			folded[g]++
		}
		for _, im := range p.Imports {
			if h := diagramGroup(im); h != "" && h != g {
				all[g][h] = true
			}
		}
	}
	slices.Sort(nodes)
	// Drop, in a fixed order, each edge whose target stays reachable
	// without it. On the acyclic graph of Go imports this yields the
	// transitive reduction; should folding ever make a cycle, it still
	// keeps every package reachable from the ones it was.
	for _, from := range nodes {
		for _, to := range slices.Sorted(maps.Keys(all[from])) {
			delete(all[from], to)
			if !reachable(all, from, to) {
				all[from][to] = true
			}
		}
	}
	edges = map[string][]string{}
	for _, from := range nodes {
		edges[from] = slices.Sorted(maps.Keys(all[from]))
	}
	return nodes, folded, edges
}

// reachable reports whether to can be reached from from along edges.
func reachable(edges map[string]map[string]bool, from, to string) bool {
	seen := map[string]bool{from: true}
	queue := []string{from}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for next := range edges[n] {
			if next == to {
				return true
			}
			if !seen[next] {
				seen[next] = true
				queue = append(queue, next)
			}
		}
	}
	return false
}

var nonID = regexp.MustCompile(`[^A-Za-z0-9]`)

// packagesDoc renders docs/PACKAGES.md.
func packagesDoc(pkgs []pkgInfo) string {
	var b strings.Builder
	b.WriteString("# Packages\n\n")
	fmt.Fprintf(&b, "Generated from the Go tree by `%s` (cmd/dms/packages_test.go); do not edit:\n", regenerate)
	b.WriteString("that test fails when the page is stale, and on a merge conflict here take either side and rerun it.\n")
	b.WriteString("The page maps the module's packages — every directory with non-test Go files (so no test-only\n")
	b.WriteString("package; the separate module in bench/ is left out) — with the first sentence of each doc comment and\n")
	b.WriteString("the module packages its non-test files import, whatever their build constraints. The diagram shows\n")
	b.WriteString("how `cmd/dms`, `api` and the packages under `internal/` depend on each other; to stay readable it\n")
	b.WriteString("folds subpackages into their top-level package (`internal/x/… (+N)` is `x` and its N subpackages) and\n")
	b.WriteString("draws an import only when no longer path implies it (transitive reduction): an arrow A → B means\n")
	b.WriteString("a package of A imports one of B, and nothing else A imports leads to B. The table lists\n")
	b.WriteString("every direct import. Shaded: the pure core (no I/O; cmd/dms/house_test.go enforces it). `e2e/` and\n")
	b.WriteString("`examples/` (test harnesses and sample jobs) are in the table only.\n\n")

	nodes, folded, edges := importGraph(pkgs)
	id := func(pkg string) string { return nonID.ReplaceAllString(pkg, "_") }
	b.WriteString("```mermaid\ngraph TD\n")
	for _, n := range nodes {
		label := n
		if folded[n] > 0 {
			label = fmt.Sprintf("%s/… (+%d)", n, folded[n])
		}
		fmt.Fprintf(&b, "  %s[\"%s\"]\n", id(n), label)
	}
	for _, from := range nodes {
		for _, to := range edges[from] {
			fmt.Fprintf(&b, "  %s --> %s\n", id(from), id(to))
		}
	}
	var pures []string
	for _, p := range pure {
		if slices.Contains(nodes, p) {
			pures = append(pures, id(p))
		}
	}
	if len(pures) > 0 {
		b.WriteString("  classDef pure fill:#e6f4ea,stroke:#34a853\n")
		fmt.Fprintf(&b, "  class %s pure\n", strings.Join(pures, ","))
	}
	b.WriteString("```\n\n")

	b.WriteString("| package | what it is for | imports (module packages) |\n|---|---|---|\n")
	for _, p := range pkgs {
		imports := make([]string, len(p.Imports))
		for i, im := range p.Imports {
			imports[i] = "`" + im + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", p.Path, markdownText(p.Synopsis), strings.Join(imports, ", "))
	}
	return b.String()
}

// markdownText escapes what Markdown would take for markup in a table cell
// (<home> for an HTML tag, * for emphasis, | for a column), outside `code`.
func markdownText(s string) string {
	parts := strings.Split(s, "`")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = cellEscaper.Replace(parts[i])
	}
	return strings.Join(parts, "`")
}

var cellEscaper = strings.NewReplacer("<", "&lt;", ">", "&gt;", "*", `\*`, "|", `\|`)

// firstDiff says where got and want first differ, by line.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d is %q, want %q", i+1, gl, wl)
		}
	}
	return "they differ"
}

func TestImportGraph(t *testing.T) {
	tests := []struct {
		name string
		pkgs []pkgInfo
		want map[string][]string // edges after folding and reduction
	}{
		{
			name: "an implied import is not drawn",
			pkgs: []pkgInfo{
				{Path: "internal/a", Imports: []string{"internal/b", "internal/c"}},
				{Path: "internal/b", Imports: []string{"internal/c"}},
				{Path: "internal/c"},
			},
			want: map[string][]string{"internal/a": {"internal/b"}, "internal/b": {"internal/c"}, "internal/c": {}},
		},
		{
			name: "subpackages fold into their top-level package",
			pkgs: []pkgInfo{
				{Path: "cmd/dms", Imports: []string{"internal/a/x"}},
				{Path: "internal/a", Imports: []string{"internal/b"}},
				{Path: "internal/a/x", Imports: []string{"internal/a", "internal/b/y"}},
				{Path: "internal/b/y"},
				{Path: "e2e", Imports: []string{"internal/a"}},
			},
			want: map[string][]string{"cmd/dms": {"internal/a"}, "internal/a": {"internal/b"}, "internal/b": {}},
		},
		{
			name: "a cycle made by folding keeps every package reachable",
			pkgs: []pkgInfo{
				{Path: "internal/a", Imports: []string{"internal/b/x", "internal/c"}},
				{Path: "internal/b", Imports: []string{"internal/a", "internal/c"}},
				{Path: "internal/b/x"},
				{Path: "internal/c"},
			},
			want: map[string][]string{"internal/a": {"internal/b"}, "internal/b": {"internal/a", "internal/c"}, "internal/c": {}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, got := importGraph(tt.pkgs)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("importGraph edges = %v, want %v", got, tt.want)
			}
		})
	}
}
