package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pirack/pirack/topics"
)

// goDirs returns every directory of the module that holds Go files, relative to its root.
func goDirs(t *testing.T) (root string, dirs []string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			seen[filepath.Dir(path)] = true
		}
		return nil
	})
	for d := range seen {
		dirs = append(dirs, d)
	}
	return root, dirs
}

// TestEveryPackageHasADocComment keeps `go doc` useful: one package comment per package.
func TestEveryPackageHasADocComment(t *testing.T) {
	_, dirs := goDirs(t)
	for _, dir := range dirs {
		pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for name, pkg := range pkgs {
			documented := false
			for _, f := range pkg.Files {
				if f.Doc != nil {
					documented = true
				}
			}
			if !documented {
				t.Errorf("package %s in %s has no package doc comment", name, dir)
			}
		}
	}
}

// TestTopicsSpelledOnlyInTopics enforces the contract's single source: no Go string literal in
// production code outside topics/ starts with "rack/". Tests are exempt: they spell malformed
// and wildcard topics on purpose.
func TestTopicsSpelledOnlyInTopics(t *testing.T) {
	root, dirs := goDirs(t)
	for _, dir := range dirs {
		if rel, _ := filepath.Rel(root, dir); rel == "topics" {
			continue
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(s, topics.Root+"/") {
						t.Errorf("%s: topic string %q; build it with the topics package", fset.Position(lit.Pos()), s)
					}
				}
				return true
			})
		}
	}
}
