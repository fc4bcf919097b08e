package apply

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/coreos/go-iptables/iptables"

	"github.com/reyes-fw/reyes/internal/netns"
	"github.com/reyes-fw/reyes/render"
)

// bigPlan builds an IPv4 shared-mode plan with nRules rules in
// REYES-FILTER over nSets sets holding nMembers members in all. bump
// changes one member of the first set.
func bigPlan(nRules, nSets, nMembers int, bump bool) *render.Plan {
	fp := render.FamilyPlan{Family: render.IPv4, Table: render.TableShared}
	for i := 0; i < nSets; i++ {
		s := render.Set{Name: fmt.Sprintf("reyes4-sg-%08x", i), Group: fmt.Sprintf("sg-%08x", i), Family: render.IPv4}
		per := nMembers / nSets
		for j := 0; j < per; j++ {
			n := i*per + j
			s.Members = append(s.Members, netip.AddrFrom4([4]byte{172, 16 + byte(n>>16), byte(n >> 8), byte(n)}))
		}
		fp.Sets = append(fp.Sets, s)
	}
	if bump {
		fp.Sets[0].Members[0] = netip.AddrFrom4([4]byte{172, 31, 255, 254})
	}
	est := anyM()
	est.Established = true
	in := render.Chain{Name: render.InputChain, Rules: []render.Rule{{Match: est, Action: render.Action{Kind: render.Return}}}}
	m := anyM()
	m.Src = netip.MustParsePrefix("10.0.0.0/8")
	in.Rules = append(in.Rules, render.Rule{Match: m, Action: render.Action{Kind: render.Goto, Chain: render.FilterChain}})
	filter := render.Chain{Name: render.FilterChain}
	for i := 0; i < nRules-3; i++ {
		m := anyM()
		m.SrcSet = fp.Sets[i%nSets].Name
		m.Protocol = 6
		m.DPortFrom, m.DPortTo = 1000+i/nSets, 1000+i/nSets
		filter.Rules = append(filter.Rules, render.Rule{Match: m, Action: render.Action{Kind: render.Goto, Chain: render.AllowChain}, Comment: fp.Sets[i%nSets].Group})
	}
	filter.Rules = append(filter.Rules, render.Rule{Match: anyM(), Action: render.Action{Kind: render.Drop}})
	fp.Chains = []render.Chain{in, filter, {Name: render.AllowChain, Rules: []render.Rule{{Match: anyM(), Action: render.Action{Kind: render.Return}}}}}
	fp.Hooks = []render.Hook{{Builtin: "INPUT", Chain: render.InputChain}}
	seal(&fp)
	return &render.Plan{Table: render.TableShared, V4: fp, V6: render.FamilyPlan{Family: render.IPv6}}
}

func benchNS(b *testing.B, be Backend) (*netns.NS, Options) {
	netns.RequireRoot(b)
	netns.RequireTools(b, "ip", "ipset", "iptables-"+string(be)+"-restore")
	ns := netns.New(b, "apply")
	lock := "XTABLES_LOCKFILE=" + b.TempDir() + "/xtables.lock"
	return ns, Options{Runner: ExecRunner{Netns: ns.Name, Env: []string{lock}}, Backend: be, StateDir: b.TempDir()}
}

const (
	benchRules   = 20000
	benchSets    = 1000
	benchMembers = 100000
)

// BenchmarkLoad compares, at 20,000 rules and 100,000 set members: the
// floor (ipset restore + iptables-restore of the same text, directly), a
// full Apply into an empty namespace, a one-member change and an unchanged
// plan.
func BenchmarkLoad(b *testing.B) {
	for _, be := range []Backend{BackendNFT, BackendLegacy} {
		p := bigPlan(benchRules, benchSets, benchMembers, false)
		p2 := bigPlan(benchRules, benchSets, benchMembers, true)
		ctx := context.Background()
		b.Run(string(be)+"/floor", func(b *testing.B) {
			ns, opts := benchNS(b, be)
			ipset := p.V4.IpsetRestore()
			ipt := append(bytes.TrimSuffix(p.V4.IptablesRestore(), []byte("COMMIT\n")), "-I INPUT 1 -j REYES-INPUT\nCOMMIT\n"...)
			for b.Loop() {
				b.StopTimer()
				if _, err := Remove(ctx, opts); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := ns.Exec(ctx, ipset, "ipset", "restore"); err != nil {
					b.Fatal(err)
				}
				if _, err := ns.Exec(ctx, ipt, "iptables-"+string(be)+"-restore", "--wait", "--noflush"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(be)+"/full", func(b *testing.B) { benchFullApply(b, be, p) })
		b.Run(string(be)+"/one-member", func(b *testing.B) {
			benchAlternate(b, be, p, p2, func(res Result) {
				if f := res.Families[0]; f.RulesLoaded || len(f.SetsSwapped) != 1 {
					b.Fatalf("one-member change did %+v", f)
				}
			})
		})
		// The revert's fallback (no kept text: after a kill, a first run,
		// a switch to exclusive): IPv4's table read back with iptables-save
		// before it changes, when both families load rules.
		b.Run(string(be)+"/read-back-fallback", func(b *testing.B) {
			_, opts := benchNS(b, be)
			if _, err := Apply(ctx, p, opts); err != nil {
				b.Fatal(err)
			}
			_, tl, err := opts.tools(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := opts.Runner.Run(ctx, nil, tl[render.IPv4].save, "-t", "filter"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(be)+"/unchanged", func(b *testing.B) {
			_, opts := benchNS(b, be)
			if _, err := Apply(ctx, p, opts); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				res, err := Apply(ctx, p, opts)
				if err != nil {
					b.Fatal(err)
				}
				if res.Changed() {
					b.Fatalf("unchanged plan did %+v", res)
				}
			}
		})
	}
}

// BenchmarkNaive loads rules the naive way, one "iptables -A" per rule
// through go-iptables, at 1,000 and 10,000 rules (sets loaded first, not
// timed), next to a full Apply of the same plan.
func BenchmarkNaive(b *testing.B) {
	ctx := context.Background()
	for _, be := range []Backend{BackendNFT, BackendLegacy} {
		for _, n := range []int{1000, 10000} {
			p := bigPlan(n, 100, 10000, false)
			b.Run(fmt.Sprintf("%s/%d/naive", be, n), func(b *testing.B) {
				ns, _ := benchNS(b, be)
				if _, err := ns.Exec(ctx, p.V4.IpsetRestore(), "ipset", "restore"); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					b.StopTimer()
					ns.MustRun("iptables-"+string(be), "--wait", "-F")
					ns.MustRun("iptables-"+string(be), "--wait", "-X")
					b.StartTimer()
					err := ns.Do(func() error {
						ipt, err := iptables.New(iptables.Path("/usr/sbin/iptables-" + string(be)))
						if err != nil {
							return err
						}
						for _, c := range p.V4.Chains {
							if err := ipt.NewChain("filter", c.Name); err != nil {
								return err
							}
						}
						for _, c := range p.V4.Chains {
							for _, r := range c.Rules {
								if err := ipt.Append("filter", c.Name, unquote(r.Args(render.IPv4))...); err != nil {
									return err
								}
							}
						}
						return ipt.Insert("filter", "INPUT", 1, "-j", render.InputChain)
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/%d/apply", be, n), func(b *testing.B) { benchFullApply(b, be, p) })
		}
	}
}

// unquote strips the restore-file quotes from arguments for exec.
func unquote(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.Trim(a, `"`)
	}
	return out
}

// benchFullApply times Apply of p into a namespace emptied (not timed)
// before each iteration.
func benchFullApply(b *testing.B, be Backend, p *render.Plan) {
	ctx := context.Background()
	_, opts := benchNS(b, be)
	for b.Loop() {
		b.StopTimer()
		if _, err := Remove(ctx, opts); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := Apply(ctx, p, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// benchAlternate applies p into a new namespace (not timed), then times
// Apply alternating between q and p, calling check (when not nil) with
// each result.
func benchAlternate(b *testing.B, be Backend, p, q *render.Plan, check func(Result)) {
	ctx := context.Background()
	_, opts := benchNS(b, be)
	if _, err := Apply(ctx, p, opts); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		next := q
		if i%2 == 1 {
			next = p
		}
		i++
		res, err := Apply(ctx, next, opts)
		if err != nil {
			b.Fatal(err)
		}
		if check != nil {
			check(res)
		}
	}
}
