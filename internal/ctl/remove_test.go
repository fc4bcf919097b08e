package ctl_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/internal/ctl"
	"github.com/reyes-fw/reyes/internal/netns"
)

// TestRemove loads reyes-looking chains, a jump and a set into a fresh
// namespace next to an administrator's rule, and removes reyes' only.
func TestRemove(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireTools(t, "ipset", "iptables-restore", "iptables-save")
	ns := netns.New(t, "ctlrm")
	ctx := context.Background()
	if _, err := ns.Exec(ctx, []byte("create reyes4-sg-0123456789abcdef0 hash:ip family inet\n"), "ipset", "restore"); err != nil {
		t.Fatal(err)
	}
	rules := "*filter\n:REYES-INPUT - [0:0]\n:ADMIN - [0:0]\n-A INPUT -j REYES-INPUT\n-A INPUT -p tcp --dport 22 -j ADMIN\n" +
		"-A REYES-INPUT -m set --match-set reyes4-sg-0123456789abcdef0 src -j RETURN\nCOMMIT\n"
	if _, err := ns.Exec(ctx, []byte(rules), "iptables-restore", "--wait", "--noflush"); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err := ctl.Run(ctx, []string{"remove", "--netns", ns.Name, "--state-dir", t.TempDir()}, &out, &errb)
	if err != nil {
		t.Fatalf("remove: %v\n%s", err, errb.String())
	}
	saved := ns.MustRun("iptables-save", "-t", "filter")
	if strings.Contains(saved, "REYES") || !strings.Contains(saved, "-A INPUT -p tcp -m tcp --dport 22 -j ADMIN") {
		t.Errorf("after remove:\n%s", saved)
	}
	if sets := ns.MustRun("ipset", "list", "-n"); strings.Contains(sets, "reyes4-") {
		t.Errorf("sets left: %s", sets)
	}
	if !strings.Contains(out.String(), "IPv4 sets removed: 1") {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestRemoveWaitsForTheStateLock: while a follower holds the state lock,
// remove waits --lock-wait, changes nothing and fails naming its pid.
func TestRemoveWaitsForTheStateLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := apply.Lock(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	var out, errb bytes.Buffer
	// No --netns and no root needed: it must stop before the kernel.
	err = ctl.Run(ctx, []string{"remove", "--state-dir", dir, "--lock-wait", "100ms"}, &out, &errb)
	if !errors.Is(err, apply.ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("remove while locked: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	if out.Len() > 0 {
		t.Errorf("remove printed %q", out.String())
	}
}
