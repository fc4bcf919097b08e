package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// concurrencyPlans renders a medium synthetic estate for one host in every
// group (thousands of rules, hundreds of sets), then derives two more
// plans from it: b moves members between sets and changes rules; c moves
// members only (same rules as a).
func concurrencyPlans(t *testing.T) []*render.Plan {
	t.Helper()
	inv := synth.Generate(synth.Medium())
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	host := render.Host{Interfaces: []render.HostInterface{{ID: "all"}}, VPCCIDRs: rs.VPCs[0].CIDRs}
	for _, g := range rs.Groups {
		host.Interfaces[0].Groups = append(host.Interfaces[0].Groups, g.ID)
	}
	render1 := func() *render.Plan {
		p, err := render.Render(rs, host, render.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := render1()
	derive := func(rules bool) *render.Plan {
		p := render1()
		for _, fp := range p.Families() {
			// Every third set gives its first member to the next set.
			for i := 0; i+1 < len(fp.Sets); i += 3 {
				if len(fp.Sets[i].Members) > 0 {
					m := fp.Sets[i].Members[0]
					fp.Sets[i].Members = slices.Clone(fp.Sets[i].Members[1:])
					fp.Sets[i+1].Members = append(slices.Clone(fp.Sets[i+1].Members), m)
				}
			}
			if rules {
				for ci := range fp.Chains {
					for ri, r := range fp.Chains[ci].Rules {
						if r.Match.SrcSet != "" && r.Match.DPortFrom > 0 && r.Match.DPortTo < 65535 {
							fp.Chains[ci].Rules[ri].Match.DPortTo++
						}
					}
				}
			}
			fp.Seal()
		}
		return p
	}
	return []*render.Plan{a, derive(true), derive(false)}
}

// TestKernelConcurrentAppliers runs two appliers on one state directory
// (as a timer and a manual run would), each taking the state lock as the
// follower does, over many rounds of changing plans: after every round
// the kernel's rules are one plan's and every set those rules use holds
// exactly that plan's members.
func TestKernelConcurrentAppliers(t *testing.T) {
	t.Parallel()
	plans := concurrencyPlans(t)
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			const rounds = 8
			for r := 0; r < rounds; r++ {
				var wg sync.WaitGroup
				errs := make([]error, 2)
				for w := 0; w < 2; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						lock, err := Lock(ctx, e.opts.StateDir, 2*time.Minute)
						if err != nil {
							errs[w] = err
							return
						}
						defer lock.Unlock()
						opts := e.opts
						opts.Runner = e.runner() // a runner of its own, as another process
						_, errs[w] = Apply(ctx, plans[(r+w)%len(plans)], opts)
					}()
				}
				wg.Wait()
				for w, err := range errs {
					if err != nil {
						t.Fatalf("round %d applier %d: %v", r, w, err)
					}
				}
				e.checkOnePlan(t, plans, fmt.Sprintf("round %d", r))
			}
		})
	}
}

// checkOnePlan finds the plans whose hash the kernel's rules carry, per
// family (two plans may share rules and differ in members), and checks
// that every set the rules use holds the members of one of them, the same
// one for all sets, and that no other reyes set is left.
func (e *env) checkOnePlan(t *testing.T, plans []*render.Plan, when string) {
	t.Helper()
	saved, err := parseSave([]byte(e.host.MustRun("ipset", "save")), "")
	if err != nil {
		t.Fatal(err)
	}
	for fi, fam := range []render.Family{render.IPv4, render.IPv6} {
		first := e.ipt(fam, "-S", render.InputChain, "1")
		// The set each rule uses, by the plan's name.
		used := map[string]string{}
		for _, l := range strings.Split(e.ipt(fam, "-S"), "\n") {
			f := strings.Fields(l)
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "--match-set" {
					used[strings.TrimSuffix(f[i+1], SlotSuffix)] = f[i+1]
				}
			}
		}
		var problems []string
		matched := false
		for pi, p := range plans {
			fp := p.Families()[fi]
			if !strings.Contains(first, "reyes plan="+fp.Hash()) {
				continue
			}
			var bad []string
			live := map[string]bool{}
			for _, s := range fp.Sets {
				name, ok := used[s.Name]
				if !ok {
					bad = append(bad, "no rule uses set "+s.Name)
					continue
				}
				live[name] = true
				if memberHash(saved[name]) != memberHash(s.Members) {
					bad = append(bad, fmt.Sprintf("set %s (as %s) holds %d members, not the plan's %d", s.Name, name, len(saved[name]), len(s.Members)))
				}
			}
			for name := range saved {
				if strings.HasPrefix(name, setPrefix(fam)) && !live[name] {
					bad = append(bad, "set "+name+" is left over")
				}
			}
			if len(bad) == 0 {
				matched = true
				break
			}
			problems = append(problems, fmt.Sprintf("plan %d: %d problems, first %s", pi, len(bad), bad[0]))
		}
		if !matched {
			t.Errorf("%s: ipv%d is no single plan (a mix): rules %q; %v", when, fam, first, problems)
		}
	}
}
