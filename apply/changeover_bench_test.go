package apply

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/reyes-fw/reyes/render"
)

// shifted returns a copy of bigPlan's plan with every rule's port and
// every set's members changed: the worst case of a change, where rules
// and all members switch together.
func shifted(p *render.Plan) *render.Plan {
	q := *p
	fp := q.V4
	fp.Sets = slices.Clone(fp.Sets)
	for i := range fp.Sets {
		ms := make([]netip.Addr, len(fp.Sets[i].Members))
		for j, m := range fp.Sets[i].Members {
			b := m.As4()
			b[0] = 192
			ms[j] = netip.AddrFrom4(b)
		}
		fp.Sets[i].Members = ms
	}
	fp.Chains = slices.Clone(fp.Chains)
	for ci := range fp.Chains {
		fp.Chains[ci].Rules = slices.Clone(fp.Chains[ci].Rules)
		for ri := range fp.Chains[ci].Rules {
			if m := &fp.Chains[ci].Rules[ri].Match; m.DPortFrom > 0 {
				m.DPortFrom += 10000
				m.DPortTo += 10000
			}
		}
	}
	fp.Seal()
	q.V4 = fp
	return &q
}

// BenchmarkChangeOver alternates between two plans of 20,000 rules and
// 100,000 members that differ in every rule and every member.
func BenchmarkChangeOver(b *testing.B) {
	for _, be := range []Backend{BackendNFT, BackendLegacy} {
		p := bigPlan(benchRules, benchSets, benchMembers, false)
		q := shifted(p)
		b.Run(string(be), func(b *testing.B) { benchAlternate(b, be, p, q, nil) })
	}
}
