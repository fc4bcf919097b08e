package ruleset_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

var splitTime = time.Date(2026, 11, 29, 22, 0, 0, 0, time.UTC)

// store is a map of parts that counts what is fetched.
type store struct {
	mu      sync.Mutex
	parts   map[string][]byte
	fetched map[string]int
}

func newStore(parts map[string][]byte) *store {
	return &store{parts: parts, fetched: map[string]int{}}
}

func (s *store) fetch(_ context.Context, ref ruleset.PartRef) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.parts[ref.Name]
	if !ok {
		return nil, fmt.Errorf("reading %s: %w", ref.Name, ruleset.ErrPartMissing)
	}
	s.fetched[ref.Name]++
	return b, nil
}

// estates are the rulesets the split is tested on: the render golden
// inventories and synthetic estates.
func estates(t testing.TB) map[string]*ruleset.Ruleset {
	t.Helper()
	out := map[string]*ruleset.Ruleset{}
	dirs, err := filepath.Glob("../render/testdata/inventories/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		inv, err := sgsource.ReadDir(context.Background(), d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: splitTime, Scope: "prod", Serial: 17})
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		out["inventory-"+filepath.Base(d)] = rs
	}
	inv, err := sgsource.ReadDir(context.Background(), "../examples/quickstart/inventory")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: splitTime, Exclude: []string{"bastion"}})
	if err != nil {
		t.Fatal(err)
	}
	out["quickstart"] = rs
	for _, c := range []struct {
		name string
		cfg  synth.Config
	}{
		{"synth-small", synth.Small()},
		{"synth-small-prefixes-stale", func() synth.Config {
			c := synth.Small()
			c.Seed, c.Prefixes, c.StaleRefs = 7, 0.3, 5
			return c
		}()},
		{"synth-medium", synth.Medium()},
	} {
		rs, err := ruleset.Build(synth.Generate(c.cfg), ruleset.BuildOptions{GeneratedAt: splitTime, Exclude: []string{"vpn"}})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		out[c.name] = rs
	}
	return out
}

func mustSplit(t testing.TB, rs *ruleset.Ruleset, opts ruleset.SplitOptions) (*ruleset.Root, []byte, map[string][]byte) {
	t.Helper()
	root, parts, err := ruleset.Split(rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := ruleset.EncodeRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	return root, payload, parts
}

// TestSplitJoinRoundTrip: Encode(Join(Split(rs))) is Encode(rs), byte for
// byte, and the root payload decodes to the root Split returned.
func TestSplitJoinRoundTrip(t *testing.T) {
	for name, rs := range estates(t) {
		t.Run(name, func(t *testing.T) {
			want, err := ruleset.Encode(rs)
			if err != nil {
				t.Fatal(err)
			}
			for _, target := range []int64{0, 1, 512} {
				_, payload, parts := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: target})
				if !ruleset.IsRoot(payload) {
					t.Fatalf("IsRoot(payload) = false")
				}
				dec, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
				if err != nil {
					t.Fatalf("DecodeRoot: %v\n%s", err, payload)
				}
				again, err := ruleset.EncodeRoot(dec)
				if err != nil || !bytes.Equal(again, payload) {
					t.Fatalf("EncodeRoot(DecodeRoot(p)) differs (err %v)", err)
				}
				st := newStore(parts)
				joined, err := ruleset.Join(context.Background(), dec, st.fetch)
				if err != nil {
					t.Fatalf("Join: %v", err)
				}
				got, err := ruleset.Encode(joined)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("target %d: Encode(Join(Split(rs))) differs from Encode(rs)", target)
				}
				if len(st.fetched) != len(dec.Parts) || len(parts) != len(dec.Parts) {
					t.Fatalf("Join fetched %d parts of %d (split gave %d)", len(st.fetched), len(dec.Parts), len(parts))
				}
			}
		})
	}
}

func TestJoinMissingPart(t *testing.T) {
	rs := estates(t)["synth-small"]
	root, _, parts := mustSplit(t, rs, ruleset.SplitOptions{})
	delete(parts, root.Parts[3].Name)
	_, err := ruleset.Join(context.Background(), root, newStore(parts).fetch)
	if !errors.Is(err, ruleset.ErrPartMissing) {
		t.Fatalf("Join = %v, want ErrPartMissing", err)
	}
	_ = os.Stderr
}
