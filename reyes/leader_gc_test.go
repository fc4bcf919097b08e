package reyes_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// storeClock gives the files of a store's directories the modification
// times of a test clock, as a store whose clock agrees with the leaders':
// after each run, every file written since the last call gets now.
type storeClock struct {
	dirs []string
	seen map[string]time.Time
}

func newStoreClock(ps *reyes.FileStore) *storeClock {
	return &storeClock{dirs: []string{ps.Parts().String(), ps.Roots().String()}, seen: map[string]time.Time{}}
}

// newGCRig returns what the garbage-collection tests start from: a test
// clock at 2026-11-21 12:00 UTC, a file store in a fresh directory, the
// store's clock and a signer valid then.
func newGCRig(t *testing.T) (*testClock, *reyes.FileStore, *storeClock, *sign.Signer) {
	t.Helper()
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	fs := reyes.NewFileStore(filepath.Join(t.TempDir(), "ruleset.signed"), reyes.StoreOptions{})
	return &testClock{now: t0}, fs, newStoreClock(fs), testSigner(t, t0)
}

func (c *storeClock) stamp(t *testing.T, now time.Time) {
	t.Helper()
	for _, dir := range c.dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			if at, ok := c.seen[path]; ok && fi.ModTime().Equal(at) {
				continue
			}
			if err := os.Chtimes(path, now, now); err != nil {
				t.Fatal(err)
			}
			c.seen[path] = now
		}
	}
}

// set gives one file a modification time.
func (c *storeClock) set(t *testing.T, path string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
	c.seen[path] = at
}

// partNames lists o's names, sorted.
func partNames(t *testing.T, o reyes.Objects) []string {
	t.Helper()
	return reyes.ListNames(t, o, nil)
}

func estate(seed int64) *inventory.Inventory {
	c := synth.Small()
	c.Seed = seed
	return synth.Generate(c)
}

// TestLeaderGC: garbage collection keeps what an unexpired root names and
// what is younger than the grace, deletes the rest, then the expired
// history.
func TestLeaderGC(t *testing.T) {
	ctx := context.Background()
	clock, fs, sc, signer := newGCRig(t)
	l := &reyes.Leader{Source: memSource{estate(1)}, Store: fs, Signer: signer, Now: clock.Now,
		Build: ruleset.BuildOptions{Scope: "test", TTL: time.Hour}}
	run := func() reyes.LeaderResult {
		t.Helper()
		res, err := l.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.GCError != nil {
			t.Fatalf("garbage collection: %v", res.GCError)
		}
		sc.stamp(t, clock.Now())
		return res
	}
	run()
	rootA, _ := storedRoot(t, fs)

	t.Run("a part only an unexpired older root names survives", func(t *testing.T) {
		clock.Add(20 * time.Minute) // A's parts are older than the grace
		l.Source = memSource{estate(2)}
		res := run()
		rootB, _ := storedRoot(t, fs)
		if res.PartsDeleted != 0 || res.RootsDeleted != 0 {
			t.Errorf("deleted %d parts, %d roots", res.PartsDeleted, res.RootsDeleted)
		}
		checkParts(t, fs, rootA)
		checkParts(t, fs, rootB)
		if n := len(partNames(t, fs.Roots())); n != 2 {
			t.Errorf("%d roots in the history, want 2", n)
		}
	})

	t.Run("expired roots and their parts go once older than the grace", func(t *testing.T) {
		rootB, _ := storedRoot(t, fs)
		// A stray part of another leader still publishing, and an old one
		// that no root names (a publish that failed long ago).
		fresh, old := "g0000-1-"+hexOf("fresh"), "g0000-1-"+hexOf("old")
		for _, n := range []string{fresh, old} {
			if err := fs.Parts().Put(ctx, n, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		// A and B expire (not_after + max skew passed); the leader comes
		// back with estate 3, whose root lands at now.
		clock.Add(2 * time.Hour)
		sc.stamp(t, clock.Now())
		sc.set(t, filepath.Join(fs.Parts().String(), old), clock.Now().Add(-16*time.Minute))
		sc.set(t, filepath.Join(fs.Parts().String(), fresh), clock.Now().Add(-14*time.Minute))
		l.Source = memSource{estate(3)}
		res, err := l.RunOnce(ctx)
		if err != nil || res.GCError != nil {
			t.Fatalf("RunOnce: %v, gc: %v", err, res.GCError)
		}
		rootC, objC := publishedRoot(t, fs)
		want := append(names(rootC.Parts), fresh)
		slices.Sort(want)
		if got := partNames(t, fs.Parts()); !slices.Equal(got, want) {
			t.Errorf("parts left:\n%q\nwant C's and the fresh one:\n%q", got, want)
		}
		gone := 0
		for _, p := range slices.Concat(rootA.Parts, rootB.Parts) {
			if !rootC.Has(p.Name) {
				gone++
			}
		}
		if res.PartsDeleted < 1 || res.RootsDeleted != 2 {
			t.Errorf("deleted %d parts (A's and B's not in C, and the old one), %d roots (want 2)", res.PartsDeleted, res.RootsDeleted)
		}
		if hist := partNames(t, fs.Roots()); len(hist) != 1 || hist[0] != historyName(rootC.Serial, objC) {
			t.Errorf("history %q, want C's alone", hist)
		}
	})

	t.Run("the previous root expired: its parts are put again", func(t *testing.T) {
		clock.Add(2 * time.Hour)
		sc.stamp(t, clock.Now())
		res := run() // the same estate, after C expired
		rootC, _ := storedRoot(t, fs)
		if res.Skipped || res.PartsPut != len(rootC.Parts) {
			t.Errorf("skipped %v, %d parts put, want all %d: another leader's collection may delete the parts of an expired root", res.Skipped, res.PartsPut, len(rootC.Parts))
		}
	})
}

// TestLeaderGCFailureDoesNotFailThePublish: the ruleset is published, the
// failure is in the result, the log and the metrics.
func TestLeaderGCFailureDoesNotFailThePublish(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	clock := &testClock{now: t0}
	dir := t.TempDir()
	st := newCountingStore(filepath.Join(dir, "ruleset.signed"))
	st.roots.failList = errors.New("listing refused")
	l := &reyes.Leader{Source: memSource{estate(1)}, Store: st, Signer: testSigner(t, t0), Now: clock.Now,
		Build: ruleset.BuildOptions{Scope: "test"}, MetricsFile: filepath.Join(dir, "leader.prom")}
	res, err := l.RunOnce(ctx)
	if err != nil {
		t.Fatalf("a failed garbage collection failed the publish: %v", err)
	}
	if res.GCError == nil || !errors.Is(res.GCError, st.roots.failList) {
		t.Errorf("GCError = %v", res.GCError)
	}
	root, _ := publishedRoot(t, st)
	m := readMetrics(t, l.MetricsFile)
	for name, want := range map[string]float64{
		"reyes_leader_gc_failures_total":   1,
		"reyes_leader_parts_put_total":     float64(len(root.Parts)),
		"reyes_leader_parts":               float64(len(root.Parts)),
		"reyes_leader_parts_deleted_total": 0,
		"reyes_leader_bytes_put_total":     float64(res.BytesPut),
	} {
		if got := m.value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if res.BytesPut == 0 {
		t.Error("no bytes put")
	}
}

// TestLeaderGCUndecodableHistory: a history object that is no root keeps
// every part (what it names is unknown) until it is older than
// max_validity, then it goes like an expired root.
func TestLeaderGCUndecodableHistory(t *testing.T) {
	ctx := context.Background()
	clock, fs, sc, signer := newGCRig(t)
	l := &reyes.Leader{Source: memSource{estate(1)}, Store: fs, Signer: signer, Now: clock.Now,
		Build: ruleset.BuildOptions{Scope: "test", TTL: time.Hour}, MaxValidity: 2 * time.Hour}
	if _, err := l.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	rootA, _ := storedRoot(t, fs)
	if err := fs.Roots().Put(ctx, "1-garbage", []byte("not a signed object")); err != nil {
		t.Fatal(err)
	}
	sc.stamp(t, clock.Now())
	clock.Add(90 * time.Minute) // A expired; the garbage is younger than max_validity
	l.Source = memSource{estate(2)}
	res, err := l.RunOnce(ctx)
	if err != nil || res.GCError == nil || res.PartsDeleted != 0 {
		t.Fatalf("RunOnce: %v; gc: %v, %d parts deleted", err, res.GCError, res.PartsDeleted)
	}
	sc.stamp(t, clock.Now())
	checkParts(t, fs, rootA)
	clock.Add(3 * time.Hour)
	l.Source = memSource{estate(1)}
	res, err = l.RunOnce(ctx)
	if err != nil || res.GCError != nil || res.PartsDeleted == 0 {
		t.Fatalf("RunOnce: %v; gc: %v, %d parts deleted", err, res.GCError, res.PartsDeleted)
	}
	if slices.Contains(partNames(t, fs.Roots()), "1-garbage") {
		t.Error("the undecodable history object is still there")
	}
}

// TestLeaderGCTwoLeaders: two hot-spare leaders publish alternately,
// different estates, at irregular intervals (some longer than the ttl),
// one clock a little ahead: no collection ever deletes a part the current
// root or any unexpired root names.
func TestLeaderGCTwoLeaders(t *testing.T) {
	ctx := context.Background()
	clock, fs, sc, signer := newGCRig(t)
	estates := []*inventory.Inventory{estate(1), estate(2), estate(3)}
	v, _ := varied(t, estates[0])
	estates = append(estates, v)
	ahead := func() time.Time { return clock.Now().Add(3 * time.Minute) }
	leaders := []*reyes.Leader{
		{Store: fs, Signer: signer, Now: clock.Now, Build: ruleset.BuildOptions{Scope: "test", TTL: time.Hour}},
		{Store: fs, Signer: signer, Now: ahead, Build: ruleset.BuildOptions{Scope: "test", TTL: time.Hour}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	steps := []time.Duration{time.Minute, 5 * time.Minute, 5 * time.Minute, 16 * time.Minute, 50 * time.Minute, 70 * time.Minute, 3 * time.Hour}
	published, deleted := 0, 0
	for i := range 60 {
		clock.Add(steps[rng.IntN(len(steps))])
		l := leaders[i%2]
		l.Source = memSource{estates[rng.IntN(len(estates))]}
		l.Refresh = 0
		if rng.IntN(3) == 0 {
			l.Refresh = -1
		}
		res, err := l.RunOnce(ctx)
		if err != nil || res.GCError != nil {
			t.Fatalf("step %d: %v; gc: %v", i, err, res.GCError)
		}
		sc.stamp(t, clock.Now())
		if !res.Skipped {
			published++
		}
		deleted += res.PartsDeleted
		publishedRoot(t, fs)
		// Every unexpired root of the history still has its parts.
		for _, name := range partNames(t, fs.Roots()) {
			obj, err := fs.Roots().Get(ctx, name, 0)
			if err != nil {
				t.Fatal(err)
			}
			payload, _, err := sign.Unpack(obj)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if clock.Now().Before(r.NotAfter.Add(reyes.DefaultMaxSkew)) {
				checkParts(t, fs, r)
			}
		}
		if t.Failed() {
			t.Fatalf("step %d", i)
		}
	}
	if published < 20 || deleted == 0 {
		t.Errorf("%d publishes, %d parts deleted: the test did not exercise collection", published, deleted)
	}
	t.Logf("%d publishes, %d parts deleted", published, deleted)
}

func hexOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// historyName is the name ISSUE 15's layout gives a root's history copy.
func historyName(serial uint64, obj []byte) string {
	sum := sha256.Sum256(obj)
	return fmt.Sprintf("%d-%s", serial, hex.EncodeToString(sum[:])[:16])
}

// hookStore runs hook once, right after the first Get of the root.
type hookStore struct {
	*reyes.FileStore
	hook func()
}

func (h *hookStore) Get(ctx context.Context, ifNoneMatch string) ([]byte, string, error) {
	body, etag, err := h.FileStore.Get(ctx, ifNoneMatch)
	if f := h.hook; f != nil {
		h.hook = nil
		f()
	}
	return body, etag, err
}

// TestLeaderGCHotSpareDuringPublish: leader A reads the previous root
// (expired: the leaders were down longer than the ttl); before A puts
// anything, leader B publishes another estate and collects the expired
// root's parts. A's root must still name only parts that exist: the parts
// of an expired root are not taken to exist.
func TestLeaderGCHotSpareDuringPublish(t *testing.T) {
	ctx := context.Background()
	clock, fs, sc, signer := newGCRig(t)
	hs := &hookStore{FileStore: fs}
	a := &reyes.Leader{Source: memSource{estate(1)}, Store: hs, Signer: signer, Now: clock.Now, Build: ruleset.BuildOptions{Scope: "test", TTL: time.Hour}}
	b := &reyes.Leader{Source: memSource{estate(2)}, Store: fs, Signer: signer, Now: clock.Now, Build: ruleset.BuildOptions{Scope: "test", TTL: time.Hour}}
	if _, err := a.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	sc.stamp(t, clock.Now())
	clock.Add(2 * time.Hour)
	hs.hook = func() {
		res, err := b.RunOnce(ctx)
		if err != nil || res.GCError != nil || res.PartsDeleted == 0 {
			t.Errorf("leader B: %v; gc: %v, %d parts deleted", err, res.GCError, res.PartsDeleted)
		}
	}
	res, err := a.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := storedRoot(t, fs)
	if root.Serial != res.Header.Serial {
		t.Fatalf("the store holds serial %d, A published %d", root.Serial, res.Header.Serial)
	}
	checkParts(t, fs, root)
}
