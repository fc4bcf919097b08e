package reyes

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Exit statuses of the binaries.
const (
	ExitOK      = 0 // success, no change, paused, or --help
	ExitFailure = 1 // a refusal or failure; the kernel keeps the last good rules
	ExitUsage   = 2 // a usage error in the command line
)

// Exit maps the error of RunLeader or RunFollower to an exit status and
// writes the one-line reason, prefixed by the command's name, to stderr.
func Exit(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, ErrHelp), errors.Is(err, context.Canceled):
		return ExitOK
	case errors.Is(err, ErrUsage):
		fmt.Fprintln(stderr, name+":", err, "(see --help)")
		return ExitUsage
	}
	fmt.Fprintln(stderr, name+":", err)
	return ExitFailure
}
