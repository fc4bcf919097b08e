package synth_test

import (
	"context"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/sgsource"
)

func presets() []struct {
	name string
	cfg  synth.Config
} {
	return []struct {
		name string
		cfg  synth.Config
	}{
		{"small", synth.Small()},
		{"medium", synth.Medium()},
		{"large", synth.Large()},
	}
}

func TestDeterministic(t *testing.T) {
	for _, tt := range presets() {
		t.Run(tt.name, func(t *testing.T) {
			a, b := synth.Generate(tt.cfg), synth.Generate(tt.cfg)
			if !reflect.DeepEqual(a, b) {
				t.Fatal("two Generate of the same Config differ")
			}
			other := tt.cfg
			other.Seed++
			if reflect.DeepEqual(a, synth.Generate(other)) {
				t.Fatal("another seed gives the same estate")
			}
		})
	}
}

func TestCounts(t *testing.T) {
	for _, tt := range presets() {
		t.Run(tt.name, func(t *testing.T) {
			got := synth.Count(synth.Generate(tt.cfg))
			want := tt.cfg.Expected()
			if got.Regions != want.Regions || got.VPCs != want.VPCs || got.Groups != want.Groups ||
				got.ENIs != want.ENIs || got.Addresses != want.Addresses || got.Rules != want.Rules {
				t.Errorf("counts %+v, want %+v", got, want)
			}
			if got.Sources < got.Rules || got.Sources > got.Rules*3/2 {
				t.Errorf("%d sources for %d rules", got.Sources, got.Rules)
			}
			if tt.cfg.PrefixLists > 0 && got.PrefixLists == 0 {
				t.Error("no prefix list is referred to")
			}
			t.Logf("%+v", got)
		})
	}
	l := synth.Large().Expected()
	if l.Groups != 5_000 || l.ENIs != 50_000 || l.Addresses != 100_000 || l.Rules != 20_000 {
		t.Errorf("Large is %+v, not the size of the performance targets", l)
	}
	if synth.Small().ENIs != 500 || synth.Medium().ENIs != 5_000 {
		t.Error("Small or Medium has the wrong number of ENIs")
	}
}

var idPattern = map[string]*regexp.Regexp{
	"sg":  regexp.MustCompile(`^sg-[0-9a-f]{17}$`),
	"eni": regexp.MustCompile(`^eni-[0-9a-f]{17}$`),
	"vpc": regexp.MustCompile(`^vpc-[0-9a-f]{17}$`),
	"pl":  regexp.MustCompile(`^pl-[0-9a-f]{17}$`),
	"i":   regexp.MustCompile(`^i-[0-9a-f]{17}$`),
}

// TestConsistent checks what every consumer relies on: valid IDs, unique
// IDs and addresses, addresses inside their VPC, groups of the interface's
// VPC, and references that resolve, but for the stale ones asked for.
func TestConsistent(t *testing.T) {
	stale := synth.Medium()
	stale.StaleRefs = 7
	cases := append(presets(), struct {
		name string
		cfg  synth.Config
	}{"stale", stale})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			inv := synth.Generate(tt.cfg)
			check := func(kind, id string) {
				t.Helper()
				if !idPattern[kind].MatchString(id) {
					t.Fatalf("bad %s ID %q", kind, id)
				}
			}
			ids := map[string]bool{}
			unique := func(id string) {
				t.Helper()
				if ids[id] {
					t.Fatalf("duplicate ID %s", id)
				}
				ids[id] = true
			}
			vpcs := map[string]inventory.VPC{}
			groupVPC := map[string]string{}
			for _, r := range inv.Regions {
				for _, v := range r.VPCs {
					check("vpc", v.ID)
					unique(v.ID)
					vpcs[v.ID] = v
				}
				for _, g := range r.SecurityGroups {
					check("sg", g.ID)
					unique(g.ID)
					groupVPC[g.ID] = g.VPCID
					if _, ok := vpcs[g.VPCID]; !ok {
						t.Fatalf("group %s in unknown VPC %s", g.ID, g.VPCID)
					}
				}
			}
			addrs := map[netip.Addr]string{}
			protocols := map[string]int{}
			var selfRefs, crossVPC, staleRefs, v6Addrs, noInstance, multiGroup int
			for _, r := range inv.Regions {
				pls := map[string]bool{}
				for _, pl := range r.PrefixLists {
					check("pl", pl.ID)
					unique(pl.ID)
					pls[pl.ID] = true
					if len(pl.Entries) == 0 {
						t.Errorf("prefix list %s is empty", pl.ID)
					}
				}
				for _, g := range r.SecurityGroups {
					for _, p := range g.Ingress {
						protocols[p.Protocol]++
						if len(p.CIDRs)+len(p.Groups)+len(p.PrefixListIDs) == 0 {
							t.Errorf("rule without source in %s", g.ID)
						}
						for _, c := range p.CIDRs {
							if c.Masked() != c {
								t.Errorf("%s: host bits in %s", g.ID, c)
							}
						}
						for _, ref := range p.Groups {
							check("sg", ref.GroupID)
							vpc, ok := groupVPC[ref.GroupID]
							switch {
							case !ok:
								staleRefs++
							case ref.GroupID == g.ID:
								selfRefs++
							case vpc != g.VPCID:
								crossVPC++
								if ref.VPCID != vpc {
									t.Errorf("cross-VPC reference to %s without its VPC", ref.GroupID)
								}
							}
						}
						for _, id := range p.PrefixListIDs {
							if !pls[id] {
								t.Errorf("%s refers to %s, which %s does not have", g.ID, id, r.Name)
							}
						}
					}
				}
				for _, n := range r.NetworkInterfaces {
					check("eni", n.ID)
					unique(n.ID)
					if n.InstanceID == "" {
						noInstance++
					} else {
						check("i", n.InstanceID)
					}
					if len(n.Groups) < 1 || len(n.Groups) > 5 {
						t.Errorf("%s has %d groups", n.ID, len(n.Groups))
					}
					if len(n.Groups) > 1 {
						multiGroup++
					}
					for _, gid := range n.Groups {
						if groupVPC[gid] != n.VPCID {
							t.Errorf("%s in %s has group %s of VPC %q", n.ID, n.VPCID, gid, groupVPC[gid])
						}
					}
					v := vpcs[n.VPCID]
					for k, a := range n.Addresses {
						if other, dup := addrs[a]; dup {
							t.Fatalf("%s of %s is also an address of %s", a, n.ID, other)
						}
						addrs[a] = n.ID
						if k == 0 && !a.Is4() {
							t.Errorf("%s has no primary IPv4 address", n.ID)
						}
						if a.Is6() {
							v6Addrs++
						}
						in := false
						for _, c := range v.CIDRs {
							in = in || c.Contains(a)
						}
						if !in {
							t.Errorf("%s of %s is outside its VPC %v", a, n.ID, v.CIDRs)
						}
					}
				}
			}
			if staleRefs != tt.cfg.StaleRefs {
				t.Errorf("%d stale references, want %d", staleRefs, tt.cfg.StaleRefs)
			}
			for _, proto := range []string{"tcp", "udp", "icmp", "-1"} {
				if protocols[proto] == 0 {
					t.Errorf("no %s rule", proto)
				}
			}
			if selfRefs == 0 || crossVPC == 0 || v6Addrs == 0 || noInstance == 0 || multiGroup == 0 {
				t.Errorf("missing variety: %d self references, %d cross-VPC, %d IPv6 addresses, %d ENIs without instance, %d ENIs in several groups",
					selfRefs, crossVPC, v6Addrs, noInstance, multiGroup)
			}
			t.Logf("protocols %v; %d self, %d cross-VPC, %d IPv6 addresses, %d ENIs without instance, %d in several groups",
				protocols, selfRefs, crossVPC, v6Addrs, noInstance, multiGroup)
		})
	}
}

// TestOfflineRoundTrip writes a synthetic estate as an offline inventory:
// the strict reader accepts it and reads back the same estate.
func TestOfflineRoundTrip(t *testing.T) {
	cfg := synth.Small()
	cfg.StaleRefs = 3
	inv := synth.Generate(cfg)
	dir := t.TempDir()
	if err := sgsource.WriteDir(dir, inv); err != nil {
		t.Fatal(err)
	}
	got, err := sgsource.ReadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, inv) {
		t.Fatal("ReadDir(WriteDir(Generate(Small))) differs")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*synth.Config)
		want string
	}{
		{"no region", func(c *synth.Config) { c.Regions = 0 }, "Regions is 0"},
		{"too many VPCs", func(c *synth.Config) { c.Regions, c.VPCsPerRegion = 16, 17 }, "VPCsPerRegion"},
		{"fewer groups than VPCs", func(c *synth.Config) { c.Groups = 3 }, "at least one per VPC"},
		{"no address", func(c *synth.Config) { c.AddrsPerENI = 0.5 }, "AddrsPerENI"},
		{"VPCs full", func(c *synth.Config) { c.ENIs = 200_000 }, "do not fit"},
		{"IPv6 fraction", func(c *synth.Config) { c.IPv6 = 2 }, "IPv6"},
		{"stale refs", func(c *synth.Config) { c.StaleRefs = 1_000 }, "StaleRefs"},
		{"owner", func(c *synth.Config) { c.OwnerID = "me" }, "OwnerID"},
	}
	if err := synth.Small().Validate(); err != nil {
		t.Fatalf("Small: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := synth.Small()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want an error about %s", err, tt.want)
			}
			defer func() {
				if recover() == nil {
					t.Error("Generate did not panic")
				}
			}()
			synth.Generate(c)
		})
	}
}

func TestLargeIsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	start := time.Now()
	synth.Generate(synth.Large())
	// The target is well under a second on the 2-core machine; the bound
	// here leaves room for a loaded CI runner.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Generate(Large) took %v", d)
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, tt := range presets() {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				synth.Generate(tt.cfg)
			}
		})
	}
}

// BenchmarkOffline measures WriteDir and ReadDir (the strict decoder) on a
// synthetic estate.
func BenchmarkOffline(b *testing.B) {
	for _, tt := range presets()[:2] {
		inv := synth.Generate(tt.cfg)
		b.Run("write/"+tt.name, func(b *testing.B) {
			for b.Loop() {
				if err := sgsource.WriteDir(b.TempDir(), inv); err != nil {
					b.Fatal(err)
				}
			}
		})
		dir := b.TempDir()
		if err := sgsource.WriteDir(dir, inv); err != nil {
			b.Fatal(err)
		}
		b.Run("read/"+tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sgsource.ReadDir(context.Background(), dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
