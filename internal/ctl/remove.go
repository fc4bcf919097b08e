package ctl

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/render"
)

type removeFlags struct {
	backend  string
	stateDir string
	netns    string
	lockWait time.Duration
}

func removeCommand() command {
	return command{
		name:     "remove",
		synopsis: "take every reyes chain, jump and set out of the kernel",
		usage:    "[--backend auto|nft|legacy] [--state-dir DIR] [--netns NAME] [--lock-wait D]",
		help: `
Removes reyes from the kernel, both families, in one transaction per family:
the jumps from INPUT, OUTPUT and FORWARD to REYES-* chains, every REYES-*
chain, then every reyes4-/reyes6- set, and forgets apply's state in
--state-dir. Rules and chains that are not reyes' stay. It takes the lock of
--state-dir first, so it never runs alongside a follower's apply (it waits
up to --lock-wait, then exits non-zero naming the other run's pid). Stop the follower
(or touch its disable file) first, or its next run loads the rules again.
Needs root.`,
		flags: func(c *invocation, fl *flag.FlagSet) func(context.Context, []string) error {
			var f removeFlags
			fl.StringVar(&f.backend, "backend", "auto", "iptables backend `B`: auto, nft or legacy")
			fl.StringVar(&f.stateDir, "state-dir", "/var/lib/reyes", "the follower's state `DIR`")
			fl.StringVar(&f.netns, "netns", "", "run inside network namespace `NAME` (ip netns exec)")
			fl.DurationVar(&f.lockWait, "lock-wait", apply.DefaultLockWait, "wait at most `D` for a running follower to finish")
			return func(ctx context.Context, _ []string) error { return c.remove(ctx, f) }
		},
	}
}

func (c *invocation) remove(ctx context.Context, f removeFlags) error {
	backend, err := apply.ParseBackend(f.backend)
	if err != nil {
		return &UsageError{Cmd: "remove", Err: err}
	}
	// Not alongside a follower's apply: the same lock, bounded wait.
	if err := os.MkdirAll(f.stateDir, 0o700); err != nil {
		return fmt.Errorf("removing: %w", err)
	}
	lock, err := apply.Lock(ctx, f.stateDir, f.lockWait)
	if err != nil {
		return fmt.Errorf("removing: %w", err)
	}
	defer lock.Unlock()
	res, err := apply.Remove(ctx, apply.Options{Backend: backend, StateDir: f.stateDir, Runner: apply.ExecRunner{Netns: f.netns}})
	if err != nil {
		return fmt.Errorf("removing: %w", err)
	}
	for _, fam := range []render.Family{render.IPv4, render.IPv6} {
		for _, what := range []struct {
			name string
			m    map[render.Family][]string
		}{{"jumps", res.Jumps}, {"chains", res.Chains}, {"sets", res.Sets}} {
			items := append([]string(nil), what.m[fam]...)
			sort.Strings(items)
			fmt.Fprintf(c.stdout, "IPv%d %s removed: %d\n", fam, what.name, len(items))
			for _, it := range items {
				fmt.Fprintf(c.stdout, "  %s\n", it)
			}
		}
	}
	return nil
}
