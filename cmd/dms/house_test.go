package main

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Meta-tests of the house rules (CONVENTIONS.md): every package says what it
// is for, and the pure packages import no I/O.

const module = "github.com/dmsnet/dms"

// pkgDirs returns every directory of the module holding non-test Go files,
// relative to the module root (nested modules are not part of it).
func pkgDirs(t *testing.T) map[string][]string {
	t.Helper()
	root := filepath.Join("..", "..")
	dirs := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "build" || name == "bench") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); path != root && err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			dirs[rel] = append(dirs[rel], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

func TestEveryPackageHasDocComment(t *testing.T) {
	for dir, files := range pkgDirs(t) {
		found := false
		for _, f := range files {
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil && strings.TrimSpace(af.Doc.Text()) != "" {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("package %s has no doc comment (add one to doc.go)", dir)
		}
	}
}

// fileImports returns the import paths of one Go file.
func fileImports(t *testing.T, file string) []string {
	t.Helper()
	af, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(af.Imports))
	for _, im := range af.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		out = append(out, path)
	}
	return out
}

// pure lists the packages that must stay free of I/O, and what they may not
// import directly (a prefix match on the import path); valuePackages and
// TestPurePackagesReachNoIO check the same packages on their transitive
// imports.
var pure = []string{"internal/cap", "internal/match", "internal/mapkeys", "internal/lru", "internal/ensemble", "internal/ensemble/translate", "internal/deployproto", "internal/orchestrator/placement", "internal/subnet", "internal/contract"}

var forbidden = []string{
	"net", "net/http", "os", "os/exec", "syscall",
	"github.com/libp2p/", "go.etcd.io/bbolt", "github.com/moby/",
	module + "/internal/store", module + "/internal/p2p", module + "/internal/executor/",
	module + "/internal/apiserver", module + "/internal/node",
}

// parsers are standard packages under a forbidden prefix that do no I/O.
var parsers = map[string]bool{"net/url": true, "net/netip": true}

func TestPurePackagesImportNoIO(t *testing.T) {
	dirs := pkgDirs(t)
	for _, p := range pure {
		files, ok := dirs[p]
		if !ok {
			continue
		}
		imports := map[string]bool{}
		for _, f := range files {
			for _, path := range fileImports(t, f) {
				imports[path] = true
			}
		}
		var bad []string
		for im := range imports {
			if parsers[im] {
				continue
			}
			for _, f := range forbidden {
				if im == f || strings.HasSuffix(f, "/") && strings.HasPrefix(im, f) || strings.HasPrefix(im, f+"/") {
					bad = append(bad, im)
				}
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("pure package %s imports %s", p, strings.Join(bad, ", "))
		}
	}
}

// goListDeps is the import graph of the module's packages and everything
// they import (standard library and other modules too), from `go list
// -deps`: import path → its direct imports. Test files do not count.
var goListDeps = sync.OnceValues(func() (map[string][]string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("go list -deps: %v: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("go list -deps: %w", err)
	}
	g := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		g[f[0]] = f[1:]
	}
	return g, nil
})

// deps returns what pkg (a module-relative path such as "internal/cap")
// imports, directly or not, without looking inside the packages prune
// accepts (they count, but their own imports do not).
func deps(t *testing.T, pkg string, prune func(string) bool) map[string]bool {
	t.Helper()
	g, err := goListDeps()
	if err != nil {
		t.Fatal(err)
	}
	root := module + "/" + pkg
	if _, ok := g[root]; !ok {
		t.Fatalf("package %s is not in the module", pkg)
	}
	seen := map[string]bool{}
	var walk func(p string)
	walk = func(p string) {
		for _, im := range g[p] {
			if seen[im] {
				continue
			}
			seen[im] = true
			if prune == nil || !prune(im) {
				walk(im)
			}
		}
	}
	walk(root)
	return seen
}

// reaches reports the path of imports from pkg to target, for an error
// message ("a → b → c"), or "" when pkg does not reach it.
func reaches(t *testing.T, pkg, target string) string {
	g, err := goListDeps()
	if err != nil {
		t.Fatal(err)
	}
	from := module + "/" + pkg
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == target {
			var path []string
			for q := p; q != ""; q = prev[q] {
				path = append([]string{strings.TrimPrefix(q, module+"/")}, path...)
			}
			return strings.Join(path, " → ")
		}
		for _, im := range g[p] {
			if _, ok := prev[im]; !ok {
				prev[im] = p
				queue = append(queue, im)
			}
		}
	}
	return ""
}

// TestLayers: the seams between the parts of the house, checked on
// transitive imports. The deployment protocol has its own package, which
// both sides import; neither side imports the other's adapters.
func TestLayers(t *testing.T) {
	rules := []struct {
		pkg, mustNotReach, why string
	}{
		{"internal/allocation", "internal/orchestrator", "the provider side speaks the protocol (deployproto), not the orchestrator's code"},
		{"internal/orchestrator", "internal/resource", "the orchestrator needs no hardware detection: the provider's ledger lives with allocation"},
		{"internal/orchestrator", "internal/allocation", "the orchestrator reaches providers only through messages"},
		{"internal/orchestrator", "internal/p2p", "the orchestrator talks through actors, not libp2p"},
		{"internal/orchestrator", "internal/store", "the orchestrator persists through its Store interface"},
		{"internal/allocation", "internal/p2p", "allocations talk through actors, not libp2p"},
		{"internal/allocation", "internal/store", "allocations persist through their Store interface"},
		{"internal/deployproto", "internal/orchestrator", "the protocol belongs to neither side"},
		{"internal/deployproto", "internal/allocation", "the protocol belongs to neither side"},
		{"api", "internal/", "the public client and wire types stand alone"},
	}
	for _, r := range rules {
		target := r.mustNotReach
		if strings.HasPrefix(target, "internal") {
			target = module + "/" + target
		}
		for dep := range deps(t, r.pkg, nil) {
			if dep == target || strings.HasSuffix(target, "/") && strings.HasPrefix(dep, target) {
				t.Errorf("%s imports %s (%s); it must not: %s", r.pkg, strings.TrimPrefix(dep, module+"/"), reaches(t, r.pkg, dep), r.why)
				break
			}
		}
	}
}

// valuePackages are the module packages a pure package may import: types
// and pure functions, no I/O (their own transitive imports are checked
// like any other dependency's).
var valuePackages = map[string][]string{
	"internal/cap":                    {"internal/identity", "internal/lru", "internal/mapkeys"},
	"internal/match":                  {"internal/mapkeys"},
	"internal/lru":                    nil,
	"internal/mapkeys":                nil,
	"internal/ensemble":               {"internal/mapkeys", "internal/match"},
	"internal/ensemble/translate":     {"internal/ensemble", "internal/mapkeys", "internal/match"},
	"internal/deployproto":            {"internal/actor", "internal/contract", "internal/ensemble", "internal/executor", "internal/identity", "internal/lru", "internal/mapkeys", "internal/match", "internal/subnet"},
	"internal/orchestrator/placement": {"internal/actor", "internal/contract", "internal/deployproto", "internal/ensemble", "internal/executor", "internal/identity", "internal/lru", "internal/mapkeys", "internal/match", "internal/subnet"},
	"internal/contract":               {"internal/identity", "internal/lru", "internal/mapkeys", "internal/match"},
	"internal/subnet":                 {"internal/ensemble", "internal/identity", "internal/lru", "internal/mapkeys", "internal/match"},
}

// throughValues are module packages a pure package may reach only through
// a value package, with the reason.
var throughValues = map[string]string{
	"internal/atomicfile": "identity's keystore writes key files with it (the keystore is the one part of identity that touches the disk; pure packages use DIDs and signatures only)",
}

// ioPackages are what a pure package must not reach, directly or not.
// (Package net itself is reached by crypto/x509 for IP address types; a
// pure package may not import it directly: TestPurePackagesImportNoIO.)
var ioPackages = []string{
	"net/http", "net/rpc", "net/smtp", "os/exec", "plugin",
	"github.com/libp2p/", "github.com/quic-go/", "go.etcd.io/bbolt", "github.com/moby/", "github.com/tetratelabs/wazero",
}

// libraryIO lists, per pure package, the libraries whose own imports are
// not followed, with the reason they are allowed: they import net/http or
// os/exec for features the pure package never calls.
// (translate's HCL parser, github.com/hashicorp/hcl/v2 with
// github.com/zclconf/go-cty, needs no entry: it reaches no I/O package and
// is checked like any other dependency.)
var libraryIO = map[string]map[string]string{
	"internal/cap": {
		"github.com/MetaMask/go-did-it": "go-ucan's DID library imports net/http to resolve did:web; dms only uses did:key, resolved offline",
	},
	"internal/ensemble/translate": {
		"github.com/compose-spec/compose-go/": "the Compose parser imports os/exec and net/http for features of its loader (env files, remote includes) that Translate does not use: it reads the one file it is given",
		"github.com/mattn/go-shellwords":      "compose-go's shell-word splitter can run back-quoted commands; compose-go does not ask it to",
		"k8s.io/":                             "the Kubernetes types import its HTTP utilities; Translate only decodes YAML into them",
		"sigs.k8s.io/":                        "as k8s.io",
		"golang.org/x/net/":                   "imported by the Kubernetes utilities only",
	},
}

// TestPurePackagesReachNoIO checks the pure packages on their transitive
// imports: no adapter of ours, no network or process code, except inside
// the libraries listed (with a reason) in libraryIO.
func TestPurePackagesReachNoIO(t *testing.T) {
	for pkg, allowed := range valuePackages {
		prune := func(p string) bool {
			for lib := range libraryIO[pkg] {
				if p == strings.TrimSuffix(lib, "/") || strings.HasPrefix(p, strings.TrimSuffix(lib, "/")+"/") {
					return true
				}
			}
			return false
		}
		direct := deps(t, pkg, func(string) bool { return true })
		var bad []string
		for dep := range deps(t, pkg, prune) {
			if rel, ok := strings.CutPrefix(dep, module+"/"); ok {
				if _, ok := throughValues[rel]; ok && !direct[dep] {
					continue
				}
				if !slices.Contains(allowed, rel) {
					bad = append(bad, fmt.Sprintf("%s (%s)", rel, reaches(t, pkg, dep)))
				}
				continue
			}
			for _, io := range ioPackages {
				if dep == io || strings.HasSuffix(io, "/") && strings.HasPrefix(dep, io) {
					bad = append(bad, fmt.Sprintf("%s (%s)", dep, reaches(t, pkg, dep)))
				}
			}
		}
		sort.Strings(bad)
		for _, b := range bad {
			t.Errorf("pure package %s reaches %s", pkg, b)
		}
	}
}

// adapters are the packages that touch the outside world for the node:
// only the composition root (internal/node) wires them in.
var adapters = []string{
	"internal/p2p", "internal/store", "internal/cap/capstore", "internal/contract/ledger", "internal/contract/notary", "internal/apiserver",
	"internal/executor/docker", "internal/executor/vm", "internal/executor/wasm",
}

// adapterImporters are the packages allowed to import adapters besides
// node: an adapter may build on another, and tests' helpers may start real
// ones.
var adapterImporters = map[string]bool{
	"internal/node":            true,
	"internal/cap/capstore":    true, // the capability store is kept in the store
	"internal/contract/ledger": true, // the local ledger is kept in the store
	"internal/contract/notary": true, // contracts and notes are kept in the store
	"internal/telemetry":       true, // the local record of spans is kept in the store
	"internal/e2etest":         true, // builds test images and kernels for the executors
}

// TestOnlyNodeImportsAdapters: the concrete adapters come together in one
// place, the composition root; everything else works on interfaces.
func TestOnlyNodeImportsAdapters(t *testing.T) {
	for dir, files := range pkgDirs(t) {
		if adapterImporters[dir] || slices.Contains(adapters, dir) || strings.HasPrefix(dir, "internal/executor/") {
			continue
		}
		for _, f := range files {
			for _, path := range fileImports(t, f) {
				if rel, ok := strings.CutPrefix(path, module+"/"); ok && slices.Contains(adapters, rel) {
					t.Errorf("%s imports the adapter %s: only internal/node wires adapters in", f, rel)
				}
			}
		}
	}
}
