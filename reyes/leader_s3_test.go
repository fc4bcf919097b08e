package reyes

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/mototest"
	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

type synthSource struct{ seed int64 }

func (s synthSource) Fetch(context.Context) (*inventory.Inventory, error) {
	c := synth.Small()
	c.Seed = s.seed
	return synth.Generate(c), nil
}

// TestLeaderPartsOnS3: the parts layout on S3 (moto_server): the parts,
// the history copy and the root land under their keys, and garbage
// collection lists and deletes by S3's LastModified.
func TestLeaderPartsOnS3(t *testing.T) {
	endpoint := mototest.Start(t, mototest.Options{Why: "the leader's parts layout on S3"})
	ctx := context.Background()
	st := s3TestStore(t, "reyes-leader", "prod/ruleset.signed", testS3Options(endpoint))
	start := time.Now()
	signer, _, _ := sealtest.Key(t, "reyes test", start.Add(-time.Hour))
	var offset time.Duration
	l := &Leader{Source: synthSource{1}, Store: st, Signer: signer, Build: ruleset.BuildOptions{Scope: "test", TTL: time.Hour},
		Now: func() time.Time { return time.Now().Add(offset) }}
	rootOf := func() *ruleset.Root {
		t.Helper()
		obj, _, err := st.Get(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		payload, err := sign.OpenBytes(obj, signer.Keyring(), l.now())
		if err != nil {
			t.Fatal(err)
		}
		r, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	res, err := l.RunOnce(ctx)
	if err != nil || res.GCError != nil {
		t.Fatalf("RunOnce: %v; gc: %v", err, res.GCError)
	}
	first := rootOf()
	var want []string
	for _, p := range first.Parts {
		want = append(want, p.Name)
		body, err := st.Parts().Get(ctx, p.Name, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := ruleset.VerifyPart(p, body); err != nil {
			t.Error(err)
		}
	}
	if got := ListNames(t, st.Parts(), nil); !slices.Equal(got, want) {
		t.Errorf("parts in the bucket %q, want %q", got, want)
	}
	if n := len(ListNames(t, st.Roots(), nil)); n != 1 {
		t.Errorf("%d history copies", n)
	}

	// Two hours later (the first root expired), another estate: the
	// first root's parts and history copy go.
	offset = 2 * time.Hour
	l.Source = synthSource{2}
	res, err = l.RunOnce(ctx)
	if err != nil || res.GCError != nil {
		t.Fatalf("RunOnce: %v; gc: %v", err, res.GCError)
	}
	second := rootOf()
	want = want[:0]
	for _, p := range second.Parts {
		want = append(want, p.Name)
	}
	if got := ListNames(t, st.Parts(), nil); !slices.Equal(got, want) {
		t.Errorf("parts in the bucket after collection %q, want %q", got, want)
	}
	if n := len(ListNames(t, st.Roots(), nil)); n != 1 || res.RootsDeleted != 1 || res.PartsDeleted == 0 {
		t.Errorf("%d history copies; deleted %d roots, %d parts", n, res.RootsDeleted, res.PartsDeleted)
	}
}
