package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrLocked is what errors.Is matches when another run holds the state
// lock: the error itself is a *LockedError naming that run.
var ErrLocked = errors.New("another reyes run holds the state lock")

// LockedError says that the state lock stayed held by another process
// for as long as Lock was allowed to wait.
type LockedError struct {
	// Path is the lock file.
	Path string
	// PID is the process that holds the lock, as it wrote it into the
	// lock file; 0 when it could not be read.
	PID int
	// Waited is how long Lock waited before giving up.
	Waited time.Duration
}

// Error is one line naming the other run.
func (e *LockedError) Error() string {
	who := "another process (pid unknown)"
	if e.PID > 0 {
		who = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("another reyes run (%s) holds the state lock %s; gave up after %s without touching the kernel",
		who, e.Path, e.Waited.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// StateLock is an exclusive lock on a state directory, held from Lock to
// Unlock. It serialises every run that changes the kernel from that
// directory (the follower, reyesctl remove): the lock is taken before the
// first kernel change and released once the state is recorded. The kernel
// releases it when the process dies, so a killed run never leaves it
// held. A StateLock is not safe for concurrent use; Unlock it once.
type StateLock struct {
	f    *os.File
	dir  *os.File
	path string
}

// DefaultLockWait is how long the follower and reyesctl remove wait for
// another run to release the state lock.
const DefaultLockWait = 30 * time.Second

// lockPoll is how often Lock retries while another run holds the lock.
const lockPoll = 50 * time.Millisecond

// Lock takes the exclusive lock <dir>/lock with flock(2), creating the
// file if needed, and writes the caller's pid into it so that a waiting
// run can name the holder. While another process holds it, Lock retries
// for at most wait (0: one attempt) and then returns a *LockedError; if
// ctx ends first it returns an error wrapping both ctx.Err() and
// ErrLocked. Locks taken through separate Lock calls exclude each other
// also within one process.
func Lock(ctx context.Context, dir string, wait time.Duration) (*StateLock, error) {
	if dir == "" {
		return nil, errors.New("taking the state lock: no state directory")
	}
	path := filepath.Join(dir, "lock")
	// O_NOFOLLOW: a lock file that is a symlink is refused, not followed;
	// Lock writes and truncates the file, which must never be another one
	// (a symlink to /etc/shadow in a state directory others can write).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) {
		// A read-only state directory: flock works on a read-only file
		// too, and the run then fails where it would write its state,
		// saying so, before it touches the kernel.
		var rerr error
		if f, rerr = os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0); rerr != nil {
			return nil, fmt.Errorf("taking the state lock: %w: %w", ErrStateNotWritable, err)
		}
		err = nil
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("taking the state lock: %s is a symbolic link; refusing to follow it: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("taking the state lock: %w", err)
	}
	// The directory itself is locked too: a lock file removed while it is
	// held (an operator's rm, a tmpfiles cleaner) would otherwise let the
	// next run create a new file and lock that one alongside. The file's
	// lock stays, for the pid and for runs that lock only the file.
	d, err := os.Open(dir)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("taking the state lock: %w", err)
	}
	closeBoth := func() { f.Close(); d.Close() }
	start := time.Now()
	var timer *time.Timer
	for {
		err := flockBoth(d, f)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			closeBoth()
			return nil, fmt.Errorf("taking the state lock %s: %w", path, err)
		}
		waited := time.Since(start)
		if waited >= wait {
			closeBoth()
			return nil, &LockedError{Path: path, PID: readLockPID(path), Waited: waited}
		}
		d := min(lockPoll, wait-waited)
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			closeBoth()
			le := &LockedError{Path: path, PID: readLockPID(path), Waited: time.Since(start)}
			return nil, fmt.Errorf("%w: %w", le, ctx.Err())
		case <-timer.C:
		}
	}
	// The pid is only for the message of a waiting run: failing to write
	// it (a full disk) must not stop this run.
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if _, err := f.WriteAt(pid, 0); err == nil {
		_ = f.Truncate(int64(len(pid)))
	}
	return &StateLock{f: f, dir: d, path: path}, nil
}

// flockBoth takes the directory's lock, then the file's, without
// blocking; it holds neither when it fails.
func flockBoth(d, f *os.File) error {
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
		return err
	}
	return nil
}

// Unlock releases the lock. The lock file stays (removing it would let
// two runs lock two different files).
func (l *StateLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	f, d := l.f, l.dir
	l.f, l.dir = nil, nil
	_ = f.Truncate(0)
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if d != nil {
		if derr := d.Close(); err == nil { // closing drops its flock
			err = derr
		}
	}
	if err != nil {
		return fmt.Errorf("releasing the state lock %s: %w", l.path, err)
	}
	return nil
}

func readLockPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
