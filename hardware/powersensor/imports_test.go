package powersensor

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyBusOpensHardware fences periph's host drivers into bus.go, the one file that opens a
// real bus: the driver and its tests run anywhere on periph's conn interfaces.
func TestOnlyBusOpensHardware(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(path, "periph.io/x/host/") {
				continue
			}
			if e.Name() != "bus.go" {
				t.Errorf("%s imports %s; only bus.go may", e.Name(), path)
			}
			found = true
		}
	}
	if !found {
		t.Error("bus.go no longer imports periph.io/x/host: is the fence still looking at the right file?")
	}
}
