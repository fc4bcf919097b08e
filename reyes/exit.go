package reyes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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

// Main runs a command (RunLeader or RunFollower) as a binary does: with a
// context that SIGINT and SIGTERM cancel, the process's arguments and
// environment, and the exit status Exit maps its error to.
func Main(name string, run func(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Exit(name, run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr), os.Stderr)
}
