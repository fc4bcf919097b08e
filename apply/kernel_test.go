package apply

import (
	"context"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/render"
)

var allProbes = []string{"tcp8080", "tcp8090", "udp8081", "icmp"}

// TestTraffic applies plans in a namespace and checks with real packets
// (TCP, UDP, ICMP; IPv4 and IPv6) that exactly the allowed sources get
// through, in shared and exclusive mode, on every installed backend.
func TestTraffic(t *testing.T) {
	t.Parallel()
	eachBackendAndTable(t, func(t *testing.T, e *env, table render.TableMode) {
		rules := []allow{{"web", 6, 8080}, {"web", 17, 8081}, {"web", 1, -1}, {"admin", -1, -1}}
		// Before reyes: everything goes through.
		e.traffic(expectAll(allProbes, map[string][]string{"v4a": allProbes, "v4b": allProbes, "v6a": allProbes, "v6b": allProbes}))

		p1 := planSpec{table: table, allows: rules, sets: map[string][]string{
			"web":   {"10.99.1.11", "fd00:99:1::11"},
			"admin": {},
		}}.build()
		res := e.apply(p1)
		if !res.Changed() {
			t.Fatalf("first apply changed nothing: %+v", res)
		}
		e.traffic(expectAll(allProbes, map[string][]string{
			"v4a": {"tcp8080", "udp8081", "icmp"}, "v6a": {"tcp8080", "udp8081", "icmp"}}))

		// Move the web member to the other sources, make .11 admin
		// (allowed everything). .11 leaves one set and joins another:
		// swapped one after the other, .11 would be denied tcp/8080
		// between the two swaps though both policies allow it, so the
		// sets switch in their other slots with one rule load.
		p2 := planSpec{table: table, allows: rules, sets: map[string][]string{
			"web":   {"10.99.1.12", "fd00:99:1::12"},
			"admin": {"10.99.1.11", "fd00:99:1::11"},
		}}.build()
		res = e.apply(p2)
		for _, f := range res.Families {
			if !f.RulesLoaded || len(f.SetsSwapped) != 2 {
				t.Errorf("member change: %+v, want 2 sets changed with a rule load", f)
			}
		}
		e.traffic(expectAll(allProbes, map[string][]string{
			"v4a": allProbes, "v6a": allProbes,
			"v4b": {"tcp8080", "udp8081", "icmp"}, "v6b": {"tcp8080", "udp8081", "icmp"}}))

		// Unchanged: nothing is done.
		if res := e.apply(p2); res.Changed() {
			t.Errorf("unchanged plan changed something: %+v", res)
		}
		if table == render.TableShared {
			for _, fam := range []render.Family{render.IPv4, render.IPv6} {
				if got := e.ipt(fam, "-S", "INPUT", "1"); strings.TrimSpace(got) != "-A INPUT -j REYES-INPUT" {
					t.Errorf("ipv%d INPUT rule 1 = %q", fam, got)
				}
			}
		}
		// Remove: everything goes through again, nothing of reyes left.
		if _, err := Remove(context.Background(), e.opts); err != nil {
			t.Fatal(err)
		}
		e.traffic(expectAll(allProbes, map[string][]string{"v4a": allProbes, "v4b": allProbes, "v6a": allProbes, "v6b": allProbes}))
		if snap := e.snapshot(); strings.Contains(snap, "REYES") || strings.Contains(snap, "reyes") {
			t.Errorf("reyes left traces after Remove:\n%s", snap)
		}
	})
}
