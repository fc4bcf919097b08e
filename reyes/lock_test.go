package reyes_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply"
)

// TestFollowerWaitsForTheStateLock: while another run holds the state
// lock, RunOnce waits LockWait, changes nothing, and fails with one line
// naming the other run's pid.
func TestFollowerWaitsForTheStateLock(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	p.publishAndApply(t)
	before := p.kernel.Dump()
	other, err := apply.Lock(ctx, p.follower.StateDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Unlock()
	p.follower.LockWait = 150 * time.Millisecond
	p.kernel.ResetCalls()
	start := time.Now()
	_, err = p.follower.RunOnce(ctx)
	if !errors.Is(err, apply.ErrLocked) {
		t.Fatalf("RunOnce while locked: %v, want ErrLocked", err)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Errorf("RunOnce did not wait")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("message %q: want one line naming pid %d", msg, os.Getpid())
	}
	if len(p.kernel.Calls()) != 0 || p.kernel.Dump() != before {
		t.Errorf("a locked-out run touched the kernel: %v", p.kernel.Calls())
	}
	other.Unlock()
	if _, err := p.follower.RunOnce(ctx); err != nil {
		t.Fatalf("RunOnce after the other run ended: %v", err)
	}
}
