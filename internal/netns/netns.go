package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cloneNewNet is CLONE_NEWNET, the namespace type passed to setns(2).
const cloneNewNet = 0x40000000

// NS is a network namespace created for one test. Its methods are safe for
// concurrent use.
type NS struct {
	// Name is the namespace's name as ip netns knows it ("reyes-apply-1a2b3c").
	Name string

	t     testing.TB
	mu    sync.Mutex
	links int
}

// New creates a fresh network namespace named "reyes-<prefix>-<random>",
// brings its loopback up and deletes it (with everything in it) when the
// test ends. It skips the test unless it runs as root with the ip tool on
// PATH.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, "ip")
	n, err := Create(context.Background(), prefix)
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	n.t = t
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Errorf("netns: %v", err)
		}
	})
	return n
}

// Create is New for programs (the benchmarks): it creates
// "reyes-<prefix>-<random>" with its loopback up, and the caller deletes
// it with Delete. MustRun is not for its namespaces.
func Create(ctx context.Context, prefix string) (*NS, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("naming a namespace: %w", err)
	}
	n := &NS{Name: "reyes-" + prefix + "-" + hex.EncodeToString(b[:])}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w: %s", n.Name, err, bytes.TrimSpace(out))
	}
	if _, err := n.Exec(ctx, nil, "ip", "link", "set", "lo", "up"); err != nil {
		n.Delete()
		return nil, err
	}
	return n, nil
}

// LockFile is the namespace's private xtables lock file, which every
// command run through Command uses (XTABLES_LOCKFILE).
func (n *NS) LockFile() string {
	return filepath.Join(os.TempDir(), n.Name+".xtables.lock")
}

// Delete deletes the namespace with every interface, set and rule in it.
func (n *NS) Delete() error {
	defer os.Remove(n.LockFile())
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("deleting namespace %s: %w: %s", n.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces")
	}
}

// RequireTools skips the test when any of the named programs is not on PATH.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("kernel test: %s is not installed", tool)
		}
	}
}

// Command returns an *exec.Cmd that runs name with args inside the
// namespace (through ip netns exec) with LC_ALL=C.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	// A private xtables lock per namespace: iptables-legacy in a test must
	// never take (or wait for) the machine's own lock, which every
	// namespace shares. A caller's later XTABLES_LOCKFILE wins.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "XTABLES_LOCKFILE="+n.LockFile())
	return cmd
}

// Exec runs a command inside the namespace with stdin (nil for none) and
// returns its standard output. A failure's error includes standard error.
func (n *NS) Exec(ctx context.Context, stdin []byte, name string, args ...string) (string, error) {
	cmd := n.Command(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("running %s %s in %s: %w: %s",
			name, strings.Join(args, " "), n.Name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Run is Exec without stdin and with a 30 s timeout.
func (n *NS) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Exec(ctx, nil, args[0], args[1:]...)
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(args ...string) string {
	n.t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// Do runs fn on an OS thread that has entered the namespace, so that
// sockets fn opens and processes it starts (os/exec) live in the namespace.
// The thread is discarded afterwards, so the caller's goroutines never run
// in the namespace.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the runtime ends the thread with the goroutine,
		// so no other goroutine ever runs in the namespace.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + n.Name)
		if err != nil {
			errc <- fmt.Errorf("opening namespace %s: %w", n.Name, err)
			return
		}
		_, _, errno := syscall.RawSyscall(sysSetns, f.Fd(), cloneNewNet, 0)
		f.Close()
		if errno != 0 {
			errc <- fmt.Errorf("entering namespace %s: %w", n.Name, errno)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Endpoint is one end of a veth link.
type Endpoint struct {
	NS  *NS
	Dev string
	V4  netip.Addr
	V6  netip.Addr
}

// Link is a veth pair between two namespaces, with an IPv4 /24 and an IPv6
// /64 on it.
type Link struct {
	A, B Endpoint
}

// Connect creates a veth pair between a and b, gives the a end .1 / ::1 and
// the b end .2 / ::2 of a fresh subnet (10.99.<n>.0/24, fd00:99:<n>::/64),
// and brings both up. IPv6 addresses skip duplicate address detection, so
// they are usable at once. The link goes away with the namespaces.
func Connect(t testing.TB, a, b *NS) *Link {
	t.Helper()
	a.mu.Lock()
	a.links++
	idx := a.links
	a.mu.Unlock()
	if idx > 250 {
		t.Fatalf("netns: too many links from %s", a.Name)
	}
	devA, devB := fmt.Sprintf("veth%da", idx), fmt.Sprintf("veth%db", idx)
	// Create both ends in a (no name can clash with the root namespace's
	// devices), then move one to b.
	a.MustRun("ip", "link", "add", devA, "type", "veth", "peer", "name", devB)
	a.MustRun("ip", "link", "set", devB, "netns", b.Name)
	l := &Link{
		A: Endpoint{NS: a, Dev: devA,
			V4: netip.AddrFrom4([4]byte{10, 99, byte(idx), 1}),
			V6: netip.MustParseAddr(fmt.Sprintf("fd00:99:%x::1", idx))},
		B: Endpoint{NS: b, Dev: devB,
			V4: netip.AddrFrom4([4]byte{10, 99, byte(idx), 2}),
			V6: netip.MustParseAddr(fmt.Sprintf("fd00:99:%x::2", idx))},
	}
	for _, e := range []Endpoint{l.A, l.B} {
		e.NS.MustRun("ip", "addr", "add", e.V4.String()+"/24", "dev", e.Dev)
		e.NS.MustRun("ip", "-6", "addr", "add", e.V6.String()+"/64", "dev", e.Dev, "nodad")
		e.NS.MustRun("ip", "link", "set", e.Dev, "up")
	}
	// Wait for carrier on both ends: a packet sent before it is dropped
	// and TCP would retransmit only a second later.
	for _, e := range []Endpoint{l.A, l.B} {
		for i := 0; ; i++ {
			out := e.NS.MustRun("ip", "-o", "link", "show", "dev", e.Dev)
			if strings.Contains(out, "LOWER_UP") && strings.Contains(out, "state UP") {
				break
			}
			if i == 200 {
				t.Fatalf("netns: %s in %s did not come up: %s", e.Dev, e.NS.Name, out)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return l
}

// AddAddr adds an extra address (with prefix length) to an endpoint's
// device, e.g. a second source address to test per-source rules.
func (e Endpoint) AddAddr(t testing.TB, p netip.Prefix) {
	t.Helper()
	args := []string{"ip", "addr", "add", p.String(), "dev", e.Dev}
	if p.Addr().Is6() {
		args = []string{"ip", "-6", "addr", "add", p.String(), "dev", e.Dev, "nodad"}
	}
	e.NS.MustRun(args...)
}

// Exists reports whether the namespace still exists.
func (n *NS) Exists() bool {
	_, err := os.Stat("/run/netns/" + n.Name)
	return err == nil
}

// MAC returns the endpoint's hardware address.
func (e Endpoint) MAC(t testing.TB) string {
	t.Helper()
	f := strings.Fields(e.NS.MustRun("ip", "-o", "link", "show", "dev", e.Dev))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "link/ether" {
			return f[i+1]
		}
	}
	t.Fatalf("netns: no MAC address on %s in %s", e.Dev, e.NS.Name)
	return ""
}

// Addrs returns the global addresses on the endpoint's device.
func (e Endpoint) Addrs(t testing.TB) []netip.Addr {
	t.Helper()
	var as []netip.Addr
	for _, line := range strings.Split(e.NS.MustRun("ip", "-o", "addr", "show", "dev", e.Dev, "scope", "global"), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					as = append(as, p.Addr())
				}
			}
		}
	}
	return as
}

// StaticNeighbors gives each end permanent neighbour entries (ARP and NDP)
// for every global address of the other end, so that no neighbour
// discovery is needed. Firewall tests that filter ICMPv6 by source need
// this: a neighbour advertisement from a filtered source would otherwise
// be dropped like any other packet. Call it after adding addresses.
func (l *Link) StaticNeighbors(t testing.TB) {
	t.Helper()
	for _, p := range [][2]Endpoint{{l.A, l.B}, {l.B, l.A}} {
		self, peer := p[0], p[1]
		mac := peer.MAC(t)
		for _, a := range peer.Addrs(t) {
			self.NS.MustRun("ip", "neigh", "replace", a.String(), "lladdr", mac, "dev", self.Dev, "nud", "permanent")
		}
	}
}
