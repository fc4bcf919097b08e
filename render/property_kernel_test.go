package render_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/reyes-fw/reyes/internal/netns"
	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// TestKernelAcceptsRandomPlans is the renderer's property against the real
// parsers: for random valid estates, random hosts (one to three
// interfaces, or operator groups) and random options (both modes, both
// table modes, logging, fail-safe, the baseline), the plan loads with the
// real ipset restore and iptables-restore / ip6tables-restore --test, and
// reads back from the kernel rule for rule (checked on a sample).
func TestKernelAcceptsRandomPlans(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireTools(t, "ipset", "iptables-restore", "ip6tables-restore", "iptables-save")
	ns := netns.New(t, "rprop")
	ctx := context.Background()
	for seed := int64(1); seed <= 3; seed++ {
		cfg := synth.Small()
		cfg.Seed = seed
		cfg.StaleRefs = 3
		rs, x := randomEstate(t, cfg)
		rnd := rand.New(rand.NewPCG(uint64(seed), 7))
		for i := 0; i < 8; i++ {
			host := randomHost(rnd, rs, x)
			opts := render.Options{
				Mode:      render.Mode(rnd.IntN(2)),
				Table:     render.TableMode(rnd.IntN(2)),
				LogAccept: rnd.IntN(2) == 0,
				LogDrop:   rnd.IntN(2) == 0,
			}
			if rnd.IntN(2) == 0 {
				opts.ForeignCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
			}
			if rnd.IntN(2) == 0 {
				opts.FailSafe = []render.FailSafe{{Source: netip.MustParsePrefix("10.250.0.0/16"), Protocol: ruleset.ProtoTCP, Port: 22}}
			}
			if rnd.IntN(3) == 0 {
				opts.Baseline = &render.Baseline{AllowEchoRequest: rnd.IntN(2) == 0, Outbound: render.OutboundPolicy(rnd.IntN(2))}
			}
			plan, err := render.RenderIndex(x, host, opts)
			if err != nil {
				t.Fatalf("seed %d host %d: %v", seed, i, err)
			}
			for _, fp := range plan.Families() {
				if _, err := ns.Exec(ctx, fp.IpsetRestore(), "ipset", "restore"); err != nil {
					t.Fatalf("seed %d host %d: ipset restore: %v", seed, i, err)
				}
				restore := "iptables-restore"
				if fp.Family == render.IPv6 {
					restore = "ip6tables-restore"
				}
				args := []string{"--wait", "--test"}
				if fp.Table == render.TableShared {
					args = append(args, "--noflush")
				}
				if _, err := ns.Exec(ctx, fp.IptablesRestore(), restore, args...); err != nil {
					t.Fatalf("seed %d host %d (%+v): %s: %v\n%s", seed, i, opts, restore, err, fp.IptablesRestore())
				}
			}
			if i == 0 {
				// One plan per estate for real, read back rule for rule.
				loadPlan(t, ns, plan)
				checkSaved(t, ns, plan)
				ns.MustRun("iptables", "--wait", "-F")
				ns.MustRun("iptables", "--wait", "-X")
				ns.MustRun("ip6tables", "--wait", "-F")
				ns.MustRun("ip6tables", "--wait", "-X")
			}
			ns.MustRun("ipset", "destroy")
		}
	}
}

// randomHost is one to three interfaces of the estate, or (one time in
// five) an operator's list of groups without addresses, some unknown.
func randomHost(rnd *rand.Rand, rs *ruleset.Ruleset, x *ruleset.Index) render.Host {
	if rnd.IntN(5) == 0 {
		var groups []string
		for range 1 + rnd.IntN(6) {
			groups = append(groups, rs.Groups[rnd.IntN(len(rs.Groups))].ID)
		}
		return render.Host{Interfaces: []render.HostInterface{{Groups: append(groups, "sg-0badc0ffee0000001")}}}
	}
	first := rs.Interfaces[rnd.IntN(len(rs.Interfaces))]
	var h render.Host
	seen := map[string]bool{}
	for range 1 + rnd.IntN(3) {
		n := first
		if len(h.Interfaces) > 0 {
			n = rs.Interfaces[rnd.IntN(len(rs.Interfaces))]
		}
		if seen[n.ID] || len(n.Groups) == 0 {
			continue
		}
		seen[n.ID] = true
		h.Interfaces = append(h.Interfaces, render.HostInterface{ID: n.ID, Addrs: n.Addrs, Groups: n.Groups})
	}
	if v := x.VPC(first.VPC); v != nil {
		h.VPCCIDRs = v.CIDRs
	}
	if len(h.Interfaces) == 0 {
		h.Interfaces = []render.HostInterface{{Groups: []string{rs.Groups[0].ID}}}
	}
	return h
}

// randomEstate builds the random estate cfg describes (its default groups
// excluded) and indexes it.
func randomEstate(t *testing.T, cfg synth.Config) (*ruleset.Ruleset, *ruleset.Index) {
	t.Helper()
	rs, err := ruleset.Build(synth.Generate(cfg), ruleset.BuildOptions{GeneratedAt: genTime, Exclude: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	return rs, ruleset.NewIndex(rs)
}

// TestKernelAgreesOnDelegatedPrefixes: in random estates where a fifth of
// the interfaces have delegated prefixes (/28 and /80), packets from inside
// and just outside the prefixes of referenced groups get from the loaded
// kernel exactly what Decide says.
func TestKernelAgreesOnDelegatedPrefixes(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireTools(t, "ip", "ipset", "iptables-restore", "ip6tables-restore")
	for seed := int64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			cfg := synth.Small()
			cfg.Seed, cfg.Prefixes = seed, 0.2
			rs, x := randomEstate(t, cfg)
			host, packets := prefixProbes(t, rs, x, rand.New(rand.NewPCG(uint64(seed), 14)))
			plan, err := render.RenderIndex(x, host, render.Options{ForeignCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2600:1f18::/32")}})
			if err != nil {
				t.Fatal(err)
			}
			nets := 0
			for _, fp := range plan.Families() {
				for _, s := range fp.Sets {
					nets += len(s.Nets)
				}
			}
			if nets == 0 {
				t.Fatal("the plan has no delegated prefix: the test tests nothing")
			}
			outcomes := map[render.Outcome]int{}
			for _, p := range packets {
				v, err := render.Decide(plan, p.packet())
				if err != nil {
					t.Fatal(err)
				}
				outcomes[v.Action]++
			}
			if outcomes[render.Allowed] == 0 || outcomes[render.Dropped] == 0 {
				t.Fatalf("outcomes %v: want packets allowed by a prefix and packets dropped", outcomes)
			}
			lc := &loadedCase{name: "prefixes", plan: plan}
			lc.c.Packets = packets
			ns := netns.New(t, "rpfx")
			loadPlan(t, ns, plan)
			sendPackets(t, ns, lc)
		})
	}
}

// prefixProbes picks an interface whose groups allow TCP from a group with
// delegated prefixes, and packets to it from inside and just outside those
// prefixes, on the allowed port and on another.
func prefixProbes(t *testing.T, rs *ruleset.Ruleset, x *ruleset.Index, rnd *rand.Rand) (render.Host, []goldenPacket) {
	t.Helper()
	for _, n := range rs.Interfaces {
		var packets []goldenPacket
		for _, gid := range n.Groups {
			g := x.Group(gid)
			if g == nil {
				continue
			}
			for _, r := range g.Rules {
				if r.Protocol != ruleset.ProtoTCP {
					continue
				}
				refs := append([]string(nil), r.Groups...)
				for _, s := range r.Scoped {
					refs = append(refs, s.Group)
				}
				for _, ref := range refs {
					for _, p := range x.MemberPrefixes(ref) {
						var dst netip.Addr
						for _, a := range n.Addrs {
							if a.Is4() == p.Addr().Is4() {
								dst = a
								break
							}
						}
						if !dst.IsValid() || len(packets) >= 24 {
							continue
						}
						inside := offset(p.Addr(), uint64(1+rnd.IntN(14)))
						outside := offset(p.Addr(), uint64(1)<<(p.Addr().BitLen()-p.Bits())+uint64(rnd.IntN(3)))
						port := r.FromPort + rnd.IntN(r.ToPort-r.FromPort+1)
						if port == 0 {
							port = 1
						}
						other := 1 + (port+7919)%65535
						for _, src := range []netip.Addr{inside, outside} {
							packets = append(packets,
								goldenPacket{Src: src, Dst: dst, Proto: "tcp", Port: port},
								goldenPacket{Src: src, Dst: dst, Proto: "tcp", Port: other})
						}
					}
				}
			}
		}
		if len(packets) >= 8 {
			// No own VPC: every source is filtered, the interface's own
			// VPC too, so that each packet meets the sets.
			return render.Host{Interfaces: []render.HostInterface{{ID: n.ID, Addrs: n.Addrs, Groups: n.Groups}}}, packets
		}
	}
	t.Fatal("no interface is allowed TCP from a group with delegated prefixes")
	return render.Host{}, nil
}

// offset adds n to the low 64 bits of a.
func offset(a netip.Addr, n uint64) netip.Addr {
	b := a.As16()
	if a.Is4() {
		b4 := a.As4()
		v := uint32(b4[0])<<24 | uint32(b4[1])<<16 | uint32(b4[2])<<8 | uint32(b4[3])
		v += uint32(n)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	var lo uint64
	for i := 8; i < 16; i++ {
		lo = lo<<8 | uint64(b[i])
	}
	lo += n
	for i := 15; i >= 8; i-- {
		b[i] = byte(lo)
		lo >>= 8
	}
	return netip.AddrFrom16(b)
}
