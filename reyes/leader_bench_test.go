package reyes_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
)

type memSource struct{ inv *inventory.Inventory }

func (m memSource) Fetch(context.Context) (*inventory.Inventory, error) { return m.inv, nil }

// BenchmarkLeaderRunOnceLarge is a whole leader run at 50,000 ENIs with
// the previous object in the store (read, verified and compared first).
func BenchmarkLeaderRunOnceLarge(b *testing.B) {
	for _, layout := range []reyes.Layout{reyes.LayoutParts, reyes.LayoutWhole} {
		b.Run(string(layout), func(b *testing.B) { benchmarkLeaderRunOnceLarge(b, layout) })
	}
}

func benchmarkLeaderRunOnceLarge(b *testing.B, layout reyes.Layout) {
	now := time.Now()
	signer, _, _ := sealtest.Key(b, "bench", now.Add(-time.Hour))
	store := reyes.NewFileStore(filepath.Join(b.TempDir(), "obj"), reyes.StoreOptions{})
	l := &reyes.Leader{Source: memSource{synth.Generate(synth.Large())}, Store: store, Signer: signer,
		Build: ruleset.BuildOptions{Scope: "bench"}, Refresh: -1, Layout: layout}
	if _, err := l.RunOnce(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.RunOnce(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLeaderOneChangeLarge is a leader run at 50,000 ENIs in the
// parts layout where one member changed since the last publish (each run
// alternates between two estates that differ by one address): it reports
// the parts and bytes put per run next to the estate's, the figure of
// "the leader puts only what changed".
func BenchmarkLeaderOneChangeLarge(b *testing.B) {
	now := time.Now()
	signer, _, _ := sealtest.Key(b, "bench", now.Add(-time.Hour))
	inv := synth.Generate(synth.Large())
	other, _ := varied(b, inv)
	store := reyes.NewFileStore(filepath.Join(b.TempDir(), "obj"), reyes.StoreOptions{})
	l := &reyes.Leader{Source: memSource{inv}, Store: store, Signer: signer,
		Build: ruleset.BuildOptions{Scope: "bench"}, Refresh: -1}
	first, err := l.RunOnce(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var parts, bytes int64
	estates := []memSource{{other}, {inv}}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		l.Source = estates[i%2]
		i++
		res, err := l.RunOnce(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		parts += int64(res.PartsPut)
		bytes += res.BytesPut
	}
	b.ReportMetric(float64(parts)/float64(i), "parts-put/op")
	b.ReportMetric(float64(bytes)/float64(i), "bytes-put/op")
	b.ReportMetric(float64(first.Parts), "parts")
	b.ReportMetric(float64(first.BytesPut), "first-bytes-put")
}
