package reyes_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// countingObjects counts the puts and the bytes put into an Objects, and
// can fail its calls on demand.
type countingObjects struct {
	reyes.Objects
	mu       sync.Mutex
	puts     []string
	bytes    int64
	failList error
}

func (c *countingObjects) Put(ctx context.Context, name string, body []byte) error {
	c.mu.Lock()
	c.puts = append(c.puts, name)
	c.bytes += int64(len(body))
	c.mu.Unlock()
	return c.Objects.Put(ctx, name, body)
}

func (c *countingObjects) List(ctx context.Context) ([]reyes.ObjectInfo, error) {
	c.mu.Lock()
	err := c.failList
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return c.Objects.List(ctx)
}

// reset returns what was put since the last reset.
func (c *countingObjects) reset() (puts []string, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	puts, bytes = c.puts, c.bytes
	c.puts, c.bytes = nil, 0
	slices.Sort(puts)
	return puts, bytes
}

// countingStore is a FileStore whose puts are counted.
type countingStore struct {
	*reyes.FileStore
	parts, roots       *countingObjects
	rootPuts, rootByte int64
}

// countingLeader returns a leader of src (scope "test") into a counting
// store in a fresh directory, on a test clock at 2026-11-21 12:00 UTC.
func countingLeader(t *testing.T, src sgsource.Source) (*reyes.Leader, *countingStore, *testClock) {
	t.Helper()
	clock := &testClock{now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	st := newCountingStore(filepath.Join(t.TempDir(), "ruleset.signed"))
	l := &reyes.Leader{Source: src, Store: st, Signer: testSigner(t, clock.Now()), Build: ruleset.BuildOptions{Scope: "test"}, Now: clock.Now}
	return l, st, clock
}

func newCountingStore(path string) *countingStore {
	fs := reyes.NewFileStore(path, reyes.StoreOptions{})
	return &countingStore{FileStore: fs, parts: &countingObjects{Objects: fs.Parts()}, roots: &countingObjects{Objects: fs.Roots()}}
}

func (c *countingStore) Put(ctx context.Context, body []byte) error {
	c.rootPuts++
	c.rootByte += int64(len(body))
	return c.FileStore.Put(ctx, body)
}
func (c *countingStore) Parts() reyes.Objects { return c.parts }
func (c *countingStore) Roots() reyes.Objects { return c.roots }

// putCounts is what one run put.
type putCounts struct {
	parts, roots []string
	rootPuts     int64
	bytes        int64
}

func (c *countingStore) reset() putCounts {
	var p putCounts
	var pb, rb int64
	p.parts, pb = c.parts.reset()
	p.roots, rb = c.roots.reset()
	p.rootPuts, p.bytes = c.rootPuts, pb+rb+c.rootByte
	c.rootPuts, c.rootByte = 0, 0
	return p
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testSigner(t testing.TB, now time.Time) *sign.Signer {
	t.Helper()
	signer, _, _ := sealtest.Key(t, "reyes test", now.Add(-time.Hour))
	return signer
}

// storedRoot reads the root in the store (no signature check: the test
// checks the layout), failing the test unless it is one.
func storedRoot(t *testing.T, st reyes.Store) (*ruleset.Root, []byte) {
	t.Helper()
	payload, obj := storedPayload(t, st)
	if !ruleset.IsRoot(payload) {
		t.Fatalf("the store holds no root: %.60q", payload)
	}
	root, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return root, obj
}

// publishedRoot is storedRoot, failing the test unless every part the
// root names is in the store with its size and digest.
func publishedRoot(t *testing.T, st reyes.PartStore) (*ruleset.Root, []byte) {
	t.Helper()
	root, obj := storedRoot(t, st)
	checkParts(t, st, root)
	return root, obj
}

// storedPayload returns the payload of the object in the store (no
// signature check) and the object, failing the test on an error.
func storedPayload(t *testing.T, st reyes.Store) (payload, obj []byte) {
	t.Helper()
	obj, _, err := st.Get(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	payload, _, err = sign.Unpack(obj)
	if err != nil {
		t.Fatal(err)
	}
	// A root is signed compressed: the text is what tests read.
	if ruleset.IsRoot(payload) {
		if payload, err = ruleset.RootText(payload); err != nil {
			t.Fatal(err)
		}
	}
	return payload, obj
}

// checkParts fails the test unless every part root names is in the store
// with its size and digest.
func checkParts(t *testing.T, ps reyes.PartStore, root *ruleset.Root) {
	t.Helper()
	for _, p := range root.Parts {
		body, err := ps.Parts().Get(context.Background(), p.Name, 0)
		if err != nil {
			t.Errorf("part %s of root %d: %v", p.Name, root.Serial, err)
			continue
		}
		if err := ruleset.VerifyPart(p, body); err != nil {
			t.Errorf("part %s: %v", p.Name, err)
		}
		if sum := sha256.Sum256(body); !strings.HasSuffix(p.Name, hex.EncodeToString(sum[:16])) {
			t.Errorf("part %s: its name does not end in the first 128 bits of its SHA-256 %x", p.Name, sum)
		}
	}
}

func names(refs []ruleset.PartRef) []string {
	var n []string
	for _, r := range refs {
		n = append(n, r.Name)
	}
	return n
}

// TestLeaderPartsLayout: the default layout puts every part, the root's
// history copy, then the root; an unchanged estate is not republished; a
// republish of the same estate is a new root and no part put.
func TestLeaderPartsLayout(t *testing.T) {
	ctx := context.Background()
	l, st, clock := countingLeader(t, sgsource.Dir{Path: sampleInventory})

	res, err := l.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	root, obj := publishedRoot(t, st)
	put := st.reset()
	wantHist := historyName(root.Serial, obj)
	var partBytes int64
	for _, p := range root.Parts {
		partBytes += p.Size
	}
	switch {
	case res.Layout != reyes.LayoutParts || res.Skipped:
		t.Errorf("layout %q, skipped %v", res.Layout, res.Skipped)
	case res.Header.Serial != root.Serial || res.Bytes != len(obj):
		t.Errorf("result serial %d, %d bytes; the store holds %d, %d bytes", res.Header.Serial, res.Bytes, root.Serial, len(obj))
	case res.Parts != len(root.Parts) || res.PartsPut != len(root.Parts):
		t.Errorf("result: %d parts, %d put; the root names %d", res.Parts, res.PartsPut, len(root.Parts))
	case !slices.Equal(put.parts, names(root.Parts)):
		t.Errorf("parts put %q, want the root's %q", put.parts, names(root.Parts))
	case !slices.Equal(put.roots, []string{wantHist}) || put.rootPuts != 1:
		t.Errorf("history copies put %q (want %q), roots put %d", put.roots, wantHist, put.rootPuts)
	case put.bytes != partBytes+2*int64(len(obj)) || res.BytesPut != put.bytes:
		t.Errorf("bytes put %d, result says %d, want %d", put.bytes, res.BytesPut, partBytes+2*int64(len(obj)))
	}
	hist, err := st.FileStore.Roots().Get(ctx, wantHist, 0)
	if err != nil || string(hist) != string(obj) {
		t.Errorf("history copy: %v (equal: %v)", err, string(hist) == string(obj))
	}

	t.Run("unchanged", func(t *testing.T) {
		clock.Add(time.Minute)
		res, err := l.RunOnce(ctx)
		if err != nil || !res.Skipped || res.PartsPut != 0 || res.BytesPut != 0 {
			t.Fatalf("RunOnce: %+v, %v", res, err)
		}
		if put := st.reset(); len(put.parts)+len(put.roots) != 0 || put.rootPuts != 0 {
			t.Errorf("an unchanged run put %+v", put)
		}
	})
	t.Run("republish of the same estate", func(t *testing.T) {
		clock.Add(time.Minute)
		l.Refresh = -1
		defer func() { l.Refresh = 0 }()
		res, err := l.RunOnce(ctx)
		if err != nil || res.Skipped || res.PartsPut != 0 {
			t.Fatalf("RunOnce: skipped %v, %d parts put, %v", res.Skipped, res.PartsPut, err)
		}
		again, obj2 := storedRoot(t, st)
		put := st.reset()
		if again.Serial <= root.Serial || !slices.Equal(names(again.Parts), names(root.Parts)) {
			t.Errorf("serial %d after %d, same parts %v", again.Serial, root.Serial, slices.Equal(names(again.Parts), names(root.Parts)))
		}
		if len(put.parts) != 0 || len(put.roots) != 1 || put.rootPuts != 1 || put.bytes != 2*int64(len(obj2)) {
			t.Errorf("a republish put %+v, want the root and its history copy only", put)
		}
	})
}

// varied returns a copy of inv whose first interface with more than one
// address has lost its last address: one member changed.
func varied(t testing.TB, inv *inventory.Inventory) (*inventory.Inventory, inventory.NetworkInterface) {
	t.Helper()
	out := &inventory.Inventory{Regions: slices.Clone(inv.Regions)}
	for ri := range out.Regions {
		r := &out.Regions[ri]
		r.NetworkInterfaces = slices.Clone(r.NetworkInterfaces)
		for i := range r.NetworkInterfaces {
			n := &r.NetworkInterfaces[i]
			if len(n.Addresses) > 1 {
				n.Addresses = slices.Clone(n.Addresses[:len(n.Addresses)-1])
				return out, *n
			}
		}
	}
	t.Fatal("no interface with two addresses")
	return nil, inventory.NetworkInterface{}
}

// TestLeaderPutsInProportion: a change of one member puts only the bins
// it changed (the interface's, its addresses' and its groups'), the root
// and its history copy: requests and bytes in proportion to the change,
// not to the estate.
func TestLeaderPutsInProportion(t *testing.T) {
	ctx := context.Background()
	inv := synth.Generate(synth.Medium())
	l, st, clock := countingLeader(t, memSource{inv})
	first, err := l.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := storedRoot(t, st)
	full := st.reset()

	changed, eni := varied(t, inv)
	l.Source = memSource{changed}
	clock.Add(5 * time.Minute)
	res, err := l.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, obj := publishedRoot(t, st)
	put := st.reset()

	if !maps.Equal(before.Bins, after.Bins) {
		t.Fatalf("bins changed from %v to %v", before.Bins, after.Bins)
	}
	var want []string
	var wantBytes int64
	for _, p := range after.Parts {
		if !before.Has(p.Name) {
			want = append(want, p.Name)
			wantBytes += p.Size
		}
	}
	// At most: the interface's bin, the bin of the address it lost, and
	// the bins of its groups (their member lists changed).
	if max := 2 + len(eni.Groups); len(want) == 0 || len(want) > max {
		t.Errorf("%d parts differ, want 1 to %d", len(want), max)
	}
	if !slices.Equal(put.parts, want) || res.PartsPut != len(want) {
		t.Errorf("parts put %q (result %d), want the changed ones %q", put.parts, res.PartsPut, want)
	}
	if put.rootPuts != 1 || len(put.roots) != 1 {
		t.Errorf("%d roots and %d history copies put, want 1 and 1", put.rootPuts, len(put.roots))
	}
	if wantBytes += 2 * int64(len(obj)); put.bytes != wantBytes || res.BytesPut != wantBytes {
		t.Errorf("bytes put %d (result %d), want %d", put.bytes, res.BytesPut, wantBytes)
	}
	t.Logf("first publish: %d puts, %d bytes; one member changed: %d puts, %d bytes (%.2f%%)",
		len(full.parts)+len(full.roots)+int(full.rootPuts), first.BytesPut,
		len(put.parts)+len(put.roots)+int(put.rootPuts), put.bytes, 100*float64(put.bytes)/float64(first.BytesPut))
}

// plainStore is a Store that holds no parts.
type plainStore struct{ reyes.Store }

// TestLeaderLayouts: the whole layout puts one object; switching between
// layouts publishes at once (the content cannot be compared), and the
// parts layout refuses a store that holds no parts before fetching.
func TestLeaderLayouts(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	fs := reyes.NewFileStore(filepath.Join(t.TempDir(), "ruleset.signed"), reyes.StoreOptions{})
	l := &reyes.Leader{Source: sgsource.Dir{Path: sampleInventory}, Store: fs, Signer: testSigner(t, clock.Now()),
		Build: ruleset.BuildOptions{Scope: "test"}, Now: clock.Now}
	var serial uint64
	for i, step := range []struct {
		layout    reyes.Layout
		wantRoot  bool
		wantSkip  bool
		wantParts bool // parts put
	}{
		{reyes.LayoutWhole, false, false, false},
		{reyes.LayoutWhole, false, true, false},
		{"", true, false, true},
		{reyes.LayoutParts, true, true, false},
		{reyes.LayoutWhole, false, false, false},
		{reyes.LayoutParts, true, false, true}, // the previous object names no parts
	} {
		t.Run(fmt.Sprintf("%d %q", i, step.layout), func(t *testing.T) {
			clock.Add(time.Minute)
			l.Layout = step.layout
			res, err := l.RunOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.Skipped != step.wantSkip || (res.PartsPut > 0) != step.wantParts {
				t.Errorf("skipped %v, %d parts put", res.Skipped, res.PartsPut)
			}
			payload, _ := storedPayload(t, fs)
			if got := ruleset.IsRoot(payload); got != step.wantRoot {
				t.Errorf("the store holds a root: %v, want %v", got, step.wantRoot)
			}
			if !step.wantRoot {
				if _, err := ruleset.Decode(payload); err != nil {
					t.Errorf("the whole layout's object: %v", err)
				}
			}
			if !res.Skipped {
				if res.Header.Serial <= serial {
					t.Errorf("serial %d after %d", res.Header.Serial, serial)
				}
				serial = res.Header.Serial
			}
		})
	}

	t.Run("a store without parts", func(t *testing.T) {
		fetched := false
		pl := &reyes.Leader{Source: countingSource{sgsource.Dir{Path: sampleInventory}, &fetched}, Store: plainStore{fs}, Signer: l.Signer,
			Build: ruleset.BuildOptions{Scope: "test"}, Now: clock.Now}
		_, err := pl.RunOnce(ctx)
		if err == nil || !strings.Contains(err.Error(), "cannot hold parts") || !strings.Contains(err.Error(), "whole") || fetched {
			t.Fatalf("RunOnce: %v (fetched: %v)", err, fetched)
		}
		pl.Layout = reyes.LayoutWhole
		clock.Add(time.Minute)
		pl.Refresh = -1
		if _, err := pl.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		pl.Layout = "both"
		if _, err := pl.RunOnce(ctx); err == nil || !strings.Contains(err.Error(), `"both"`) {
			t.Fatalf("an unknown layout: %v", err)
		}
	})
}

type countingSource struct {
	src     sgsource.Source
	fetched *bool
}

func (c countingSource) Fetch(ctx context.Context) (*inventory.Inventory, error) {
	*c.fetched = true
	return c.src.Fetch(ctx)
}

func TestParseLayout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want reyes.Layout
		ok   bool
	}{{"parts", reyes.LayoutParts, true}, {"whole", reyes.LayoutWhole, true}, {"", "", false}, {"Parts", "", false}, {"single", "", false}} {
		got, err := reyes.ParseLayout(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseLayout(%q) = %q, %v", tc.in, got, err)
		}
	}
}

// TestLeaderRepairsMissingParts: a part the previous root names but the
// store no longer has (deleted by hand, by a lifecycle rule) is put again
// by the next publish, instead of being skipped for ever.
func TestLeaderRepairsMissingParts(t *testing.T) {
	ctx := context.Background()
	l, st, clock := countingLeader(t, sgsource.Dir{Path: sampleInventory})
	l.Refresh = -1
	if _, err := l.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	root, _ := storedRoot(t, st)
	lost := root.Parts[len(root.Parts)/2].Name
	if err := st.FileStore.Parts().Delete(ctx, lost); err != nil {
		t.Fatal(err)
	}
	st.reset()
	clock.Add(time.Minute)
	res, err := l.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if put := st.reset(); !slices.Equal(put.parts, []string{lost}) || res.PartsPut != 1 {
		t.Errorf("parts put %q (result %d), want the lost one %s alone", put.parts, res.PartsPut, lost)
	}
	publishedRoot(t, st)

	t.Run("an unchanged run repairs too", func(t *testing.T) {
		l.Refresh = 0
		defer func() { l.Refresh = -1 }()
		cur, _ := storedRoot(t, st)
		lost := cur.Parts[0].Name
		if err := st.FileStore.Parts().Delete(ctx, lost); err != nil {
			t.Fatal(err)
		}
		st.reset()
		clock.Add(time.Minute)
		res, err := l.RunOnce(ctx)
		if err != nil || !res.Skipped || res.PartsPut != 1 {
			t.Fatalf("RunOnce: skipped %v, %d parts put, %v; want an unchanged run that puts the lost part back", res.Skipped, res.PartsPut, err)
		}
		if put := st.reset(); !slices.Equal(put.parts, []string{lost}) || put.rootPuts != 0 || len(put.roots) != 0 {
			t.Errorf("put %+v, want the lost part %s alone", put, lost)
		}
		checkParts(t, st, cur)
	})
	t.Run("the listing fails", func(t *testing.T) {
		st.parts.failList = errors.New("listing refused")
		defer func() { st.parts.failList = nil }()
		clock.Add(time.Minute)
		res, err := l.RunOnce(ctx)
		if err != nil || res.PartsPut != 0 {
			t.Fatalf("RunOnce: %v, %d parts put; want the previous root's parts taken to exist", err, res.PartsPut)
		}
		if res.GCError == nil {
			t.Error("collection did not fail although the listing did")
		}
	})
}

// TestLeaderWholeLayoutTouchesNoParts: the whole layout needs no more
// than before (no listing, no delete): parts an earlier parts layout left
// stay until removed by hand.
func TestLeaderWholeLayoutTouchesNoParts(t *testing.T) {
	ctx := context.Background()
	l, st, clock := countingLeader(t, sgsource.Dir{Path: sampleInventory})
	if _, err := l.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	before := partNames(t, st.FileStore.Parts())
	st.reset()
	st.parts.failList = errors.New("no s3:ListBucket")
	st.roots.failList = st.parts.failList
	l.Layout = reyes.LayoutWhole
	clock.Add(3 * time.Hour)
	res, err := l.RunOnce(ctx)
	if err != nil || res.GCError != nil || res.PartsDeleted != 0 {
		t.Fatalf("RunOnce: %v; gc: %v, %d deleted", err, res.GCError, res.PartsDeleted)
	}
	if put := st.reset(); len(put.parts) != 0 || len(put.roots) != 0 || put.rootPuts != 1 {
		t.Errorf("the whole layout put %+v", put)
	}
	st.parts.failList, st.roots.failList = nil, nil
	if after := partNames(t, st.FileStore.Parts()); !slices.Equal(after, before) {
		t.Errorf("parts changed from %q to %q", before, after)
	}
}

// TestLeaderPartsJoinToTheWholeRuleset: what the parts layout puts in the
// store is the very ruleset the whole layout would publish: joining the
// parts the root names gives its encoding byte for byte.
func TestLeaderPartsJoinToTheWholeRuleset(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	signer := testSigner(t, now)
	dir := t.TempDir()
	for i, src := range []sgsource.Source{sgsource.Dir{Path: sampleInventory}, sgsource.Dir{Path: "../render/testdata/inventories/accounts"}, memSource{estate(7)}} {
		parts := reyes.NewFileStore(filepath.Join(dir, "parts", fmt.Sprint(i)), reyes.StoreOptions{})
		whole := reyes.NewFileStore(filepath.Join(dir, "whole", fmt.Sprint(i)), reyes.StoreOptions{})
		for _, d := range []string{filepath.Dir(parts.Path()), filepath.Dir(whole.Path())} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, st := range []*reyes.FileStore{parts, whole} {
			l := &reyes.Leader{Source: src, Store: st, Signer: signer, Build: ruleset.BuildOptions{Scope: "test"}, Now: func() time.Time { return now }}
			if st == whole {
				l.Layout = reyes.LayoutWhole
			}
			if _, err := l.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
		}
		root, _ := storedRoot(t, parts)
		rs, err := ruleset.Join(ctx, root, func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
			return parts.Parts().Get(ctx, ref.Name, ref.Size)
		})
		if err != nil {
			t.Fatal(err)
		}
		joined, err := ruleset.Encode(rs)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := storedPayload(t, whole)
		if !bytes.Equal(joined, want) {
			t.Errorf("estate %d: the joined parts (%d bytes) differ from the whole layout's payload (%d bytes)", i, len(joined), len(want))
		}
	}
}

// TestLeaderPartsSha256sum: in a file store, the directory of parts is
// checked against the root with stock tools: gpg --verify on the root,
// sha256sum -c on its payload, run in PATH.parts.
func TestLeaderPartsSha256sum(t *testing.T) {
	bin, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skip("sha256sum is not on PATH")
	}
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	fs := reyes.NewFileStore(filepath.Join(t.TempDir(), "ruleset.signed"), reyes.StoreOptions{})
	l := &reyes.Leader{Source: memSource{estate(3)}, Store: fs, Signer: testSigner(t, now), Build: ruleset.BuildOptions{Scope: "test"}, Now: func() time.Time { return now }}
	if _, err := l.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	payload, _ := storedPayload(t, fs)
	rootFile := filepath.Join(t.TempDir(), "root")
	if err := os.WriteFile(rootFile, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", "--strict", rootFile)
	cmd.Dir = fs.Parts().String()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	root, _ := storedRoot(t, fs)
	if n := strings.Count(string(out), ": OK\n"); n != len(root.Parts) {
		t.Errorf("sha256sum checked %d parts, the root names %d:\n%s", n, len(root.Parts), out)
	}
	// A corrupted part is caught.
	victim := filepath.Join(fs.Parts().String(), root.Parts[0].Name)
	if err := os.WriteFile(victim, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "-c", "--strict", rootFile)
	cmd.Dir = fs.Parts().String()
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), root.Parts[0].Name+": FAILED") {
		t.Errorf("sha256sum -c on a tampered part: %v\n%s", err, out)
	}
}

// concurrentObjects records the most puts in flight at once.
type concurrentObjects struct {
	reyes.Objects
	mu           sync.Mutex
	inFlight, hi int
}

func (c *concurrentObjects) Put(ctx context.Context, name string, body []byte) error {
	c.mu.Lock()
	c.inFlight++
	c.hi = max(c.hi, c.inFlight)
	c.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	defer func() { c.mu.Lock(); c.inFlight--; c.mu.Unlock() }()
	return c.Objects.Put(ctx, name, body)
}

type concurrentStore struct {
	*reyes.FileStore
	parts *concurrentObjects
}

func (c concurrentStore) Parts() reyes.Objects { return c.parts }

// TestLeaderPutsAtMostEightAtOnce: the parts are put concurrently, at most
// 8 at a time.
func TestLeaderPutsAtMostEightAtOnce(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	fs := reyes.NewFileStore(filepath.Join(t.TempDir(), "ruleset.signed"), reyes.StoreOptions{})
	st := concurrentStore{FileStore: fs, parts: &concurrentObjects{Objects: fs.Parts()}}
	l := &reyes.Leader{Source: memSource{synth.Generate(synth.Medium())}, Store: st, Signer: testSigner(t, now),
		Build: ruleset.BuildOptions{Scope: "test"}, Now: func() time.Time { return now }}
	res, err := l.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.PartsPut <= 8 {
		t.Fatalf("only %d parts: the test needs more than 8", res.PartsPut)
	}
	if st.parts.hi > 8 || st.parts.hi < 2 {
		t.Errorf("%d puts in flight at most, want 2 to 8", st.parts.hi)
	}
}
