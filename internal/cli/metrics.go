package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/reyes-fw/reyes/reyes"
)

// recordFollowerConfigFailure records a follower run that stopped before
// it could start (see RecordConfigFailure): its configuration, as far as it
// can be read, names the metrics file and the state directory; when it
// cannot be read at all, the command line or the environment may still name
// the metrics file. Nothing is recorded for a nil error, help, or a dry run.
func recordFollowerConfigFailure(args, environ []string, cfgErr error, stderr io.Writer) {
	if cfgErr == nil || errors.Is(cfgErr, ErrHelp) {
		return
	}
	var metricsFile, stateDir string
	if k, _, err := loadConfig("reyes-follower", followerOptions, args, environ, io.Discard, ""); err == nil {
		if k.Bool("dry_run") {
			return
		}
		metricsFile, stateDir = k.String("metrics_file"), k.String("state_dir")
	} else {
		if slices.Contains(args, "--dry-run") || slices.Contains(args, "-dry-run") {
			return
		}
		metricsFile = MetricsFileHint(args, environ)
	}
	if metricsFile == "" && stateDir == "" {
		return
	}
	if err := reyes.RecordConfigFailure(metricsFile, stateDir, cfgErr); err != nil {
		fmt.Fprintln(stderr, "reyes-follower: recording the configuration failure:", err)
	}
}

// MetricsFileHint returns the metrics file that args (--metrics-file) or
// environ (REYES_METRICS_FILE) name, for recording a configuration failure
// when the configuration as a whole could not be read. Empty if neither
// names one.
func MetricsFileHint(args, environ []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, p := range []string{"--metrics-file", "-metrics-file"} {
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v
			}
			if a == p && i+1 < len(args) {
				return args[i+1]
			}
		}
	}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "REYES_METRICS_FILE="); ok {
			return v
		}
	}
	return ""
}
