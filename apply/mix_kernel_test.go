package apply

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/render"
)

// The kill tests run Apply in a child process (this test binary, re-run
// with mixHelperEnv set) whose runner stops at a chosen command: the parent
// sends real packets while the child is stopped there, SIGKILLs it, sends
// them again, and checks that the next run completes.
const mixHelperEnv = "REYES_APPLY_MIX_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(mixHelperEnv) != "" {
		os.Exit(mixHelper())
	}
	os.Exit(m.Run())
}

// mixCase is a transition from plan a to plan b and the packets that must
// get the same verdict under both (denied by both, allowed by both).
type mixCase struct {
	name   string
	a, b   planSpec
	denied []string // "src/probe" both policies deny
	// allowed are probes both policies allow.
	allowed []string
	// final is the traffic under b.
	final map[string][]string
}

func mixCases(table render.TableMode) []mixCase {
	return []mixCase{
		{
			// The A/B: A lets tcp/8080 in from an empty group; B makes
			// that rule tcp/8090 and adds .11 to the group. .11 must never
			// reach :8080.
			name: "rule and members change together",
			a: planSpec{table: table, allows: []allow{{"g", 6, 8080}, {"h", 17, 8081}},
				sets: map[string][]string{"g": {}, "h": {"10.99.1.12", "fd00:99:1::12"}}},
			b: planSpec{table: table, allows: []allow{{"g", 6, 8090}, {"h", 17, 8081}},
				sets: map[string][]string{"g": {"10.99.1.11", "fd00:99:1::11"}, "h": {"10.99.1.12", "fd00:99:1::12"}}},
			denied:  []string{"v4a/tcp8080", "v6a/tcp8080", "v4b/tcp8080", "v6b/tcp8080"},
			allowed: []string{"v4b/udp8081", "v6b/udp8081"},
			final:   map[string][]string{"v4a": {"tcp8090"}, "v6a": {"tcp8090"}, "v4b": {"udp8081"}, "v6b": {"udp8081"}},
		},
		{
			// Only members change, but .12 moves from g to h and .11 the
			// other way: both policies let each of them in on :8080 all the
			// time, and .11 is denied :8090 by both.
			name: "an address moves between sets",
			a: planSpec{table: table, allows: []allow{{"g", 6, 8080}, {"h", 6, 8080}, {"h", 6, 8090}},
				sets: map[string][]string{"g": {"10.99.1.12", "fd00:99:1::12"}, "h": {"10.99.1.11", "fd00:99:1::11"}}},
			b: planSpec{table: table, allows: []allow{{"g", 6, 8080}, {"h", 6, 8080}, {"h", 6, 8090}},
				sets: map[string][]string{"g": {"10.99.1.11", "fd00:99:1::11"}, "h": {"10.99.1.12", "fd00:99:1::12"}}},
			allowed: []string{"v4a/tcp8080", "v6a/tcp8080", "v4b/tcp8080", "v6b/tcp8080"},
			final:   map[string][]string{"v4a": {"tcp8080"}, "v6a": {"tcp8080"}, "v4b": {"tcp8080", "tcp8090"}, "v6b": {"tcp8080", "tcp8090"}},
		},
		{
			// Sets leave and join the plan while the rules change: .11
			// keeps :8080 (through g, then k) and .12 keeps udp/8081
			// (through h, then k); :8090 stays shut to both.
			name: "sets replaced by another set",
			a: planSpec{table: table, allows: []allow{{"g", 6, 8080}, {"h", 17, 8081}},
				sets: map[string][]string{"g": {"10.99.1.11", "fd00:99:1::11"}, "h": {"10.99.1.12", "fd00:99:1::12"}}},
			b: planSpec{table: table, allows: []allow{{"k", 6, 8080}, {"k", 17, 8081}},
				sets: map[string][]string{"k": {"10.99.1.11", "10.99.1.12", "fd00:99:1::11", "fd00:99:1::12"}}},
			denied:  []string{"v4a/tcp8090", "v4b/tcp8090", "v6a/tcp8090", "v6b/tcp8090"},
			allowed: []string{"v4a/tcp8080", "v6a/tcp8080", "v4b/udp8081", "v6b/udp8081"},
			final: map[string][]string{"v4a": {"tcp8080", "udp8081"}, "v6a": {"tcp8080", "udp8081"},
				"v4b": {"tcp8080", "udp8081"}, "v6b": {"tcp8080", "udp8081"}},
		},
		{
			// Members only, two sets, no address moving from one to the
			// other: swapped in place one after the other. .11 keeps
			// :8080 through g; .12 never gets :8090.
			name: "two sets swapped in place",
			a: planSpec{table: table, allows: []allow{{"g", 6, 8080}, {"h", 6, 8090}},
				sets: map[string][]string{"g": {"10.99.1.11", "fd00:99:1::11"}, "h": {"10.99.1.11", "fd00:99:1::11"}}},
			b: planSpec{table: table, allows: []allow{{"g", 6, 8080}, {"h", 6, 8090}},
				sets: map[string][]string{"g": {"10.99.1.11", "10.99.1.12", "fd00:99:1::11", "fd00:99:1::12"}, "h": {}}},
			denied:  []string{"v4b/tcp8090", "v6b/tcp8090"},
			allowed: []string{"v4a/tcp8080", "v6a/tcp8080"},
			final:   map[string][]string{"v4a": {"tcp8080"}, "v6a": {"tcp8080"}, "v4b": {"tcp8080"}, "v6b": {"tcp8080"}},
		},
	}
}

// TestKernelKillMix stops an apply at every command it runs (and inside
// every ipset restore, after half its lines), checks real packets there,
// SIGKILLs the apply, checks them again, and then lets the next run
// complete: every packet both policies deny stays denied, every packet
// both allow stays allowed.
func TestKernelKillMix(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		tables := []render.TableMode{render.TableShared}
		if b == BackendNFT {
			tables = append(tables, render.TableExclusive)
		}
		for _, table := range tables {
			for ci, c := range mixCases(table) {
				t.Run(fmt.Sprintf("%s/%s/%s", b, table, c.name), func(t *testing.T) {
					t.Parallel()
					e := newEnv(t, b)
					ctx := context.Background()
					e.apply(c.a.build())
					stops := 0
					for stop := 1; stop < 100; stop++ {
						for _, half := range []bool{false, true} {
							desc, done := e.runMixChild(t, ci, table, stop, half, func(desc string) {
								e.checkSame(t, c, "stopped at "+desc)
							})
							if done {
								if stops == 0 {
									t.Fatal("the apply never stopped")
								}
								return
							}
							if desc == "" {
								continue // no ipset restore to stop inside
							}
							stops++
							e.afterKill(t, ctx, c, desc)
						}
					}
				})
			}
		}
	}
}

// checkSame sends the probes whose fate both of c's policies agree on and
// fails the test for each that meets another; when names the moment.
func (e *env) checkSame(t *testing.T, c mixCase, when string) {
	t.Helper()
	want := map[string]bool{}
	for _, p := range c.denied {
		want[p] = false
	}
	for _, p := range c.allowed {
		want[p] = true
	}
	before := t.Failed()
	e.traffic(want)
	if !before && t.Failed() {
		t.Logf("^ %s", when)
	}
}

// afterKill checks the packets after an apply of c's b was SIGKILLed at
// desc; the next run then completes and gives b, and the one after puts a
// back.
func (e *env) afterKill(t *testing.T, ctx context.Context, c mixCase, desc string) {
	t.Helper()
	e.checkSame(t, c, "killed at "+desc)
	if _, err := Apply(ctx, c.b.build(), e.opts); err != nil {
		t.Fatalf("run after a kill at %s: %v", desc, err)
	}
	e.traffic(expectAll(allProbes, c.final))
	if _, err := Apply(ctx, c.a.build(), e.opts); err != nil {
		t.Fatalf("back to a after a kill at %s: %v", desc, err)
	}
}

// runMixChild runs the helper that applies case ci's plan b and stops at
// command stop (inside it, after half its lines, when half is set); at the
// stop it calls at, then SIGKILLs the child. done is true when the apply
// finished before reaching stop. desc is "" when a half stop was asked for
// a command that is not an ipset restore (nothing was changed).
func (e *env) runMixChild(t *testing.T, ci int, table render.TableMode, stop int, half bool, at func(desc string)) (desc string, done bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mixHelperEnv+"=1",
		"MIX_NETNS="+e.host.Name, "MIX_LOCK="+e.lockFile, "MIX_STATE="+e.opts.StateDir,
		"MIX_BACKEND="+string(e.backend), "MIX_TABLE="+strconv.Itoa(int(table)),
		"MIX_CASE="+strconv.Itoa(ci), "MIX_STOP="+strconv.Itoa(stop), "MIX_HALF="+strconv.FormatBool(half))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "DONE" || line == "SKIP":
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper: %v: %s", err, stderr.String())
		}
		return "", line == "DONE"
	case strings.HasPrefix(line, "STOP "):
		desc = strings.TrimPrefix(line, "STOP ")
		at(desc)
		cmd.Process.Kill()
		cmd.Wait()
		return desc, false
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("helper said %q: %s", line, stderr.String())
	return "", false
}

// stopRunner runs commands until the stop-th, where it prints "STOP
// <command>" and blocks until killed; with half, an ipset restore is run
// with the first of its lines first (one line of a short script, half of a
// long one).
type stopRunner struct {
	r    Runner
	n    atomic.Int32
	stop int
	half bool
}

func (s *stopRunner) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	n := int(s.n.Add(1))
	if n != s.stop {
		return s.r.Run(ctx, stdin, name, args...)
	}
	desc := fmt.Sprintf("command %d (%s %s)", n, name, strings.Join(args, " "))
	if s.half {
		lines := bytes.SplitAfter(stdin, []byte("\n"))
		if name != "ipset" || len(args) == 0 || args[0] != "restore" || len(lines) < 3 {
			fmt.Println("SKIP")
			os.Exit(0)
		}
		// Short scripts (swaps) stop after their first line, between two
		// swaps; long ones (fills) half-way.
		k := 1
		if len(lines) > 6 {
			k = len(lines) / 2
		}
		if _, err := s.r.Run(ctx, bytes.Join(lines[:k], nil), name, args...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		desc += fmt.Sprintf(" after %d of its %d lines", k, len(lines))
	}
	fmt.Println("STOP " + desc)
	select {}
}

func mixHelper() int {
	atoi := func(k string) int { n, _ := strconv.Atoi(os.Getenv(k)); return n }
	table := render.TableMode(atoi("MIX_TABLE"))
	c := mixCases(table)[atoi("MIX_CASE")]
	var inner Runner = ExecRunner{Netns: os.Getenv("MIX_NETNS"), Env: []string{"XTABLES_LOCKFILE=" + os.Getenv("MIX_LOCK")}}
	failV6 := os.Getenv(mixFailV6Env) != ""
	if failV6 {
		inner = failV6Rules{inner} // IPv6 fails: IPv4 is put back
	}
	r := &stopRunner{r: inner, stop: atoi("MIX_STOP"), half: os.Getenv("MIX_HALF") == "true"}
	opts := Options{Runner: r, Backend: Backend(os.Getenv("MIX_BACKEND")), StateDir: os.Getenv("MIX_STATE")}
	if _, err := Apply(context.Background(), c.b.build(), opts); err != nil && !failV6 {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("DONE")
	return 0
}
