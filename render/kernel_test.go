package render_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/netns"
	"github.com/reyes-fw/reyes/internal/protocols"
	"github.com/reyes-fw/reyes/render"
)

// probeTimeout is how long a probe waits before it calls traffic blocked.
// Allowed traffic answers in milliseconds; the margin is for a loaded CI
// machine resolving neighbours.
const probeTimeout = 1500 * time.Millisecond

// TestKernelLoadsGolden loads every golden case with the real ipset and
// iptables-restore (--test first, then for real) in a fresh namespace, reads
// the rules back with iptables-save, and sends real packets from a peer
// namespace: each is delivered exactly when Decide says allow or pass.
func TestKernelLoadsGolden(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireTools(t, "ip", "ipset", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save")
	for _, lc := range allCases(t) {
		t.Run(lc.name, func(t *testing.T) {
			t.Parallel()
			host := netns.New(t, "rnd")
			loadPlan(t, host, lc.plan)
			checkSaved(t, host, lc.plan)
			sendPackets(t, host, lc)
		})
	}
}

func loadPlan(t *testing.T, host *netns.NS, plan *render.Plan) {
	t.Helper()
	ctx := context.Background()
	for _, fp := range plan.Families() {
		if _, err := host.Exec(ctx, fp.IpsetRestore(), "ipset", "restore"); err != nil {
			t.Fatalf("ipset restore: %v\n%s", err, fp.IpsetRestore())
		}
	}
	for _, fp := range plan.Families() {
		restore := "iptables-restore"
		ipt := "iptables"
		if fp.Family == render.IPv6 {
			restore, ipt = "ip6tables-restore", "ip6tables"
		}
		args := []string{"--wait"}
		if fp.Table == render.TableShared {
			args = append(args, "--noflush")
		}
		if _, err := host.Exec(ctx, fp.IptablesRestore(), restore, append(args, "--test")...); err != nil {
			t.Fatalf("%s --test: %v\n%s", restore, err, fp.IptablesRestore())
		}
		if _, err := host.Exec(ctx, fp.IptablesRestore(), restore, args...); err != nil {
			t.Fatalf("%s: %v", restore, err)
		}
		if fp.Table == render.TableShared {
			for _, h := range fp.Hooks {
				host.MustRun(ipt, "--wait", "-I", h.Builtin, "1", "-j", h.Chain)
			}
		}
	}
}

// checkSaved compares what iptables-save reads back from the kernel with
// the rules of the plan: the real tool is the oracle of the text.
func checkSaved(t *testing.T, host *netns.NS, plan *render.Plan) {
	t.Helper()
	for _, fp := range plan.Families() {
		save := "iptables-save"
		if fp.Family == render.IPv6 {
			save = "ip6tables-save"
		}
		out := host.MustRun(save, "-t", "filter")
		// iptables-save orders chains its own way; the order of rules
		// within a chain is what matters.
		var got, want []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "-A REYES-") || strings.HasPrefix(l, "-A INPUT") ||
				strings.HasPrefix(l, "-A OUTPUT") || strings.HasPrefix(l, "-A FORWARD") {
				got = append(got, l)
			}
		}
		if fp.Table == render.TableShared {
			for _, h := range fp.Hooks {
				want = append(want, "-A "+h.Builtin+" -j "+h.Chain)
			}
		}
		for _, l := range strings.Split(string(fp.IptablesRestore()), "\n") {
			if strings.HasPrefix(l, "-A ") {
				want = append(want, l)
			}
		}
		byChain := func(lines []string) {
			sort.SliceStable(lines, func(i, j int) bool {
				return strings.Fields(lines[i])[1] < strings.Fields(lines[j])[1]
			})
		}
		byChain(got)
		byChain(want)
		for i := range got {
			got[i] = protocols.Numeric(got[i])
		}
		for i := range want {
			want[i] = protocols.Numeric(want[i])
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s reads back differently from the plan:\n%s\n--- got:\n%s", save, lineDiff(strings.Join(want, "\n"), strings.Join(got, "\n")), strings.Join(got, "\n"))
		}
		// Drift detection reads back only the rule hashes.
		if got, want := render.SavedChainHashes([]byte(out)), fp.ChainHashes(); !maps.Equal(got, want) {
			t.Errorf("%s: the rule hashes read back differ from the plan's:\n got %v\nwant %v", save, got, want)
		}
	}
}

// kernelProbe says whether a golden packet can be sent for real, and how.
func kernelProbe(p goldenPacket) (string, bool) {
	switch {
	case p.IPsec, p.Established, p.InIface != "", p.OutIface != "", p.Hook != "", p.TCPFlags != "", p.Invalid:
		return "needs IPsec, an existing connection, loopback, crafted flags or another hook", false
	case p.Src.IsLoopback():
		return "a loopback source cannot be sent from a peer", false
	case p.Proto == "tcp" || p.Proto == "udp":
		return p.Proto, true
	case p.Proto == "icmp" && p.ICMPType == 8 && p.ICMPCode == 0,
		p.Proto == "icmpv6" && p.ICMPType == 128 && p.ICMPCode == 0:
		return "ping", true
	}
	return "only echo requests are sent for ICMP; other protocols are Decide-only", false
}

func sendPackets(t *testing.T, host *netns.NS, lc *loadedCase) {
	peer := netns.New(t, "rpe")
	link := netns.Connect(t, peer, host)
	srcs, dsts := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	ports := map[string]bool{}
	var probes []goldenPacket
	for _, p := range lc.c.Packets {
		if lc.c.NoKernelPackets {
			break
		}
		if _, ok := kernelProbe(p); !ok {
			continue
		}
		if dsts[p.Src] || srcs[p.Dst] || p.Src == p.Dst {
			continue // one address cannot be on both sides
		}
		srcs[p.Src], dsts[p.Dst] = true, true
		probes = append(probes, p)
	}
	if len(probes) == 0 {
		return
	}
	add := func(e netns.Endpoint, set map[netip.Addr]bool) {
		var addrs []netip.Addr
		for a := range set {
			addrs = append(addrs, a)
		}
		sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
		for _, a := range addrs {
			e.AddAddr(t, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	add(link.A, srcs)
	add(link.B, dsts)
	// Everything else is on-link: the peer answers for every source.
	for _, e := range []netns.Endpoint{link.A, link.B} {
		e.NS.MustRun("ip", "route", "add", "default", "dev", e.Dev)
		e.NS.MustRun("ip", "-6", "route", "add", "default", "dev", e.Dev)
	}
	for _, p := range probes {
		key := fmt.Sprintf("%s/%d", p.Proto, p.Port)
		if ports[key] {
			continue
		}
		ports[key] = true
		switch p.Proto {
		case "tcp":
			host.ServeTCP(t, uint16(p.Port))
		case "udp":
			host.ServeUDP(t, uint16(p.Port))
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(probes))
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := render.Decide(lc.plan, p.packet())
			if err != nil {
				errs[i] = err
				return
			}
			want := v.Action == render.Allowed || v.Action == render.Pass
			how, _ := kernelProbe(p)
			probe := func() error {
				switch how {
				case "tcp":
					return peer.TCP(p.Src, netip.AddrPortFrom(p.Dst, uint16(p.Port)), probeTimeout)
				case "udp":
					return peer.UDP(p.Src, netip.AddrPortFrom(p.Dst, uint16(p.Port)), probeTimeout)
				default:
					return peer.Ping(p.Src, p.Dst, probeTimeout)
				}
			}
			errs[i] = netns.Expect(want, probe)
			if errs[i] != nil && want {
				// One more try: a first packet can be lost to neighbour
				// resolution on a loaded machine; a drop never recovers.
				errs[i] = netns.Expect(want, probe)
			}
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: Decide says %s (%s): kernel disagrees: %w", p, v.Action, v.Rule, errs[i])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
