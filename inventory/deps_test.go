package inventory_test

import (
	"os/exec"
	"strings"
	"testing"
)

// corePackages are the packages a user imports to build, check or render a
// ruleset without talking to AWS (render.Decide in a CI policy test, say).
var corePackages = []string{
	"github.com/reyes-fw/reyes/inventory",
	"github.com/reyes-fw/reyes/ruleset",
	"github.com/reyes-fw/reyes/render",
	"github.com/reyes-fw/reyes/apply",
	"github.com/reyes-fw/reyes/sign",
}

// TestCoreImportsNoAWS: the core builds without the AWS SDK. Its dependency
// list, as `go list -deps` prints it, holds no github.com/aws/ package.
func TestCoreImportsNoAWS(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("finding the go command to list dependencies: %v", err)
	}
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, corePackages...)
	out, err := exec.Command(goTool, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, msg)
	}
	deps := strings.Fields(string(out))
	if len(deps) < len(corePackages) {
		t.Fatalf("go list -deps listed only %d packages:\n%s", len(deps), out)
	}
	for _, p := range corePackages {
		if !strings.Contains("\n"+string(out), "\n"+p+"\n") {
			t.Errorf("go list -deps does not list %s itself", p)
		}
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/aws/") {
			t.Errorf("the core depends on %s", d)
		}
	}
}
