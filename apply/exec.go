package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// PathResolver is implemented by a Runner that can say, without running
// anything, which file a program name would run, with every symbolic link
// followed. Apply uses it to read the iptables backend from the name of
// the multi-call binary the programs link to (xtables-nft-multi or
// xtables-legacy-multi), which saves a process per run; a Runner without
// it, or a program that links elsewhere, is asked "--version" instead.
type PathResolver interface {
	// ResolvePath returns the file that running name would execute, all
	// symbolic links resolved, or an error if there is none.
	ResolvePath(name string) (string, error)
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

// ResolvePath implements PathResolver: name looked up in PATH as the
// command would be (for a command run through "ip netns exec", in the PATH
// that Env gives it, if it does: ip looks the program up itself; the
// namespace changes the network, not the files), then every symbolic
// link followed.
func (r ExecRunner) ResolvePath(name string) (string, error) {
	path := os.Getenv("PATH")
	if r.Netns != "" {
		for _, kv := range r.Env {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				path = v
			}
		}
	}
	file, err := lookPath(name, path)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(file)
}

// lookPath finds the executable regular file name in the directories of
// path, as exec.LookPath does in $PATH; a name with a slash is itself.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, executable(name)
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue // the current directory: exec refuses it too
		}
		file := filepath.Join(dir, name)
		if executable(file) == nil {
			return file, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// executable fails unless file is a regular file with an execute bit.
func executable(file string) error {
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file", file)
	}
	return nil
}

// exitCode is the exit code of a failed command, or -1.
func exitCode(err error) int {
	var ee *ExecError
	if errors.As(err, &ee) {
		return ee.ExitCode
	}
	return -1
}
