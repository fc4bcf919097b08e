// Command reyes-leader is a thin wrapper over reyes.RunLeader; run it with --help
// for every flag. Configuration comes from a YAML file (--config), then
// REYES_* environment variables, then flags.
//
// Exit status: 0 on success (or no change), 1 on any refusal or failure
// (one line on stderr says why; the kernel keeps the last good rules), 2 on
// a usage error.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/reyes-fw/reyes/reyes"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := reyes.RunLeader(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(reyes.Exit("reyes-leader", err, os.Stderr))
}
