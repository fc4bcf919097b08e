package apply

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/render"
)

// TestKernelFirstRunKilledBesideOthersSets: a first run (an empty state
// directory, no reyes chain) into a namespace where an operator's rule
// uses a set under a name of the plan (reyes4-h, holding .11, whose
// tcp/8090 it drops) and where an unused set of the plan's names was left
// (reyes4-g, holding .12): the run is SIGKILLed at every command it runs.
// At the stop, after the kill, and after
// the next run completes, the operator's set keeps exactly its member and
// its rule keeps dropping .11's tcp/8090 (the first run's fill stops at
// the create of a set that exists, before a flush); the next run leaves
// the plan in force.
func TestKernelFirstRunKilledBesideOthersSets(t *testing.T) {
	t.Parallel()
	c := mixCases(render.TableShared)[0]
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			for stop := 1; stop < 60; stop++ {
				for _, half := range []bool{false} { // inside a restore: its lines up to the create that fails are what a stop at its end sees
					e := newEnv(t, b)
					e.host.MustRun("ipset", "create", "reyes4-h", "hash:ip", "family", "inet")
					e.host.MustRun("ipset", "add", "reyes4-h", "10.99.1.11")
					e.ipt(render.IPv4, "-A", "INPUT", "-p", "tcp", "--dport", "8090", "-m", "set", "--match-set", "reyes4-h", "src", "-j", "DROP")
					e.host.MustRun("ipset", "create", "reyes4-g", "hash:ip", "family", "inet")
					e.host.MustRun("ipset", "add", "reyes4-g", "10.99.1.12")
					theirs := func(when string) {
						t.Helper()
						e.traffic(map[string]bool{"v4a/tcp8090": false})
						members := e.host.MustRun("ipset", "list", "reyes4-h")
						if !strings.Contains(members, "10.99.1.11") || strings.Contains(members, "10.99.1.12") {
							t.Errorf("%s: the operator's set changed:\n%s", when, members)
						}
						if rules := e.ipt(render.IPv4, "-S", "INPUT"); !strings.Contains(rules, "--match-set reyes4-h src -j DROP") {
							t.Errorf("%s: the operator's rule is gone:\n%s", when, rules)
						}
					}
					desc, done := e.runMixChild(t, 0, render.TableShared, stop, half, func(desc string) { theirs("at " + desc) })
					if done {
						return
					}
					if desc == "" {
						continue
					}
					theirs("after a kill at " + desc)
					if _, err := Apply(ctx, c.b.build(), e.opts); err != nil {
						t.Fatalf("the run after a kill at %s: %v", desc, err)
					}
					theirs("after the run after a kill at " + desc)
					e.traffic(expectAll([]string{"udp8081"}, map[string][]string{"v4b": {"udp8081"}, "v6b": {"udp8081"}}))
					if t.Failed() {
						t.Fatalf("^ killed at %s", desc)
					}
				}
			}
			t.Fatal("the first run did not finish within 60 commands")
		})
	}
}

// TestKernelPrepareFailsBeforeFinishingASwitch: a run that switched
// backend (nft to legacy) was killed after its load and before it
// committed: legacy holds the plan, the record still names nft, and nft
// still holds reyes' earlier rules (here a REYES-INPUT that drops .11's
// tcp/8090). The next run, whose caller's Prepare fails (a full state
// directory), must stop with the kernel untouched (Options.Prepare,
// ErrStateNotWritable): nft's rules stay, and .11's tcp/8090 stays
// dropped. The finishing of the switch ran during the reads, before Apply
// waited for Prepare, and took nft's rules out: a kernel change the
// follower's README promise ("a read-only or full state directory stops
// the run with the kernel exactly as it was") rules out, and which the
// follower's own PrepareState, made before Apply, prevented until
// Prepare ran alongside the reads.
func TestKernelPrepareFailsBeforeFinishingASwitch(t *testing.T) {
	t.Parallel()
	netnsTools(t, BackendNFT, BackendLegacy)
	c := mixCases(render.TableShared)[0]
	ctx := context.Background()
	e := newEnv(t, BackendNFT)
	nft, legacy := e.opts, e.opts
	nft.Backend, legacy.Backend = BackendNFT, BackendLegacy
	if _, err := Apply(ctx, c.a.build(), nft); err != nil {
		t.Fatal(err)
	}
	record := map[string][]byte{}
	files, err := filepath.Glob(filepath.Join(e.opts.StateDir, "apply-*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if record[f], err = os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Apply(ctx, c.b.build(), legacy); err != nil {
		t.Fatal(err)
	}
	// The kill: the record of before the switch, and reyes' rules left in nft.
	files, _ = filepath.Glob(filepath.Join(e.opts.StateDir, "apply-*"))
	for _, f := range files {
		os.Remove(f)
	}
	for f, b := range record {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.host.MustRun("iptables-nft", "--wait", "-N", render.InputChain)
	e.host.MustRun("iptables-nft", "--wait", "-A", render.InputChain, "-s", "10.99.1.11", "-p", "tcp", "--dport", "8090", "-j", "DROP")
	e.host.MustRun("iptables-nft", "--wait", "-I", "INPUT", "-j", render.InputChain)
	e.backend = BackendLegacy
	e.traffic(map[string]bool{"v4a/tcp8090": false, "v4b/udp8081": true})
	before := e.host.MustRun("iptables-nft-save", "-t", "filter")

	errDisk := errors.New("no space left on device")
	opts := legacy
	opts.Prepare = func() error {
		time.Sleep(50 * time.Millisecond) // an fsync that fails
		return errDisk
	}
	_, err = Apply(ctx, c.b.build(), opts)
	if !errors.Is(err, ErrStateNotWritable) || !errors.Is(err, errDisk) {
		t.Fatalf("Apply: %v, want ErrStateNotWritable and the cause", err)
	}
	if after := e.host.MustRun("iptables-nft-save", "-t", "filter"); saveNoise.ReplaceAllString(countersRE.ReplaceAllString(after, ""), "") !=
		saveNoise.ReplaceAllString(countersRE.ReplaceAllString(before, ""), "") {
		t.Errorf("the kernel changed although Prepare failed: nft before:\n%s\nafter:\n%s", before, after)
	}
	e.traffic(map[string]bool{"v4a/tcp8090": false, "v4b/udp8081": true})
}

// TestKernelOperatorRuleUsesReyesSet: an operator's own rule uses one of
// reyes' sets (here reyes4-g, to drop its members' tcp/8080), as one
// would to reuse a security group's members. A change of the set's
// members and of the rules loads the plan into the set's other slot; the
// slot the operator's rule holds cannot be destroyed, so both slots are
// in use. Every run after that failed ("cannot tell which one reyes'
// rules use"), the same plan's included: the host kept its rules but
// took no change until a person stepped in. Now reyes' own chains tell
// its slot from the operator's: the same plan is unchanged (no restore,
// no attempt to destroy the operator's slot; forced, it reloads the rest),
// and a change of that set,
// which has no free slot left, fails naming the set the other rule holds,
// with the kernel as it was; the operator's rule and set stay.
func TestKernelOperatorRuleUsesReyesSet(t *testing.T) {
	t.Parallel()
	c := mixCases(render.TableShared)[0]
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b)
			e.apply(c.a.build())
			e.ipt(render.IPv4, "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-m", "set", "--match-set", "reyes4-g", "src", "-j", "DROP")
			e.apply(c.b.build())
			before := e.snapshot()
			if res := e.apply(c.b.build()); res.Changed() {
				t.Errorf("the same plan again changed the kernel: %+v", res)
			}
			if after := e.snapshot(); after != before {
				t.Errorf("the same plan again changed the kernel:\n%s\nthen:\n%s", before, after)
			}
			force := e.opts
			force.Force = true // as after a drift check or a reboot's record
			if _, err := Apply(context.Background(), c.b.build(), force); err != nil {
				t.Errorf("the same plan again, forced: %v", err)
			}
			before = e.snapshot() // the other sets reloaded into their other slots
			_, err := Apply(context.Background(), c.a.build(), e.opts)
			if err == nil || !strings.Contains(err.Error(), "reyes4-g is in use by a rule that is not reyes'") {
				t.Errorf("a change of the set the operator holds: %v, want an error naming reyes4-g", err)
			}
			if after := e.snapshot(); after != before {
				t.Errorf("the refused change changed the kernel:\n%s\nthen:\n%s", before, after)
			}
			e.traffic(expectAll(allProbes, c.final))
			if rules := e.ipt(render.IPv4, "-S", "INPUT"); !strings.Contains(rules, "--match-set reyes4-g src -j DROP") {
				t.Errorf("the operator's rule is gone:\n%s", rules)
			}
		})
	}
}

// TestKernelBackendSwitchWithoutRecord: reyes ran on nft, then its state
// directory was lost (wiped, a new disk, a reinstall) and the host's
// iptables moved to legacy (update-alternatives). Nothing names nft any
// more, so the next run loads the plan into legacy and leaves nft's REYES
// chains as they were: a policy no run will ever change again, which
// still filters beside the new one (only what both allow passes), so
// every address or port a later ruleset allows stays dropped. (Calico and
// kube-proxy look at both backends' rules for this reason.)
func TestKernelBackendSwitchWithoutRecord(t *testing.T) {
	// Known hole, not fixed (issue 15 closing note): finding the other
	// backend's REYES chains costs a read of its tables on every run
	// without a record (free for legacy through /proc/net/ip_tables_names,
	// a command for nft). Kept to show the hole and to be turned on with
	// the fix.
	t.Skip("known: a backend switch with the state directory lost leaves the old backend's REYES chains (open, see the issue 15 closing note)")
	t.Parallel()
	netnsTools(t, BackendNFT, BackendLegacy)
	c := mixCases(render.TableShared)[0]
	ctx := context.Background()
	e := newEnv(t, BackendNFT)
	nft, legacy := e.opts, e.opts
	nft.Backend, legacy.Backend = BackendNFT, BackendLegacy
	if _, err := Apply(ctx, c.a.build(), nft); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(e.opts.StateDir, "apply-*"))
	for _, f := range files {
		os.Remove(f)
	}
	if _, err := Apply(ctx, c.b.build(), legacy); err != nil {
		t.Fatal(err)
	}
	e.backend = BackendLegacy
	e.traffic(expectAll(allProbes, c.final))
	for _, bin := range []string{"iptables-nft", "ip6tables-nft"} {
		if got := e.host.MustRun(bin, "-S"); strings.Contains(got, "REYES-") {
			t.Errorf("%s still holds reyes' rules of before:\n%s", bin, got)
		}
	}
}
