package apply

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// relock takes the lock of dir, waiting at most wait, and releases it;
// when says when, in the failure.
func relock(t *testing.T, ctx context.Context, dir string, wait time.Duration, when string) {
	t.Helper()
	l, err := Lock(ctx, dir, wait)
	if err != nil {
		t.Fatalf("Lock %s: %v", when, err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestLock(t *testing.T) {
	ctx := context.Background()
	t.Run("exclusive within one process, bounded wait, names the holder", func(t *testing.T) {
		dir, l1 := lockedDir(t)
		b, _ := os.ReadFile(filepath.Join(dir, "lock"))
		if got := strings.TrimSpace(string(b)); got != strconv.Itoa(os.Getpid()) {
			t.Fatalf("lock file holds %q, want our pid", got)
		}
		start := time.Now()
		_, err := Lock(ctx, dir, 200*time.Millisecond)
		took := time.Since(start)
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second Lock: %v, want ErrLocked", err)
		}
		var le *LockedError
		if !errors.As(err, &le) || le.PID != os.Getpid() || le.Path != filepath.Join(dir, "lock") {
			t.Fatalf("second Lock: %#v", err)
		}
		if took < 200*time.Millisecond || took > 2*time.Second {
			t.Errorf("second Lock waited %s, want about 200ms", took)
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.Contains(msg, "pid "+strconv.Itoa(os.Getpid())) {
			t.Errorf("message %q: want one line naming pid %d", msg, os.Getpid())
		}
		if err := l1.Unlock(); err != nil {
			t.Fatal(err)
		}
		l2, err := Lock(ctx, dir, 0)
		if err != nil {
			t.Fatalf("Lock after Unlock: %v", err)
		}
		if err := l2.Unlock(); err != nil {
			t.Fatal(err)
		}
		if err := l2.Unlock(); err != nil {
			t.Fatalf("second Unlock: %v", err)
		}
	})
	t.Run("waits for the holder to finish", func(t *testing.T) {
		dir, l1 := lockedDir(t)
		go func() {
			time.Sleep(150 * time.Millisecond)
			l1.Unlock()
		}()
		relock(t, ctx, dir, 5*time.Second, "while the holder finishes")
	})
	t.Run("context ends the wait", func(t *testing.T) {
		dir, l1 := lockedDir(t)
		defer l1.Unlock()
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Lock(cctx, dir, time.Minute)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrLocked) {
			t.Fatalf("Lock with an ending context: %v", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("Lock ignored its context")
		}
	})
	t.Run("another process holds it", func(t *testing.T) {
		if _, err := exec.LookPath("flock"); err != nil {
			t.Skip("flock(1) not installed")
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "lock")
		// flock(1) holds the lock while sh writes its pid, as Lock does.
		// -o: only flock(1) itself holds it, so killing it frees the lock.
		cmd := exec.Command("flock", "-o", path, "sh", "-c", `echo $PPID > "$0"; exec sleep 30`, path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(path)
			if len(b) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		_, err := Lock(ctx, dir, 100*time.Millisecond)
		var le *LockedError
		if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
			t.Fatalf("Lock while flock(1) holds it: %v, want a *LockedError naming pid %d", err, cmd.Process.Pid)
		}
		// A killed holder releases the lock: the kernel drops it.
		cmd.Process.Kill()
		cmd.Wait()
		relock(t, ctx, dir, 5*time.Second, "after the holder was killed")
	})
	t.Run("no directory", func(t *testing.T) {
		if _, err := Lock(ctx, "", 0); err == nil || errors.Is(err, ErrLocked) {
			t.Fatalf("Lock(\"\"): %v", err)
		}
		if _, err := Lock(ctx, filepath.Join(t.TempDir(), "missing"), 0); err == nil {
			t.Fatal("Lock on a missing directory succeeded")
		}
	})
}

// TestLockReadOnlyDir: a read-only state directory still locks when the
// lock file exists (the run then fails where it writes its state); when
// it does not, Lock says the directory is not writable.
func TestLockReadOnlyDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	ctx := context.Background()
	for _, exists := range []bool{true, false} {
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", dir).Run() })
		if exists {
			l, err := Lock(ctx, dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			l.Unlock()
		}
		if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
			t.Fatalf("remount: %v: %s", err, out)
		}
		l, err := Lock(ctx, dir, 0)
		switch {
		case exists && err != nil:
			t.Errorf("Lock on a read-only dir with a lock file: %v", err)
		case !exists && !errors.Is(err, ErrStateNotWritable):
			t.Errorf("Lock on a read-only dir without a lock file: %v, want ErrStateNotWritable", err)
		}
		if l != nil {
			// A second lock on the same read-only file still excludes.
			if _, err := Lock(ctx, dir, 0); !errors.Is(err, ErrLocked) {
				t.Errorf("second Lock on a read-only lock file: %v, want ErrLocked", err)
			}
			l.Unlock()
		}
	}
}

// TestLockSymlink: a lock file that is a symbolic link is refused, and the
// file it points to is neither written nor truncated.
func TestLockSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("root:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	l, err := Lock(context.Background(), dir, 0)
	if err == nil {
		l.Unlock()
		t.Error("Lock followed a symlinked lock file")
	} else if !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Lock = %v, want an error saying the lock file is a symbolic link", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:x:0:0\n" {
		t.Errorf("the symlink's target was changed: %q", b)
	}
}

// TestLockFileDeletedWhileHeld: a lock file removed while a run holds it
// (an operator's rm, a tmpfiles cleaner) must not let a second run in.
func TestLockFileDeletedWhileHeld(t *testing.T) {
	dir := t.TempDir()
	l, err := Lock(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if err := os.Remove(filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	if l2, err := Lock(context.Background(), dir, 0); !errors.Is(err, ErrLocked) {
		l2.Unlock()
		t.Errorf("second Lock after the lock file was removed: %v, want ErrLocked", err)
	}
}

// lockedDir is a new state directory whose lock the test holds.
func lockedDir(t *testing.T) (string, *StateLock) {
	t.Helper()
	dir := t.TempDir()
	l, err := Lock(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	return dir, l
}
