package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/reyes-fw/reyes/reyes"
)

// Exit statuses of the binaries (reyesctl's too).
const (
	ExitOK      = 0 // success, no change, paused, or --help
	ExitFailure = 1 // a refusal or failure; the kernel keeps the last good rules
	ExitUsage   = 2 // a usage or configuration error: nothing was tried
)

// ExitCode maps the error of RunLeader or RunFollower to an exit status:
// ExitUsage for usage and configuration errors (ErrUsage, ErrConfig),
// ExitOK for nil, help and cancellation (SIGINT, SIGTERM), ExitFailure for
// the rest.
func ExitCode(err error) int {
	switch {
	case errors.Is(err, reyes.ErrTimeout):
		// A run cut short by --timeout failed, whatever its calls say
		// ("canceled").
		return ExitFailure
	case err == nil, errors.Is(err, ErrHelp), errors.Is(err, context.Canceled):
		return ExitOK
	case errors.Is(err, reyes.ErrUsage), errors.Is(err, reyes.ErrConfig):
		return ExitUsage
	}
	return ExitFailure
}

// reportedError is an error the command has already written to its log
// (with --log-format json the final error is a JSON record like every other
// line): Exit does not print it again.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// Exit maps the error of RunLeader or RunFollower to an exit status and
// writes the one-line reason, prefixed by the command's name, to stderr
// (unless the command logged it already, as it does in JSON).
func Exit(name string, err error, stderr io.Writer) int {
	code := ExitCode(err)
	var rep reportedError
	switch {
	case code == ExitOK, errors.As(err, &rep):
	case errors.Is(err, reyes.ErrUsage):
		fmt.Fprintln(stderr, name+":", err, "(see --help)")
	default:
		fmt.Fprintln(stderr, name+":", err)
	}
	return code
}

// Main runs a command (RunLeader or RunFollower) as a binary does: with a
// context that SIGINT and SIGTERM cancel, the process's arguments and
// environment, and the exit status Exit maps its error to.
func Main(name string, run func(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Exit(name, run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr), os.Stderr)
}
