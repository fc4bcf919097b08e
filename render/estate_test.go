package render_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

func buildDir(t *testing.T, dir string) *ruleset.Ruleset {
	t.Helper()
	inv, err := sgsource.ReadDir(context.Background(), "testdata/inventories/"+dir)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: genTime})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func setsByName(p *render.Plan) map[string]render.Set {
	m := map[string]render.Set{}
	for _, fp := range p.Families() {
		for _, s := range fp.Sets {
			m[s.Name] = s
		}
	}
	return m
}

// TestPrefixSetsHaveTheirOwnName: a group whose interfaces gain delegated
// prefixes moves to a hash:net set of another name, so that no set ever
// changes type under one name (ipset cannot swap sets of two types).
func TestPrefixSetsHaveTheirOwnName(t *testing.T) {
	rs := buildDir(t, "delegated")
	host := render.Host{Interfaces: []render.HostInterface{{ID: "eni-000000000000000d4", Groups: []string{"sg-000000000000000d3"}}}}
	with, err := render.Render(rs, host, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range rs.Interfaces {
		rs.Interfaces[i].Prefixes = nil
	}
	without, err := render.Render(rs, host, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := setsByName(with), setsByName(without)
	if s, ok := a["reyes4-psg-000000000000000d1"]; !ok || s.Type() != render.SetHashNet || !slices.Contains(s.Nets, netip.MustParsePrefix("10.20.1.16/28")) {
		t.Errorf("with prefixes: sets %v", a)
	}
	if s, ok := b["reyes4-sg-000000000000000d1"]; !ok || s.Type() != render.SetHashIP {
		t.Errorf("without prefixes: sets %v", b)
	}
	for name, s := range a {
		if o, ok := b[name]; ok && o.Type() != s.Type() {
			t.Errorf("set %s is %s in one plan and %s in the other", name, s.Type(), o.Type())
		}
	}
	// /0 never goes into a set, even if a hand-made ruleset holds one.
	if strings.Contains(string(with.V4.IpsetRestore()), "/0") {
		t.Error("a /0 in a set")
	}
}

// TestScopedReferencesByHostVPC: a reference AWS honours only from some
// VPCs counts for an interface of the ruleset in the VPC it was resolved
// for; for interfaces the operator names (VPC unknown) wherever it counts.
func TestScopedReferencesByHostVPC(t *testing.T) {
	rs := buildDir(t, "accounts")
	pkt := render.Packet{Src: netip.MustParseAddr("10.30.3.20"), Dst: netip.MustParseAddr("10.31.1.5"), Protocol: ruleset.ProtoTCP, Port: 443}
	for _, tt := range []struct {
		name string
		host render.HostInterface
		want render.Outcome
	}{
		{"the db interface", render.HostInterface{ID: "eni-000000000000000e1", Addrs: []netip.Addr{netip.MustParseAddr("10.31.1.5")}, Groups: []string{"sg-000000000000000e1"}}, render.Allowed},
		{"an operator's interface", render.HostInterface{ID: "eth0", Groups: []string{"sg-000000000000000e1"}}, render.Allowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := render.Render(rs, render.Host{Interfaces: []render.HostInterface{tt.host}}, render.Options{})
			if err != nil {
				t.Fatal(err)
			}
			v, err := render.Decide(plan, pkt)
			if err != nil {
				t.Fatal(err)
			}
			if v.Action != tt.want {
				t.Errorf("verdict %v by %q, want %v", v.Action, v.Rule, tt.want)
			}
			// The member in the VPC whose transit gateway attachment has
			// referencing disabled is never a source.
			other := pkt
			other.Src = netip.MustParseAddr("10.32.0.20")
			if v, err := render.Decide(plan, other); err != nil || v.Action != render.Dropped {
				t.Errorf("from 10.32.0.20: %v %v, want dropped", v.Action, err)
			}
		})
	}
}
