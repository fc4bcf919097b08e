package cli

import (
	"fmt"
	"io"

	"github.com/reyes-fw/reyes/internal/version"
)

// printVersion writes "NAME VERSION (revision …)" to w and reports true
// when args ask for the version (--version or -version before any "--");
// the binaries then do nothing else.
func printVersion(name string, args []string, w io.Writer) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--version", "-version":
			fmt.Fprintln(w, version.Line(name))
			return true
		}
	}
	return false
}
