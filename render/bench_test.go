package render_test

import (
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// busiestHost is the host view of the interface with the most groups, so
// that it renders the most rules and sets.
func busiestHost(rs *ruleset.Ruleset) render.Host {
	best := 0
	for i, n := range rs.Interfaces {
		if len(n.Groups) > len(rs.Interfaces[best].Groups) {
			best = i
		}
	}
	n := rs.Interfaces[best]
	h := render.Host{Interfaces: []render.HostInterface{{ID: n.ID, Addrs: n.Addrs, Groups: n.Groups}}}
	for _, v := range rs.VPCs {
		if v.ID == n.VPC {
			h.VPCCIDRs = v.CIDRs
		}
	}
	return h
}

func largeRuleset(b *testing.B) *ruleset.Ruleset {
	b.Helper()
	rs, err := ruleset.Build(synth.Generate(synth.Large()), ruleset.BuildOptions{GeneratedAt: genTime})
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// BenchmarkRenderLarge renders the busiest host of the large estate (5,000
// groups, 50,000 ENIs, 100,000 addresses, 20,000 rules), index included.
func BenchmarkRenderLarge(b *testing.B) {
	rs := largeRuleset(b)
	host := busiestHost(rs)
	b.ReportAllocs()
	b.ResetTimer()
	var rules, members int
	for b.Loop() {
		p, err := render.Render(rs, host, render.Options{})
		if err != nil {
			b.Fatal(err)
		}
		rules, members = 0, 0
		for _, fp := range p.Families() {
			for _, c := range fp.Chains {
				rules += len(c.Rules)
			}
			for _, s := range fp.Sets {
				members += len(s.Members)
			}
		}
	}
	b.ReportMetric(float64(rules), "rules")
	b.ReportMetric(float64(members), "members")
}

// BenchmarkPipelineLarge is the leader's build and encode plus the
// follower's decode and render, at the large size: the 1 s target.
func BenchmarkPipelineLarge(b *testing.B) {
	inv := synth.Generate(synth.Large())
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	for b.Loop() {
		rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: time.Unix(1e9, 0)})
		if err != nil {
			b.Fatal(err)
		}
		data, err := ruleset.Encode(rs)
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
		got, err := ruleset.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := render.Render(got, busiestHost(got), render.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "payload-bytes")
}
