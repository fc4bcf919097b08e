package reyes_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/reyes-fw/reyes/sign"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

// TestRedteamLeaderRepairsTruncatedParts: a part of the published root
// is truncated in the store (a torn copy by another tool, a sync gone
// wrong, someone who can write the store). The listing still has its
// name, so the leader used to skip it as "the previous root names it" and
// every later root named the broken part: each follower that needs it
// failed until the estate changed that bin. Its size is in its name: a
// listed size that differs is a part to put again.
func TestRedteamLeaderRepairsTruncatedParts(t *testing.T) {
	ctx := context.Background()
	clock, st, l := publishedSample(t)
	root, _ := storedRoot(t, st)
	broken := root.Parts[len(root.Parts)/2].Name
	if err := os.Truncate(filepath.Join(st.FileStore.Parts().String(), broken), 3); err != nil {
		t.Fatal(err)
	}
	st.reset()
	clock.Add(time.Minute)
	if _, err := l.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if put := st.reset(); !slices.Contains(put.parts, broken) {
		t.Errorf("parts put %q: not the truncated %s", put.parts, broken)
	}
	again, _ := storedRoot(t, st)
	checkParts(t, st, again)
}

// TestRedteamGCTwoLeadersRace: two leaders publish alternately and at
// once into one file store, with roots valid for 2 s, a max skew of 1 s
// and a grace of 400 ms (longer than a publish here), so that garbage
// collection deletes parts all the time; meanwhile fresh followers read
// whatever root the store holds and the parts their view needs. A root
// that is still valid when its parts are read must have them all: a part
// may be missing only once the root has expired (not_after + max skew).
func TestRedteamGCTwoLeadersRace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	ctx := context.Background()
	start := time.Now()
	fs := reyes.NewFileStore(filepath.Join(t.TempDir(), "ruleset.signed"), reyes.StoreOptions{})
	signer := testSigner(t, start)
	trusted := signer.Keyring()
	const skew = time.Second
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var published, deleted atomic.Int64
	for li := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				l := &reyes.Leader{Source: memSource{estate(int64(2*i + li + 1))}, Store: fs, Signer: signer,
					Build: ruleset.BuildOptions{Scope: "test", TTL: 2 * time.Second}, Refresh: -1,
					GCGrace: 400 * time.Millisecond, MaxSkew: skew, MaxValidity: time.Hour}
				res, err := l.RunOnce(ctx)
				if err != nil {
					t.Errorf("leader %d: %v", li, err)
					return
				}
				published.Add(1)
				deleted.Add(int64(res.PartsDeleted))
				time.Sleep(time.Duration(50+li*37) * time.Millisecond)
			}
		}()
	}
	reads, missing := 0, 0
	for time.Since(start) < 6*time.Second && !t.Failed() {
		obj, _, err := fs.Get(ctx, "")
		if err != nil {
			continue
		}
		payload, _, err := sign.Unpack(obj)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sign.OpenBytes(obj, trusted, time.Now(), sign.WithMaxSkew(skew)); err != nil {
			t.Fatal(err)
		}
		root, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		var req ruleset.ViewRequest
		for _, p := range root.Parts {
			if p.Kind == ruleset.KindGroups && len(req.Groups) < 3 {
				// Any group of the estate will do: ask for a few.
				req.Groups = append(req.Groups, "sg-0000000000000000"+string(rune('0'+len(req.Groups))))
			}
		}
		_, err = ruleset.LoadView(ctx, root, req, func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
			b, err := fs.Parts().Get(ctx, ref.Name, ref.Size)
			if errors.Is(err, reyes.ErrNotFound) {
				return nil, fmt.Errorf("%w: %w", ruleset.ErrPartMissing, err)
			}
			return b, err
		})
		reads++
		if errors.Is(err, ruleset.ErrPartMissing) {
			missing++
			if time.Now().Before(root.NotAfter.Add(skew)) {
				t.Fatalf("serial %d, valid until %s, lost a part at %s: %v", root.Serial, root.NotAfter.Add(skew).Format(time.StampMilli), time.Now().Format(time.StampMilli), err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		// The whole root too, as reyesctl verify reads it.
		if _, err := ruleset.Join(ctx, root, func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
			b, err := fs.Parts().Get(ctx, ref.Name, ref.Size)
			if errors.Is(err, reyes.ErrNotFound) {
				return nil, fmt.Errorf("%w: %w", ruleset.ErrPartMissing, err)
			}
			return b, err
		}); err != nil && (!errors.Is(err, ruleset.ErrPartMissing) || time.Now().Before(root.NotAfter.Add(skew))) {
			t.Fatalf("serial %d, valid until %s: Join at %s: %v", root.Serial, root.NotAfter.Add(skew).Format(time.StampMilli), time.Now().Format(time.StampMilli), err)
		}
	}
	close(stop)
	wg.Wait()
	if deleted.Load() == 0 {
		t.Errorf("%d publishes deleted no part: the test did not exercise collection", published.Load())
	}
	t.Logf("%d publishes, %d parts deleted, %d reads (%d of an expired root with a part gone)", published.Load(), deleted.Load(), reads, missing)
}

// TestRedteamGCOversizedHistory: someone who can write the store puts a
// huge object into the roots' history. Garbage collection used to read it
// whole (up to the store's cap), and one larger than the cap failed every
// collection for ever, so parts piled up without bound. A history object
// is at most a root's size plus its signature: anything larger is read no
// further, and is treated as any object that is no root (it blocks
// deletions until it is older than max_validity, then goes).
func TestRedteamGCOversizedHistory(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	clock := &testClock{now: t0}
	fs := reyes.NewFileStore(filepath.Join(t.TempDir(), "ruleset.signed"), reyes.StoreOptions{})
	sc := newStoreClock(fs)
	l := &reyes.Leader{Source: memSource{estate(1)}, Store: fs, Signer: testSigner(t, t0), Now: clock.Now,
		Build: ruleset.BuildOptions{Scope: "test", TTL: time.Hour}, MaxValidity: 2 * time.Hour}
	if _, err := l.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(fs.Roots().String(), "1-0000000000000000")
	f, err := os.Create(junk)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: larger than the store's cap, no disk used.
	if err := f.Truncate(reyes.DefaultMaxObjectSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sc.stamp(t, clock.Now())
	clock.Add(3 * time.Hour)
	l.Source = memSource{estate(2)}
	res, err := l.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.GCError != nil || res.PartsDeleted == 0 {
		t.Fatalf("gc: %v, %d parts deleted; want the oversized history object aged out and collection done", res.GCError, res.PartsDeleted)
	}
	if _, err := os.Stat(junk); err == nil {
		t.Error("the oversized history object is still there")
	}
}

// TestRedteamLeaderReplacesOddParts: someone who can write the file
// store replaces a part of the published root by a FIFO or a symbolic
// link. The listing leaves it out, so the next publish puts the part
// again; the store used to refuse to write over it, so every later
// publish failed and the fleet went stale. A part's name says what its
// bytes are: the leader writes the part over whatever is there (a rename,
// which follows no link).
func TestRedteamLeaderReplacesOddParts(t *testing.T) {
	for _, kind := range []string{"fifo", "symlink"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			clock, st, l := publishedSample(t)
			root, _ := storedRoot(t, st)
			odd := filepath.Join(st.FileStore.Parts().String(), root.Parts[0].Name)
			target := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.WriteFile(target, []byte("keep\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove(odd)
			if kind == "fifo" {
				mkfifo(t, odd)
			} else if err := os.Symlink(target, odd); err != nil {
				t.Fatal(err)
			}
			clock.Add(time.Minute)
			if _, err := l.RunOnce(ctx); err != nil {
				t.Fatalf("publish with a %s in place of a part: %v", kind, err)
			}
			again, _ := storedRoot(t, st)
			checkParts(t, st, again)
			if b, _ := os.ReadFile(target); string(b) != "keep\n" {
				t.Errorf("the link's target was written: %q", b)
			}
		})
	}
}

// publishedSample is a leader of the sample inventory that has published
// once into a counting file store, with its clock.
func publishedSample(t *testing.T) (*testClock, *countingStore, *reyes.Leader) {
	t.Helper()
	clock := &testClock{now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	st := newCountingStore(filepath.Join(t.TempDir(), "ruleset.signed"))
	l := &reyes.Leader{Source: sgsource.Dir{Path: sampleInventory}, Store: st, Signer: testSigner(t, clock.Now()),
		Build: ruleset.BuildOptions{Scope: "test"}, Now: clock.Now, Refresh: -1}
	if _, err := l.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	return clock, st, l
}
