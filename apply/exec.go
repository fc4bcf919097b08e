package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Runner runs one external command. It is the only way package apply
// reaches the kernel, so tests can substitute a fake (see package
// applytest). Implementations must be safe for concurrent use.
type Runner interface {
	// Run runs name with args, feeding stdin (nil for none), and returns
	// its standard output. A command that fails returns an error that
	// includes its standard error, preferably an *ExecError.
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// ExecRunner is the real Runner: it runs programs from PATH with LC_ALL=C,
// so their messages can be parsed, and returns failures as *ExecError.
type ExecRunner struct {
	// Netns, if set, is the name of a network namespace (as ip netns
	// knows it) that every command runs in, through "ip netns exec".
	Netns string
	// Env are extra environment variables ("KEY=value") for every
	// command, e.g. XTABLES_LOCKFILE to give iptables-legacy a lock file
	// of its own.
	Env []string
}

// ExecError is a command that could not run or exited non-zero.
type ExecError struct {
	Name     string
	Args     []string
	ExitCode int    // -1 if the command did not run to completion
	Stderr   string // trimmed
	Err      error
}

// Error names the command and holds its standard error.
func (e *ExecError) Error() string {
	msg := fmt.Sprintf("running %s %s: %v", e.Name, strings.Join(e.Args, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Unwrap returns the exec error (an *exec.ExitError, usually).
func (e *ExecError) Unwrap() error { return e.Err }

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmdName, cmdArgs := name, args
	if r.Netns != "" {
		cmdName = "ip"
		cmdArgs = append([]string{"netns", "exec", r.Netns, name}, args...)
	}
	cmd := exec.CommandContext(ctx, cmdName, cmdArgs...)
	cmd.Env = append(append(os.Environ(), r.Env...), "LC_ALL=C")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return stdout.Bytes(), &ExecError{Name: name, Args: args, ExitCode: code,
			Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return stdout.Bytes(), nil
}

// exitCode is the exit code of a failed command, or -1.
func exitCode(err error) int {
	var ee *ExecError
	if errors.As(err, &ee) {
		return ee.ExitCode
	}
	return -1
}
