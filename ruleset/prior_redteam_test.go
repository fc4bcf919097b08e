package ruleset_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/reyes-fw/reyes/ruleset"
)

// simFollower is what a follower keeps between runs, as reyes.Follower
// keeps it: the digest of the root accepted last, the parts and keys of
// the last view it made (or carried over on a fast path), its cache
// (exactly the bytes of those parts) and its request.
type simFollower struct {
	name  string
	req   ruleset.ViewRequest
	since [32]byte
	parts []string
	keys  []string
	cache map[string][]byte
}

// cacheFetch reads the follower's cache by name (no check: LoadViewSince
// checks), as reyes' priorFetch does.
func (f *simFollower) cacheFetch(_ context.Context, ref ruleset.PartRef) ([]byte, error) {
	b, ok := f.cache[ref.Name]
	if !ok {
		return nil, ruleset.ErrPartMissing
	}
	return slices.Clone(b), nil
}

// TestRedteamLoadViewSinceFollowerChain plays followers along a chain of
// publishes the way reyes.Follower does, and not only root by root: a
// root may be missed (its successor's list is then from a root the
// follower never accepted), accepted on a fast path without a view (the
// same parts, or a change list that holds none of the keys: the parts
// and keys carry over, so an earlier part may be several roots old), a
// view may be made and then not accepted (a failed apply), the host's
// request may change (identity), the bins may change (no list), and the
// cache may lose or corrupt a part. After every view made with
// LoadViewSince: it is LoadView's on the same root, and every key of the
// view has, in the view's part of its bin, the line the root's part has
// (the invariant the next root's LoadViewSince rests on).
func TestRedteamLoadViewSinceFollowerChain(t *testing.T) {
	ctx := context.Background()
	var views, withPrior, fastParts, fastChanges, failed, missed int
	for seed := range uint64(80) {
		rng := rand.New(rand.NewPCG(seed, 99))
		rs := randomRuleset(rng)
		targets := []int64{0, 64, 256}
		target := targets[seed%3]
		root, payload, parts := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: target})
		all := maps.Clone(parts)
		var fs []*simFollower
		for _, hc := range randomHosts(rs, rng, 2) {
			v, err := ruleset.LoadView(ctx, root, hc.req, newStore(parts).fetch)
			if err != nil {
				t.Fatal(err)
			}
			f := &simFollower{name: hc.name, req: hc.req, since: sha256.Sum256(payload), parts: partNamesOf(v.Parts), keys: v.Keys, cache: map[string][]byte{}}
			for _, n := range f.parts {
				f.cache[n] = all[n]
			}
			fs = append(fs, f)
		}
		for step := range 10 {
			rs2, what := mutate(rng, rs)
			if rs2.Validate() != nil {
				continue
			}
			if rng.IntN(8) == 0 {
				target = targets[rng.IntN(len(targets))] // the bins may change: no list
			}
			root2, payload2, parts2 := splitNext(t, root, payload, parts, rs2, target)
			digest2 := sha256.Sum256(payload2)
			maps.Copy(all, parts2)
			var hosts2 []viewCase
			for _, f := range fs {
				if rng.IntN(6) == 0 {
					missed++
					continue
				}
				reqChanged := false
				if rng.IntN(6) == 0 {
					if hosts2 == nil {
						hosts2 = randomHosts(rs2, rng, 2)
					}
					f.req = hosts2[rng.IntN(len(hosts2))].req
					reqChanged = true
				}
				if !reqChanged && listsAll(root2, f.parts) {
					fastParts++
					f.since = digest2
					continue
				}
				if !reqChanged && root2.Changes.Unchanged(f.since, f.keys) {
					fastChanges++
					f.since = digest2
					continue
				}
				// The cache loses or corrupts a part now and then.
				for _, n := range slices.Sorted(maps.Keys(f.cache)) {
					switch rng.IntN(15) {
					case 0:
						delete(f.cache, n)
					case 1:
						b := slices.Clone(f.cache[n])
						b[len(b)-2] ^= 1
						f.cache[n] = b
					}
				}
				// The root's parts come from the cache when they verify
				// (as viewFetch.fetch), else from the store.
				st := newStore(parts2)
				fetch := func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
					if b, ok := f.cache[ref.Name]; ok && ruleset.VerifyPart(ref, b) == nil {
						return b, nil
					}
					return st.fetch(ctx, ref)
				}
				prior := ruleset.Prior{Since: f.since, Parts: f.parts, Keys: f.keys, Fetch: f.cacheFetch}
				got, err := ruleset.LoadViewSince(ctx, root2, f.req, fetch, prior)
				if err != nil {
					t.Fatalf("seed %d step %d %s: LoadViewSince: %v", seed, step, f.name, err)
				}
				want, err := ruleset.LoadView(ctx, root2, f.req, newStore(parts2).fetch)
				if err != nil {
					t.Fatal(err)
				}
				views++
				if got.Prior > 0 {
					withPrior++
				}
				if !reflect.DeepEqual(got.Ruleset, want.Ruleset) || !slices.Equal(got.Keys, want.Keys) {
					t.Fatalf("seed %d step %d %s: the view differs from LoadView's (changes %v, prior %d)", seed, step, f.name, what, got.Prior)
				}
				checkViewLines(t, root2, parts2, all, got)
				if rng.IntN(6) == 0 {
					failed++ // the apply failed: nothing recorded, the cache as it was
					continue
				}
				f.since, f.parts, f.keys = digest2, partNamesOf(got.Parts), got.Keys
				cache := map[string][]byte{}
				for _, n := range f.parts {
					if b, ok := f.cache[n]; ok {
						cache[n] = b // what the view read from the cache stays as it is
					} else {
						cache[n] = all[n]
					}
				}
				f.cache = cache
			}
			rs, root, payload, parts = rs2, root2, payload2, parts2
		}
	}
	t.Logf("%d views (%d with earlier parts), fast paths: %d by parts, %d by changes; %d failed, %d missed",
		views, withPrior, fastParts, fastChanges, failed, missed)
	if withPrior < 50 || fastChanges < 20 {
		t.Fatalf("the chain exercised too little: %d views with earlier parts, %d fast by changes", withPrior, fastChanges)
	}
}

// checkViewLines checks the invariant a view's record must keep: every
// key of v has its bin's part in v.Parts, and that part's line for the
// key (or its absence) is the root's. An earlier part is fine as long as
// it says what the root says about the view's keys.
func checkViewLines(t *testing.T, root *ruleset.Root, rootParts, all map[string][]byte, v *ruleset.View) {
	t.Helper()
	byBin := map[string]ruleset.PartRef{}
	for _, p := range v.Parts {
		k := fmt.Sprintf("%s/%d", p.Kind, p.Bin)
		if _, dup := byBin[k]; dup {
			t.Fatalf("two parts of %s bin %d in the view", p.Kind, p.Bin)
		}
		byBin[k] = p
	}
	for _, vk := range v.Keys {
		kind, key, _ := strings.Cut(vk, ":")
		ref, ok := root.Part(kind, key)
		if !ok {
			t.Fatalf("no part for %s", vk)
		}
		mine, ok := byBin[fmt.Sprintf("%s/%d", ref.Kind, ref.Bin)]
		if !ok {
			t.Fatalf("key %s: the view has no part of its bin (%s)", vk, ref.Name)
		}
		if kind == ruleset.KindVPCs {
			if mine.Name != ref.Name {
				t.Fatalf("vpcs: the view's part %s is not the root's %s", mine.Name, ref.Name)
			}
			continue
		}
		a, b := lineOf(all[mine.Name], key), lineOf(rootParts[ref.Name], key)
		if a != b {
			t.Fatalf("key %s: the view's part %s says %q, the root's %s says %q", vk, mine.Name, a, ref.Name, b)
		}
	}
}

// lineOf returns the value of key's line in a part ("" if none).
func lineOf(part []byte, key string) string {
	for _, l := range strings.Split(string(part), "\n")[1:] {
		if k, v, ok := strings.Cut(l, "\t"); ok && k == key {
			return v
		}
	}
	return ""
}

// listsAll reports whether root lists every part of names.
func listsAll(root *ruleset.Root, names []string) bool {
	for _, n := range names {
		if !root.Has(n) {
			return false
		}
	}
	return true
}

// TestRedteamLoadViewSinceOtherBins: a root whose change list is from the
// root the earlier view was made of, but whose bins differ (the keys
// moved: an honest leader leaves the list out, ChangedKeys says it
// cannot tell; here a faulty one listed nothing). The earlier parts'
// headers name other bins: each is a miss, and the view is LoadView's.
func TestRedteamLoadViewSinceOtherBins(t *testing.T) {
	ctx := context.Background()
	tried := 0
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 5))
		rs := randomRuleset(rng)
		root1, payload1, parts1 := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: 64})
		root2, _, parts2 := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: 512})
		if maps.Equal(root1.Bins, root2.Bins) {
			continue
		}
		root2.Changes = ruleset.NewChanges(sha256.Sum256(payload1), nil)
		for _, hc := range randomHosts(rs, rng, 2) {
			v1, err := ruleset.LoadView(ctx, root1, hc.req, newStore(parts1).fetch)
			if err != nil {
				t.Fatal(err)
			}
			prior := ruleset.Prior{Since: sha256.Sum256(payload1), Parts: partNamesOf(v1.Parts), Keys: v1.Keys, Fetch: newStore(parts1).fetch}
			got, err := ruleset.LoadViewSince(ctx, root2, hc.req, newStore(parts2).fetch, prior)
			if err != nil {
				t.Fatalf("seed %d %s: %v", seed, hc.name, err)
			}
			want, err := ruleset.LoadView(ctx, root2, hc.req, newStore(parts2).fetch)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Ruleset, want.Ruleset) || !slices.Equal(got.Keys, want.Keys) {
				t.Fatalf("seed %d %s: the view with earlier parts of other bins differs from LoadView's", seed, hc.name)
			}
			for _, p := range got.Parts {
				if !root2.Has(p.Name) && p.Kind != ruleset.KindVPCs {
					t.Fatalf("seed %d %s: part %s of other bins in the view", seed, hc.name, p.Name)
				}
			}
			tried++
		}
	}
	if tried < 20 {
		t.Fatalf("only %d views tried", tried)
	}
}

// TestRedteamLoadViewSinceCanceled: a canceled context ends a view that
// needs a part from the store with the context's error, earlier parts or
// not.
func TestRedteamLoadViewSinceCanceled(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	rs := randomRuleset(rng)
	root1, payload1, parts1 := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: 64})
	hc := randomHosts(rs, rng, 1)[0]
	v1, err := ruleset.LoadView(context.Background(), root1, hc.req, newStore(parts1).fetch)
	if err != nil {
		t.Fatal(err)
	}
	rs2 := cloneRuleset(rs)
	rs2.Serial++
	rs2.VPCs = slices.Clone(rs.VPCs)
	rs2.VPCs[0].Region = "eu-west-2" // every view reads the VPCs
	rs2.Canonicalize()
	root2, _, parts2 := mustSplit(t, rs2, ruleset.SplitOptions{Previous: root1.Bins, TargetBinBytes: 64})
	keys, ok, err := ruleset.ChangedKeys(context.Background(), root1, root2, union(parts1, parts2))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	root2.Changes = ruleset.NewChanges(sha256.Sum256(payload1), keys)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fetch := func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return newStore(parts2).fetch(ctx, ref)
	}
	prior := ruleset.Prior{Since: sha256.Sum256(payload1), Parts: partNamesOf(v1.Parts), Keys: v1.Keys, Fetch: newStore(parts1).fetch}
	if _, err := ruleset.LoadViewSince(ctx, root2, hc.req, fetch, prior); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
}

// TestRedteamLoadViewSinceOddNames: the earlier parts' names come from
// the follower's status file; names that are not part names ("..", "/",
// another kind's or bin's name for a bin, a size over the limit) are
// never handed to Prior.Fetch (which joins them to the cache directory),
// and the view is LoadView's.
func TestRedteamLoadViewSinceOddNames(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 4))
	rs := randomRuleset(rng)
	root1, payload1, parts1 := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: 64})
	hc := randomHosts(rs, rng, 1)[0]
	v1, err := ruleset.LoadView(ctx, root1, hc.req, newStore(parts1).fetch)
	if err != nil {
		t.Fatal(err)
	}
	rs2, _ := mutate(rng, rs)
	root2, _, parts2 := mustSplit(t, rs2, ruleset.SplitOptions{Previous: root1.Bins, TargetBinBytes: 64})
	keys, ok, err := ruleset.ChangedKeys(ctx, root1, root2, union(parts1, parts2))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	root2.Changes = ruleset.NewChanges(sha256.Sum256(payload1), keys)
	odd := []string{"", "..", "/", "../../../etc/shadow", "g0001-1-../../x", "g0001/../../x", "vpcs-99999999999999999-00000000000000000000000000000000",
		"g1-10-00000000000000000000000000000000", "g00001-10-00000000000000000000000000000000", "G0001-10-00000000000000000000000000000000",
		"g0001-10-0000000000000000000000000000000g", "g0001-010-00000000000000000000000000000000", strings.Repeat("a", 1<<16)}
	var asked []string
	var mu sync.Mutex
	fetch := func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
		mu.Lock()
		asked = append(asked, ref.Name)
		mu.Unlock()
		return newStore(parts1).fetch(ctx, ref)
	}
	names := append(slices.Clone(odd), partNamesOf(v1.Parts)...)
	got, err := ruleset.LoadViewSince(ctx, root2, hc.req, newStore(parts2).fetch, ruleset.Prior{Since: sha256.Sum256(payload1), Parts: names, Keys: v1.Keys, Fetch: fetch})
	if err != nil {
		t.Fatal(err)
	}
	want, err := ruleset.LoadView(ctx, root2, hc.req, newStore(parts2).fetch)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Ruleset, want.Ruleset) || !slices.Equal(got.Keys, want.Keys) {
		t.Fatal("the view differs from LoadView's")
	}
	for _, n := range asked {
		if slices.Contains(odd, n) || strings.ContainsAny(n, "/.") {
			t.Fatalf("Prior.Fetch was asked for %q", n)
		}
	}
}
