package apply

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/render"
)

// TestOptionsPrepare: the caller's Prepare runs once per Apply, alongside
// the reads; every kernel change waits for it; its failure stops Apply
// with the kernel untouched (ErrStateNotWritable); and Apply never returns
// while it still runs, whatever stopped Apply.
func TestOptionsPrepare(t *testing.T) {
	ctx := context.Background()
	errDisk := errors.New("disk full")
	for _, c := range []struct {
		name     string
		prepErr  error
		failRead bool // the IPv4 table cannot be read
		wantErr  error
		changes  bool // the kernel is changed
	}{
		{name: "prepared, then applied", changes: true},
		{name: "prepare fails: nothing changed", prepErr: errDisk, wantErr: ErrStateNotWritable},
		{name: "a read fails: Apply waits for prepare", failRead: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := applytest.New("nft")
			opts := fakeOpts(t, k)
			var calls, done atomic.Int32
			var changedEarly atomic.Bool
			opts.Prepare = func() error {
				calls.Add(1)
				time.Sleep(20 * time.Millisecond) // an fsync
				done.Add(1)
				return c.prepErr
			}
			k.Fail = func(call applytest.Call) error {
				isChange := strings.HasSuffix(call.Name, "-restore") || call.Name == "ipset" && len(call.Args) > 0 && call.Args[0] != "list" && call.Args[0] != "save"
				if isChange && done.Load() == 0 {
					changedEarly.Store(true)
				}
				if c.failRead && strings.HasPrefix(call.Name, "iptables") && strings.HasSuffix(call.Name, "-save") {
					return errors.New("iptables-save: cannot read")
				}
				return nil
			}
			before := k.Dump()
			_, err := Apply(ctx, specA(render.TableShared).build(), opts)
			if done.Load() != calls.Load() || calls.Load() != 1 {
				t.Errorf("Prepare called %d times, %d returned before Apply did; want 1, 1", calls.Load(), done.Load())
			}
			if changedEarly.Load() {
				t.Error("the kernel was changed before Prepare returned")
			}
			switch {
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Fatalf("Apply: %v, want %v", err, c.wantErr)
			case c.wantErr != nil && (!errors.Is(err, errDisk) || !strings.Contains(err.Error(), "the kernel was not changed")):
				t.Errorf("error %q does not name the cause and say the kernel was not changed", err)
			case c.wantErr == nil && !c.failRead && err != nil:
				t.Fatal(err)
			case c.failRead && err == nil:
				t.Fatal("Apply succeeded without the IPv4 table")
			}
			if changed := k.Dump() != before; changed != c.changes {
				t.Errorf("kernel changed: %v, want %v", changed, c.changes)
			}
			if !c.changes && pending(opts.StateDir, render.IPv4) {
				t.Error("a prepared state was left behind")
			}
		})
	}
}
