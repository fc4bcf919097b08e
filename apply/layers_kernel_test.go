package apply

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

// layerPlan renders render's test estate for one of its interfaces with
// opts, as the follower would.
func layerPlan(t *testing.T, opts render.Options) *render.Plan {
	t.Helper()
	inv, err := sgsource.ReadDir(context.Background(), filepath.Join("..", "render", "testdata", "inventories", "estate"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Exclude: []string{"vpn-in"}})
	if err != nil {
		t.Fatal(err)
	}
	var host render.Host
	for _, i := range rs.Interfaces {
		if i.ID == "eni-00000000000000304" {
			host.Interfaces = append(host.Interfaces, render.HostInterface{ID: i.ID, Addrs: i.Addrs, Groups: i.Groups})
			if v := ruleset.NewIndex(rs).VPC(i.VPC); v != nil {
				host.VPCCIDRs = v.CIDRs
			}
		}
	}
	if len(host.Interfaces) == 0 {
		t.Fatal("test estate has no eni-00000000000000304")
	}
	p, err := render.Render(rs, host, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKernelLayerSwitches turns each layer of the plan on and off (and
// back), on both backends: every transition applies, the kernel then holds
// exactly what a fresh apply of the target plan gives, reyes' hooks from
// built-in chains are exactly the plan's, and Check finds no drift.
func TestKernelLayerSwitches(t *testing.T) {
	t.Parallel()
	failSafe := []render.FailSafe{{Source: netip.MustParsePrefix("10.99.0.0/16"), Protocol: 6, Port: 22}}
	layers := []struct {
		name     string
		off, on  render.Options
		failSafe bool
	}{
		{name: "baseline", on: render.Options{Baseline: &render.Baseline{}}},
		{name: "baseline keeping FORWARD", on: render.Options{Baseline: &render.Baseline{KeepForward: true, Outbound: render.OutboundRestrict}}},
		{name: "logging", on: render.Options{LogAccept: true, LogDrop: true}},
		{name: "exclusive", on: render.Options{Table: render.TableExclusive}},
		{name: "exclusive with baseline", off: render.Options{Baseline: &render.Baseline{}}, on: render.Options{Table: render.TableExclusive, Baseline: &render.Baseline{}}},
		{name: "ipsec", on: render.Options{Mode: render.ModeIPsec}},
		{name: "fail-safe", on: render.Options{FailSafe: failSafe}},
	}
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b)
			ref := newEnv(t, b)
			ctx := context.Background()
			for _, l := range layers {
				for _, dir := range []struct {
					name     string
					from, to render.Options
				}{{"on", l.off, l.on}, {"off", l.on, l.off}} {
					from, to := layerPlan(t, dir.from), layerPlan(t, dir.to)
					e.apply(from)
					if _, err := Apply(ctx, to, e.opts); err != nil {
						t.Errorf("%s %s: %v", l.name, dir.name, err)
						continue
					}
					// The reference: a clean namespace given only the target.
					if _, err := Remove(ctx, ref.opts); err != nil {
						t.Fatal(err)
					}
					if _, err := Apply(ctx, to, ref.opts); err != nil {
						t.Fatal(err)
					}
					if got, want := unslot(e.snapshot()), unslot(ref.snapshot()); got != want {
						t.Errorf("%s %s: kernel differs from a fresh apply:\n%s", l.name, dir.name, lineDiffForTest(want, got))
					}
					// Applying it again changes nothing.
					if res, err := Apply(ctx, to, e.opts); err != nil || res.Changed() {
						t.Errorf("%s %s: re-apply: %+v %v", l.name, dir.name, res, err)
					}
					// The real save of this backend reads back as loaded:
					// the baseline's LOG, limit, REJECT and tcp-flags rules
					// included.
					if drift, err := Check(ctx, e.opts); err != nil || len(drift) != 0 {
						t.Errorf("%s %s: drift right after the apply: %v %v", l.name, dir.name, drift, err)
					}
				}
			}
			if _, err := Remove(ctx, e.opts); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// unslot writes every set's second slot under its own name and sorts the
// lines of a snapshot (ipset save lists sets in the order they were
// created), so two namespaces with different histories compare.
func unslot(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.ReplaceAll(l+" ", SlotSuffix+" ", " ")
		out = append(out, strings.TrimSuffix(l, " "))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// failRunner fails every command whose name has the given suffix.
type failRunner struct {
	r      Runner
	suffix string
}

func (f failRunner) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if strings.HasSuffix(name, f.suffix) {
		return nil, &ExecError{Name: name, Args: args, ExitCode: 1, Stderr: "injected failure", Err: context.Canceled}
	}
	return f.r.Run(ctx, stdin, name, args...)
}

// TestKernelBothFamiliesOneUnit: with the real tools, when
// ip6tables-restore fails after IPv4 was changed, IPv4 is put back: the
// kernel is as before, packet for packet, and the next run completes.
func TestKernelBothFamiliesOneUnit(t *testing.T) {
	t.Parallel()
	eachBackendAndTable(t, func(t *testing.T, e *env, table render.TableMode) {
		ctx := context.Background()
		from := planSpec{table: table, allows: []allow{{"web", 6, 8080}}, sets: map[string][]string{"web": {"10.99.1.11", "fd00:99:1::11"}}}
		to := planSpec{table: table, allows: []allow{{"web", 6, 8090}}, sets: map[string][]string{"web": {"10.99.1.12", "fd00:99:1::12"}},
			extra: []string{"REYES-NEW"}}
		e.apply(from.build())
		before := e.snapshot()
		opts := e.opts
		opts.Runner = failRunner{r: e.runner(), suffix: "ip6tables-" + string(e.backend) + "-restore"}
		if _, err := Apply(ctx, to.build(), opts); err == nil {
			t.Fatal("Apply succeeded with a failing ip6tables-restore")
		}
		if got := e.snapshot(); got != before {
			t.Errorf("IPv4 not put back:\n%s", lineDiffForTest(before, got))
		}
		e.traffic(expectAll([]string{"tcp8080", "tcp8090"}, map[string][]string{"v4a": {"tcp8080"}, "v6a": {"tcp8080"}}))
		e.apply(to.build())
		e.traffic(expectAll([]string{"tcp8080", "tcp8090"}, map[string][]string{"v4b": {"tcp8090"}, "v6b": {"tcp8090"}}))
	})
}
