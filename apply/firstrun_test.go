package apply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/render"
)

// TestFirstRunKernelNotEmpty: a first run (a state directory with no
// record) does not read the set headers, and ends where a run that reads
// them ends, whatever the kernel holds that no record says: a set under a
// name of the plan (from a run with another state directory) makes it
// start over with the headers, and is replaced when unused or left alone
// when in use; reyes chains in a table make it read the headers at once; a
// set that the plan does not name stays until the next run.
func TestFirstRunKernelNotEmpty(t *testing.T) {
	ctx := context.Background()
	plan := specA(render.TableShared).build()
	ref := applytest.New("nft")
	if _, err := Apply(ctx, plan, fakeOpts(t, ref)); err != nil {
		t.Fatal(err)
	}
	clean := ref.Dump()
	ipset := func(t *testing.T, k *applytest.Kernel, text string) {
		t.Helper()
		if _, err := k.Run(ctx, []byte(text), "ipset", "restore"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, k *applytest.Kernel)
		// headers: the run read the set headers; retried: it started
		// over after a create failed.
		headers, retried bool
		check            func(t *testing.T, k *applytest.Kernel)
	}{
		{name: "empty kernel", check: func(t *testing.T, k *applytest.Kernel) {
			if got := k.Dump(); got != clean {
				t.Errorf("kernel:\n%s", lineDiffForTest(clean, got))
			}
		}},
		{name: "an unused set under a name of the plan", headers: true, retried: true,
			setup: func(t *testing.T, k *applytest.Kernel) {
				ipset(t, k, "create reyes4-db hash:ip family inet\nadd reyes4-db 10.1.1.1\n")
			},
			check: func(t *testing.T, k *applytest.Kernel) {
				if got := k.Dump(); got != clean {
					t.Errorf("kernel:\n%s", lineDiffForTest(clean, got))
				}
			}},
		{name: "a set under a name of the plan that another rule uses", headers: true, retried: true,
			setup: func(t *testing.T, k *applytest.Kernel) {
				ipset(t, k, "create reyes4-db hash:ip family inet\nadd reyes4-db 10.5.5.5\n")
				if err := k.Script(4, "*filter\n-A INPUT -m set --match-set reyes4-db src -j ACCEPT\nCOMMIT\n"); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, k *applytest.Kernel) {
				d := k.Dump()
				if !strings.Contains(d, "-A INPUT -m set --match-set reyes4-db src -j ACCEPT") {
					t.Errorf("the other rule is gone:\n%s", d)
				}
				if !strings.Contains(d, "add reyes4-db 10.5.5.5\n") || strings.Contains(d, "add reyes4-db 10.99.1.20\n") {
					t.Errorf("the set in use changed:\n%s", d)
				}
				if !strings.Contains(d, "add reyes4-db-b 10.99.1.20\n") {
					t.Errorf("the plan's members are not in the other slot:\n%s", d)
				}
			}},
		{name: "reyes chains without a record (state directory wiped)", headers: true,
			setup: func(t *testing.T, k *applytest.Kernel) {
				if _, err := Apply(ctx, specB(render.TableShared).build(), Options{Runner: k, StateDir: t.TempDir()}); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, k *applytest.Kernel) {
				if got, want := applytest.Unslotted(k.Dump()), applytest.Unslotted(clean); got != want {
					t.Errorf("kernel:\n%s", lineDiffForTest(want, got))
				}
			}},
		{name: "a set the plan does not name", setup: func(t *testing.T, k *applytest.Kernel) {
			ipset(t, k, "create reyes4-gone hash:ip family inet\nadd reyes4-gone 10.1.1.1\n")
		},
			check: func(t *testing.T, k *applytest.Kernel) {
				if !strings.Contains(k.Dump(), "create reyes4-gone ") {
					t.Error("a first run destroyed a set it had not read")
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := applytest.New("nft")
			if c.setup != nil {
				c.setup(t, k)
			}
			k.ResetCalls()
			opts := fakeOpts(t, k)
			res, err := Apply(ctx, plan, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Families) != 2 || !res.Changed() {
				t.Errorf("result %+v", res)
			}
			var calls []string
			for _, call := range k.Calls() {
				calls = append(calls, call.String())
			}
			if got := slices.Contains(calls, "ipset list -t"); got != c.headers {
				t.Errorf("read the set headers: %v, want %v; calls %q", got, c.headers, calls)
			}
			if got := slices.Index(calls, "ipset list -t") > slices.Index(calls, "ipset restore"); got != c.retried {
				t.Errorf("started over: %v, want %v; calls %q", got, c.retried, calls)
			}
			c.check(t, k)
			if pending(opts.StateDir, render.IPv4) || pending(opts.StateDir, render.IPv6) {
				t.Error("a prepared state was left")
			}
			// The next run has a record: it reads the headers and leaves
			// only the plan's sets (and those another rule uses).
			if _, err := Apply(ctx, plan, opts); err != nil {
				t.Fatal(err)
			}
			if d := k.Dump(); strings.Contains(d, "reyes4-gone") {
				t.Errorf("the set the plan does not name survived the second run:\n%s", d)
			}
		})
	}
}

// TestFirstRunNeedsAnEmptyStateDir: only a state directory with no record
// of either family, committed or prepared, makes a first run; Force and
// running without a state directory read the headers as always.
func TestFirstRunNeedsAnEmptyStateDir(t *testing.T) {
	for _, c := range []struct {
		name  string
		files []string
		opts  func(o *Options)
		want  bool
	}{
		{name: "empty", want: true},
		{name: "other files only", files: []string{"state.json", "status.json", "lock"}, want: true},
		{name: "an IPv4 record", files: []string{"apply-ipv4.json"}},
		{name: "an IPv6 record", files: []string{"apply-ipv6.json"}},
		{name: "a prepared record (a killed run)", files: []string{"apply-ipv6.json.new"}},
		{name: "no state directory", opts: func(o *Options) { o.StateDir = "" }},
		{name: "force", opts: func(o *Options) { o.Force = true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := Options{StateDir: t.TempDir()}
			for _, f := range c.files {
				if err := os.WriteFile(filepath.Join(o.StateDir, f), []byte("{}"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if c.opts != nil {
				c.opts(&o)
			}
			if got := o.firstRun(); got != c.want {
				t.Errorf("firstRun = %v, want %v", got, c.want)
			}
		})
	}
}

// TestKernelFirstRunSetExists: a first run into a namespace that holds a
// set under a name of the plan, with the real ipset: the fill stops at its
// create before any member is added, and the run starts over with the
// headers. A set another rule uses keeps its members and its rule; an
// unused one is replaced by the plan's.
func TestKernelFirstRunSetExists(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		for _, inUse := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/in use %v", b, inUse), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, b)
				e.host.MustRun("ipset", "create", "reyes4-db", "hash:ip", "family", "inet")
				e.host.MustRun("ipset", "add", "reyes4-db", "10.5.5.5")
				if inUse {
					e.ipt(render.IPv4, "-A", "INPUT", "-m", "set", "--match-set", "reyes4-db", "src", "-j", "ACCEPT")
				}
				res := e.apply(specA(render.TableShared).build())
				if !res.Changed() {
					t.Fatalf("first apply changed nothing: %+v", res)
				}
				members := e.host.MustRun("ipset", "list", "reyes4-db")
				if inUse {
					if !strings.Contains(members, "10.5.5.5") || strings.Contains(members, "10.99.1.20") {
						t.Errorf("the set in use changed:\n%s", members)
					}
					if rules := e.ipt(render.IPv4, "-S", "INPUT"); !strings.Contains(rules, "--match-set reyes4-db src -j ACCEPT") {
						t.Errorf("the other rule is gone:\n%s", rules)
					}
					if live := e.host.MustRun("ipset", "list", "reyes4-db-b"); !strings.Contains(live, "10.99.1.20") {
						t.Errorf("the plan's members are not in the other slot:\n%s", live)
					}
				} else if strings.Contains(members, "10.5.5.5") || !strings.Contains(members, "10.99.1.20") {
					t.Errorf("the unused set was not replaced:\n%s", members)
				}
			})
		}
	}
}
