package reyes_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/reyes"
)

// TestFollowerWaitsForTheStateLock: while another run holds the state
// lock, RunOnce waits LockWait, changes nothing, and fails with one line
// naming the other run's pid.
func TestFollowerWaitsForTheStateLock(t *testing.T) {
	ctx := context.Background()
	p := appliedPipeline(t)
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

// TestFollowerReadOnlyStateDir: with a read-only state directory a run
// that would change the state stops before the kernel, says so, and keeps
// the old serial; once the directory is writable again the run completes.
func TestFollowerReadOnlyStateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	ctx := context.Background()
	p := newPipeline(t)
	dir := p.follower.StateDir
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	p.publishAndApply(t)
	before, _ := reyes.LoadState(dir)
	p.leader.Refresh = -1 // republish with a newer serial
	p.now = p.now.Add(10 * time.Minute)
	if _, err := p.leader.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
	kernel := p.kernel.Dump()
	_, err := p.follower.RunOnce(ctx)
	if !errors.Is(err, apply.ErrStateNotWritable) || !strings.Contains(err.Error(), "the kernel was not changed") {
		t.Fatalf("RunOnce with a read-only state dir: %v", err)
	}
	if p.kernel.Dump() != kernel {
		t.Error("the kernel changed")
	}
	if st, _ := reyes.LoadState(dir); st.Serial != before.Serial {
		t.Errorf("state serial %d, want the old %d", st.Serial, before.Serial)
	}
	if out, err := exec.Command("mount", "-o", "remount,rw", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount rw: %v: %s", err, out)
	}
	if _, err := p.follower.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := reyes.LoadState(dir); st.Serial <= before.Serial {
		t.Errorf("state serial %d after the fix, want > %d", st.Serial, before.Serial)
	}
}

// TestTwoFollowersOneStateDir: a timer run and a manual run at once, on
// one state directory: they take turns (the lock), both succeed, and the
// kernel is what one clean run gives.
func TestTwoFollowersOneStateDir(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	if _, err := p.leader.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	second := *p.follower // the same state dir, kernel and store
	errs := make(chan error, 2)
	for _, f := range []*reyes.Follower{p.follower, &second} {
		go func() {
			_, err := f.RunOnce(ctx)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ref := newPipeline(t)
	ref.publishAndApply(t)
	if got, want := applytest.Unslotted(p.kernel.Dump()), applytest.Unslotted(ref.kernel.Dump()); got != want {
		t.Errorf("two runs at once left:\n%s\nwant:\n%s", got, want)
	}
}
