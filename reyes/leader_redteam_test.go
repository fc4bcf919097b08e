package reyes_test

import (
	"context"
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
	clock := &testClock{now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	st := newCountingStore(filepath.Join(t.TempDir(), "ruleset.signed"))
	l := &reyes.Leader{Source: sgsource.Dir{Path: sampleInventory}, Store: st, Signer: testSigner(t, clock.Now()),
		Build: ruleset.BuildOptions{Scope: "test"}, Now: clock.Now, Refresh: -1}
	if _, err := l.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
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
