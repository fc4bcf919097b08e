// Command e2e measures reyes end to end at fleet sizes, side by side with
// the floor, and writes the figures into BENCHMARKS.md.
//
// Run it as root from the module root:
//
//	go run ./bench/e2e -sizes small,medium,large -runs 2 -out BENCHMARKS.md
//
// and, by hand (500,000 interfaces: about 15 minutes and 2 GB of memory
// on a 2-core machine; its figures go into a block of their own, next to
// those of 50,000 measured in the same invocation):
//
//	go run ./bench/e2e -sizes large,xlarge -hosts typical,busiest -runs 1 -no-binaries -draws 2 -block xlarge -out BENCHMARKS.md
//
// For each size (the synth presets: 500, 5,000 and 50,000 interfaces with
// groups, rules and addresses in proportion, and xlarge, 500,000) and each
// run it generates the estate, then measures in one go:
//
//   - the leader: ruleset.Build, Split and the root's seal in process
//     (wall and CPU); reyes.Leader publishing in the parts layout into a
//     file store whose requests are counted as S3 would bill them (parts
//     put, bytes put, requests) for a first publish into an empty store,
//     a republish of the same estate, a change elsewhere and a one-member
//     change; the reyes-leader binary on the estate written as a
//     directory of AWS CLI JSON (wall, CPU, peak RSS); and, for
//     comparison, the whole layout's object (issue 8) and a follower's
//     verify and decode of it;
//   - for three hosts, a typical one (the interface with the median
//     plan), the busiest real interface (the largest plan) and a
//     synthetic worst case (one host in every group, so that its plan
//     holds every rule; not at xlarge): the follower's steps without the
//     kernel (read the root, open, decode it, read and verify the parts
//     of the host's view, identify, render); the floor (ipset restore plus
//     iptables-restore and ip6tables-restore of the plan's own text, run
//     directly in a fresh network namespace); then Follower.RunOnce into
//     another fresh namespace, its kernel commands and store requests
//     counted: the first run (bytes and parts read of the estate's), an
//     idle poll (one conditional GET), a new serial of the same estate, a
//     change outside the host's plan in a part it reads (an address added
//     to its bin of the address index), a change elsewhere (an interface
//     added to a group whose parts, like the new interface's and
//     address's, the host does not read: the root alone should be read,
//     no kernel call made), and a change in its plan (one address moved
//     between two interfaces, so that exactly one set is swapped: parts
//     read from the store and from the cache); and the reyes-follower
//     binary inside a third namespace (wall, CPU, peak RSS): first run,
//     idle poll, change elsewhere, churn;
//   - for the same hosts, changes that miss the host's plan without being
//     chosen to miss the parts it reads, each on top of the one before
//     (the follower having accepted it), as an autoscaling estate changes
//     at every leader run: two consecutive churn publishes (-churn
//     interfaces, 1 % of the estate's by default, removed and as many
//     added, at random among the groups its plan does not involve: not
//     its groups, not the groups their rules refer to; the host's own
//     interface untouched; each added one a copy of an interface of
//     those groups drawn at random, as an autoscaling group launches
//     from its template: its VPC and groups, as many addresses, new
//     random ones of its VPC), then -draws
//     single random changes elsewhere (one interface added to a group
//     drawn among those the plan does not involve). Each is checked, in
//     process, to leave the host's plan (rendered from the whole estate)
//     byte for byte the one applied, and the follower's run is measured
//     like the change elsewhere above: bytes and parts read, kernel calls
//     (the goal: none), time. The random choices are seeded (-seed).
//
// Runs of a size are repeated (-runs) and the one whose first runs took
// the least time in all is reported, with the load average at its start.
// Everything happens in namespaces this command creates and deletes
// ("reyes-bench-<random>"); the root namespace's firewall is never
// touched.
//
// It is not part of the test suite beyond a smoke test of the medium size
// without its worst case (main_test.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"github.com/reyes-fw/reyes/apply"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

// run parses args, measures, prints the report and writes it into -out.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizeList := fs.String("sizes", "small,medium,large", "comma-separated sizes: small (500 ENIs), medium (5,000), large (50,000), xlarge (500,000; by hand)")
	runs := fs.Int("runs", 2, "runs per size; the best (fastest worst-case follower) is reported")
	out := fs.String("out", "", "Markdown file (BENCHMARKS.md) whose generated end-to-end figures are replaced")
	block := fs.String("block", "", "name of the generated block of -out to replace (\"\" is the main one; the by-hand 500,000-interface run uses xlarge)")
	binDir := fs.String("bin", "", "directory with reyes-leader and reyes-follower already built (default: go build them)")
	noBin := fs.Bool("no-binaries", false, "skip the reyes-leader and reyes-follower binaries (no peak RSS)")
	backend := fs.String("backend", "auto", "iptables backend: auto, nft or legacy")
	hostList := fs.String("hosts", "", "comma-separated host kinds to measure (typical, busiest, all-groups; default: every kind the size has)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (leader and follower in process) here")
	keep := fs.Bool("keep", false, "keep the work directories (keys, objects, state, follower configs) and log where they are (implies -v)")
	verbose := fs.Bool("v", false, "log progress")
	var churnN churnSpec
	fs.Var(&churnN, "churn", "interfaces each churn publish adds and removes at random in groups the measured host's plan does not involve: a count such as 500, or a percentage of the estate's interfaces such as 1% (the default; at least 1)")
	draws := fs.Int("draws", 10, "single random changes elsewhere (one interface added to a random group the host's plan does not involve) measured per host, averaged")
	seed := fs.Uint64("seed", 1, "seed of the churn and of the single random changes (the same seed draws the same changes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root: it creates network namespaces")
	}
	for _, tool := range []string{"ip", "ipset", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed", tool)
		}
	}
	cfg := config{Runs: *runs, KeepTemp: *keep, Log: slog.New(slog.DiscardHandler), Churn: churnN, Draws: *draws, Seed: *seed}
	if *verbose || *keep {
		cfg.Log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if cfg.Runs < 1 {
		return fmt.Errorf("-runs %d: want at least 1", cfg.Runs)
	}
	if cfg.Draws < 0 {
		return fmt.Errorf("-draws %d: want 0 or more", cfg.Draws)
	}
	for _, name := range strings.Split(*sizeList, ",") {
		sz, ok := sizes[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("-sizes: unknown size %q (small, medium, large, xlarge)", name)
		}
		if *hostList != "" {
			var kinds []string
			for _, k := range strings.Split(*hostList, ",") {
				k = strings.TrimSpace(k)
				if !slices.Contains(allHosts, k) {
					return fmt.Errorf("-hosts: unknown host kind %q (%s)", k, strings.Join(allHosts, ", "))
				}
				if slices.Contains(sz.Hosts, k) {
					kinds = append(kinds, k)
				}
			}
			sz.Hosts = kinds
		}
		cfg.Sizes = append(cfg.Sizes, sz)
	}
	b, err := apply.ParseBackend(*backend)
	if err != nil {
		return err
	}
	if b == apply.BackendAuto {
		if b, err = apply.DetectBackend(ctx, apply.ExecRunner{}); err != nil {
			return err
		}
	}
	cfg.Backend = b
	if !*noBin {
		cfg.BinDir = *binDir
		if cfg.BinDir == "" {
			dir, err := os.MkdirTemp("", "reyes-bench-bin-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			if err := buildBinaries(ctx, dir); err != nil {
				return err
			}
			cfg.BinDir = dir
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	rep := &report{Machine: machine(ctx, b), Command: command(args), Runs: cfg.Runs, Backend: b, Churn: cfg.Churn, Seed: cfg.Seed}
	for _, sz := range cfg.Sizes {
		var all []*runResult
		for i := 1; i <= cfg.Runs; i++ {
			r, err := runSize(ctx, cfg, sz, i)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", sz.Name, i, err)
			}
			all = append(all, r)
			fmt.Fprintf(stderr, "%s run %d (load %s): %s\n", sz.Name, i, r.LoadAvg, r.summary())
		}
		rep.Results = append(rep.Results, best(all))
		rep.All = append(rep.All, all)
	}
	text := rep.markdown()
	fmt.Fprint(stdout, text)
	if *out != "" {
		return writeSection(*out, *block, text)
	}
	return nil
}

// buildBinaries builds reyes-leader and reyes-follower into dir, from the
// module the working directory is in.
func buildBinaries(ctx context.Context, dir string) error {
	for _, name := range []string{"reyes-leader", "reyes-follower"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s (run from the module root): %w: %s", name, err, out)
		}
	}
	return nil
}

// command is the command line that reproduces this run.
func command(args []string) string {
	return strings.TrimSpace("go run ./bench/e2e " + strings.Join(args, " "))
}
