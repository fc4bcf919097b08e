package apply

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/render"
)

func TestCheck(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		table render.TableMode
		drift func(k *applytest.Kernel) error
		want  string // "" for no drift
	}{
		{"untouched", render.TableShared, func(*applytest.Kernel) error { return nil }, ""},
		{"untouched, exclusive", render.TableExclusive, func(*applytest.Kernel) error { return nil }, ""},
		{"chain flushed", render.TableShared, func(k *applytest.Kernel) error { return k.Script(4, "*filter\n-F REYES-INPUT\nCOMMIT\n") }, "chain REYES-INPUT is not as loaded"},
		{"filter chain flushed", render.TableShared, func(k *applytest.Kernel) error { return k.Script(4, "*filter\n-F REYES-FILTER\nCOMMIT\n") }, "chain REYES-FILTER is not as loaded"},
		{"rule inserted further down", render.TableShared, func(k *applytest.Kernel) error {
			return k.Script(6, "*filter\n-I REYES-FILTER 1 -j RETURN\nCOMMIT\n")
		}, "IPv6: chain REYES-FILTER is not as loaded"},
		{"member replaced one for one", render.TableShared, func(k *applytest.Kernel) error {
			_, err := k.Run(ctx, []byte("del reyes4-db 10.99.1.20\nadd reyes4-db 10.66.6.6\n"), "ipset", "restore")
			return err
		}, "set reyes4-db does not hold the members loaded"},
		{"jump removed", render.TableShared, func(k *applytest.Kernel) error { return k.Script(6, "*filter\n-D INPUT -j REYES-INPUT\nCOMMIT\n") }, "IPv6: the jump from INPUT"},
		{"rule above the jump", render.TableShared, func(k *applytest.Kernel) error { return k.Script(4, "*filter\n-I INPUT 1 -j DROP\nCOMMIT\n") }, "not first"},
		{"set emptied", render.TableShared, func(k *applytest.Kernel) error {
			_, err := k.Run(ctx, []byte("flush reyes4-db\n"), "ipset", "restore")
			return err
		}, "set reyes4-db does not hold the members loaded (0 now, 2 loaded)"},
		{"table flushed, exclusive", render.TableExclusive, func(k *applytest.Kernel) error { return k.Script(4, "*filter\n-F INPUT\nCOMMIT\n") }, "INPUT has no jump"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := applytest.New("nft")
			setupAdmin(t, k)
			opts := fakeOpts(t, k)
			if _, err := Check(ctx, opts); !errors.Is(err, ErrNoState) {
				t.Fatalf("Check before any apply: %v, want ErrNoState", err)
			}
			if _, err := Apply(ctx, specA(tt.table).build(), opts); err != nil {
				t.Fatal(err)
			}
			if err := tt.drift(k); err != nil {
				t.Fatal(err)
			}
			before := k.Dump()
			drift, err := Check(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range drift {
				got = append(got, d.String())
			}
			switch {
			case tt.want == "" && len(drift) > 0:
				t.Errorf("drift reported on an untouched kernel: %v", got)
			case tt.want != "" && !strings.Contains(strings.Join(got, "; "), tt.want):
				t.Errorf("drift %v, want one mentioning %q", got, tt.want)
			}
			if k.Dump() != before {
				t.Error("Check changed the kernel")
			}
		})
	}
}

// TestCheckKernel runs Check against the real tools of both backends in a
// namespace: nothing after an apply; the flushed chain, the removed jump
// and the emptied set once they happen.
func TestCheckKernel(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			e := newEnv(t, b)
			ctx := context.Background()
			e.apply(specA(render.TableShared).build())
			if d, err := Check(ctx, e.opts); err != nil || len(d) != 0 {
				t.Fatalf("after apply: %v %v", d, err)
			}
			e.ipt(render.IPv4, "-F", render.InputChain)
			e.ipt(render.IPv6, "-D", "INPUT", "-j", render.InputChain)
			e.host.MustRun("ipset", "flush", "reyes4-db")
			d, err := Check(ctx, e.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range d {
				got = append(got, x.String())
			}
			all := strings.Join(got, "; ")
			for _, want := range []string{"IPv4: chain REYES-INPUT is not as loaded", "IPv6: the jump from INPUT", "set reyes4-db does not hold the members loaded (0 now"} {
				if !strings.Contains(all, want) {
					t.Errorf("drift %q lacks %q", all, want)
				}
			}
			// Apply repairs it all, and Check agrees.
			e.apply(specA(render.TableShared).build())
			if d, err := Check(ctx, e.opts); err != nil || len(d) != 0 {
				t.Fatalf("after the repair: %v %v", d, err)
			}
			// What the fast path cannot see: a chain flushed further down
			// and a member replaced one for one. Check finds both; Apply
			// with Force repairs them.
			e.ipt(render.IPv4, "-F", render.FilterChain)
			db := e.liveSet("reyes4-db") // the repair loaded it into its other slot
			e.host.MustRun("ipset", "del", db, "10.99.1.20")
			e.host.MustRun("ipset", "add", db, "10.66.6.6")
			if d, err := Check(ctx, e.opts); err != nil || len(d) != 2 {
				t.Fatalf("after flushing REYES-FILTER and replacing a member: %v %v", d, err)
			}
			forced := e.opts
			forced.Force = true
			if _, err := Apply(ctx, specA(render.TableShared).build(), forced); err != nil {
				t.Fatal(err)
			}
			if d, err := Check(ctx, e.opts); err != nil || len(d) != 0 {
				t.Fatalf("after the repair: %v %v", d, err)
			}
		})
	}
}

func TestPlanSetNames(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"-A REYES-FILTER -p tcp -m set --match-set reyes4-sg-0a-b src -g REYES-ALLOW", "-A REYES-FILTER -p tcp -m set --match-set reyes4-sg-0a src -g REYES-ALLOW"},
		{"-A REYES-FILTER -m set --match-set reyes6-sg-0a src -g REYES-ALLOW", "-A REYES-FILTER -m set --match-set reyes6-sg-0a src -g REYES-ALLOW"},
		{"-A INPUT -m set --match-set other-b src -j ACCEPT", "-A INPUT -m set --match-set other-b src -j ACCEPT"},
		{"-A REYES-X -m comment --comment \"sg-b -b \" -j RETURN", "-A REYES-X -m comment --comment \"sg-b -b \" -j RETURN"},
	} {
		if got := PlanSetNames(c.in); got != c.want {
			t.Errorf("PlanSetNames(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// otherRelease prints iptables-save output as another iptables release
// might: protocol numbers instead of names, no "-m tcp"/"-m udp" after
// "-p", comments unquoted, a default option spelled out, rules of a chain
// with spaces doubled. Nothing about what the rules do changes.
type otherRelease struct{ Runner }

func (o otherRelease) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	out, err := o.Runner.Run(ctx, stdin, name, args...)
	if err != nil || !strings.HasSuffix(name, "-save") {
		return out, err
	}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "-A "+render.ChainPrefix) {
			continue
		}
		l = strings.NewReplacer("-p tcp -m tcp ", "-p 6 ", "-p udp -m udp ", "-p 17 ", `--comment "reyes:`, "--comment reyes:").Replace(l)
		if j := strings.Index(l, "reyes:"); j >= 0 && j+len("reyes:")+16 < len(l) && l[j+len("reyes:")+16] == '"' {
			l = l[:j+len("reyes:")+16] + l[j+len("reyes:")+17:]
		}
		if strings.Contains(l, "-j LOG") && !strings.Contains(l, "--log-level") {
			l += " --log-level 4"
		}
		lines[i] = strings.ReplaceAll(l, " -j ", "  -j ")
	}
	return []byte(strings.Join(lines, "\n")), nil
}

// TestCheckIgnoresHowRulesArePrinted: an iptables release that prints
// rules differently is not drift (drift detection hashed whole save lines,
// so such a release made every check find drift and reload); a rule
// inserted still is.
func TestCheckIgnoresHowRulesArePrinted(t *testing.T) {
	ctx := context.Background()
	for _, table := range []render.TableMode{render.TableShared, render.TableExclusive} {
		t.Run(table.String(), func(t *testing.T) {
			k := applytest.New("nft")
			setupAdmin(t, k)
			opts := fakeOpts(t, k)
			spec := specA(table)
			if _, err := Apply(ctx, spec.build(), opts); err != nil {
				t.Fatal(err)
			}
			opts.Runner = otherRelease{k}
			if drift, err := Check(ctx, opts); err != nil || len(drift) != 0 {
				t.Fatalf("printed otherwise: drift %v, %v", drift, err)
			}
			if err := k.Script(4, "*filter\n-I REYES-FILTER 2 -j RETURN\nCOMMIT\n"); err != nil {
				t.Fatal(err)
			}
			if drift, err := Check(ctx, opts); err != nil || len(drift) != 1 || !strings.Contains(drift[0].What, "REYES-FILTER") {
				t.Fatalf("a rule inserted: drift %v, %v", drift, err)
			}
		})
	}
}
