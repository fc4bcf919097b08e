package ruleset_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
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
}

// TestSplitContentAddressed: the same ruleset splits to the same parts;
// after one interface changes, only the parts holding its lines (its
// interface bin, the bins of its old and new addresses, the bins of its
// groups) get new names, so a leader puts only those.
func TestSplitContentAddressed(t *testing.T) {
	rs := estates(t)["synth-medium"]
	opts := ruleset.SplitOptions{TargetBinBytes: 1024}
	root, payload, parts := mustSplit(t, rs, opts)
	_, payload2, parts2 := mustSplit(t, rs, opts)
	if !bytes.Equal(payload, payload2) || len(parts) != len(parts2) {
		t.Fatal("two splits of one ruleset differ")
	}
	for name, b := range parts {
		if !bytes.Equal(parts2[name], b) {
			t.Fatalf("part %s differs between two splits", name)
		}
		if r, ok := partRef(root, name); !ok || r.Size != int64(len(b)) {
			t.Fatalf("part %s: not in the root, or of another size", name)
		}
	}
	changed := cloneRuleset(rs)
	changed.Serial++
	n := &changed.Interfaces[len(changed.Interfaces)/3]
	old := n.Addrs[0]
	n.Addrs = slices.Clone(n.Addrs)
	n.Addrs[0] = netip.MustParseAddr("10.250.0.1")
	n.Addrs = ruleset.SortedAddrs(n.Addrs)
	root2, _, parts2 := mustSplit(t, changed, ruleset.SplitOptions{Previous: root.Bins, TargetBinBytes: 1024})
	if !maps.Equal(root2.Bins, root.Bins) {
		t.Fatalf("bins changed: %v -> %v", root.Bins, root2.Bins)
	}
	want := map[string]bool{}
	for _, k := range [][2]string{{ruleset.KindInterfaces, n.ID}, {ruleset.KindAddrs, old.String()}, {ruleset.KindAddrs, "10.250.0.1"}} {
		p, _ := root.Part(k[0], k[1])
		want[p.Name] = true
	}
	// A member's change touches its groups' members, not their rules.
	for _, g := range n.Groups {
		if x := ruleset.NewIndex(rs); x.Group(g) == nil {
			continue
		}
		p, _ := root.Part(ruleset.KindMembers, g)
		want[p.Name] = true
	}
	var gone []string
	for _, p := range root.Parts {
		if !root2.Has(p.Name) {
			gone = append(gone, p.Name)
			if !want[p.Name] {
				t.Errorf("part %s changed, though it holds nothing of %s", p.Name, n.ID)
			}
		}
	}
	if len(gone) != len(want) {
		t.Fatalf("%d parts changed, want %d", len(gone), len(want))
	}
	for _, p := range root2.Parts {
		if !root.Has(p.Name) && parts2[p.Name] == nil {
			t.Fatalf("no bytes for new part %s", p.Name)
		}
	}
}

func partRef(root *ruleset.Root, name string) (ruleset.PartRef, bool) {
	for _, p := range root.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return ruleset.PartRef{}, false
}

// TestSplitEmptyAndInvalid: an estate without interfaces or groups splits
// into one empty part of each kind (a header line only) and joins back;
// an invalid ruleset is refused.
func TestSplitEmptyAndInvalid(t *testing.T) {
	rs := &ruleset.Ruleset{Header: ruleset.Header{Format: ruleset.Format, Type: ruleset.Type, Scope: "prod", Serial: 1,
		GeneratedAt: splitTime, NotAfter: splitTime.Add(time.Hour)}, VPCs: []ruleset.VPC{}, Groups: []ruleset.Group{}, Interfaces: []ruleset.Interface{}}
	root, payload, parts := mustSplit(t, rs, ruleset.SplitOptions{})
	if len(root.Parts) != 5 {
		t.Fatalf("%d parts, want 5:\n%s", len(root.Parts), payload)
	}
	for _, p := range root.Parts {
		want := fmt.Sprintf("reyes.part/v1 %s 0/1\n", p.Kind)
		if string(parts[p.Name]) != want {
			t.Fatalf("part %s is %q, want %q", p.Name, parts[p.Name], want)
		}
	}
	joined, err := ruleset.Join(context.Background(), root, newStore(parts).fetch)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ruleset.Encode(rs)
	b, _ := ruleset.Encode(joined)
	if !bytes.Equal(a, b) {
		t.Fatalf("Join of an empty estate:\n%s\nwant\n%s", b, a)
	}
	bad := *rs
	bad.Scope = ""
	if _, _, err := ruleset.Split(&bad, ruleset.SplitOptions{}); !errors.Is(err, ruleset.ErrInvalid) {
		t.Fatalf("Split of an invalid ruleset: %v", err)
	}
}

// TestSplitJoinLarge: the round trip at the size of the performance
// targets (synth.Large, 50,000 interfaces) with the default bins.
func TestSplitJoinLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 50,000 interfaces")
	}
	rs := largeRuleset()
	want, err := ruleset.Encode(rs)
	if err != nil {
		t.Fatal(err)
	}
	root, payload, parts := mustSplit(t, rs, ruleset.SplitOptions{})
	dec, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	joined, err := ruleset.Join(context.Background(), dec, newStore(parts).fetch)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ruleset.Encode(joined)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("Encode(Join(Split(rs))) differs from Encode(rs)")
	}
	var total int
	for _, b := range parts {
		total += len(b)
	}
	t.Logf("%d bytes encoded whole; root %d bytes, bins %v, %d parts, %d bytes in all", len(want), len(payload), root.Bins, len(parts), total)
}
