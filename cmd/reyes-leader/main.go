// Command reyes-leader is a thin main over package internal/cli (RunLeader); run it with --help
// for every flag. Configuration comes from a YAML file (--config), then
// REYES_* environment variables, then flags.
//
// Exit status: 0 on success (or no change), 1 on any refusal or failure
// (one line on stderr says why, a JSON record with --log-format json; the
// kernel keeps the last good rules), a single run cut short by a signal
// included, 2 on a usage or configuration error (nothing was tried). With
// --interval, SIGINT or SIGTERM stops it with 0. reyesctl uses the same
// scheme.
package main

import (
	"os"

	"github.com/reyes-fw/reyes/internal/cli"
)

func main() { os.Exit(cli.Main("reyes-leader", cli.RunLeader)) }
