package hardware_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestBackendImports fences the GPIO libraries: each is imported by its own backend package and
// by nothing else in the module, so the interfaces stay free of drivers.
func TestBackendImports(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports", "github.com/pirack/pirack/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	owners := map[string]string{
		"github.com/stianeikeland/go-rpio":  "github.com/pirack/pirack/hardware/rpio",
		"github.com/warthog618/go-gpiocdev": "github.com/pirack/pirack/hardware/cdev",
	}
	found := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		for _, imp := range append(append(p.Imports, p.TestImports...), p.XTestImports...) {
			for lib, owner := range owners {
				if !strings.HasPrefix(imp, lib) {
					continue
				}
				if p.ImportPath != owner {
					t.Errorf("%s imports %s; only %s may", p.ImportPath, imp, owner)
				} else {
					found[lib] = true
				}
			}
		}
	}
	for lib, owner := range owners {
		if !found[lib] {
			t.Errorf("%s no longer imports %s: is the fence still looking at the right packages?", owner, lib)
		}
	}
}
