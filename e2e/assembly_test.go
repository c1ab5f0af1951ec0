package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// partConstructors build a part of the control center. Only package controlcenter calls them
// to make a control center; a rig, a benchmark or a command that called them itself would run
// without the parts it left out, and claim to test what `pirack serve` runs.
var partConstructors = map[string]bool{
	"broker.New": true, "dashboard.New": true, "history.Open": true, "layout.Open": true,
	"alerts.New": true, "powerbridge.New": true, "mqttbus.New": true,
}

// assemblyExceptions are calls that do not assemble a control center, each with its reason.
var assemblyExceptions = map[string]string{
	"demo/backfill.go: history.Open":            "a second store on the control center's history file, for a backfill older than the live store's retention",
	"demo/backfill_test.go: history.Open":       "the backfill's unit test reads back what it wrote, with no control center",
	"loadtest/hostile_sigkill.go: history.Open": "reads the event log a killed pirack serve left, to count lost and duplicated presses",
	"loadtest/compare_servers.go: history.Open": "writes 7 days of history into a data directory before pirack serve starts on it, for the chart query",
}

// TestRigsUseTheAssembly fails if a command, the demo, the load test or an e2e rig builds a part
// of the control center by hand instead of through controlcenter.New.
func TestRigsUseTheAssembly(t *testing.T) {
	root, _ := goDirs(t)
	checked := 0
	for _, dir := range []string{"e2e", "cmd", "demo", "loadtest"} {
		filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			rel, _ := filepath.Rel(root, path)
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				pkg, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				name := pkg.Name + "." + sel.Sel.Name
				if partConstructors[name] && assemblyExceptions[rel+": "+name] == "" {
					t.Errorf("%s calls %s: build the control center with controlcenter.New, which wires every part as pirack serve does", rel, name)
				}
				return true
			})
			return nil
		})
	}
	if checked < 10 {
		t.Fatalf("checked only %d files: the walk is broken", checked)
	}
}
