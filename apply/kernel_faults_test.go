package apply

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/render"
)

// recorder wraps a Runner, records calls and can simulate a process that
// dies after n calls (every later call fails).
type recorder struct {
	r     Runner
	mu    sync.Mutex
	calls []string
	dieAt int // 0: never
}

func (c *recorder) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	c.mu.Lock()
	c.calls = append(c.calls, strings.TrimSpace(name+" "+strings.Join(args, " ")))
	n := len(c.calls)
	c.mu.Unlock()
	if c.dieAt > 0 && n > c.dieAt {
		return nil, errors.New("killed")
	}
	return c.r.Run(ctx, stdin, name, args...)
}

func (c *recorder) restores() []string {
	var out []string
	for _, s := range c.calls {
		if strings.Contains(s, "restore") {
			out = append(out, s)
		}
	}
	return out
}

// adminSetup puts an admin rule in INPUT and a DOCKER-USER chain in the
// host namespace, in both families, and returns a check that they are
// still there.
func (e *env) adminSetup() func(when string) {
	e.t.Helper()
	for _, fam := range []render.Family{render.IPv4, render.IPv6} {
		e.ipt(fam, "-N", "DOCKER-USER")
		e.ipt(fam, "-A", "DOCKER-USER", "-j", "RETURN")
		e.ipt(fam, "-A", "INPUT", "-p", "tcp", "--dport", "2222", "-m", "comment", "--comment", "admin", "-j", "ACCEPT")
	}
	return func(when string) {
		e.t.Helper()
		for _, fam := range []render.Family{render.IPv4, render.IPv6} {
			all := e.ipt(fam, "-S")
			for _, want := range []string{"-N DOCKER-USER", "-A DOCKER-USER -j RETURN", `-A INPUT -p tcp -m tcp --dport 2222 -m comment --comment admin -j ACCEPT`} {
				if !strings.Contains(all, want+"\n") {
					e.t.Errorf("%s: ipv%d lost %q:\n%s", when, fam, want, all)
				}
			}
		}
	}
}

// TestKernelCoexistenceAndIdempotence: an admin's INPUT rule and a
// DOCKER-USER chain survive apply, re-apply and remove; applying the same
// plan twice leaves iptables-save and ipset save identical and makes no
// restore call.
func TestKernelCoexistenceAndIdempotence(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b)
			check := e.adminSetup()
			rec := &recorder{r: e.opts.Runner}
			e.opts.Runner = rec
			p := specA(render.TableShared).build()
			e.apply(p)
			check("after apply")
			if got := e.ipt(render.IPv4, "-S", "INPUT", "1"); strings.TrimSpace(got) != "-A INPUT -j REYES-INPUT" {
				t.Errorf("INPUT rule 1 = %q", got)
			}
			snap := e.snapshot()
			rec.calls = nil
			if res := e.apply(p); res.Changed() {
				t.Errorf("second apply changed: %+v", res)
			}
			if r := rec.restores(); len(r) > 0 {
				t.Errorf("second apply made restore calls: %v", r)
			}
			t.Logf("unchanged apply: %d commands: %v", len(rec.calls), rec.calls)
			if s2 := e.snapshot(); s2 != snap {
				t.Errorf("second apply changed the kernel:\n%s\nwas:\n%s", s2, snap)
			}
			e.apply(specB(render.TableShared).build())
			check("after second plan")
			if _, err := Remove(context.Background(), e.opts); err != nil {
				t.Fatal(err)
			}
			check("after remove")
		})
	}
}

// TestKernelFaults: each fault ends with the previous policy in force,
// checked by packets and by iptables-save/ipset save, and the next run
// converges.
func TestKernelFaults(t *testing.T) {
	t.Parallel()
	prevSpec := planSpec{table: render.TableShared, allows: []allow{{"web", 6, 8080}}, sets: map[string][]string{
		"web": {"10.99.1.11", "fd00:99:1::11"}}}
	nextSpec := planSpec{table: render.TableShared, allows: []allow{{"web", 6, 8080}, {"web", 6, 8090}}, sets: map[string][]string{
		"web": {"10.99.1.12", "fd00:99:1::12"}}}
	prevTraffic := expectAll([]string{"tcp8080", "tcp8090"}, map[string][]string{"v4a": {"tcp8080"}, "v6a": {"tcp8080"}})
	nextTraffic := expectAll([]string{"tcp8080", "tcp8090"}, map[string][]string{"v4b": {"tcp8080", "tcp8090"}, "v6b": {"tcp8080", "tcp8090"}})

	invalid := nextSpec
	invalid.allows = append(slices.Clone(nextSpec.allows), allow{"ghost", 6, 1})
	badSet := nextSpec.build()
	badSet.V4.Sets[0].Members = append(badSet.V4.Sets[0].Members, netip.MustParseAddr("fd00:99::bad"))
	restoreAfterSwap := invalid.build() // sets change, then the restore fails

	for _, b := range backends(t) {
		for _, c := range []struct {
			name string
			plan *render.Plan
			step Step
			line string
		}{
			{"invalid line", invalid.build(), StepRules, "--match-set reyes4-ghost"},
			{"bad set member", badSet, StepFill, "add reyes4-web-b fd00:99::bad"},
			{"restore fails after swap", restoreAfterSwap, StepRules, "--match-set reyes4-ghost"},
		} {
			t.Run(string(b)+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, b)
				e.apply(prevSpec.build())
				before := e.snapshot()
				_, err := Apply(context.Background(), c.plan, e.opts)
				var se *StepError
				if !errors.As(err, &se) || se.Step != c.step || !strings.Contains(se.Input, c.line) {
					t.Fatalf("Apply = %v; want step %q with input %q", err, c.step, c.line)
				}
				t.Logf("error: %v", err)
				if after := e.snapshot(); after != before {
					t.Errorf("failed apply changed the kernel:\n%s\nwas:\n%s", after, before)
				}
				e.traffic(prevTraffic)
				e.apply(nextSpec.build())
				e.traffic(nextTraffic)
			})
		}

		t.Run(string(b)+"/killed between steps", func(t *testing.T) {
			t.Parallel()
			// Reference: what a clean apply of next gives.
			ref := newEnv(t, b)
			ref.apply(prevSpec.build())
			rec := &recorder{r: ref.opts.Runner}
			ref.opts.Runner = rec
			ref.apply(nextSpec.build())
			want := ref.snapshot()
			total := len(rec.calls)

			e := newEnv(t, b)
			for n := 1; n < total; n++ {
				e.opts.Runner = e.runner()
				e.apply(prevSpec.build())
				e.opts.Runner = &recorder{r: e.runner(), dieAt: n}
				Apply(context.Background(), nextSpec.build(), e.opts) // dies
				e.opts.Runner = e.runner()
				e.apply(nextSpec.build())
				if got := e.snapshot(); got != want {
					t.Errorf("killed after %d of %d calls, then re-run: got\n%s\nwant\n%s", n, total, got, want)
				}
			}
			e.traffic(nextTraffic)
		})
	}
}

// TestKernelXtablesLock: while another process holds the xtables lock,
// Apply waits (--wait) and then succeeds. The env's tools use a lock file
// of their own (XTABLES_LOCKFILE), never the machine's own.
func TestKernelXtablesLock(t *testing.T) {
	// Only iptables-legacy takes the lock.
	e := newEnv(t, BackendLegacy)
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("kernel test: flock is not installed")
	}
	const hold = time.Second
	cmd := exec.Command("flock", e.lockFile, "sleep", fmt.Sprint(hold.Seconds()))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	time.Sleep(100 * time.Millisecond) // let flock take the lock
	start := time.Now()
	e.apply(specA(render.TableShared).build())
	if d := time.Since(start); d < hold/2 {
		t.Errorf("Apply took %v: it did not wait for the lock", d)
	}
	e.traffic(expectAll([]string{"tcp8080"}, map[string][]string{"v4a": {"tcp8080"}, "v6a": {"tcp8080"}}))
}
