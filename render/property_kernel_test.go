package render_test

import (
	"context"
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
		rs, err := ruleset.Build(synth.Generate(cfg), ruleset.BuildOptions{GeneratedAt: genTime, Exclude: []string{"default"}})
		if err != nil {
			t.Fatal(err)
		}
		x := ruleset.NewIndex(rs)
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
