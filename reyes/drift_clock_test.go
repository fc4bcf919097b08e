package reyes_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDriftCheckAfterClockWentBack: the last drift check is recorded as
// the modification time of drift-checked in the state directory. A clock
// that ran ahead when it was written (a host booted with its RTC in the
// future, then corrected by NTP) left that time in the future, and no
// drift check was due again until the clock caught up with it (years,
// with an RTC reset to a far date): a flushed chain was never repaired
// and, with IMDS, a changed identity never noticed. A check stamped in the
// future is due now.
func TestDriftCheckAfterClockWentBack(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	p.publishAndApply(t)
	ahead := p.now.Add(365 * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(p.follower.StateDir, "drift-checked"), ahead, ahead); err != nil {
		t.Fatal(err)
	}
	p.now = p.now.Add(time.Minute)
	res, err := p.follower.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.DriftChecked {
		t.Errorf("the last check is stamped a year ahead of the clock: no drift check was due (NotModified=%v)", res.NotModified)
	}
	p.now = p.now.Add(time.Minute)
	if res, err := p.follower.RunOnce(ctx); err != nil || res.DriftChecked {
		t.Errorf("the run after it: DriftChecked=%v err=%v, want no check due", res.DriftChecked, err)
	}
}
