package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/internal/version"
	"github.com/reyes-fw/reyes/reyes"
)

// Exit codes that ExitCode returns: package internal/cli's, the same as
// reyes-leader's and reyes-follower's.
const (
	ExitOK      = cli.ExitOK      // success (also: help was asked for)
	ExitFailure = cli.ExitFailure // refused, failed or interrupted: bad signature, expired, unknown host, I/O error...
	ExitUsage   = cli.ExitUsage   // the command line is wrong
)

// UsageError is returned by Run when the command line is wrong: an unknown
// command or flag, a missing or malformed argument, a bad combination.
type UsageError struct {
	// Cmd is the subcommand ("" for reyesctl itself).
	Cmd string
	Err error
}

// Error says what is wrong and where to find help, on one line.
func (e *UsageError) Error() string {
	return fmt.Sprintf("%v (see %s)", e.Err, e.HelpHint())
}

// Unwrap returns the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }

// Is reports a UsageError as reyes.ErrUsage, which the binaries' one
// exit-code scheme (cli.ExitCode) maps to ExitUsage.
func (e *UsageError) Is(target error) bool { return target == reyes.ErrUsage }

// HelpHint says where help is; the message already ends with it.
func (e *UsageError) HelpHint() string {
	if e.Cmd != "" {
		return "reyesctl " + e.Cmd + " -h"
	}
	return "reyesctl -h"
}

// ExitCode maps an error returned by Run to a process exit status, with the
// binaries' one scheme (cli.ExitCode): ExitOK for nil, ExitUsage for a
// *UsageError, ExitFailure for anything else.
func ExitCode(err error) int { return cli.ExitCode(err) }

// Run runs reyesctl with args (without the program name), writing its
// output to stdout and warnings to stderr. It returns nil on success and
// when help was asked for (-h, --help, help). Errors are meant to be
// printed as one line, "reyesctl: <error>", and mapped with ExitCode.
//
// Run holds no global state and is safe to call concurrently.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &invocation{stdout: stdout, stderr: stderr, now: time.Now}
	err := c.run(ctx, args)
	if err != nil && ctx.Err() != nil {
		// A command is one run: cut short, it did not do its job.
		return fmt.Errorf("%w: %w", reyes.ErrInterrupted, err)
	}
	return err
}

// invocation is one run of reyesctl: where output goes and the clock.
type invocation struct {
	stdout, stderr io.Writer
	now            func() time.Time
	// runner runs the kernel tools of read-only commands (status); nil
	// means apply.ExecRunner.
	runner apply.Runner
}

// command is one subcommand.
type command struct {
	name     string
	synopsis string // one line for the command list
	usage    string // the argument synopsis after "reyesctl <name>"
	help     string // paragraphs after the usage line
	// flags defines the command's flags on fl and returns the function
	// that runs it on the positional arguments.
	flags func(c *invocation, fl *flag.FlagSet) func(ctx context.Context, args []string) error
	// argNames names the positional arguments ("OBJECT DIR"); their
	// number is exact.
	argNames string
}

func commands() []command {
	return []command{keygenCommand(), verifyCommand(), unpackCommand(), inspectCommand(), explainCommand(), statusCommand(), removeCommand()}
}

func (c *invocation) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &UsageError{Err: errors.New("no command given")}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-version", "--version", "version":
		fmt.Fprintln(c.stdout, "reyesctl", version.Get())
		return nil
	case "-h", "-help", "--help", "help":
		if name == "help" && len(rest) > 0 {
			cmd, ok := lookup(rest[0])
			if !ok {
				return &UsageError{Err: fmt.Errorf("unknown command %q", rest[0])}
			}
			c.printHelp(cmd)
			return nil
		}
		c.printTopHelp()
		return nil
	}
	cmd, ok := lookup(name)
	if !ok {
		return &UsageError{Err: fmt.Errorf("unknown command %q", name)}
	}
	fl := newFlagSet(cmd.name)
	runFn := cmd.flags(c, fl)
	pos, err := parseInterspersed(fl, rest)
	if errors.Is(err, flag.ErrHelp) {
		c.printHelp(cmd)
		return nil
	}
	if err != nil {
		return &UsageError{Cmd: cmd.name, Err: err}
	}
	if want := strings.Fields(cmd.argNames); len(pos) != len(want) {
		if len(want) == 0 {
			return &UsageError{Cmd: cmd.name, Err: fmt.Errorf("unexpected argument %q", pos[0])}
		}
		return &UsageError{Cmd: cmd.name, Err: fmt.Errorf("want %d argument(s), %s, got %d", len(want), cmd.argNames, len(pos))}
	}
	return runFn(ctx, pos)
}

func lookup(name string) (command, bool) {
	for _, cmd := range commands() {
		if cmd.name == name {
			return cmd, true
		}
	}
	return command{}, false
}

func newFlagSet(name string) *flag.FlagSet {
	fl := flag.NewFlagSet("reyesctl "+name, flag.ContinueOnError)
	// Errors come back from Parse and are printed by main as one line;
	// help is printed by printHelp.
	fl.SetOutput(io.Discard)
	fl.Usage = func() {}
	return fl
}

// parseInterspersed parses flags anywhere among the positional arguments
// ("verify OBJECT --trusted-key K" works), up to a "--" after which
// everything is positional.
func parseInterspersed(fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			return nil, err
		}
		consumed := len(args) - fl.NArg()
		rest := fl.Args()
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

const topHelp = `reyesctl: keys, signed rulesets and policy questions for reyes

Usage:
  reyesctl <command> [flags] [arguments]
  reyesctl help <command>       (or: reyesctl <command> -h)
  reyesctl --version

Commands:
`

const topHelpTail = `
OBJECT and --store are a local file path (file:// allowed) or s3://bucket/key.
For S3, credentials and region come from the AWS SDK's standard chain
(AWS_PROFILE, AWS_REGION, instance roles...) and AWS_ENDPOINT_URL_S3 or
AWS_ENDPOINT_URL select an S3-compatible server.

Exit status: 0 success, 1 refused or failed, 2 usage error.
`

func (c *invocation) printTopHelp() {
	var b strings.Builder
	b.WriteString(topHelp)
	for _, cmd := range commands() {
		fmt.Fprintf(&b, "  %-8s  %s\n", cmd.name, cmd.synopsis)
	}
	b.WriteString(topHelpTail)
	io.WriteString(c.stdout, b.String())
}

func (c *invocation) printHelp(cmd command) {
	fl := newFlagSet(cmd.name)
	cmd.flags(c, fl)
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: reyesctl %s %s\n\n%s\n\nFlags:\n", cmd.name, cmd.usage, strings.TrimSpace(cmd.help))
	fl.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if isBool(f) {
			arg = ""
		}
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintf(&b, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			def := f.DefValue
			if strings.ContainsAny(def, " \t") {
				def = strconv.Quote(def)
			}
			fmt.Fprintf(&b, " (default %s)", def)
		}
		b.WriteString("\n")
	})
	io.WriteString(c.stdout, b.String())
}

func isBool(f *flag.Flag) bool {
	bf, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && bf.IsBoolFlag()
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string {
	if s == nil {
		return ""
	}
	return strings.Join(*s, ",")
}

func (s *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*s = append(*s, v)
	return nil
}
