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

// Exit statuses of all three binaries (reyes-leader, reyes-follower and
// reyesctl): one scheme.
const (
	ExitOK      = 0 // success, no change, paused, --help, or an --interval process stopped by SIGINT/SIGTERM
	ExitFailure = 1 // a refusal or failure (a single run cut short by a signal or --timeout too); the kernel keeps the last good rules
	ExitUsage   = 2 // a usage or configuration error: nothing was tried
)

// ExitCode maps the error of a command (RunLeader, RunFollower, reyesctl's
// ctl.Run) to an exit status: ExitOK for nil, help and cancellation
// (SIGINT, SIGTERM ending an --interval loop), ExitUsage for usage and
// configuration errors (reyes.ErrUsage, reyes.ErrConfig), ExitFailure for
// the rest: a single run that a signal cut short is reyes.ErrInterrupted,
// one that --timeout ended reyes.ErrTimeout, and both failed.
func ExitCode(err error) int {
	switch {
	case errors.Is(err, reyes.ErrTimeout), errors.Is(err, reyes.ErrInterrupted):
		// A run cut short failed, whatever its calls say ("canceled").
		return ExitFailure
	case err == nil, errors.Is(err, ErrHelp), errors.Is(err, context.Canceled):
		return ExitOK
	case errors.Is(err, reyes.ErrUsage), errors.Is(err, reyes.ErrConfig):
		return ExitUsage
	}
	return ExitFailure
}

// HelpHinter is a usage error that already says where help is (reyesctl's
// names the subcommand): Exit adds no "(see --help)" to it.
type HelpHinter interface{ HelpHint() string }

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
	case errors.Is(err, reyes.ErrUsage) && !errors.As(err, new(HelpHinter)):
		fmt.Fprintln(stderr, name+":", err, "(see --help)")
	default:
		fmt.Fprintln(stderr, name+":", err)
	}
	return code
}

// Main runs a command (RunLeader, RunFollower, or reyesctl's) as a binary does: with a
// context that SIGINT and SIGTERM cancel, the process's arguments and
// environment, and the exit status Exit maps its error to.
func Main(name string, run func(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Exit(name, run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr), os.Stderr)
}
