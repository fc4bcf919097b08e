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
	now := time.Now()
	signer, _, _ := sealtest.Key(b, "bench", now.Add(-time.Hour))
	store := reyes.NewFileStore(filepath.Join(b.TempDir(), "obj"), reyes.StoreOptions{})
	l := &reyes.Leader{Source: memSource{synth.Generate(synth.Large())}, Store: store, Signer: signer,
		Build: ruleset.BuildOptions{Scope: "bench"}, Refresh: -1}
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
