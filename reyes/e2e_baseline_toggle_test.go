package reyes_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/internal/netns"
)

// TestEndToEndBaselineOff: an operator turns --baseline on, then off
// again (the object unchanged). The second change must load: before
// issue 11 it failed for ever with "CHAIN_DEL failed (Device or resource
// busy): chain REYES-OUTPUT", since the jumps from OUTPUT and FORWARD to
// the baseline's chains stayed while the chains were deleted.
func TestEndToEndBaselineOff(t *testing.T) {
	t.Parallel()
	netns.RequireRoot(t)
	netns.RequireTools(t, "ip", "iptables-save", "ip6tables-save", "iptables-restore", "ipset")
	leader, follower := binaries(t)
	dir := t.TempDir()
	_, secret, public := keys(t, dir, "leader")
	inv := writeInventory(t, filepath.Join(dir, "inventory"), estateInventory(true))
	store := filepath.Join(dir, "ruleset.signed")
	mustCode(t, "leader", run(t, nil, nil, leader, "--source", inv, "--store", store, "--signing-key", secret, "--scope", "e2e"), 0)
	ns := netns.New(t, "base")
	follow := func(extra ...string) result {
		t.Helper()
		args := []string{"--store", store, "--trusted-key", public, "--state-dir", filepath.Join(dir, "state"), "--scope", "e2e",
			"--no-imds", "--addrs", "10.99.1.1", "--disable-file", filepath.Join(dir, "disabled")}
		return run(t, nil, []string{"ip", "netns", "exec", ns.Name}, follower, append(args, extra...)...)
	}
	mustCode(t, "without the baseline", follow(), 0)
	mustCode(t, "with the baseline", follow("--baseline", "--baseline-interface", "lo"), 0)
	mustCode(t, "without the baseline again", follow(), 0)
	k := ns.MustRun("iptables-save", "-t", "filter")
	for _, s := range []string{"REYES-OUTPUT", "REYES-FORWARD", "REYES-BASE-IN"} {
		if strings.Contains(k, s) {
			t.Errorf("the baseline's %s is still loaded:\n%s", s, k)
		}
	}
}
