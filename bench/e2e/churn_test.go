package main

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/ruleset"
)

func TestChurnSpec(t *testing.T) {
	tests := []struct {
		name, in string
		enis     int
		want     int
		wantErr  bool
	}{
		{"default is 1 %", "", 50_000, 500, false},
		{"default, at least one", "", 20, 1, false},
		{"percentage", "2%", 5_000, 100, false},
		{"fraction of a per cent", "0.5 %", 50_000, 250, false},
		{"count", "7", 50_000, 7, false},
		{"zero", "0", 0, 0, true},
		{"negative", "-3", 0, 0, true},
		{"zero per cent", "0%", 0, 0, true},
		{"too much", "60%", 0, 0, true},
		{"garbage", "many", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c churnSpec
			if tt.in != "" {
				err := c.Set(tt.in)
				if (err != nil) != tt.wantErr {
					t.Fatalf("Set(%q): %v, want error %v", tt.in, err, tt.wantErr)
				}
				if err != nil {
					return
				}
			}
			if got := c.count(tt.enis); got != tt.want {
				t.Errorf("count(%d) = %d, want %d (%s)", tt.enis, got, tt.want, &c)
			}
		})
	}
}

// enis maps the interfaces of inv by ID.
func enis(inv *inventory.Inventory) map[string]*inventory.NetworkInterface {
	m := map[string]*inventory.NetworkInterface{}
	for ri := range inv.Regions {
		for i := range inv.Regions[ri].NetworkInterfaces {
			n := &inv.Regions[ri].NetworkInterfaces[i]
			m[n.ID] = n
		}
	}
	return m
}

// TestChurn checks the changes the benchmark makes outside a host's plan:
// as many interfaces removed as added, none of them in a group the plan
// involves, new unique addresses inside their VPC, the host's own
// interface untouched, the same seed the same changes, the input not
// changed, and the host's plan, rendered from the whole new estate, byte
// for byte the one before.
func TestChurn(t *testing.T) {
	ctx := context.Background()
	for _, preset := range []struct {
		name string
		cfg  synth.Config
	}{{"small", synth.Small()}, {"medium", synth.Medium()}} {
		inv := synth.Generate(preset.cfg)
		rs, err := ruleset.Build(inv, ruleset.BuildOptions{Scope: scope, GeneratedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		vpcOf := map[string][]netip.Prefix{}
		for _, r := range inv.Regions {
			for _, v := range r.VPCs {
				vpcOf[v.ID] = v.CIDRs
			}
		}
		for _, kind := range []string{hostTypical, hostBusiest} {
			t.Run(preset.name+"/"+kind, func(t *testing.T) {
				id, _, err := (&bench{}).identity(rs, kind)
				if err != nil {
					t.Fatal(err)
				}
				want, err := planFor(ctx, inv, id)
				if err != nil {
					t.Fatal(err)
				}
				involved := involvedGroups(rs, id)
				n := churnSpec{}.count(len(rs.Interfaces))
				before := enis(inv)
				beforeCopy := len(before)
				got, what, err := churn(inv, involved, id.Addrs, n, seedFor(1, kind, "churn"))
				if err != nil {
					t.Fatal(err)
				}
				t.Log(what)
				if len(enis(inv)) != beforeCopy {
					t.Fatal("churn changed its input")
				}
				after := enis(got)
				var removed, added int
				used := map[netip.Addr]bool{}
				for _, ni := range before {
					for _, a := range ni.Addresses {
						used[a] = true
					}
				}
				for eid, ni := range before {
					if _, ok := after[eid]; ok {
						continue
					}
					removed++
					if slices.ContainsFunc(ni.Groups, func(g string) bool { return involved[g] }) {
						t.Errorf("removed %s is in a group the plan involves: %v", eid, ni.Groups)
					}
					if slices.ContainsFunc(ni.Addresses, func(a netip.Addr) bool { return slices.Contains(id.Addrs, a) }) {
						t.Errorf("removed %s is the host's own", eid)
					}
				}
				for eid, ni := range after {
					if _, ok := before[eid]; ok {
						continue
					}
					added++
					if len(ni.Groups) == 0 || slices.ContainsFunc(ni.Groups, func(g string) bool { return involved[g] }) {
						t.Errorf("added %s is in a group the plan involves (or none): %v", eid, ni.Groups)
					}
					if len(ni.Addresses) == 0 {
						t.Errorf("added %s has no address", eid)
					}
					for _, a := range ni.Addresses {
						if used[a] {
							t.Errorf("added %s: address %s already in use", eid, a)
						}
						used[a] = true
						if a.Is4() && !slices.ContainsFunc(vpcOf[ni.VPCID], func(p netip.Prefix) bool { return p.Contains(a) }) {
							t.Errorf("added %s: %s is outside VPC %s %v", eid, a, ni.VPCID, vpcOf[ni.VPCID])
						}
					}
				}
				if removed != n || added != n {
					t.Errorf("removed %d, added %d, want %d each", removed, added, n)
				}
				again, _, err := churn(inv, involved, id.Addrs, n, seedFor(1, kind, "churn"))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(sortedIDs(again), sortedIDs(got)) {
					t.Error("the same seed drew other changes")
				}
				other, _, err := churn(inv, involved, id.Addrs, n, seedFor(2, kind, "churn"))
				if err != nil {
					t.Fatal(err)
				}
				if slices.Equal(sortedIDs(other), sortedIDs(got)) {
					t.Error("another seed drew the same changes")
				}
				one, what, err := addOne(got, involved, seedFor(1, kind, "draws"))
				if err != nil {
					t.Fatal(err)
				}
				t.Log(what)
				if d := len(enis(one)) - len(after); d != 1 {
					t.Errorf("addOne added %d interfaces", d)
				}
				for _, step := range []struct {
					name string
					inv  *inventory.Inventory
				}{{"churn", got}, {"churn, then one more", one}} {
					p, err := planFor(ctx, step.inv, id)
					if err != nil {
						t.Fatalf("%s: %v", step.name, err)
					}
					if string(p) != string(want) {
						t.Errorf("%s changed the host's plan", step.name)
					}
				}
			})
		}
		t.Run(preset.name+"/"+hostAll, func(t *testing.T) {
			id, _, err := (&bench{}).identity(rs, hostAll)
			if err != nil {
				t.Fatal(err)
			}
			involved := involvedGroups(rs, id)
			if _, _, err := churn(inv, involved, id.Addrs, 1, seedFor(1, hostAll, "churn")); !errors.Is(err, errNoChurn) {
				t.Errorf("churn for a host in every group: %v, want errNoChurn", err)
			}
			if _, _, err := addOne(inv, involved, seedFor(1, hostAll, "draws")); !errors.Is(err, errNoChurn) {
				t.Errorf("addOne for a host in every group: %v, want errNoChurn", err)
			}
		})
	}
}

func sortedIDs(inv *inventory.Inventory) []string {
	var ids []string
	for id := range enis(inv) {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
