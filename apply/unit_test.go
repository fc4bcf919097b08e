package apply

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/render"
)

// TestBothFamiliesOneUnit: when the second family fails, the first is put
// back as it was, whether it reloaded its rules or swapped sets in place,
// and the recorded state still describes the kernel (the next run
// converges).
func TestBothFamiliesOneUnit(t *testing.T) {
	withExtra := specBNewChain(render.TableShared)
	for _, c := range []struct {
		name string
		to   planSpec
		fail func(applytest.Call, string) bool
	}{
		{"rules reload, ip6tables-restore fails", withExtra,
			func(c applytest.Call, _ string) bool { return c.Name == "ip6tables-nft-restore" }},
		{"members only, IPv6 fill fails", specB(render.TableShared),
			func(c applytest.Call, l string) bool { return strings.HasPrefix(l, "add reyes6-") }},
		{"exclusive, ip6tables-restore fails", func() planSpec { s := withExtra; s.table = render.TableExclusive; return s }(),
			func(c applytest.Call, _ string) bool { return c.Name == "ip6tables-nft-restore" }},
		{"first run, ip6tables-restore fails", specB(render.TableShared),
			func(c applytest.Call, _ string) bool { return c.Name == "ip6tables-nft-restore" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			k := applytest.New("nft")
			setupAdmin(t, k)
			opts := fakeOpts(t, k)
			from := specA(c.to.table)
			first := strings.HasPrefix(c.name, "first run")
			if !first {
				if _, err := Apply(ctx, from.build(), opts); err != nil {
					t.Fatal(err)
				}
			}
			before := k.Dump()
			k.FailLine = c.fail
			k.ResetCalls()
			if _, err := Apply(ctx, c.to.build(), opts); err == nil {
				t.Fatal("Apply succeeded with a failing IPv6")
			}
			// The rules to put back come from the text the previous run
			// kept, not from reading the table back (slow on nft).
			for _, call := range k.Calls() {
				if strings.HasSuffix(call.Name, "-save") && !first {
					t.Errorf("read the table back: %s", call)
				}
			}
			if got := k.Dump(); applytest.Unslotted(got) != applytest.Unslotted(before) {
				t.Errorf("IPv4 not put back:\n%s", lineDiffForTest(before, got))
			}
			// The record still says the previous plan: applying it again
			// changes nothing.
			k.FailLine = nil
			if res, err := Apply(ctx, from.build(), opts); err != nil || (res.Changed() && !first) {
				t.Errorf("previous plan again: %+v %v", res, err)
			}
			if _, err := Apply(ctx, c.to.build(), opts); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStateDirNotWritable: a read-only or full state directory stops Apply
// before the kernel is touched, with ErrStateNotWritable; once the
// directory is fixed the next run applies.
func TestStateDirNotWritable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	for _, c := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
	}{
		{"read-only", func(t *testing.T, dir string) {
			mustCmd(t, "mount", "-o", "remount,ro", dir)
		}},
		{"full", func(t *testing.T, dir string) {
			f, err := os.Create(filepath.Join(dir, "filler"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 4096)
			for {
				if _, err := f.Write(buf); err != nil {
					break
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			mustCmd(t, "mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir)
			t.Cleanup(func() { exec.Command("umount", dir).Run() })
			ctx := context.Background()
			k := applytest.New("nft")
			opts := Options{Runner: k, StateDir: dir}
			if _, err := Apply(ctx, specA(render.TableShared).build(), opts); err != nil {
				t.Fatal(err)
			}
			before := k.Dump()
			c.break_(t, dir)
			k.ResetCalls()
			_, err := Apply(ctx, specB(render.TableShared).build(), opts)
			if !errors.Is(err, ErrStateNotWritable) {
				t.Fatalf("Apply into a %s state dir: %v, want ErrStateNotWritable", c.name, err)
			}
			if !strings.Contains(err.Error(), "the kernel was not changed") {
				t.Errorf("error %q does not say the kernel was not changed", err)
			}
			if got := k.Dump(); got != before {
				t.Errorf("the kernel changed:\n%s", lineDiffForTest(before, got))
			}
			if rc := restoreCalls(k.Calls()); len(rc) > 0 {
				t.Errorf("restore calls: %v", rc)
			}
			// Fixed: the next run applies.
			if c.name == "read-only" {
				mustCmd(t, "mount", "-o", "remount,rw", dir)
			} else {
				os.Remove(filepath.Join(dir, "filler"))
			}
			if _, err := Apply(ctx, specB(render.TableShared).build(), opts); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func mustCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// untrustedThenApplies checks a failed run left the IPv4 record untrusted
// (trusted says what is wrong otherwise), then that p applies once k
// injects no more faults.
func untrustedThenApplies(t *testing.T, ctx context.Context, k *applytest.Kernel, opts Options, p *render.Plan, trusted string) {
	t.Helper()
	if readState(opts.StateDir, render.IPv4) != nil {
		t.Error(trusted)
	}
	k.Fail, k.FailLine = nil, nil
	if _, err := Apply(ctx, p, opts); err != nil {
		t.Fatal(err)
	}
}

// TestKilledRunIsNotTrustedAfterAbort: a run that finds a prepared state
// left by a killed run, and then fails itself, leaves the record
// distrusted: the next run still reads the kernel.
func TestKilledRunIsNotTrustedAfterAbort(t *testing.T) {
	ctx := context.Background()
	k, opts := fakeApplied(t)
	// A killed run left its prepared state.
	marker := statePath(opts.StateDir, render.IPv4) + pendingSuffix
	if err := os.WriteFile(marker, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	k.FailLine = func(c applytest.Call, _ string) bool { return c.Name == "ip6tables-nft-restore" }
	withExtra := specBNewChain(render.TableShared)
	if _, err := Apply(ctx, withExtra.build(), opts); err == nil {
		t.Fatal("Apply succeeded with a failing IPv6")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the failed run removed the mark of the killed one: %v", err)
	}
	untrustedThenApplies(t, ctx, k, opts, withExtra.build(), "the record is trusted again")
	if _, err := os.Stat(marker); err == nil {
		t.Error("a completed run left the mark")
	}
}

func TestPlanSecondNameTaken(t *testing.T) {
	p := specA(render.TableShared).build()
	s := p.V4.Sets[0]
	s.Name = secondSlot(s)
	p.V4.Sets = append(p.V4.Sets, s)
	_, err := Apply(context.Background(), p, Options{Runner: applytest.New("nft")})
	if !errors.Is(err, ErrPlan) {
		t.Fatalf("Apply of a plan whose set is another's second name: %v, want ErrPlan", err)
	}
}

// TestFailedRollbackIsNotTrusted: when IPv4 cannot be put back after IPv6
// failed, the record is not trusted by the next run, which reads the
// kernel and completes.
func TestFailedRollbackIsNotTrusted(t *testing.T) {
	ctx := context.Background()
	k, opts := fakeApplied(t)
	withExtra := specBNewChain(render.TableShared)
	restores := 0
	k.Fail = func(c applytest.Call) error {
		if c.Name == "ip6tables-nft-restore" {
			return errors.New("injected")
		}
		if c.Name == "iptables-nft-restore" {
			restores++
			if restores > 1 { // the load goes through, the one putting it back not
				return errors.New("injected")
			}
		}
		return nil
	}
	_, err := Apply(ctx, withExtra.build(), opts)
	if rolledBack(err) == nil {
		t.Fatalf("Apply: %v, want a failed rollback", err)
	}
	untrustedThenApplies(t, ctx, k, opts, withExtra.build(), "the IPv4 record is trusted though the kernel holds the new rules")
	ref := applytest.New("nft")
	if _, err := Apply(ctx, withExtra.build(), fakeOpts(t, ref)); err != nil {
		t.Fatal(err)
	}
	if applytest.Unslotted(k.Dump()) != applytest.Unslotted(ref.Dump()) {
		t.Errorf("did not converge:\n%s", lineDiffForTest(ref.Dump(), k.Dump()))
	}
}

// TestOldTemporarySetsGo: a temporary set (name + "-n") left by an apply
// of before the two slots is destroyed by the next run.
func TestOldTemporarySetsGo(t *testing.T) {
	ctx := context.Background()
	k, opts := fakeApplied(t)
	if _, err := k.Run(ctx, []byte("create reyes4-web-n hash:ip family inet\nadd reyes4-web-n 10.99.1.99\n"), "ipset", "restore"); err != nil {
		t.Fatal(err)
	}
	res, err := Apply(ctx, specA(render.TableShared).build(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Families[0].SetsDestroyed; !slices.Equal(got, []string{"reyes4-web-n"}) {
		t.Errorf("destroyed %v, want [reyes4-web-n]", got)
	}
	if strings.Contains(k.Dump(), "reyes4-web-n") {
		t.Errorf("left over:\n%s", k.Dump())
	}
}

// TestKeptTextNotTrusted: the rules text a run keeps to put IPv4 back is
// written without an fsync, so a crash may tear it; one whose hash is not
// the recorded one (torn, edited) or that is not a regular file is not
// loaded: IPv4 is put back from the table read back instead, and nothing
// waits on a FIFO.
func TestKeptTextNotTrusted(t *testing.T) {
	for _, c := range []struct {
		name   string
		break_ func(t *testing.T, path string)
	}{
		{"torn", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b[:len(b)/2], 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"empty", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"a FIFO", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			k := applytest.New("nft")
			setupAdmin(t, k)
			opts := fakeOpts(t, k)
			if _, err := Apply(ctx, specA(render.TableShared).build(), opts); err != nil {
				t.Fatal(err)
			}
			before := k.Dump()
			c.break_(t, rulesPath(opts.StateDir, render.IPv4))
			k.FailLine = func(c applytest.Call, _ string) bool { return c.Name == "ip6tables-nft-restore" }
			k.ResetCalls()
			if _, err := Apply(ctx, specBNewChain(render.TableShared).build(), opts); err == nil {
				t.Fatal("Apply succeeded with a failing IPv6")
			}
			saved := false
			for _, call := range k.Calls() {
				saved = saved || call.Name == "iptables-nft-save"
			}
			if !saved {
				t.Error("IPv4 was not read back: the kept text was trusted")
			}
			if got := k.Dump(); applytest.Unslotted(got) != applytest.Unslotted(before) {
				t.Errorf("IPv4 not put back:\n%s", lineDiffForTest(before, got))
			}
		})
	}
}
