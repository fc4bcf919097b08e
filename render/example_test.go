package render_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

// Test your policy in CI: build the ruleset from an inventory, render it for
// a host, and ask Decide what happens to packets, without a kernel.
func ExampleDecide() {
	inv, err := sgsource.ReadDir(context.Background(), "testdata/inventories/sample")
	if err != nil {
		panic(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		panic(err)
	}
	// The bastion host of the sample estate, in VPC 10.30.0.0/16.
	host := render.Host{
		Interfaces: []render.HostInterface{{
			ID:     "eni-7be938ba11b8ec7b0",
			Addrs:  []netip.Addr{netip.MustParseAddr("10.30.0.5")},
			Groups: []string{"sg-bbd193eaf1c36c316"},
		}},
		VPCCIDRs: []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")},
	}
	plan, err := render.Render(rs, host, render.Options{})
	if err != nil {
		panic(err)
	}
	for _, pkt := range []render.Packet{
		{Src: netip.MustParseAddr("10.20.1.10"), Dst: netip.MustParseAddr("10.30.0.5"), Protocol: 17, Port: 500},
		{Src: netip.MustParseAddr("10.20.1.10"), Dst: netip.MustParseAddr("10.30.0.5"), Protocol: 6, Port: 22},
		{Src: netip.MustParseAddr("10.30.7.7"), Dst: netip.MustParseAddr("10.30.0.5"), Protocol: 6, Port: 22},
	} {
		v, err := render.Decide(plan, pkt)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s -> %s:%d/%d: %s (%s)\n", pkt.Src, pkt.Dst, pkt.Port, pkt.Protocol, v.Action, v.Comment)
	}
	// Output:
	// 10.20.1.10 -> 10.30.0.5:500/17: allow (sg-bbd193eaf1c36c316 (bastion): udp/500 from 10.20.0.0/16)
	// 10.20.1.10 -> 10.30.0.5:22/6: drop (no security group allows this)
	// 10.30.7.7 -> 10.30.0.5:22/6: pass (own VPC)
}

// Render prints the restore text that apply will load.
func ExampleRender() {
	rs := &ruleset.Ruleset{
		Header: ruleset.Header{Format: ruleset.Format, Type: ruleset.Type, Scope: "example",
			GeneratedAt: time.Unix(0, 0).UTC(), NotAfter: time.Unix(3600, 0).UTC()},
		Groups: []ruleset.Group{{ID: "sg-0123456789abcdef0", Name: "web", Region: "us-east-1", Rules: []ruleset.Rule{
			{Protocol: ruleset.ProtoTCP, FromPort: 443, ToPort: 443, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		}}},
	}
	if err := rs.Validate(); err != nil {
		panic(err)
	}
	host := render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-0123456789abcdef0"}}}}
	plan, err := render.Render(rs, host, render.Options{})
	if err != nil {
		panic(err)
	}
	fmt.Print(string(plan.V4.IptablesRestore()))
	// Output:
	// *filter
	// :REYES-INPUT - [0:0]
	// :REYES-FILTER - [0:0]
	// :REYES-ALLOW - [0:0]
	// :REYES-DROP - [0:0]
	// -A REYES-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "reyes plan=fa1799fca20dea13" -m comment --comment "reyes:1d620dcd5ac20daa" -j RETURN
	// -A REYES-INPUT -i lo -m comment --comment loopback -m comment --comment "reyes:afc0a4bc579cb049" -j RETURN
	// -A REYES-INPUT -s 10.0.0.0/8 -m comment --comment "foreign range" -m comment --comment "reyes:8441223f0776ce92" -g REYES-FILTER
	// -A REYES-FILTER -s 10.0.0.0/8 -p tcp -m tcp --dport 443 -m comment --comment "sg-0123456789abcdef0 (web): tcp/443 from 10.0.0.0/8" -m comment --comment "reyes:2709b2c9a99a27ac" -g REYES-ALLOW
	// -A REYES-FILTER -m comment --comment "no security group allows this" -m comment --comment "reyes:31312c4ef00ec828" -g REYES-DROP
	// -A REYES-ALLOW -m comment --comment "reyes:67e34d432411b3c3" -j RETURN
	// -A REYES-DROP -m comment --comment "reyes:a95751998aabd0bd" -j DROP
	// COMMIT
}
