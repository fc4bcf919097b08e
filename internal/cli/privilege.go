package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrNotPrivileged: the follower would change the kernel's firewall but
// lacks CAP_NET_ADMIN (it is not root, or root without that capability).
var ErrNotPrivileged = errors.New("needs root or CAP_NET_ADMIN")

// capNetAdmin is CAP_NET_ADMIN's bit in the capability sets.
const capNetAdmin = 12

// hasNetAdmin reports whether the process's effective capability set, as
// the status file (/proc/self/status) says, holds CAP_NET_ADMIN. ok is
// false when the file does not say.
func hasNetAdmin(statusFile string) (has, ok bool) {
	f, err := os.Open(statusFile)
	if err != nil {
		return false, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, found := strings.CutPrefix(sc.Text(), "CapEff:")
		if !found {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return false, false
		}
		return caps&(1<<capNetAdmin) != 0, true
	}
	return false, false
}

// checkPrivilege fails with ErrNotPrivileged when the process lacks
// CAP_NET_ADMIN: ipset and iptables would refuse with a bare "Operation
// not permitted".
func checkPrivilege(statusFile string) error {
	if has, ok := hasNetAdmin(statusFile); ok && !has {
		return fmt.Errorf("%w: loading ipsets and iptables rules needs it, and this process (uid %d) does not have it: run as root (the shipped unit does), give it CAP_NET_ADMIN, or use --dry-run", ErrNotPrivileged, os.Geteuid())
	}
	return nil
}

// permissionHint adds the reason to an apply error that the kernel refused
// for want of privilege ("Operation not permitted", "Permission denied
// (you must be root)").
func permissionHint(err error, statusFile string) error {
	if err == nil || errors.Is(err, ErrNotPrivileged) {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, "Operation not permitted") && !strings.Contains(msg, "you must be root") {
		return err
	}
	if has, ok := hasNetAdmin(statusFile); ok && !has {
		return fmt.Errorf("%w (%w: run as root or give the follower CAP_NET_ADMIN)", err, ErrNotPrivileged)
	}
	return err
}
