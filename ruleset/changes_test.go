package ruleset_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/ruleset"
)

// mutate makes a few random changes to a copy of rs, of the kinds an
// estate sees between two publishes: interfaces launched and terminated,
// an address or a group added to an interface, a rule added to a group, a
// group created or deleted, a VPC's CIDRs changed. It returns the copy
// and what it changed.
func mutate(rng *rand.Rand, rs *ruleset.Ruleset) (*ruleset.Ruleset, []string) {
	c := cloneRuleset(rs)
	c.VPCs = slices.Clone(rs.VPCs)
	c.Serial++
	var what []string
	for range 1 + rng.IntN(4) {
		switch rng.IntN(8) {
		case 0: // launch
			src := c.Interfaces[rng.IntN(len(c.Interfaces))]
			n := ruleset.Interface{ID: fmt.Sprintf("eni-f%07x", rng.IntN(1<<24)), Region: src.Region, VPC: src.VPC, Groups: slices.Clone(src.Groups)}
			a := src.Addrs[0].As4()
			a[2], a[3] = 0x70+byte(rng.IntN(16)), byte(rng.IntN(256))
			n.Addrs = []netip.Addr{netip.AddrFrom4(a)}
			if rng.IntN(3) == 0 {
				n.Addrs = slices.Clone(src.Addrs) // an address already in use (another VPC of the same CIDR)
			}
			c.Interfaces = append(c.Interfaces, n)
			what = append(what, "launch "+n.ID)
		case 1: // terminate
			if len(c.Interfaces) > 2 {
				i := rng.IntN(len(c.Interfaces))
				what = append(what, "terminate "+c.Interfaces[i].ID)
				c.Interfaces = slices.Delete(c.Interfaces, i, i+1)
			}
		case 2: // another address
			i := rng.IntN(len(c.Interfaces))
			n := &c.Interfaces[i]
			a := n.Addrs[0]
			if a.Is4() {
				b := a.As4()
				b[3] ^= 0x40
				a = netip.AddrFrom4(b)
			}
			n.Addrs = ruleset.SortedAddrs(append(slices.Clone(n.Addrs), a))
			what = append(what, "address "+n.ID)
		case 3: // another group
			i := rng.IntN(len(c.Interfaces))
			n := &c.Interfaces[i]
			n.Groups = append(slices.Clone(n.Groups), c.Groups[rng.IntN(len(c.Groups))].ID)
			what = append(what, "group of "+n.ID)
		case 4: // another rule
			i := rng.IntN(len(c.Groups))
			g := &c.Groups[i]
			g.Rules = append(slices.Clone(g.Rules), ruleset.Rule{Protocol: ruleset.ProtoTCP, FromPort: 4000 + rng.IntN(100), ToPort: 4200,
				Groups: []string{c.Groups[rng.IntN(len(c.Groups))].ID}})
			what = append(what, "rule of "+g.ID)
		case 5: // new group, referred to by an old one
			id := fmt.Sprintf("sg-f%07x", rng.IntN(1<<24))
			c.Groups = append(c.Groups, ruleset.Group{ID: id, Name: "new", Region: "eu-west-1", VPC: c.VPCs[0].ID, Rules: []ruleset.Rule{}})
			g := &c.Groups[rng.IntN(len(c.Groups)-1)]
			g.Rules = append(slices.Clone(g.Rules), ruleset.Rule{Protocol: ruleset.ProtoUDP, FromPort: 53, ToPort: 53, Groups: []string{id}})
			what = append(what, "new group "+id)
		case 6: // delete a group (its references go stale)
			if len(c.Groups) > 2 {
				i := rng.IntN(len(c.Groups))
				what = append(what, "delete group "+c.Groups[i].ID)
				c.Groups = slices.Delete(c.Groups, i, i+1)
			}
		case 7: // a VPC's CIDRs
			v := &c.VPCs[rng.IntN(len(c.VPCs))]
			v.CIDRs = ruleset.SortedPrefixes(append(slices.Clone(v.CIDRs), netip.MustParsePrefix("100.64.0.0/16")))
			what = append(what, "cidr of "+v.ID)
		}
	}
	c.Canonicalize()
	return c, what
}

// union fetches from either of two roots' parts.
func union(a, b map[string][]byte) ruleset.FetchFunc {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return newStore(m).fetch
}

// TestChangesInvariant is what a follower's use of Changes rests on: for
// random estates, random changes and random hosts, a host none of whose
// view keys ChangedKeys reports gets, from the new root, the very view it
// had (so the same plan); every key reported is in the filter; and hosts
// whose view did change are reported.
func TestChangesInvariant(t *testing.T) {
	ctx := context.Background()
	same, changed, filtered := 0, 0, 0
	for seed := range uint64(120) {
		rng := rand.New(rand.NewPCG(seed, 7))
		rs := randomRuleset(rng)
		target := []int64{0, 64, 256}[seed%3]
		root1, payload1, parts1 := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: target})
		rs2, what := mutate(rng, rs)
		if err := rs2.Validate(); err != nil {
			continue // a mutation the estate cannot have (e.g. an address twice in one VPC)
		}
		root2, _, parts2 := mustSplit(t, rs2, ruleset.SplitOptions{Previous: root1.Bins, TargetBinBytes: target})
		keys, ok, err := ruleset.ChangedKeys(ctx, root1, root2, union(parts1, parts2))
		if err != nil {
			t.Fatalf("seed %d: ChangedKeys: %v", seed, err)
		}
		if !ok {
			if maps.Equal(root1.Bins, root2.Bins) {
				t.Fatalf("seed %d: ChangedKeys not ok with the same bins", seed)
			}
			continue
		}
		since := sha256.Sum256(payload1)
		c := ruleset.NewChanges(since, keys)
		for _, k := range keys {
			if !c.MayHave(k) {
				t.Fatalf("seed %d: the filter lacks changed key %s", seed, k)
			}
		}
		set := map[string]bool{}
		for _, k := range keys {
			set[k] = true
		}
		for _, hc := range append(randomHosts(rs, rng, 4), randomHosts(rs2, rng, 2)...) {
			v1, err1 := ruleset.LoadView(ctx, root1, hc.req, newStore(parts1).fetch)
			v2, err2 := ruleset.LoadView(ctx, root2, hc.req, newStore(parts2).fetch)
			if err1 != nil || err2 != nil {
				t.Fatalf("seed %d: %s: LoadView: %v, %v", seed, hc.name, err1, err2)
			}
			touched := slices.ContainsFunc(v1.Keys, func(k string) bool { return set[k] })
			v2.Ruleset.Header = v1.Ruleset.Header
			equal := reflect.DeepEqual(v1.Ruleset, v2.Ruleset)
			if !touched {
				same++
				if !equal || !slices.Equal(v1.Keys, v2.Keys) {
					t.Fatalf("seed %d: %s: no view key changed (%v), but the view did (changes: %v)", seed, hc.name, keys, what)
				}
				if c.Unchanged(since, v1.Keys) {
					filtered++
				}
				continue
			}
			if c.Unchanged(since, v1.Keys) {
				t.Fatalf("seed %d: %s: the filter says unchanged, but a view key changed", seed, hc.name)
			}
			if !equal {
				changed++
			}
		}
	}
	if same < 100 || changed < 50 {
		t.Fatalf("only %d unchanged and %d changed views tried", same, changed)
	}
	// False positives cost a read, never correctness; they must be rare.
	if filtered < same*9/10 {
		t.Fatalf("the filter let %d of %d unchanged views through", filtered, same)
	}
	t.Logf("%d unchanged views (%d passed by the filter), %d changed", same, filtered, changed)
}

// TestChangedKeysOtherBins: with other bins the keys moved between parts;
// ChangedKeys says it cannot tell rather than guess.
func TestChangedKeysOtherBins(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rs := randomRuleset(rng)
	root1, _, parts1 := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: 64})
	root2, _, parts2 := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: 1 << 30})
	if maps.Equal(root1.Bins, root2.Bins) {
		t.Fatal("same bins")
	}
	keys, ok, err := ruleset.ChangedKeys(context.Background(), root1, root2, union(parts1, parts2))
	if err != nil || ok || keys != nil {
		t.Fatalf("ChangedKeys = %v, %v, %v; want nil, false, nil", keys, ok, err)
	}
}

// TestChangedKeysMissingOldPart: a previous part the store lost is an
// error naming it (the leader then publishes without Changes).
func TestChangedKeysMissingOldPart(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rs := randomRuleset(rng)
	root1, _, parts1 := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: 64})
	rs2 := cloneRuleset(rs)
	rs2.Groups[0].Rules = append(slices.Clone(rs2.Groups[0].Rules), ruleset.Rule{Protocol: ruleset.ProtoTCP, FromPort: 9, ToPort: 9, Groups: []string{rs2.Groups[0].ID}})
	rs2.Canonicalize()
	root2, _, parts2 := mustSplit(t, rs2, ruleset.SplitOptions{Previous: root1.Bins, TargetBinBytes: 64})
	old, _ := root1.Part(ruleset.KindGroups, rs.Groups[0].ID)
	only := maps.Clone(parts1)
	delete(only, old.Name)
	_, _, err := ruleset.ChangedKeys(context.Background(), root1, root2, union(only, parts2))
	if !errors.Is(err, ruleset.ErrPartMissing) || !strings.Contains(err.Error(), old.Name) {
		t.Fatalf("err = %v; want ErrPartMissing naming %s", err, old.Name)
	}
	keys, ok, err := ruleset.ChangedKeys(context.Background(), root1, root2, union(parts1, parts2))
	if err != nil || !ok || !slices.Equal(keys, []string{ruleset.ViewKey(ruleset.KindGroups, rs.Groups[0].ID)}) {
		t.Fatalf("ChangedKeys = %v, %v, %v; want the one group", keys, ok, err)
	}
}

// TestRootChangesCodec: a root with Changes encodes and decodes to itself;
// DecodeRoot refuses malformed changes.
func TestRootChangesCodec(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	root, payload, _ := mustSplit(t, randomRuleset(rng), ruleset.SplitOptions{})
	r := *root
	r.Changes = ruleset.NewChanges(sha256.Sum256(payload), []string{"g:sg-1", "vpcs:"})
	b, err := ruleset.EncodeRoot(&r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ruleset.DecodeRoot(b, ruleset.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Changes, r.Changes) {
		t.Fatalf("changes: got %+v, want %+v", got.Changes, r.Changes)
	}
	if !got.Changes.MayHave("g:sg-1") || got.Changes.Unchanged(r.Changes.Since, []string{"vpcs:"}) {
		t.Fatal("decoded filter lost a key")
	}
	s := string(b)
	since := regexp.MustCompile(`"since":"[0-9a-f]{64}"`)
	bloom := regexp.MustCompile(`"bloom":"[^"]*"`)
	// Each case changes one thing, and the error must say that thing (so
	// that a case refused for another reason cannot pass).
	for name, m := range map[string]struct {
		bad  func(string) string
		says string
	}{
		"k 0":            {func(s string) string { return strings.Replace(s, `"k":10`, `"k":0`, 1) }, "k 0 is not in"},
		"k 33":           {func(s string) string { return strings.Replace(s, `"k":10`, `"k":33`, 1) }, "k 33 is not in"},
		"upper-case hex": {func(s string) string { return since.ReplaceAllString(s, `"since":"`+strings.Repeat("A", 64)+`"`) }, "lower-case hex"},
		"short since":    {func(s string) string { return since.ReplaceAllString(s, `"since":"`+strings.Repeat("a", 63)+`"`) }, "lower-case hex"},
		"no padding":     {func(s string) string { return strings.Replace(s, `="}`, `"}`, 1) }, "canonical padded base64"},
		"empty filter":   {func(s string) string { return bloom.ReplaceAllString(s, `"bloom":""`) }, "a filter of 0 bytes"},
		"unknown field":  {func(s string) string { return strings.Replace(s, `"changes":{`, `"changes":{"x":1,`, 1) }, "x"},
	} {
		t.Run(name, func(t *testing.T) {
			bad := m.bad(s)
			if bad == s {
				t.Fatalf("nothing changed in %s", s[:200])
			}
			_, err := ruleset.DecodeRoot([]byte(bad), ruleset.Limits{})
			if !errors.Is(err, ruleset.ErrMalformed) || !strings.Contains(err.Error(), m.says) {
				t.Fatalf("err = %v; want ErrMalformed saying %q", err, m.says)
			}
		})
	}
	if c := ruleset.NewChanges([32]byte{}, make([]string, 200000)); c != nil {
		t.Fatalf("a filter of %d bytes", len(c.Bits))
	}
}

// TestLoadViewSinceChain: along a chain of publishes, each with its change
// list, a follower that keeps its view's parts and keys and loads each
// new root with LoadViewSince gets exactly the view LoadView gives (the
// same ruleset and keys), reading earlier parts only for records the list
// does not hold; an earlier part that is missing or altered is read from
// the root instead.
func TestLoadViewSinceChain(t *testing.T) {
	ctx := context.Background()
	usedPrior, fetchedLess := 0, 0
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 11))
		rs := randomRuleset(rng)
		target := []int64{0, 64, 256}[seed%3]
		root, payload, parts := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: target})
		all := maps.Clone(parts)
		hosts := randomHosts(rs, rng, 3)
		views := make([]*ruleset.View, len(hosts))
		for i, hc := range hosts {
			v, err := ruleset.LoadView(ctx, root, hc.req, newStore(parts).fetch)
			if err != nil {
				t.Fatal(err)
			}
			views[i] = v
		}
		for step := range 4 {
			rs2, what := mutate(rng, rs)
			if rs2.Validate() != nil {
				continue
			}
			root2, payload2, parts2 := splitNext(t, root, payload, parts, rs2, target)
			maps.Copy(all, parts2)
			for i, hc := range hosts {
				prev := views[i]
				kept := map[string][]byte{}
				for _, p := range prev.Parts {
					kept[p.Name] = all[p.Name]
				}
				// Now and then the follower's copy of an earlier part
				// is gone or altered.
				for name := range kept {
					switch rng.IntN(12) {
					case 0:
						delete(kept, name)
					case 1:
						b := slices.Clone(kept[name])
						b[len(b)-2] ^= 1
						kept[name] = b
					}
				}
				prior := ruleset.Prior{Since: sha256.Sum256(payload), Parts: partNamesOf(prev.Parts), Keys: prev.Keys,
					Fetch: newStore(kept).fetch}
				st := newStore(parts2)
				got, err := ruleset.LoadViewSince(ctx, root2, hc.req, st.fetch, prior)
				if err != nil {
					t.Fatalf("seed %d step %d %s: LoadViewSince: %v", seed, step, hc.name, err)
				}
				want, err := ruleset.LoadView(ctx, root2, hc.req, newStore(parts2).fetch)
				if err != nil {
					t.Fatal(err)
				}
				got.Ruleset.Header = want.Ruleset.Header
				if !reflect.DeepEqual(got.Ruleset, want.Ruleset) || !slices.Equal(got.Keys, want.Keys) {
					t.Fatalf("seed %d step %d %s: the view with earlier parts differs from the root's (changes %v)", seed, step, hc.name, what)
				}
				if got.Prior > 0 {
					usedPrior++
					if got.Bytes-sumPrior(got, all, parts2) < want.Bytes {
						fetchedLess++
					}
				}
				views[i] = got
			}
			rs, root, payload, parts = rs2, root2, payload2, parts2
		}
	}
	if usedPrior < 50 || fetchedLess < 50 {
		t.Fatalf("earlier parts used in %d views, fewer bytes from the root in %d", usedPrior, fetchedLess)
	}
	t.Logf("earlier parts used in %d views, fewer bytes from the root in %d", usedPrior, fetchedLess)
}

// splitNext splits rs2, the estate after the one published as root (its
// payload and parts), as a leader does: the same bins (if target keeps
// them), and the change list since payload when the bins allow one.
func splitNext(t *testing.T, root *ruleset.Root, payload []byte, parts map[string][]byte, rs2 *ruleset.Ruleset, target int64) (*ruleset.Root, []byte, map[string][]byte) {
	t.Helper()
	root2, _, parts2 := mustSplit(t, rs2, ruleset.SplitOptions{Previous: root.Bins, TargetBinBytes: target})
	keys, ok, err := ruleset.ChangedKeys(context.Background(), root, root2, union(parts, parts2))
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		root2.Changes = ruleset.NewChanges(sha256.Sum256(payload), keys)
	}
	payload2, err := ruleset.EncodeRoot(root2)
	if err != nil {
		t.Fatal(err)
	}
	return root2, payload2, parts2
}

func partNamesOf(refs []ruleset.PartRef) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.Name)
	}
	return out
}

// sumPrior is the size of the parts of v that are not the root's.
func sumPrior(v *ruleset.View, all, root map[string][]byte) int64 {
	var n int64
	for _, p := range v.Parts {
		if _, ok := root[p.Name]; !ok {
			n += p.Size
		}
	}
	return n
}

// TestCompressedRoot: a compressed root decodes to the same root; a
// stream with anything after it, a truncated one, or one that inflates
// beyond MaxRootBytes is refused.
func TestCompressedRoot(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	root, payload, _ := mustSplit(t, randomRuleset(rng), ruleset.SplitOptions{TargetBinBytes: 64})
	z, err := ruleset.CompressRoot(payload)
	if err != nil {
		t.Fatal(err)
	}
	if !ruleset.IsRoot(z) || len(z) >= len(payload) {
		t.Fatalf("compressed root: IsRoot %v, %d bytes of %d", ruleset.IsRoot(z), len(z), len(payload))
	}
	got, err := ruleset.DecodeRoot(z, ruleset.Limits{})
	if err != nil || !reflect.DeepEqual(got, root) {
		t.Fatalf("DecodeRoot(compressed) = %v; want the root", err)
	}
	if text, err := ruleset.RootText(z); err != nil || string(text) != string(payload) {
		t.Fatalf("RootText: %v", err)
	}
	bomb, err := ruleset.CompressRoot(append(slices.Clone(payload), make([]byte, ruleset.MaxRootBytes)...))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"trailing":  append(slices.Clone(z), 0),
		"two":       append(slices.Clone(z), z...),
		"truncated": z[:len(z)-5],
		"bomb":      bomb,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ruleset.DecodeRoot(b, ruleset.Limits{}); !errors.Is(err, ruleset.ErrMalformed) && !errors.Is(err, ruleset.ErrTooLarge) {
				t.Fatalf("err = %v; want ErrMalformed or ErrTooLarge", err)
			}
		})
	}
}

// TestRootEarlierChanges: a root may list the changes since two roots (the
// one it replaced and an earlier one); ChangesSince picks by digest; an
// earlier list alone, or two since the same root, is malformed.
func TestRootEarlierChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	root, _, _ := mustSplit(t, randomRuleset(rng), ruleset.SplitOptions{})
	r := *root
	r.Changes = ruleset.NewChanges([32]byte{1}, []string{"g:sg-1"})
	r.EarlierChanges = ruleset.NewChanges([32]byte{2}, []string{"g:sg-1", "m:sg-2"})
	b, err := ruleset.EncodeRoot(&r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ruleset.DecodeRoot(b, ruleset.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ChangesSince([32]byte{1}) == nil || !got.ChangesSince([32]byte{2}).MayHave("m:sg-2") || got.ChangesSince([32]byte{3}) != nil {
		t.Fatal("ChangesSince does not pick the list by its root")
	}
	for name, mod := range map[string]func(*ruleset.Root){
		"earlier alone": func(r *ruleset.Root) { r.Changes = nil },
		"same since":    func(r *ruleset.Root) { r.EarlierChanges.Since = r.Changes.Since },
	} {
		t.Run(name, func(t *testing.T) {
			bad := r
			e := *r.EarlierChanges
			bad.EarlierChanges = &e
			mod(&bad)
			if _, err := ruleset.EncodeRoot(&bad); !errors.Is(err, ruleset.ErrMalformed) {
				t.Fatalf("EncodeRoot: %v; want ErrMalformed", err)
			}
		})
	}
	// The header with its "changes" member cut out (an unknown member
	// would be refused for another reason): only the earlier list is left.
	s := regexp.MustCompile(`"changes":\{[^}]*\},`).ReplaceAllString(string(b), "")
	if s == string(b) {
		t.Fatal("no changes member to cut")
	}
	if _, err := ruleset.DecodeRoot([]byte(s), ruleset.Limits{}); !errors.Is(err, ruleset.ErrMalformed) || !strings.Contains(err.Error(), "earlier_changes without changes") {
		t.Fatalf("earlier_changes without changes decoded: %v", err)
	}
}
