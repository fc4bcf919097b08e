package reyes_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/internal/netns"
)

// TestEndToEndKernelStartedAfresh: the state directory is on disk and
// outlives the kernel's rules: after a reboot, or in a network namespace
// made anew (a container restarted), apply's record still says what was
// loaded into a kernel that now holds nothing. The first run there loads
// the rules at once; it used to say "ruleset unchanged" and leave the host
// unfiltered until the next drift check (up to 5 minutes after every
// boot, and for ever with --drift-check -1).
func TestEndToEndKernelStartedAfresh(t *testing.T) {
	t.Parallel()
	netns.RequireRoot(t)
	netns.RequireTools(t, "ip", "iptables-save", "ip6tables-save", "iptables-restore", "ipset")
	leader, follower := binaries(t)
	dir := t.TempDir()
	_, secret, public := keys(t, dir, "leader")
	inv := writeInventory(t, filepath.Join(dir, "inventory"), estateInventory(true))
	store := filepath.Join(dir, "ruleset.signed")
	stateDir := filepath.Join(dir, "state")
	mustCode(t, "leader", run(t, nil, nil, leader, "--source", inv, "--store", store, "--signing-key", secret, "--scope", "e2e"), 0)
	follow := func(ns *netns.NS, extra ...string) result {
		t.Helper()
		args := []string{"--store", store, "--trusted-key", public, "--state-dir", stateDir, "--scope", "e2e",
			"--no-imds", "--addrs", "10.99.1.1", "--disable-file", filepath.Join(dir, "disabled")}
		return run(t, nil, []string{"ip", "netns", "exec", ns.Name}, follower, append(args, extra...)...)
	}
	for _, drift := range []string{"5m", "-1s"} {
		first := netns.New(t, "boot")
		mustCode(t, "first run", follow(first, "--drift-check", drift), 0)
		if r := follow(first, "--drift-check", drift); !strings.Contains(r.stderr, "ruleset unchanged") {
			t.Fatalf("second run in the same kernel was not 'unchanged':\n%v", r)
		}
		// The same host, booted again: the same state, an empty kernel.
		again := netns.New(t, "boot")
		r := follow(again, "--drift-check", drift)
		mustCode(t, "first run after the reboot", r, 0)
		if k := again.MustRun("iptables-save", "-t", "filter"); !strings.Contains(k, "-A INPUT -j REYES-INPUT") {
			t.Errorf("drift check %s: after a reboot the first run left the kernel without reyes' rules:\n%s\n%v", drift, k, r)
		}
		if r := follow(again, "--drift-check", drift); !strings.Contains(r.stderr, "ruleset unchanged") {
			t.Errorf("drift check %s: the run after that was not 'unchanged':\n%v", drift, r)
		}
	}
}
