// Command reyes-leader is a thin wrapper over reyes.RunLeader; run it
// with --help for every flag. Configuration comes from a YAML file
// (--config), then REYES_* environment variables, then flags.
//
// Exit status: 0 on success (or no change), 1 on any refusal or failure
// (one line on stderr says why; the kernel keeps the last good rules), 2 on
// a usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/reyes-fw/reyes/reyes"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := reyes.RunLeader(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, reyes.ErrHelp), errors.Is(err, context.Canceled):
		return 0
	case errors.Is(err, reyes.ErrUsage):
		fmt.Fprintln(os.Stderr, "reyes-leader:", err, "(see --help)")
		return 2
	}
	fmt.Fprintln(os.Stderr, "reyes-leader:", err)
	return 1
}
