package build

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// root is the torwrt checkout.
const root = "../.."

const module = "github.com/torwrt/torwrt"

// The release pipeline does not link the simulated ImageBuilder: it is
// wired in from cmd/imgbuild through internal/build/simulated.
func TestBuildDoesNotImportSimulator(t *testing.T) {
	deps := moduleDeps(t, module+"/internal/build")
	for _, banned := range []string{module + "/internal/ibsim", module + "/internal/build/simulated"} {
		if deps[banned] {
			t.Errorf("internal/build depends on %s; wire the simulated ImageBuilder in from cmd/imgbuild (internal/build/simulated)", banned)
		}
	}
	if !moduleDeps(t, module+"/internal/build/simulated")[module+"/internal/ibsim"] {
		t.Error("internal/build/simulated does not import internal/ibsim: the test above checks nothing")
	}
}

// moduleDeps is the set of this module's packages pkg imports, directly
// or not, test files excluded (go list -deps, restricted to the module).
func moduleDeps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	var visit func(string)
	visit = func(path string) {
		dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(path, module), "/")))
		p, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, imp := range p.Imports {
			if (imp == module || strings.HasPrefix(imp, module+"/")) && !seen[imp] {
				seen[imp] = true
				visit(imp)
			}
		}
	}
	visit(pkg)
	return seen
}

// Only a main package makes a root context; everything below it takes
// the caller's ctx (and context.WithoutCancel where work must outlive a
// cancellation).
func TestNoContextBackgroundBelowMain(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		checked++
		if f.Name.Name == "main" {
			return nil
		}
		name := ""
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "context" {
				name = "context"
				if imp.Name != nil {
					name = imp.Name.Name
				}
			}
		}
		if name == "" {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == name && (sel.Sel.Name == "Background" || sel.Sel.Name == "TODO") {
				t.Errorf("%s: context.%s() outside a main package: take the caller's ctx", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked only %d Go files under %s", checked, root)
	}
}
