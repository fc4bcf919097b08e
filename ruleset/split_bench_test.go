package ruleset_test

import (
	"context"
	"os"
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
	hugeRuleset  = sync.OnceValue(func() *ruleset.Ruleset { return buildSynth(hugeConfig()) })
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
	benchSplit(b, hugeRuleset())
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
}

func BenchmarkLoadView(b *testing.B) { benchLoadView(b, largeRuleset()) }

func BenchmarkLoadViewHuge(b *testing.B) {
	skipHuge(b)
	benchLoadView(b, hugeRuleset())
}

// benchLoadView loads the view of the busiest of a sample of hosts (found
// by their addresses, as a follower without IMDS does): the one whose view
// reads the most bytes. It reports those bytes, the median host's, the
// root's, and the ratio of the root to the busiest first run (what a
// follower reads after a change elsewhere, relative to a first run).
func benchLoadView(b *testing.B, rs *ruleset.Ruleset) {
	root, payload, parts := mustSplit(b, rs, ruleset.SplitOptions{})
	fetch := func(_ context.Context, ref ruleset.PartRef) ([]byte, error) { return parts[ref.Name], nil }
	ctx := context.Background()
	var busiest ruleset.ViewRequest
	var most int64
	var sizes []int64
	step := max(1, len(rs.Interfaces)/400)
	for i := 0; i < len(rs.Interfaces); i += step {
		req := ruleset.ViewRequest{Addrs: rs.Interfaces[i].Addrs}
		v, err := ruleset.LoadView(ctx, root, req, fetch)
		if err != nil {
			b.Fatal(err)
		}
		sizes = append(sizes, v.Bytes)
		if v.Bytes > most {
			most, busiest = v.Bytes, req
		}
	}
	slices.Sort(sizes)
	median := sizes[len(sizes)/2]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ruleset.LoadView(ctx, root, busiest, fetch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(most), "busiest-view-bytes")
	b.ReportMetric(float64(median), "median-view-bytes")
	b.ReportMetric(float64(len(payload)), "root-bytes")
	b.ReportMetric(100*float64(len(payload))/float64(most+int64(len(payload))), "root-%-of-busiest-first-run")
	b.ReportMetric(100*float64(len(payload))/float64(median+int64(len(payload))), "root-%-of-median-first-run")
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
