package ruleset_test

import (
	"context"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/ruleset"
)

// The split benchmarks run at synth.Large (50,000 interfaces), the size
// of issue 15's targets; the 500,000-interface ones only when named
// (-bench 'Huge') with REYES_BENCH_HUGE=1.
var (
	largeRuleset = sync.OnceValue(func() *ruleset.Ruleset { return buildSynth(synth.Large()) })
)

// hugeConfig is synth.Large scaled by 10: 500,000 interfaces, 50,000
// groups, in 16 regions of 15 VPCs.
func hugeConfig() synth.Config {
	c := synth.Large()
	c.Regions, c.VPCsPerRegion, c.Groups, c.ENIs = 16, 15, 50_000, 500_000
	return c
}

func buildSynth(c synth.Config) *ruleset.Ruleset {
	rs, err := ruleset.Build(synth.Generate(c), ruleset.BuildOptions{GeneratedAt: splitTime, Exclude: []string{"vpn"}})
	if err != nil {
		panic(err)
	}
	return rs
}

func BenchmarkSplit(b *testing.B) { benchSplit(b, largeRuleset()) }

func BenchmarkSplitHuge(b *testing.B) {
	skipHuge(b)
	benchSplit(b, buildSynth(hugeConfig()))
}

func skipHuge(b *testing.B) {
	if os.Getenv("REYES_BENCH_HUGE") == "" {
		b.Skip("set REYES_BENCH_HUGE=1 to run the 500,000-interface benchmarks")
	}
}

func benchSplit(b *testing.B, rs *ruleset.Ruleset) {
	b.ReportAllocs()
	var root *ruleset.Root
	var parts map[string][]byte
	for b.Loop() {
		var err error
		if root, parts, err = ruleset.Split(rs, ruleset.SplitOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	payload, err := ruleset.EncodeRoot(root)
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, p := range parts {
		total += int64(len(p))
	}
	b.ReportMetric(float64(len(payload)), "root-bytes")
	b.ReportMetric(float64(total), "parts-bytes")
	b.ReportMetric(float64(root.Bins[ruleset.KindAddrs]), "a-bins")
	b.ReportMetric(float64(root.Bins[ruleset.KindGroups]), "g-bins")
	b.ReportMetric(float64(root.Bins[ruleset.KindInterfaces]), "i-bins")
	b.ReportMetric(float64(root.Bins[ruleset.KindMembers]), "m-bins")
}

func BenchmarkLoadView(b *testing.B) { benchLoadView(b, largeRuleset) }

func BenchmarkLoadViewHuge(b *testing.B) {
	skipHuge(b)
	// Not kept in memory: the garbage collector of the benchmark would
	// scan gigabytes that no follower holds.
	benchLoadView(b, func() *ruleset.Ruleset { return buildSynth(hugeConfig()) })
}

// benchLoadView loads the views of the median and the busiest of a sample
// of 400 hosts (found by their addresses, as a follower without IMDS
// does), by the bytes their views read. It reports those bytes, the
// root's, and the ratio of the root to the first run (what a follower
// reads after a change elsewhere, relative to a first run).
func benchLoadView(b *testing.B, get func() *ruleset.Ruleset) {
	rs := get()
	root, payload, parts := mustSplit(b, rs, ruleset.SplitOptions{})
	fetch := func(_ context.Context, ref ruleset.PartRef) ([]byte, error) { return parts[ref.Name], nil }
	ctx := context.Background()
	type sample struct {
		req      ruleset.ViewRequest
		bytes    int64
		fastPath float64
	}
	var samples []sample
	step := max(1, len(rs.Interfaces)/400)
	for i := 0; i < len(rs.Interfaces); i += step {
		req := ruleset.ViewRequest{Addrs: rs.Interfaces[i].Addrs}
		v, err := ruleset.LoadView(ctx, root, req, fetch)
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, sample{req: req, bytes: v.Bytes})
	}
	slices.SortFunc(samples, func(a, b sample) int { return int(a.bytes - b.bytes) })
	cases := []struct {
		name string
		s    sample
	}{{"median", samples[len(samples)/2]}, {"busiest", samples[len(samples)-1]}}
	for i := range cases {
		cases[i].s.fastPath = fastPathShare(b, rs, root, cases[i].s.req, fetch)
	}
	rs = nil
	runtime.GC()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ruleset.LoadView(ctx, root, c.s.req, fetch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(100*c.s.fastPath, "fast-path-%")
			b.ReportMetric(float64(c.s.bytes), "view-bytes")
			b.ReportMetric(float64(len(payload)), "root-bytes")
			b.ReportMetric(100*float64(len(payload))/float64(c.s.bytes+int64(len(payload))), "root-%-of-first-run")
		})
	}
}

func BenchmarkJoin(b *testing.B) {
	root, _, parts := mustSplit(b, largeRuleset(), ruleset.SplitOptions{})
	fetch := func(_ context.Context, ref ruleset.PartRef) ([]byte, error) { return parts[ref.Name], nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ruleset.Join(context.Background(), root, fetch); err != nil {
			b.Fatal(err)
		}
	}
}

// fastPathShare is the share of the interfaces outside the plan of the
// host of req whose creation or deletion (its interface line, its address
// lines, its groups' members lines) leaves every part of the host's view in
// place: the chance that one change elsewhere in the estate costs that
// host only the root.
func fastPathShare(b *testing.B, rs *ruleset.Ruleset, root *ruleset.Root, req ruleset.ViewRequest, fetch ruleset.FetchFunc) float64 {
	v, err := ruleset.LoadView(context.Background(), root, req, fetch)
	if err != nil {
		b.Fatal(err)
	}
	read := map[string]bool{}
	for _, p := range v.Parts {
		read[p.Name] = true
	}
	plan := map[string]bool{}
	for _, g := range v.Ruleset.Groups {
		plan[g.ID] = true
	}
	part := func(kind, key string) string { p, _ := root.Part(kind, key); return p.Name }
	hit, all := 0, 0
	for i := range rs.Interfaces {
		n := &rs.Interfaces[i]
		if slices.ContainsFunc(n.Groups, func(g string) bool { return plan[g] }) {
			continue
		}
		all++
		touched := []string{part(ruleset.KindInterfaces, n.ID)}
		for _, a := range n.Addrs {
			touched = append(touched, part(ruleset.KindAddrs, a.String()))
		}
		for _, g := range n.Groups {
			touched = append(touched, part(ruleset.KindMembers, g))
		}
		if !slices.ContainsFunc(touched, func(p string) bool { return read[p] }) {
			hit++
		}
	}
	return float64(hit) / float64(max(all, 1))
}
