package reyes_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/cli"
)

// within fails the test when fn has not returned after d.
func within(t *testing.T, d time.Duration, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s: still waiting after %s", what, d)
		return nil
	}
}

// TestFIFOPathsDoNotHang: a FIFO (without a writer) given as the
// configuration file, a trusted key or the metrics file ends the run at
// once; each used to block in open(2) for ever, where SIGTERM does not
// reach.
func TestFIFOPathsDoNotHang(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ctx := context.Background()
	t.Run("config file", func(t *testing.T) {
		var out, errb bytes.Buffer
		err := within(t, 5*time.Second, "--config FIFO", func() error {
			return cli.RunFollower(ctx, []string{"--config", fifo, "--dry-run"}, nil, &out, &errb)
		})
		if err == nil || cli.ExitCode(err) == cli.ExitOK {
			t.Fatalf("--config FIFO: %v", err)
		}
	})
	t.Run("trusted key", func(t *testing.T) {
		var out, errb bytes.Buffer
		err := within(t, 5*time.Second, "--trusted-key FIFO", func() error {
			return cli.RunFollower(ctx, []string{"--store", filepath.Join(dir, "obj"), "--trusted-key", fifo,
				"--state-dir", filepath.Join(dir, "st"), "--scope", "s", "--no-imds", "--dry-run"}, nil, &out, &errb)
		})
		if err == nil {
			t.Fatal("--trusted-key FIFO accepted")
		}
	})
	t.Run("metrics file", func(t *testing.T) {
		p := newPipeline(t)
		if _, err := p.leader.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		p.follower.MetricsFile = fifo
		err := within(t, 5*time.Second, "metrics file FIFO", func() error {
			_, err := p.follower.RunOnce(ctx)
			return err
		})
		if err != nil {
			t.Fatalf("run with the metrics file a FIFO: %v", err)
		}
	})
}

// TestMetricsFileMissingDirectoryNamed: a --metrics-file in a directory
// that does not exist is logged naming the directory, not a temporary
// file in it.
func TestMetricsFileMissingDirectoryNamed(t *testing.T) {
	p := newPipeline(t)
	var logs bytes.Buffer
	p.follower.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	missing := filepath.Join(p.dir, "textfile_collector")
	p.follower.MetricsFile = filepath.Join(missing, "reyes.prom")
	p.publishAndApply(t)
	if !strings.Contains(logs.String(), "directory "+missing+" does not exist") || strings.Contains(logs.String(), ".tmp-") {
		t.Errorf("the warning does not name the missing directory:\n%s", logs.String())
	}
}
