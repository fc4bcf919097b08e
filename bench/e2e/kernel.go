package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/internal/netns"
)

// newNamespace creates "reyes-bench-<random>" with its loopback up; the
// caller deletes it (Delete) with every set and rule in it.
func newNamespace(ctx context.Context) (*netns.NS, error) { return netns.Create(ctx, "bench") }

// countingRunner wraps a Runner and records every command: how many, how
// long they took in all, and the span from the first start to the last end
// (the kernel side of one Apply).
type countingRunner struct {
	r apply.Runner

	mu          sync.Mutex
	calls       []string
	busy        time.Duration
	first, last time.Time
}

// ResolvePath implements apply.PathResolver when the wrapped Runner does,
// so that the bench finds the iptables backend as the real runner does
// (from the binary's link, without a process).
func (c *countingRunner) ResolvePath(name string) (string, error) {
	if pr, ok := c.r.(apply.PathResolver); ok {
		return pr.ResolvePath(name)
	}
	return "", exec.ErrNotFound
}

// Run implements apply.Runner.
func (c *countingRunner) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	start := time.Now()
	out, err := c.r.Run(ctx, stdin, name, args...)
	end := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, fmt.Sprintf("%s (%s)", strings.Join(append([]string{name}, args...), " "), end.Sub(start).Round(time.Millisecond)))
	c.busy += end.Sub(start)
	if c.first.IsZero() {
		c.first = start
	}
	c.last = end
	return out, err
}

// take returns what was recorded since the last take and resets it.
func (c *countingRunner) take() kernelCalls {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := kernelCalls{N: len(c.calls), Calls: c.calls, Busy: c.busy}
	if !c.first.IsZero() {
		k.Span = c.last.Sub(c.first)
	}
	c.calls, c.busy, c.first, c.last = nil, 0, time.Time{}, time.Time{}
	return k
}

// kernelCalls is what a countingRunner saw.
type kernelCalls struct {
	N     int
	Calls []string
	Busy  time.Duration // summed wall time of the commands
	Span  time.Duration // first command's start to last command's end
}

// procStats is what one child process cost.
type procStats struct {
	Wall time.Duration
	CPU  time.Duration // user + system, the program and its own children
	// MaxRSS is the largest resident set of the program or of any program
	// it ran (iptables-restore, ipset), as GNU time reports it (0 without
	// /usr/bin/time). It is not taken from this process's own wait4: Go
	// starts children with vfork, so a child's ru_maxrss would include
	// this (large) process's peak.
	MaxRSS int64 // bytes
	// HWM is the program's own VmHWM, sampled from /proc while it ran
	// (every 5 ms): the program alone, without its children.
	HWM    int64 // bytes
	Stderr string
}

// gnuTime is GNU time, which measures a child's peak RSS cleanly.
const gnuTime = "/usr/bin/time"

// runProc runs a program (through GNU time, if installed) and measures it.
// It fails when the program exits non-zero. "ip netns exec" execs the
// program in place, so its measurements are the program's.
func runProc(ctx context.Context, stdin []byte, name string, args ...string) (procStats, error) {
	var st procStats
	rssFile := ""
	argv := append([]string{name}, args...)
	if _, err := os.Stat(gnuTime); err == nil {
		f, err := os.CreateTemp("", "reyes-bench-rss-")
		if err != nil {
			return st, fmt.Errorf("making a temporary file: %w", err)
		}
		f.Close()
		rssFile = f.Name()
		defer os.Remove(rssFile)
		argv = append([]string{gnuTime, "-f", "%M", "-o", rssFile}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return st, fmt.Errorf("starting %s: %w", name, err)
	}
	done := make(chan struct{})
	hwm := make(chan int64, 1)
	go func() {
		var max int64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		pid := cmd.Process.Pid
		for {
			target := pid
			if rssFile != "" {
				target = firstChild(pid)
			}
			if v := vmHWM(target); v > max {
				max = v
			}
			select {
			case <-done:
				hwm <- max
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	st.Wall = time.Since(start)
	close(done)
	st.HWM = <-hwm
	st.Stderr = stderr.String()
	if ps := cmd.ProcessState; ps != nil {
		st.CPU = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		return st, fmt.Errorf("running %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(st.Stderr))
	}
	if rssFile != "" {
		b, err := os.ReadFile(rssFile)
		if err != nil {
			return st, fmt.Errorf("reading peak RSS: %w", err)
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return st, fmt.Errorf("reading peak RSS: %s wrote %q", gnuTime, b)
		}
		kb, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			return st, fmt.Errorf("reading peak RSS: %s wrote %q", gnuTime, b)
		}
		st.MaxRSS = kb * 1024
	}
	return st, nil
}

// firstChild returns the first child of a process, 0 if none.
func firstChild(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	c, _ := strconv.Atoi(f[0])
	return c
}

// vmHWM reads the peak resident set of a running process, 0 if it has
// gone.
func vmHWM(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// cpuTime is the CPU time (user + system) this process has used so far,
// all threads (the garbage collector's too).
func cpuTime() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// childCPU is the CPU time of this process's children that have ended and
// been waited for.
func childCPU() time.Duration { return rusage(syscall.RUSAGE_CHILDREN) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs fn and returns its wall and CPU time.
func measure(fn func() error) (wall, cpu time.Duration, err error) {
	c0, t0 := cpuTime(), time.Now()
	err = fn()
	return time.Since(t0), cpuTime() - c0, err
}
