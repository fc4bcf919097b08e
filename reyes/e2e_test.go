package reyes_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/mototest"
	"github.com/reyes-fw/reyes/internal/netns"
	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// The end-to-end tests run the real binaries: the leader publishes from an
// offline inventory (or a live EC2 endpoint) to a file or S3 store, and the
// follower runs inside a host namespace (ip netns exec), finds the host by
// its own addresses, and loads iptables rules and ipsets that real packets
// from peer namespaces then meet.
//
// The estate (one region, two peered VPCs):
//
//	host  10.99.1.1 fd00:99:1::1  eni-…a in vpc-…a (10.99.1.0/24), group web
//	same  10.99.1.2 fd00:99:1::2  in vpc-…a, no interface in the inventory
//	lb    10.99.2.2 fd00:99:2::2  eni-…b in vpc-…b (10.99.2.0/23), group lb
//	other 10.99.3.2 fd00:99:3::2  eni-…c in vpc-…b, group other
//
// web allows tcp/8080 from lb (removed in the second version), udp/8081
// from lb's addresses, ICMP echo from 10.99.3.0/24 and tcp/9090 from
// other. The follower filters 10.0.0.0/8 and fd00::/8 (the foreign ranges)
// except its own VPC.

const (
	sgWeb   = "sg-000000000000000a1"
	sgLB    = "sg-000000000000000b1"
	sgOther = "sg-000000000000000b2"
	vpcA    = "vpc-0000000000000000a"
	vpcB    = "vpc-0000000000000000b"
	owner   = "123456789012"
	e2eWait = time.Second // how long a denied probe waits
)

var (
	hostV4 = netip.MustParseAddr("10.99.1.1")
	hostV6 = netip.MustParseAddr("fd00:99:1::1")
)

// estateInventory is the estate; withLB8080=false is the second version,
// with web's tcp/8080 rule from lb removed.
func estateInventory(withLB8080 bool) *inventory.Inventory {
	port := func(p int32) *int32 { return &p }
	pfx := netip.MustParsePrefix
	var web []inventory.Permission
	if withLB8080 {
		web = append(web, inventory.Permission{Protocol: "tcp", FromPort: port(8080), ToPort: port(8080),
			// A reference to another VPC's group, over an active peering
			// (AWS honours no other without a transit gateway).
			Groups: []inventory.GroupRef{{GroupID: sgLB, UserID: owner, VPCID: vpcB, PeeringStatus: "active", PeeringConnectionID: "pcx-0000000000000000a"}}})
	}
	web = append(web,
		inventory.Permission{Protocol: "udp", FromPort: port(8081), ToPort: port(8081),
			CIDRs: []netip.Prefix{pfx("10.99.2.2/32"), pfx("fd00:99:2::2/128")}},
		inventory.Permission{Protocol: "icmp", FromPort: port(8), ToPort: port(-1), CIDRs: []netip.Prefix{pfx("10.99.3.0/24")}},
		inventory.Permission{Protocol: "tcp", FromPort: port(9090), ToPort: port(9090), CIDRs: []netip.Prefix{pfx("10.99.3.2/32")}},
	)
	addrs := func(ss ...string) []netip.Addr {
		var as []netip.Addr
		for _, s := range ss {
			as = append(as, netip.MustParseAddr(s))
		}
		return as
	}
	return &inventory.Inventory{Regions: []inventory.Region{{
		Name: "eu-west-1",
		VPCs: []inventory.VPC{
			{ID: vpcA, OwnerID: owner, CIDRs: []netip.Prefix{pfx("10.99.1.0/24"), pfx("fd00:99:1::/64")}},
			{ID: vpcB, OwnerID: owner, CIDRs: []netip.Prefix{pfx("10.99.2.0/23"), pfx("fd00:99:2::/63")}},
		},
		SecurityGroups: []inventory.SecurityGroup{
			{ID: sgWeb, Name: "web", Description: "web servers", OwnerID: owner, VPCID: vpcA, Ingress: web},
			{ID: sgLB, Name: "lb", Description: "load balancers", OwnerID: owner, VPCID: vpcB},
			{ID: sgOther, Name: "other", Description: "others", OwnerID: owner, VPCID: vpcB},
		},
		NetworkInterfaces: []inventory.NetworkInterface{
			{ID: "eni-0000000000000000a", VPCID: vpcA, OwnerID: owner, InterfaceType: "interface", InstanceID: "i-0000000000000000a",
				MAC: "02:00:00:00:00:0a", Addresses: addrs("10.99.1.1", "fd00:99:1::1"), Groups: []string{sgWeb}},
			{ID: "eni-0000000000000000b", VPCID: vpcB, OwnerID: owner, InterfaceType: "interface",
				MAC: "02:00:00:00:00:0b", Addresses: addrs("10.99.2.2", "fd00:99:2::2"), Groups: []string{sgLB}},
			{ID: "eni-0000000000000000c", VPCID: vpcB, OwnerID: owner, InterfaceType: "interface",
				MAC: "02:00:00:00:00:0c", Addresses: addrs("10.99.3.2", "fd00:99:3::2"), Groups: []string{sgOther}},
		},
	}}}
}

// topology is the host namespace and its three peers.
type topology struct {
	host, same, lb, other *netns.NS
}

// newTopology builds the estate's namespaces: the host is connected to
// each peer by a veth pair (10.99.<n>.1 on the host, .2 on the peer); the
// peers route to the host's interface address through their link.
func newTopology(t *testing.T, prefix string) *topology {
	t.Helper()
	netns.RequireRoot(t)
	netns.RequireTools(t, "ip", "iptables", "ip6tables", "iptables-save", "ip6tables-save", "iptables-restore", "ipset")
	tp := &topology{host: netns.New(t, prefix)}
	tp.same = netns.New(t, prefix)
	tp.lb = netns.New(t, prefix)
	tp.other = netns.New(t, prefix)
	var links []*netns.Link
	for i, peer := range []*netns.NS{tp.same, tp.lb, tp.other} {
		l := netns.Connect(t, tp.host, peer)
		if want := netip.AddrFrom4([4]byte{10, 99, byte(i + 1), 2}); l.B.V4 != want {
			t.Fatalf("link %d: peer address %s, the inventory wants %s", i, l.B.V4, want)
		}
		if i > 0 {
			peer.MustRun("ip", "route", "add", "10.99.1.0/24", "via", l.A.V4.String())
			peer.MustRun("ip", "-6", "route", "add", "fd00:99:1::/64", "via", l.A.V6.String())
		}
		links = append(links, l)
	}
	for _, l := range links {
		l.StaticNeighbors(t)
	}
	return tp
}

// flow is one probe from a peer to the host.
type flow struct {
	name  string
	from  *netns.NS
	src   netip.Addr
	proto string // tcp, udp, ping
	port  uint16
	want  bool
}

// checkFlows sends every probe at once and reports those whose outcome
// differs.
func checkFlows(t *testing.T, stage string, flows []flow) {
	t.Helper()
	errs := make([]error, len(flows))
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := hostV4
			if f.src.Is6() {
				dst = hostV6
			}
			errs[i] = netns.Expect(f.want, func() error {
				switch f.proto {
				case "tcp":
					return f.from.TCP(f.src, netip.AddrPortFrom(dst, f.port), e2eWait)
				case "udp":
					return f.from.UDP(f.src, netip.AddrPortFrom(dst, f.port), e2eWait)
				}
				return f.from.Ping(f.src, dst, e2eWait)
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %s: %v", stage, flows[i].name, err)
		}
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// estateFlows are the probes and what the security groups say of them;
// withLB8080 is the inventory version in force.
func (tp *topology) flows(withLB8080 bool) []flow {
	return []flow{
		{"lb tcp/8080 (group reference)", tp.lb, addr("10.99.2.2"), "tcp", 8080, withLB8080},
		{"lb tcp/8080 over IPv6", tp.lb, addr("fd00:99:2::2"), "tcp", 8080, withLB8080},
		{"other tcp/8080", tp.other, addr("10.99.3.2"), "tcp", 8080, false},
		{"other tcp/8080 over IPv6", tp.other, addr("fd00:99:3::2"), "tcp", 8080, false},
		{"lb udp/8081", tp.lb, addr("10.99.2.2"), "udp", 8081, true},
		{"lb udp/8081 over IPv6", tp.lb, addr("fd00:99:2::2"), "udp", 8081, true},
		{"other udp/8081", tp.other, addr("10.99.3.2"), "udp", 8081, false},
		{"other ping", tp.other, addr("10.99.3.2"), "ping", 0, true},
		{"lb ping", tp.lb, addr("10.99.2.2"), "ping", 0, false},
		{"other tcp/9090", tp.other, addr("10.99.3.2"), "tcp", 9090, true},
		{"lb tcp/9090", tp.lb, addr("10.99.2.2"), "tcp", 9090, false},
		{"same VPC tcp/9090 (not reyes' business)", tp.same, addr("10.99.1.2"), "tcp", 9090, true},
		{"same VPC udp/8081 over IPv6", tp.same, addr("fd00:99:1::2"), "udp", 8081, true},
	}
}

var counters = regexp.MustCompile(` \[\d+:\d+\]$`)

// kernelState is the namespace's firewall as text: both families' filter
// rules and every ipset, without comments and counters.
func kernelState(t *testing.T, ns *netns.NS) string {
	t.Helper()
	var b strings.Builder
	for _, c := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"ipset", "save"}} {
		for _, l := range strings.Split(ns.MustRun(c...), "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			b.WriteString(counters.ReplaceAllString(l, "") + "\n")
		}
	}
	return b.String()
}

// keys makes a leader key pair (valid from a day ago) and writes it.
func keys(t *testing.T, dir, name string) (signer *sign.Signer, secretFile, publicFile string) {
	t.Helper()
	signer, sec, pub := sealtest.Key(t, name, time.Now().Add(-24*time.Hour))
	secretFile, publicFile = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(secretFile, sec, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(publicFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return signer, secretFile, publicFile
}

func writeInventory(t *testing.T, dir string, inv *inventory.Inventory) string {
	t.Helper()
	if err := sgsource.WriteDir(dir, inv); err != nil {
		t.Fatal(err)
	}
	return dir
}

// published is the estate as the leader binary published it to a file
// store, for one-shot follower runs as the host 10.99.1.1.
type published struct {
	dir, store, public, stateDir string
	leader, follower             string
}

// publishEstate publishes estateInventory(true) with the leader binary
// into a fresh directory (skipping unless root with the kernel tools).
func publishEstate(t *testing.T) *published {
	t.Helper()
	netns.RequireRoot(t)
	netns.RequireTools(t, "ip", "iptables-save", "ip6tables-save", "iptables-restore", "ipset")
	leader, follower := binaries(t)
	dir := t.TempDir()
	_, secret, public := keys(t, dir, "leader")
	inv := writeInventory(t, filepath.Join(dir, "inventory"), estateInventory(true))
	store := filepath.Join(dir, "ruleset.signed")
	mustCode(t, "leader", run(t, nil, nil, leader, "--source", inv, "--store", store, "--signing-key", secret, "--scope", "e2e"), 0)
	return &published{dir: dir, store: store, public: public, stateDir: filepath.Join(dir, "state"),
		leader: leader, follower: follower}
}

// follow runs the follower binary once inside ns, without IMDS, with the
// disable file in the published directory.
func (p *published) follow(t *testing.T, ns *netns.NS, extra ...string) result {
	t.Helper()
	args := []string{"--store", p.store, "--trusted-key", p.public, "--state-dir", p.stateDir, "--scope", "e2e",
		"--no-imds", "--addrs", "10.99.1.1", "--disable-file", filepath.Join(p.dir, "disabled")}
	return run(t, nil, []string{"ip", "netns", "exec", ns.Name}, p.follower, append(args, extra...)...)
}

// mustCode fails the test unless r exited with code.
func mustCode(t *testing.T, what string, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\n%v", what, r.code, code, r)
	}
}

func TestEndToEndFileStore(t *testing.T) {
	t.Parallel()
	start := time.Now()
	leader, follower := binaries(t)
	tp := newTopology(t, "e2e")
	h := tp.host
	for _, p := range []uint16{8080, 9090} {
		h.ServeTCP(t, p)
	}
	h.ServeUDP(t, 8081)

	// Rules that are not reyes' own: an admin rule in INPUT and Docker's
	// chain. They must survive every step.
	h.MustRun("iptables", "--wait", "-A", "INPUT", "-s", "192.0.2.99/32", "-p", "tcp", "--dport", "7", "-j", "DROP")
	h.MustRun("ip6tables", "--wait", "-A", "INPUT", "-s", "2001:db8::99/128", "-j", "DROP")
	h.MustRun("iptables", "--wait", "-N", "DOCKER-USER")
	h.MustRun("iptables", "--wait", "-A", "DOCKER-USER", "-s", "192.0.2.0/24", "-j", "RETURN")
	foreign := []string{
		"-A INPUT -s 192.0.2.99/32 -p tcp -m tcp --dport 7 -j DROP",
		"-A INPUT -s 2001:db8::99/128 -j DROP",
		":DOCKER-USER -\n",
		"-A DOCKER-USER -s 192.0.2.0/24 -j RETURN",
	}
	checkForeign := func(stage string) {
		t.Helper()
		k := kernelState(t, h)
		for _, l := range foreign {
			if !strings.Contains(k, l) {
				t.Errorf("%s: %q is gone:\n%s", stage, l, k)
			}
		}
	}

	dir := t.TempDir()
	signer, secret, public := keys(t, dir, "leader")
	intruder, _, _ := keys(t, dir, "intruder")
	v1 := writeInventory(t, filepath.Join(dir, "inventory-v1"), estateInventory(true))
	v2 := writeInventory(t, filepath.Join(dir, "inventory-v2"), estateInventory(false))
	store := filepath.Join(dir, "ruleset.signed")
	stateDir := filepath.Join(dir, "state")
	disable := filepath.Join(dir, "disabled")
	metricsFile := filepath.Join(dir, "reyes.prom")
	publish := func(inv string, extra ...string) []byte {
		t.Helper()
		r := run(t, nil, nil, leader, append([]string{"--source", inv, "--store", store, "--signing-key", secret, "--scope", "e2e"}, extra...)...)
		mustCode(t, "leader", r, 0)
		b, err := os.ReadFile(store)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	put := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(store, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inHost := []string{"ip", "netns", "exec", h.Name}
	followerArgs := []string{"--store", store, "--trusted-key", public, "--state-dir", stateDir, "--scope", "e2e",
		"--no-imds", "--disable-file", disable, "--metrics-file", metricsFile,
		"--foreign-cidr", "10.0.0.0/8", "--foreign-cidr", "fd00::/8"}
	follow := func(extra ...string) result {
		t.Helper()
		return run(t, nil, inHost, follower, append(append([]string{}, followerArgs...), extra...)...)
	}
	state := func() string {
		b, _ := os.ReadFile(filepath.Join(stateDir, "state.json"))
		return string(b)
	}

	// Before reyes: everything passes.
	obj1 := publish(v1)
	empty := kernelState(t, h)

	t.Run("dry run changes nothing", func(t *testing.T) {
		r := follow("--dry-run")
		mustCode(t, "follower --dry-run", r, 0)
		for _, s := range []string{"# reyes dry run: scope e2e", "host found by addresses", "add reyes4-" + sgLB + "-n 10.99.2.2",
			"+ -A INPUT -j REYES-INPUT", "+ -A REYES-FILTER", "(web): tcp/8080 from " + sgLB, "# ---- IPv6: iptables-restore"} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("dry run output lacks %q:\n%s", s, r.stdout)
			}
		}
		if got := kernelState(t, h); got != empty {
			t.Errorf("dry run changed the kernel:\n%s", got)
		}
		if state() != "" {
			t.Error("dry run recorded state")
		}
		if prom, err := os.ReadFile(metricsFile); err == nil {
			t.Errorf("dry run wrote metrics as if it had applied a ruleset:\n%s", prom)
		}
	})

	t.Run("first ruleset", func(t *testing.T) {
		r := follow()
		mustCode(t, "follower", r, 0)
		if !strings.Contains(r.stderr, "method=addresses") || !strings.Contains(r.stderr, "ruleset applied") {
			t.Errorf("the host was not found by its own addresses, or nothing was applied:\n%s", r.stderr)
		}
		checkFlows(t, "first ruleset", tp.flows(true))
		checkForeign("first ruleset")

		before := kernelState(t, h)
		r = follow()
		mustCode(t, "follower again", r, 0)
		if !strings.Contains(r.stderr, "ruleset unchanged") {
			t.Errorf("second run with the same object:\n%s", r.stderr)
		}
		if got := kernelState(t, h); got != before {
			t.Errorf("an unchanged ruleset changed the kernel:\n%s\nwant\n%s", got, before)
		}
	})
	if t.Failed() {
		return
	}

	obj2 := publish(v2)
	t.Run("newer ruleset with a rule removed", func(t *testing.T) {
		r := follow()
		mustCode(t, "follower", r, 0)
		checkFlows(t, "second ruleset", tp.flows(false))
		checkForeign("second ruleset")
	})

	t.Run("refusals leave the kernel unchanged", func(t *testing.T) {
		good := kernelState(t, h)
		goodState := state()
		payload, _, err := sign.Unpack(obj2)
		if err != nil {
			t.Fatal(err)
		}
		untrusted, err := sign.Seal(payload, intruder, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// One bit of the payload (its last byte: the root is signed
		// gzip-compressed, so there is no text to edit).
		tampered := bytes.Clone(obj2)
		tampered[len(tampered)-1] ^= 1
		// An expired ruleset: generated two hours ago, valid for one.
		expiredStore := reyes.NewFileStore(filepath.Join(dir, "expired.signed"), reyes.StoreOptions{})
		old := &reyes.Leader{Source: sgsource.Dir{Path: v2}, Store: expiredStore, Signer: signer,
			Build: ruleset.BuildOptions{Scope: "e2e", TTL: time.Hour},
			Now:   func() time.Time { return time.Now().Add(-2 * time.Hour) }}
		if _, err := old.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		expired, err := os.ReadFile(filepath.Join(dir, "expired.signed"))
		if err != nil {
			t.Fatal(err)
		}
		otherScope := publish(v2, "--scope", "elsewhere")

		for _, c := range []struct {
			name, reason, metric string
			stage                reyes.Stage
			obj                  []byte
		}{
			{"older", reyes.ErrRollback.Error(), "rollback", reyes.StageRollback, obj1},
			{"tampered", sign.ErrBadSignature.Error(), "bad_signature", reyes.StageSignature, tampered},
			{"untrusted", sign.ErrUnknownSigner.Error(), "unknown_signer", reyes.StageSignature, untrusted},
			{"expired", reyes.ErrExpired.Error(), "expired", reyes.StageFreshness, expired},
			{"other scope", reyes.ErrWrongScope.Error(), "wrong_scope", reyes.StageFreshness, otherScope},
			{"garbage", "", "unknown_format", reyes.StageSignature, []byte("not a signed object\n")},
		} {
			t.Run(c.name, func(t *testing.T) {
				put(c.obj)
				r := follow()
				mustCode(t, "follower", r, 1)
				if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "reyes-follower: ") || !strings.Contains(r.stderr, c.reason) {
					t.Errorf("stderr is not one line naming %q:\n%s", c.reason, r.stderr)
				}
				if got := kernelState(t, h); got != good {
					t.Errorf("the kernel changed:\n%s\nwant\n%s", got, good)
				}
				if state() != goodState {
					t.Error("the state changed")
				}
				prom, _ := os.ReadFile(metricsFile)
				if !strings.Contains(string(prom), `reyes_follower_failure_causes_total{cause="`+c.metric+`"} 1`) {
					t.Errorf("metrics do not count the failure as %s:\n%s", c.metric, prom)
				}
				if st, err := reyes.LoadStatus(stateDir); err != nil || st.LastRun == nil || st.LastRun.Stage != c.stage ||
					!strings.Contains(string(prom), `reyes_follower_failures_total{reason="`+string(c.stage)+`"}`) {
					t.Errorf("the failure is not recorded at stage %s: %+v %v", c.stage, st.LastRun, err)
				}
			})
		}
		put(obj2)
		checkFlows(t, "after the refusals", tp.flows(false)[:2])
	})

	publish(v1) // a third, newer ruleset with the rule back
	t.Run("disable file pauses", func(t *testing.T) {
		before, beforeState := kernelState(t, h), state()
		if err := os.WriteFile(disable, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		r := follow()
		mustCode(t, "paused follower", r, 0)
		if !strings.Contains(r.stderr, "paused") {
			t.Errorf("no word of the pause:\n%s", r.stderr)
		}
		if got := kernelState(t, h); got != before || state() != beforeState {
			t.Errorf("a paused follower changed the kernel or the state:\n%s", got)
		}
		prom, _ := os.ReadFile(metricsFile)
		if !strings.Contains(string(prom), "reyes_follower_paused 1") {
			t.Errorf("metrics do not say paused:\n%s", prom)
		}
		checkFlows(t, "paused", tp.flows(false)[:1])
		if err := os.Remove(disable); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("dry run shows the difference", func(t *testing.T) {
		before, beforeState := kernelState(t, h), state()
		prom, _ := os.ReadFile(metricsFile)
		beforeMetrics := string(prom)
		r := follow("--dry-run")
		mustCode(t, "follower --dry-run", r, 0)
		if !strings.Contains(r.stdout, "difference from the kernel") || !regexp.MustCompile(`(?m)^\+ -A REYES-FILTER .*tcp/8080 from `+sgLB).MatchString(r.stdout) {
			t.Errorf("the dry run does not show the rule to add:\n%s", r.stdout)
		}
		for _, l := range strings.Split(r.stdout, "\n") {
			// Only the rule carrying the plan's hash changes besides.
			if strings.HasPrefix(l, "- ") && !strings.Contains(l, "reyes plan=") {
				t.Errorf("the dry run removes a rule it should keep: %s", l)
			}
		}
		if got := kernelState(t, h); got != before || state() != beforeState {
			t.Errorf("dry run changed the kernel or the state:\n%s", got)
		}
		if prom, _ := os.ReadFile(metricsFile); string(prom) != beforeMetrics {
			t.Errorf("dry run changed the metrics:\n%s\nwas\n%s", prom, beforeMetrics)
		}
	})

	t.Run("resumed", func(t *testing.T) {
		r := follow()
		mustCode(t, "resumed follower", r, 0)
		checkFlows(t, "third ruleset", tp.flows(true))
		checkForeign("third ruleset")
	})
	t.Logf("end to end with a file store: %v", time.Since(start).Round(time.Millisecond))
}

func TestEndToEndMoto(t *testing.T) {
	t.Parallel()
	start := time.Now()
	leader, follower := binaries(t)
	tp := newTopology(t, "e2em")
	h := tp.host
	url := mototest.Start(t, mototest.Options{NS: h, NeedCLI: true, Why: "the end-to-end test through S3 and EC2"})
	h.ServeTCP(t, 8080)
	dir := t.TempDir()
	_, secret, public := keys(t, dir, "leader")
	inHost := []string{"ip", "netns", "exec", h.Name}
	awsEnv := []string{"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true"}

	t.Run("S3 store", func(t *testing.T) {
		r := run(t, awsEnv, inHost, "aws", "--endpoint-url", url, "s3api", "create-bucket", "--bucket", "reyes")
		mustCode(t, "aws s3api create-bucket", r, 0)
		s3 := []string{"--store", "s3://reyes/e2e/ruleset.signed", "--s3-endpoint", url, "--s3-path-style", "--scope", "e2e"}
		publish := func(inv string) {
			t.Helper()
			r := run(t, awsEnv, inHost, leader, append([]string{"--source", inv, "--signing-key", secret}, s3...)...)
			mustCode(t, "leader", r, 0)
		}
		// The follower takes its configuration from all three layers.
		config := filepath.Join(dir, "follower.yaml")
		if err := os.WriteFile(config, []byte(fmt.Sprintf(`# the follower of the S3 end-to-end test
store: s3://reyes/e2e/ruleset.signed
s3_endpoint: %s
s3_path_style: true
scope: overridden-by-the-environment
foreign_cidr: [10.0.0.0/8]
state_dir: %s
`, url, filepath.Join(dir, "state"))), 0o644); err != nil {
			t.Fatal(err)
		}
		follow := func() result {
			t.Helper()
			env := append([]string{"REYES_CONFIG=" + config, "REYES_TRUSTED_KEY=" + public, "REYES_NO_IMDS=true", "REYES_SCOPE=e2e"}, awsEnv...)
			return run(t, env, inHost, follower, "--disable-file", filepath.Join(dir, "disabled"))
		}
		probes := func(withLB8080 bool) []flow {
			return []flow{
				{"lb tcp/8080", tp.lb, addr("10.99.2.2"), "tcp", 8080, withLB8080},
				{"other tcp/8080", tp.other, addr("10.99.3.2"), "tcp", 8080, false},
				{"same VPC tcp/8080", tp.same, addr("10.99.1.2"), "tcp", 8080, true},
			}
		}

		publish(writeInventory(t, filepath.Join(dir, "v1"), estateInventory(true)))
		r = follow()
		mustCode(t, "follower", r, 0)
		if !strings.Contains(r.stderr, "method=addresses") {
			t.Errorf("the host was not found by its addresses:\n%s", r.stderr)
		}
		checkFlows(t, "from S3", probes(true))

		before := kernelState(t, h)
		r = follow()
		mustCode(t, "follower again", r, 0)
		if !strings.Contains(r.stderr, "ruleset unchanged") || kernelState(t, h) != before {
			t.Errorf("an unchanged S3 object was not a no-op:\n%s", r.stderr)
		}

		publish(writeInventory(t, filepath.Join(dir, "v2"), estateInventory(false)))
		r = follow()
		mustCode(t, "follower", r, 0)
		checkFlows(t, "newer from S3", probes(false))
	})

	t.Run("live EC2 endpoint", func(t *testing.T) {
		// A small estate: a web group that lets an lb group in on 8443.
		seed := `set -eu
q() { aws --endpoint-url "$URL" ec2 "$@" --output text; }
VPC=$(q create-vpc --cidr-block 10.20.0.0/16 --query Vpc.VpcId)
SUB=$(q create-subnet --vpc-id "$VPC" --cidr-block 10.20.1.0/24 --query Subnet.SubnetId)
WEB=$(q create-security-group --vpc-id "$VPC" --group-name web --description web --query GroupId)
LB=$(q create-security-group --vpc-id "$VPC" --group-name lb --description lb --query GroupId)
q authorize-security-group-ingress --group-id "$WEB" --ip-permissions "IpProtocol=tcp,FromPort=8443,ToPort=8443,UserIdGroupPairs=[{GroupId=$LB}]" >/dev/null
q create-network-interface --subnet-id "$SUB" --groups "$WEB" --private-ip-address 10.20.1.10 --query NetworkInterface.NetworkInterfaceId >/dev/null
q create-network-interface --subnet-id "$SUB" --groups "$LB" --private-ip-address 10.20.1.50 --query NetworkInterface.NetworkInterfaceId >/dev/null
echo "$WEB $LB"
`
		env := append([]string{"URL=" + url, "AWS_DEFAULT_REGION=eu-west-1"}, awsEnv...)
		r := run(t, env, inHost, "bash", "-c", seed)
		mustCode(t, "seeding EC2", r, 0)
		ids := strings.Fields(r.stdout)
		if len(ids) != 2 {
			t.Fatalf("seeding printed %q", r.stdout)
		}
		web, lb := ids[0], ids[1]
		store := filepath.Join(dir, "ec2.signed")
		r = run(t, append([]string{"AWS_ENDPOINT_URL=" + url}, awsEnv...), inHost, leader,
			"--source", "ec2", "--region", "eu-west-1", "--store", store, "--signing-key", secret, "--scope", "ec2")
		mustCode(t, "leader --source ec2", r, 0)
		r = run(t, nil, inHost, follower, "--store", store, "--trusted-key", public, "--scope", "ec2", "--state-dir", filepath.Join(dir, "ec2-state"),
			"--no-imds", "--addrs", "10.20.1.10", "--dry-run")
		mustCode(t, "follower --dry-run", r, 0)
		for _, s := range []string{
			"add reyes4-" + lb + "-n 10.20.1.50",
			"-s 10.20.0.0/16 -m comment --comment \"own VPC\"",
			"--comment \"" + web + " (web): tcp/8443 from " + lb + "\"",
		} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("the dry run lacks %q:\n%s", s, r.stdout)
			}
		}
	})
	t.Logf("end to end through moto_server: %v", time.Since(start).Round(time.Millisecond))
}

// TestEndToEndBaselineOff: an operator turns --baseline on, then off
// again (the object unchanged). The second change must load: before
// issue 11 it failed for ever with "CHAIN_DEL failed (Device or resource
// busy): chain REYES-OUTPUT", since the jumps from OUTPUT and FORWARD to
// the baseline's chains stayed while the chains were deleted.
func TestEndToEndBaselineOff(t *testing.T) {
	t.Parallel()
	p := publishEstate(t)
	ns := netns.New(t, "base")
	mustCode(t, "without the baseline", p.follow(t, ns), 0)
	mustCode(t, "with the baseline", p.follow(t, ns, "--baseline", "--baseline-interface", "lo"), 0)
	mustCode(t, "without the baseline again", p.follow(t, ns), 0)
	k := ns.MustRun("iptables-save", "-t", "filter")
	for _, s := range []string{"REYES-OUTPUT", "REYES-FORWARD", "REYES-BASE-IN"} {
		if strings.Contains(k, s) {
			t.Errorf("the baseline's %s is still loaded:\n%s", s, k)
		}
	}
}

// TestEndToEndKernelStartedAfresh: the state directory is on disk and
// outlives the kernel's rules: after a reboot, or in a network namespace
// made anew (a container restarted), apply's record still says what was
// loaded into a kernel that now holds nothing. The first run there loads
// the rules at once; it used to say "ruleset unchanged" and leave the host
// unfiltered until the next drift check (up to 5 minutes after every
// boot, and for ever with --drift-check -1).
func TestEndToEndKernelStartedAfresh(t *testing.T) {
	t.Parallel()
	p := publishEstate(t)
	for _, drift := range []string{"5m", "-1s"} {
		first := netns.New(t, "boot")
		mustCode(t, "first run", p.follow(t, first, "--drift-check", drift), 0)
		if r := p.follow(t, first, "--drift-check", drift); !strings.Contains(r.stderr, "ruleset unchanged") {
			t.Fatalf("second run in the same kernel was not 'unchanged':\n%v", r)
		}
		// The same host, booted again: the same state, an empty kernel.
		again := netns.New(t, "boot")
		r := p.follow(t, again, "--drift-check", drift)
		mustCode(t, "first run after the reboot", r, 0)
		if k := again.MustRun("iptables-save", "-t", "filter"); !strings.Contains(k, "-A INPUT -j REYES-INPUT") {
			t.Errorf("drift check %s: after a reboot the first run left the kernel without reyes' rules:\n%s\n%v", drift, k, r)
		}
		if r := p.follow(t, again, "--drift-check", drift); !strings.Contains(r.stderr, "ruleset unchanged") {
			t.Errorf("drift check %s: the run after that was not 'unchanged':\n%v", drift, r)
		}
	}
}
