package apply

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/render"
)

// TestKernelPrefixSet: a set with delegated prefixes (a hash:net set, issue
// 14) applies, is unchanged on the next run (its prefixes are recorded and
// counted), and a prefix taken out of the kernel is drift. Before, the
// second run refused the in-use hash:net set ("cannot replace it with
// hash:ip") on every run.
func TestKernelPrefixSet(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			e := newEnv(t, b)
			p := planSpec{
				sets:   map[string][]string{"g": {"10.99.1.11", "fd00:99:1::11"}},
				allows: []allow{{set: "g", proto: 6, port: 8080}},
			}.build()
			var name string
			for _, fp := range p.Families() {
				for j := range fp.Sets {
					if fp.Family == render.IPv4 {
						fp.Sets[j].Nets = []netip.Prefix{netip.MustParsePrefix("10.99.2.16/28")}
						name = fp.Sets[j].Name
					} else {
						fp.Sets[j].Nets = []netip.Prefix{netip.MustParsePrefix("fd00:99:2::/80")}
					}
				}
				seal(fp)
			}
			e.apply(p)
			if got := e.host.MustRun("ipset", "list", "-t", e.liveSet(name)); !strings.Contains(got, "hash:net") {
				t.Fatalf("set %s is not hash:net:\n%s", name, got)
			}
			if res := e.apply(p); res.Changed() {
				t.Errorf("second apply of the same plan changed the kernel: %+v", res)
			}
			ctx := context.Background()
			if drift, err := Check(ctx, e.opts); err != nil || len(drift) != 0 {
				t.Fatalf("Check after apply: %v %v", drift, err)
			}
			e.host.MustRun("ipset", "del", e.liveSet(name), "10.99.2.16/28")
			if drift, err := Check(ctx, e.opts); err != nil || len(drift) == 0 {
				t.Errorf("Check after a prefix was taken out: %v %v, want drift", drift, err)
			}
		})
	}
}
