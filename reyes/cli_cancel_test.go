package reyes_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/reyes"
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
	if err := reyes.RunLeader(context.Background(), []string{"--source", sampleInventory, "--store", store,
		"--signing-key", secret, "--scope", "s"}, nil, &out, &errb); err != nil {
		t.Fatalf("publishing: %v\n%s", err, errb.String())
	}
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context, stdout, stderr *bytes.Buffer) error
	}{
		{"leader", func(ctx context.Context, stdout, stderr *bytes.Buffer) error {
			return reyes.RunLeader(ctx, []string{"--log-format", "json", "--source", sampleInventory, "--store", store,
				"--signing-key", secret, "--scope", "s", "--interval", "11m"}, nil, stdout, stderr)
		}},
		{"follower", func(ctx context.Context, stdout, stderr *bytes.Buffer) error {
			return reyes.RunFollower(ctx, []string{"--log-format", "json", "--store", store, "--trusted-key", public,
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
			if code := reyes.ExitCode(err); code != reyes.ExitOK {
				t.Errorf("exit %d (%v), want 0", code, err)
			}
			if strings.Contains(stderr.String(), `"level":"ERROR"`) {
				t.Errorf("a clean stop logged an error:\n%s", stderr.String())
			}
		})
	}
}
