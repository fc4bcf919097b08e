package reyes_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/netns"
)

// nsIdentity is what /proc/self/ns/net names inside n: the nsfs device
// and inode, as the follower's kernelInstance reads them.
func nsIdentity(t *testing.T, n *netns.NS) string {
	t.Helper()
	out, err := n.Exec(context.Background(), nil, "stat", "-L", "-c", "%d:%i", "/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// TestEndToEndNetnsInodeReused: a network namespace made anew (a
// container restarted) can get the inode number of the one it replaces:
// the kernel hands out the lowest free one, and the old namespace freed
// it. The follower's record of the kernel named the namespace by its
// device and inode only, so in the new, empty namespace the first run said
// "ruleset unchanged" and left the host unfiltered until the next drift
// check (for ever with --drift-check -1), which the README promises never
// happens ("in a network namespace made anew, loads everything again").
func TestEndToEndNetnsInodeReused(t *testing.T) {
	t.Parallel()
	p := publishEstate(t)
	follow := func(n *netns.NS) result {
		t.Helper()
		args := []string{"--store", p.store, "--trusted-key", p.public, "--state-dir", p.stateDir, "--scope", "e2e",
			"--no-imds", "--addrs", "10.99.1.1", "--disable-file", p.dir + "/disabled", "--drift-check", "-1s"}
		return run(t, []string{"XTABLES_LOCKFILE=" + n.LockFile()}, []string{"ip", "netns", "exec", n.Name}, p.follower, args...)
	}
	first, err := netns.Create(context.Background(), "reuse")
	if err != nil {
		t.Fatal(err)
	}
	mustCode(t, "first run", follow(first), 0)
	old := nsIdentity(t, first)
	if err := first.Delete(); err != nil {
		t.Fatal(err)
	}
	// Namespaces are made (and kept, so that each takes the next free
	// number) until one gets the old one's inode: the namespace's
	// teardown frees it a little later, and other tests take numbers too.
	var again *netns.NS
	deadline := time.Now().Add(20 * time.Second)
	for again == nil && time.Now().Before(deadline) {
		n := netns.New(t, "reuse")
		if nsIdentity(t, n) == old {
			again = n
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if again == nil {
		t.Skipf("no new namespace got the inode %s again within 20 s", old)
	}
	r := follow(again)
	mustCode(t, "first run in the new namespace", r, 0)
	if k := again.MustRun("iptables-save", "-t", "filter"); !strings.Contains(k, "-A INPUT -j REYES-INPUT") {
		t.Errorf("a namespace made anew with the old one's inode (%s) was left without reyes' rules:\n%s\n%v", old, k, r)
	}
}
