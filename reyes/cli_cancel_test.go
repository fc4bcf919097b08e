package reyes_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// TestJSONLogSignalIsNotAFailure: SIGTERM (a cancelled context) ending an
// --interval leader or follower exits 0 and logs no ERROR record; with
// --log-format json it used to end with {"level":"ERROR","msg":"...
// failed","err":"context canceled","exit":0}, which fires every alert on
// error records at each restart.
func TestJSONLogSignalIsNotAFailure(t *testing.T) {
	dir := t.TempDir()
	sec, pub, err := sign.GenerateKey("l", "", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	secret, public := filepath.Join(dir, "l.key"), filepath.Join(dir, "l.pub")
	if err := os.WriteFile(secret, sec, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(public, pub, 0o644); err != nil {
		t.Fatal(err)
	}
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
