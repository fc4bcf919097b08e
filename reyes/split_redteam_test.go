package reyes_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/reyes"
)

// mkfifo replaces path with a FIFO (no writer will ever open it).
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
}

// TestRedteamCacheFIFODoesNotHang: a follower whose parts cache was
// tampered with (every cached part replaced by a FIFO, a symbolic link to
// one, or the cache directory itself a FIFO) still finishes its run: the
// cache is an optimisation, and open(2) on a FIFO without a writer used to
// block for ever, where neither the run's timeout nor SIGTERM reach.
func TestRedteamCacheFIFODoesNotHang(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, cache string, parts []string)
	}{
		{"parts are FIFOs", func(t *testing.T, cache string, parts []string) {
			for _, n := range parts {
				mkfifo(t, filepath.Join(cache, n))
			}
		}},
		{"parts are symlinks to a FIFO", func(t *testing.T, cache string, parts []string) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			mkfifo(t, fifo)
			for _, n := range parts {
				os.Remove(filepath.Join(cache, n))
				if err := os.Symlink(fifo, filepath.Join(cache, n)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"cache directory is a FIFO", func(t *testing.T, cache string, parts []string) {
			mkfifo(t, cache)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSplitEstate(t)
			p := e.p
			e.publish(t, 1)
			first := e.run(t)
			tc.tamper(t, filepath.Join(p.follower.StateDir, reyes.PartsDir), first.Parts)
			// A new setting forces a full run, which reads the cache.
			p.follower.Render.LogDrop = true
			err := within(t, 10*time.Second, "follower run with a tampered cache", func() error {
				res, err := p.follower.RunOnce(context.Background())
				if err == nil && res.PartsFetched != len(first.Parts) {
					t.Errorf("fetched %d parts from the store, want %d (the cache holds nothing usable)", res.PartsFetched, len(first.Parts))
				}
				return err
			})
			if err != nil {
				t.Fatalf("run with a tampered cache: %v", err)
			}
		})
	}
}

// TestRedteamStoreDirFIFODoesNotHang: someone who can write the file
// store replaces its parts or roots directory by a FIFO; the leader's
// publish (which lists the parts, and whose garbage collection lists both)
// and the follower end in bounded time.
func TestRedteamStoreDirFIFODoesNotHang(t *testing.T) {
	for _, dir := range []string{".parts", ".roots"} {
		t.Run(dir, func(t *testing.T) {
			p := newPipeline(t)
			ctx := context.Background()
			if _, err := p.leader.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			mkfifo(t, p.store.Path()+dir)
			p.now = p.now.Add(time.Hour) // the next run publishes again
			_ = within(t, 10*time.Second, "leader run with a FIFO for "+dir, func() error {
				_, err := p.leader.RunOnce(ctx)
				return err
			})
			_ = within(t, 10*time.Second, "follower run with a FIFO for "+dir, func() error {
				_, err := p.follower.RunOnce(ctx)
				return err
			})
			_ = within(t, 10*time.Second, "List of "+dir, func() error {
				_, err := p.store.Parts().List(ctx)
				if err == nil && dir == ".parts" {
					t.Error("List of a FIFO: no error")
				}
				_, err = p.store.Roots().List(ctx)
				return err
			})
		})
	}
}
