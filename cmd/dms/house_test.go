package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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

// pure lists the packages that must stay free of I/O, and what they may not
// import (a prefix match on the import path).
var pure = []string{"internal/cap", "internal/match", "internal/ensemble"}

var forbidden = []string{
	"net", "net/http", "os", "os/exec", "syscall",
	"github.com/libp2p/", "go.etcd.io/bbolt", "github.com/moby/",
	module + "/internal/store", module + "/internal/p2p", module + "/internal/executor",
	module + "/internal/apiserver", module + "/internal/node",
}

func TestPurePackagesImportNoIO(t *testing.T) {
	dirs := pkgDirs(t)
	for _, p := range pure {
		files, ok := dirs[p]
		if !ok {
			continue
		}
		imports := map[string]bool{}
		for _, f := range files {
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range af.Imports {
				path, _ := strconv.Unquote(im.Path.Value)
				imports[path] = true
			}
		}
		var bad []string
		for im := range imports {
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
