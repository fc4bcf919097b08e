package apply

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/render"
)

// failV6Rules fails every ip6tables-restore: IPv6 fails after IPv4 changed,
// so that IPv4 is put back.
type failV6Rules struct{ r Runner }

func (f failV6Rules) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if strings.HasPrefix(name, "ip6tables") && strings.HasSuffix(name, "-restore") {
		return nil, errors.New("injected: ip6tables-restore failed")
	}
	return f.r.Run(ctx, stdin, name, args...)
}

// TestKernelRevertIgnoresStaleRecord: the record of what the previous run
// loaded (apply-ipv4.rules) is put back only when the kernel still runs
// it. After the filter table was flushed by someone else (an admin's
// iptables-restore, a firewall service reload; or a reboot), the old
// policy is "no reyes rules": a failing IPv6 must leave IPv4 with no
// reyes rules or with the new ones, never with the recorded rules of an
// earlier run over the new run's members.
func TestKernelRevertIgnoresStaleRecord(t *testing.T) {
	t.Parallel()
	a := planSpec{table: render.TableShared, allows: []allow{{"g", 6, 8080}},
		sets: map[string][]string{"g": {"10.99.1.11", "fd00:99:1::11"}}}
	b := planSpec{table: render.TableShared, allows: []allow{{"g", 6, 8090}},
		sets: map[string][]string{"g": {"10.99.1.11", "10.99.1.12", "fd00:99:1::11", "fd00:99:1::12"}}}
	for _, bk := range backends(t) {
		t.Run(string(bk), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, bk)
			e.apply(a.build())
			// Someone else flushes the filter table: reyes' sets stay,
			// unreferenced; the record on disk still says A.
			for _, fam := range []render.Family{render.IPv4, render.IPv6} {
				e.ipt(fam, "-F")
				e.ipt(fam, "-X")
			}
			e.traffic(map[string]bool{"v4a/tcp8090": true, "v4b/tcp8090": true, "v4b/tcp8080": true})
			opts := e.opts
			opts.Runner = failV6Rules{e.runner()}
			if _, err := Apply(context.Background(), b.build(), opts); err == nil {
				t.Fatal("Apply succeeded with ip6tables-restore failing")
			} else {
				t.Logf("Apply: %v", err)
			}
			// Old (nothing) and B both let .11 and .12 in on :8090.
			e.traffic(map[string]bool{"v4a/tcp8090": true, "v4b/tcp8090": true})
			t.Logf("ipv4 after the failed apply:\n%s", e.ipt(render.IPv4, "-S"))
		})
	}
}

// switchSpecs are the policies the backend switch tests move between:
// tcp/8080 from .11, tcp/8090 from .12, and both ports from .11.
func switchSpecs() (a, b, c planSpec) {
	a = planSpec{table: render.TableShared, allows: []allow{{"g", 6, 8080}},
		sets: map[string][]string{"g": {"10.99.1.11", "fd00:99:1::11"}}}
	b = planSpec{table: render.TableShared, allows: []allow{{"g", 6, 8090}},
		sets: map[string][]string{"g": {"10.99.1.12", "fd00:99:1::12"}}}
	c = planSpec{table: render.TableShared, allows: []allow{{"g", 6, 8080}, {"g", 6, 8090}},
		sets: map[string][]string{"g": {"10.99.1.11", "fd00:99:1::11"}}}
	return a, b, c
}

// TestKernelBackendSwitch: after the host's iptables moves from nft to
// legacy (update-alternatives), the next apply leaves no reyes rules in
// the old backend, the new policy is in force, and later runs work;
// and back.
func TestKernelBackendSwitch(t *testing.T) {
	t.Parallel()
	a, b, c := switchSpecs()
	netnsTools(t, BackendNFT, BackendLegacy)
	for _, sw := range [][2]Backend{{BackendNFT, BackendLegacy}, {BackendLegacy, BackendNFT}} {
		t.Run(string(sw[0])+"-to-"+string(sw[1]), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sw[0])
			e.apply(a.build())
			e.opts.Backend = sw[1]
			e.apply(b.build())
			if got := e.host.MustRun("iptables-"+string(sw[0]), "-S"); strings.Contains(got, "REYES-") {
				t.Errorf("the %s backend still holds reyes' rules after the switch to %s:\n%s", sw[0], sw[1], got)
			}
			if got := e.host.MustRun("ip6tables-"+string(sw[0]), "-S"); strings.Contains(got, "REYES-") {
				t.Errorf("the %s backend still holds reyes' IPv6 rules after the switch to %s:\n%s", sw[0], sw[1], got)
			}
			e.traffic(map[string]bool{"v4b/tcp8090": true, "v4a/tcp8080": false, "v6b/tcp8090": true, "v6a/tcp8080": false})
			e.apply(c.build())
			e.traffic(map[string]bool{"v4a/tcp8090": true, "v4a/tcp8080": true, "v4b/tcp8090": false, "v6a/tcp8090": true})
			if sets := strings.Fields(e.host.MustRun("ipset", "list", "-n")); len(sets) != 2 {
				t.Errorf("sets after the switch: %v, want one slot per set", sets)
			}
		})
	}
}

// netnsTools skips unless both backends' tools are installed.
func netnsTools(t *testing.T, bs ...Backend) {
	t.Helper()
	if got := backends(t); len(got) < len(bs) {
		t.Skipf("kernel test: needs the tools of backends %v, have %v", bs, got)
	}
}

// mixFailV6Env makes the kill-mix helper's ip6tables-restore fail.
const mixFailV6Env = "REYES_APPLY_MIX_FAILV6"

// TestKernelKillDuringRollback: IPv6's rule load fails, so IPv4 is put
// back; the apply is stopped at every command (the rollback's included),
// packets are checked there and after a SIGKILL, and the next run
// completes. Not parallel: the helper learns of the failure from the
// environment.
func TestKernelKillDuringRollback(t *testing.T) {
	t.Setenv(mixFailV6Env, "1")
	for _, b := range backends(t) {
		for ci, c := range mixCases(render.TableShared)[:1] {
			t.Run(string(b)+"/"+c.name, func(t *testing.T) {
				e := newEnv(t, b)
				ctx := context.Background()
				e.apply(c.a.build())
				for stop := 1; stop < 100; stop++ {
					desc, done := e.runMixChild(t, ci, render.TableShared, stop, false, func(desc string) { e.checkSame(t, c, "stopped at "+desc) })
					if done {
						// Failed cleanly: IPv4 and IPv6 are A's again.
						e.checkSame(t, c, "after the failed apply")
						return
					}
					e.afterKill(t, ctx, c, desc)
				}
			})
		}
	}
}

// TestKernelLayerSwitchesKeepOthersRules: with a Docker-like DOCKER chain
// and FORWARD jumps, and a kube-proxy-like rule at the top of INPUT, every
// shared-mode layer switch (both ways) leaves those rules as they were,
// and the fail-safe's port is let in before and after each switch (not
// probed with the baseline on: its outbound spoof check drops replies
// from this namespace's address, which is not the rendered host's).
func TestKernelLayerSwitchesKeepOthersRules(t *testing.T) {
	t.Parallel()
	failSafe := []render.FailSafe{{Source: netip.MustParsePrefix("10.99.0.0/16"), Protocol: 6, Port: 8090}}
	base := render.Options{FailSafe: failSafe}
	with := func(f func(o *render.Options)) render.Options { o := base; f(&o); return o }
	layers := []struct {
		name string
		on   render.Options
	}{
		{"baseline", with(func(o *render.Options) { o.Baseline = &render.Baseline{} })},
		{"baseline keeping FORWARD", with(func(o *render.Options) {
			o.Baseline = &render.Baseline{KeepForward: true, Outbound: render.OutboundRestrict}
		})},
		{"logging", with(func(o *render.Options) { o.LogAccept, o.LogDrop = true, true })},
		{"ipsec", with(func(o *render.Options) { o.Mode = render.ModeIPsec })},
	}
	others := []string{
		"-N DOCKER", "-N DOCKER-USER", "-N KUBE-FIREWALL",
		"-A DOCKER -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j ACCEPT",
		"-A DOCKER-USER -j RETURN",
		"-A FORWARD -j DOCKER-USER",
		"-A FORWARD -o docker0 -j DOCKER",
		"-A INPUT -m comment --comment kube -j KUBE-FIREWALL",
		"-A KUBE-FIREWALL -m mark --mark 0x8000/0x8000 -j DROP",
	}
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b)
			for _, fam := range []render.Family{render.IPv4, render.IPv6} {
				e.ipt(fam, "-N", "DOCKER")
				e.ipt(fam, "-N", "DOCKER-USER")
				e.ipt(fam, "-N", "KUBE-FIREWALL")
				e.ipt(fam, "-A", "DOCKER-USER", "-j", "RETURN")
				e.ipt(fam, "-A", "FORWARD", "-j", "DOCKER-USER")
				e.ipt(fam, "-A", "FORWARD", "-o", "docker0", "-j", "DOCKER")
				e.ipt(fam, "-I", "INPUT", "1", "-m", "comment", "--comment", "kube", "-j", "KUBE-FIREWALL")
				e.ipt(fam, "-A", "KUBE-FIREWALL", "-m", "mark", "--mark", "0x8000/0x8000", "-j", "DROP")
			}
			e.ipt(render.IPv4, "-A", "DOCKER", "-d", "172.17.0.2/32", "-p", "tcp", "--dport", "80", "-j", "ACCEPT")
			check := func(when string, probe bool) {
				t.Helper()
				got := e.ipt(render.IPv4, "-S")
				for _, want := range others {
					if !strings.Contains(got, want+"\n") {
						t.Errorf("%s: lost %q:\n%s", when, want, got)
					}
				}
				// The fail-safe port from the foreign range is let in.
				if !probe {
					// The baseline's outbound spoof check drops the replies
					// of this namespace's address, which is not the
					// rendered host's.
					return
				}
				before := t.Failed()
				e.traffic(map[string]bool{"v4a/tcp8090": true, "v4b/tcp8090": true})
				if !before && t.Failed() {
					t.Logf("^ %s; ipv4:\n%s", when, got)
				}
			}
			for _, l := range layers {
				for _, dir := range []struct {
					name     string
					from, to render.Options
				}{{"on", base, l.on}, {"off", l.on, base}} {
					opts := e.opts
					opts.FailSafe = failSafe
					if _, err := Apply(context.Background(), layerPlan(t, dir.from), opts); err != nil {
						t.Fatalf("%s %s: from: %v", l.name, dir.name, err)
					}
					check(l.name+" "+dir.name+": before", dir.from.Baseline == nil)
					if _, err := Apply(context.Background(), layerPlan(t, dir.to), opts); err != nil {
						t.Fatalf("%s %s: %v", l.name, dir.name, err)
					}
					check(l.name+" "+dir.name+": after", dir.to.Baseline == nil)
				}
			}
		})
	}
}

// TestKernelKillThenThirdPolicy: an apply from A to B is SIGKILLed at
// every command (and inside every ipset restore), leaving filled slots,
// both slots of a set, or a half-done cleanup; the next run then applies
// a third policy C, which must be exactly in force, and A after it.
func TestKernelKillThenThirdPolicy(t *testing.T) {
	t.Parallel()
	c := mixCases(render.TableShared)[0]
	third := planSpec{table: render.TableShared, allows: []allow{{"g", 6, 8080}, {"h", 17, 8081}},
		sets: map[string][]string{"g": {"10.99.1.12", "fd00:99:1::12"}, "h": {"10.99.1.11", "fd00:99:1::11"}}}
	thirdTraffic := expectAll(allProbes, map[string][]string{"v4b": {"tcp8080"}, "v6b": {"tcp8080"}, "v4a": {"udp8081"}, "v6a": {"udp8081"}})
	aTraffic := expectAll(allProbes, map[string][]string{"v4b": {"udp8081"}, "v6b": {"udp8081"}})
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b)
			ctx := context.Background()
			e.apply(c.a.build())
			for stop := 1; stop < 100; stop++ {
				for _, half := range []bool{false, true} {
					desc, done := e.runMixChild(t, 0, render.TableShared, stop, half, func(string) {})
					if done {
						return
					}
					if desc == "" {
						continue
					}
					if _, err := Apply(ctx, third.build(), e.opts); err != nil {
						t.Fatalf("C after a kill at %s: %v", desc, err)
					}
					before := t.Failed()
					e.traffic(thirdTraffic)
					if _, err := Apply(ctx, c.a.build(), e.opts); err != nil {
						t.Fatalf("A after C after a kill at %s: %v", desc, err)
					}
					e.traffic(aTraffic)
					if !before && t.Failed() {
						t.Logf("^ killed at %s", desc)
					}
				}
			}
		})
	}
}

// TestKernelKillDuringBackendSwitch: an apply that switches backend (A on
// nft, B on legacy) is stopped at every command, the removal of the old
// backend's rules included: packets both policies deny stay denied and
// packets both allow stay allowed there and after a SIGKILL, and the next
// run leaves B alone in force, the old backend empty of reyes' rules.
func TestKernelKillDuringBackendSwitch(t *testing.T) {
	t.Parallel()
	netnsTools(t, BackendNFT, BackendLegacy)
	c := mixCases(render.TableShared)[0]
	ctx := context.Background()
	e := newEnv(t, BackendNFT)
	nft, legacy := e.opts, e.opts
	nft.Backend, legacy.Backend = BackendNFT, BackendLegacy
	e.backend = BackendLegacy // the helper's backend
	for stop := 1; stop < 100; stop++ {
		for _, o := range []Options{legacy, nft} {
			if _, err := Remove(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Apply(ctx, c.a.build(), nft); err != nil {
			t.Fatal(err)
		}
		desc, done := e.runMixChild(t, 0, render.TableShared, stop, false, func(desc string) { e.checkSame(t, c, "stopped at "+desc) })
		if !done {
			e.checkSame(t, c, "killed at "+desc)
		}
		if _, err := Apply(ctx, c.b.build(), legacy); err != nil {
			t.Fatalf("run after a kill at %s: %v", desc, err)
		}
		e.traffic(expectAll(allProbes, c.final))
		for _, bin := range []string{"iptables-nft", "ip6tables-nft"} {
			if got := e.host.MustRun(bin, "-S"); strings.Contains(got, "REYES-") {
				t.Errorf("after a kill at %s and a run: %s still holds reyes' rules:\n%s", desc, bin, got)
			}
		}
		if done {
			return
		}
	}
}

// TestKernelStuckBackendSwitchRecovers: a host switched backend with a
// release that left the old backend's rules (both slots of a set in use,
// the record naming the new backend): the next apply takes the old
// backend's rules out and completes.
func TestKernelStuckBackendSwitchRecovers(t *testing.T) {
	t.Parallel()
	netnsTools(t, BackendNFT, BackendLegacy)
	a, b, c := switchSpecs()
	e := newEnv(t, BackendNFT)
	e.apply(a.build())
	saved := map[string]string{}
	for _, bin := range []string{"iptables-nft", "ip6tables-nft"} {
		saved[bin] = e.host.MustRun(bin + "-save")
	}
	e.opts.Backend = BackendLegacy
	e.apply(b.build())
	// Put the stuck state back: A's sets and nft rules, as the old release left them.
	for _, cmd := range [][]string{
		{"ipset", "create", "reyes4-g", "hash:ip"}, {"ipset", "add", "reyes4-g", "10.99.1.11"},
		{"ipset", "create", "reyes6-g", "hash:ip", "family", "inet6"}, {"ipset", "add", "reyes6-g", "fd00:99:1::11"},
	} {
		e.host.MustRun(cmd...)
	}
	for bin, text := range saved {
		if out, err := e.host.Exec(context.Background(), []byte(text), bin+"-restore"); err != nil {
			t.Fatalf("%s-restore: %v: %s", bin, err, out)
		}
	}
	if got := e.host.MustRun("iptables-nft", "-S"); !strings.Contains(got, "REYES-INPUT") {
		t.Fatalf("stuck state not set up:\n%s", got)
	}
	e.apply(c.build())
	for _, bin := range []string{"iptables-nft", "ip6tables-nft"} {
		if got := e.host.MustRun(bin, "-S"); strings.Contains(got, "REYES-") {
			t.Errorf("%s still holds reyes' rules:\n%s", bin, got)
		}
	}
	e.traffic(map[string]bool{"v4a/tcp8090": true, "v4a/tcp8080": true, "v4b/tcp8090": false, "v6a/tcp8090": true})
}
