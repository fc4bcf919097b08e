package reyes_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply"
)

// lockProbe is a slog handler that, when the follower records its run
// (the metrics write that fails below), tries to take the state lock.
type lockProbe struct {
	dir  string
	held atomic.Int32 // 1: the lock was held while recording; 2: it was free
}

func (h *lockProbe) Enabled(context.Context, slog.Level) bool { return true }
func (h *lockProbe) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lockProbe) WithGroup(string) slog.Handler            { return h }
func (h *lockProbe) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "writing metrics" {
		return nil
	}
	l, err := apply.Lock(context.Background(), h.dir, 0)
	switch {
	case errors.Is(err, apply.ErrLocked):
		h.held.Store(1)
	case err == nil:
		l.Unlock()
		h.held.Store(2)
	}
	return nil
}

// TestFollowerRecordsUnderItsLock: the status and metrics of a run are
// written while it still holds the state lock, so that the next run (of
// another process, waiting on the lock) reads this run's record and not
// an older one. The metrics path is a directory, so that writing it logs
// a warning the probe sees.
func TestFollowerRecordsUnderItsLock(t *testing.T) {
	p := newPipeline(t)
	dir := filepath.Join(t.TempDir(), "metrics-is-a-dir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	probe := &lockProbe{dir: p.follower.StateDir}
	p.follower.MetricsFile = dir
	p.follower.Logger = slog.New(probe)
	if _, err := p.leader.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.now = p.now.Add(time.Second)
	if _, err := p.follower.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	switch probe.held.Load() {
	case 0:
		t.Fatal("the probe never ran: no metrics write was logged")
	case 2:
		t.Fatal("the run recorded its status after it released the state lock")
	}
}
