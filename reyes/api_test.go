package reyes_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLibraryExportsNoCLI: package reyes is the library (pipelines,
// stores, state, identity, status); the binaries' command line lives in
// internal/cli. It exported RunLeader, Main, the koanf configs and more.
func TestLibraryExportsNoCLI(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	cli := map[string]bool{"RunLeader": true, "RunFollower": true, "Main": true, "Exit": true, "ExitCode": true,
		"ExitOK": true, "ExitFailure": true, "ExitUsage": true, "LeaderConfig": true, "FollowerConfig": true,
		"MinInterval": true, "DefaultRouteInterface": true, "DefinePlanFlags": true, "PlanFlags": true,
		"MetricsFileHint": true, "ErrHelp": true}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			var names []string
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					names = append(names, d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						names = append(names, s.Name.Name)
					case *ast.ValueSpec:
						for _, n := range s.Names {
							names = append(names, n.Name)
						}
					}
				}
			}
			for _, n := range names {
				if cli[n] {
					t.Errorf("%s: package reyes exports %s: the command line belongs in internal/cli", name, n)
				}
			}
		}
	}
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, imp := range strings.Split(string(out), "\n") {
		if imp == "flag" || strings.Contains(imp, "koanf") {
			t.Errorf("package reyes imports %s: flags and configuration files belong in internal/cli", imp)
		}
	}
}
