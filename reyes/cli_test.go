package reyes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// binDir holds reyes-leader and reyes-follower, built once per test binary
// by binaries and removed by TestMain.
var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds cmd/reyes-leader and cmd/reyes-follower once and returns
// the directory holding them. It skips the test when the go tool is absent.
func binaries(t testing.TB) (leader, follower string) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH: cannot build the binaries")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "reyes-bin-")
		if binErr != nil {
			return
		}
		cmd := exec.Command(gobin, "build", "-o", binDir+"/", "../cmd/reyes-leader", "../cmd/reyes-follower")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "reyes-leader"), filepath.Join(binDir, "reyes-follower")
}

// result is what a binary did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs a binary (directly, or through ip netns exec when prefix is
// given) with env added to a minimal environment.
func run(t testing.TB, env []string, prefix []string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	argv := append(append(append([]string{}, prefix...), bin), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LC_ALL=C"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running %s: %v", strings.Join(argv, " "), err)
	}
	return r
}

// TestBinariesExitCodes checks the mains' mapping of errors to exit codes:
// 0 for --help, 2 for a usage error, 1 with one line on stderr for a
// refusal.
func TestBinariesExitCodes(t *testing.T) {
	leader, follower := binaries(t)
	dir := t.TempDir()
	now := time.Now()
	_, pub, err := sign.GenerateKey("trusted", "", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	otherSec, _, err := sign.GenerateKey("intruder", "", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	trusted := write("trusted.pub", pub)
	intruderKey := write("intruder.key", otherSec)
	store := filepath.Join(dir, "ruleset.signed")

	// An object signed by a key the follower does not trust.
	r := run(t, nil, nil, leader, "--source", "../examples/quickstart/inventory", "--store", store, "--signing-key", intruderKey, "--scope", "cli")
	if r.code != 0 {
		t.Fatalf("leader: %v", r)
	}
	if !strings.Contains(r.stderr, "published ruleset") {
		t.Errorf("leader logged no publish line: %v", r)
	}

	followerArgs := []string{"--store", store, "--trusted-key", trusted, "--scope", "cli", "--no-imds",
		"--state-dir", filepath.Join(dir, "state"), "--disable-file", filepath.Join(dir, "disabled"), "--dry-run"}
	tests := []struct {
		name     string
		bin      string
		args     []string
		env      []string
		code     int
		stdout   string // contained in stdout
		stderr   string // contained in stderr
		oneLine  bool   // stderr is exactly one line
		noStdout bool
	}{
		{name: "leader --help", bin: leader, args: []string{"--help"}, code: 0, stdout: "--signing-key"},
		{name: "follower --help", bin: follower, args: []string{"--help"}, code: 0, stdout: "--trusted-key"},
		{name: "follower -h", bin: follower, args: []string{"-h"}, code: 0, stdout: "--dry-run"},
		{name: "leader bad flag", bin: leader, args: []string{"--colour", "red"}, code: 2, stderr: "colour", oneLine: true, noStdout: true},
		{name: "follower bad flag", bin: follower, args: []string{"--dry-run=maybe"}, code: 2, stderr: "dry-run", oneLine: true, noStdout: true},
		{name: "follower extra argument", bin: follower, args: append(followerArgs[:len(followerArgs):len(followerArgs)], "now"), code: 2, stderr: `"now"`, oneLine: true},
		// Configuration errors exit 2, as the README says (they used to exit 1).
		{name: "leader config error", bin: leader, args: []string{"--store", store}, code: 2, stderr: "source", oneLine: true, noStdout: true},
		{name: "follower config error", bin: follower, args: followerArgs, env: []string{"REYES_INTERVAL=5 minutes"}, code: 2, stderr: "interval", oneLine: true, noStdout: true},
		// A key file that cannot be read is a failure of the run (1), after the configuration was accepted.
		{name: "follower missing trusted key", bin: follower, args: []string{"--store", store, "--trusted-key", filepath.Join(dir, "nope.pub"), "--dry-run", "--no-imds"}, code: 1, stderr: "trusted_key", oneLine: true, noStdout: true},
		{name: "leader ttl 48h", bin: leader, args: []string{"--store", store, "--source", "../examples/quickstart/inventory", "--signing-key", intruderKey, "--ttl", "48h"}, code: 2, stderr: "max_validity", oneLine: true, noStdout: true},
		{name: "follower refuses an untrusted object", bin: follower, args: followerArgs, code: 1, stderr: "reyes-follower: ", oneLine: true, noStdout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.env, nil, tt.bin, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit code %d, want %d: %v", r.code, tt.code, r)
			}
			if !strings.Contains(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("want stdout with %q and stderr with %q: %v", tt.stdout, tt.stderr, r)
			}
			if tt.oneLine && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", r.stderr)
			}
			if tt.noStdout && r.stdout != "" {
				t.Errorf("stdout is not empty: %q", r.stdout)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run or a refusal created the state directory: %v", err)
	}

	// --log-format json: every line of stderr is a JSON record, the final
	// error included (it used to be plain text), and durations are not
	// integer nanoseconds.
	for _, tt := range []struct {
		name string
		bin  string
		args []string
		code int
	}{
		{"follower refusal", follower, append(followerArgs[:len(followerArgs):len(followerArgs)], "--log-format", "json"), 1},
		{"leader config error", leader, []string{"--store", store, "--log-format", "json"}, 2},
		{"follower unknown flag", follower, []string{"--log-format=json", "--colour", "red"}, 2},
		{"leader publish", leader, []string{"--source", "../examples/quickstart/inventory", "--store", filepath.Join(dir, "other.signed"), "--signing-key", intruderKey, "--log-format", "json"}, 0},
	} {
		t.Run("json "+tt.name, func(t *testing.T) {
			r := run(t, nil, nil, tt.bin, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit code %d, want %d: %v", r.code, tt.code, r)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			var last map[string]any
			for _, l := range lines {
				last = nil
				if err := json.Unmarshal([]byte(l), &last); err != nil {
					t.Fatalf("stderr line is not JSON: %q", l)
				}
				if d, ok := last["duration"]; ok {
					if _, isNum := d.(float64); isNum {
						t.Errorf("duration is a number: %q", l)
					}
				}
			}
			if tt.code != 0 && (last["level"] != "ERROR" || last["err"] == nil || last["exit"] != float64(tt.code)) {
				t.Errorf("the final record does not carry the error: %v", last)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for a writing process and a reading
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBinariesIntervalAndSignal checks that with --interval the binaries
// keep running after the first run (also after a refused one) and exit 0
// on SIGTERM.
func TestBinariesIntervalAndSignal(t *testing.T) {
	leader, follower := binaries(t)
	dir := t.TempDir()
	_, secret, public := keys(t, dir, "leader")
	store := filepath.Join(dir, "ruleset.signed")
	tests := []struct {
		name  string
		bin   string
		args  []string
		until string // in stderr before the signal
	}{
		// The follower starts first: the store is empty, the first run
		// fails and is retried later; the process stays.
		{"follower with an empty store", follower, []string{"--store", store, "--trusted-key", public, "--interval", "1h",
			"--dry-run", "--no-imds", "--addrs", "10.20.1.10", "--state-dir", filepath.Join(dir, "state")}, "will retry"},
		// (an interval of 1h with the default 1h ttl is refused: the
		// ruleset would expire between two runs)
		{"leader", leader, []string{"--source", "../examples/quickstart/inventory", "--store", store, "--signing-key", secret,
			"--interval", "10m"}, "published ruleset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(tt.bin, tt.args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(stderr.String(), tt.until) {
				select {
				case err := <-done:
					t.Fatalf("exited before the signal: %v\n%s", err, stderr.String())
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("no %q within 20 s:\n%s", tt.until, stderr.String())
				}
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running 10 s after SIGTERM:\n%s", stderr.String())
			}
		})
	}
	if _, err := os.Stat(store); err != nil {
		t.Errorf("the leader published nothing: %v", err)
	}
}

// TestJSONLogSignalIsNotAFailure: SIGTERM (a cancelled context) ending an
// --interval leader or follower exits 0 and logs no ERROR record; with
// --log-format json it used to end with {"level":"ERROR","msg":"...
// failed","err":"context canceled","exit":0}, which fires every alert on
// error records at each restart.
func TestJSONLogSignalIsNotAFailure(t *testing.T) {
	dir := t.TempDir()
	_, secret, public := keys(t, dir, "l")
	store := filepath.Join(dir, "obj")
	var out, errb bytes.Buffer
	if err := cli.RunLeader(context.Background(), []string{"--source", sampleInventory, "--store", store,
		"--signing-key", secret, "--scope", "s"}, nil, &out, &errb); err != nil {
		t.Fatalf("publishing: %v\n%s", err, errb.String())
	}
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context, stdout, stderr *bytes.Buffer) error
	}{
		{"leader", func(ctx context.Context, stdout, stderr *bytes.Buffer) error {
			return cli.RunLeader(ctx, []string{"--log-format", "json", "--source", sampleInventory, "--store", store,
				"--signing-key", secret, "--scope", "s", "--interval", "11m"}, nil, stdout, stderr)
		}},
		{"follower", func(ctx context.Context, stdout, stderr *bytes.Buffer) error {
			return cli.RunFollower(ctx, []string{"--log-format", "json", "--store", store, "--trusted-key", public,
				"--state-dir", filepath.Join(dir, "st"), "--scope", "s", "--no-imds", "--groups", "sg-b238c182ba23a5210", "--vpc-cidr", "10.20.0.0/16", "--dry-run", "--interval", "1m"}, nil, stdout, stderr)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// As SIGTERM does (signal.NotifyContext): the context is
			// cancelled while the loop waits for its next run.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(500*time.Millisecond, cancel)
			var stdout, stderr bytes.Buffer
			err := tc.run(ctx, &stdout, &stderr)
			if code := cli.ExitCode(err); code != cli.ExitOK {
				t.Errorf("exit %d (%v), want 0", code, err)
			}
			if strings.Contains(stderr.String(), `"level":"ERROR"`) {
				t.Errorf("a clean stop logged an error:\n%s", stderr.String())
			}
		})
	}
}

// blockingSource waits for its context, as a hung EC2 endpoint does.
type blockingSource struct{}

func (blockingSource) Fetch(ctx context.Context) (*inventory.Inventory, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestOneShotInterruptedFails: SIGTERM (a cancelled context) during a
// one-shot run (a systemd timer's) ends it with a failure: the run did
// not publish or apply. It used to exit 0, as a completed run does, while
// the metrics said it failed.
func TestOneShotInterruptedFails(t *testing.T) {
	p := newPipeline(t)
	p.leader.Source = blockingSource{}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := p.leader.Run(ctx, 0)
	if code := cli.ExitCode(err); code != cli.ExitFailure || !errors.Is(err, reyes.ErrInterrupted) {
		t.Errorf("interrupted one-shot leader: exit %d (%v), want %d", code, err, cli.ExitFailure)
	}
	// Stopping a loop between runs is no failure.
	p.leader.Source = sgsource.Dir{Path: sampleInventory}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	if err := p.leader.Run(ctx, time.Hour); cli.ExitCode(err) != cli.ExitOK {
		t.Errorf("stopped loop: %v", err)
	}
}
