package ruleset

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/inventory"
)

// peeringRegion: db (in vDB) allows tcp/5432 from ref; app in vApp has a
// member; the peering of ref connects vDB and vApp only.
func peeringRegion(ref inventory.GroupRef) inventory.Region {
	port := int32(5432)
	return inventory.Region{
		Account: own, Name: "us-east-1",
		VPCs: []inventory.VPC{
			{ID: vDB, OwnerID: own, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}},
			{ID: vApp, OwnerID: own, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}},
			{ID: vFar, OwnerID: own, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.3.0.0/16")}},
		},
		SecurityGroups: []inventory.SecurityGroup{
			{ID: sgDB, Name: "db", OwnerID: own, VPCID: vDB, Ingress: []inventory.Permission{{Protocol: "tcp", FromPort: &port, ToPort: &port, Groups: []inventory.GroupRef{ref}}}},
			{ID: sgApp, Name: "app", OwnerID: own, VPCID: vApp},
		},
		NetworkInterfaces: []inventory.NetworkInterface{
			{ID: "eni-0000000d", OwnerID: own, VPCID: vDB, InterfaceType: "interface", Addresses: []netip.Addr{netip.MustParseAddr("10.1.0.5")}, Groups: []string{sgDB}},
			{ID: "eni-0000000a", OwnerID: own, VPCID: vApp, InterfaceType: "interface", Addresses: []netip.Addr{netip.MustParseAddr("10.2.0.5")}, Groups: []string{sgApp}},
		},
		AssociationsKnown: true, TransitGatewaysKnown: true,
	}
}

// TestBuildPeeringScope: a peering reference holds only between the two
// VPCs the peering connects, and only within a region; a VPC record
// missing from the inventory fails closed. Both were false allows (an
// interface of db in an associated VPC accepted app's members; an
// inter-region peering whose VPC record was missing was honoured).
func TestBuildPeeringScope(t *testing.T) {
	build := func(t *testing.T, regions ...inventory.Region) *Ruleset {
		t.Helper()
		rs, err := Build(&inventory.Inventory{Regions: regions}, BuildOptions{GeneratedAt: time.Unix(1e9, 0)})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	rule := func(rs *Ruleset) Rule {
		for _, g := range rs.Groups {
			if g.ID == sgDB && len(g.Rules) > 0 {
				return g.Rules[0]
			}
		}
		return Rule{} // a rule that allows nothing is dropped
	}
	t.Run("associated VPC is not on the peering", func(t *testing.T) {
		r := peeringRegion(inventory.GroupRef{GroupID: sgApp, UserID: own, VPCID: vApp, PeeringStatus: "active", PeeringConnectionID: "pcx-00000001"})
		r.NetworkInterfaces = append(r.NetworkInterfaces, inventory.NetworkInterface{ID: "eni-0000000f", OwnerID: own, VPCID: vFar, InterfaceType: "interface",
			Addresses: []netip.Addr{netip.MustParseAddr("10.3.0.5")}, Groups: []string{sgDB}})
		r.SecurityGroupVPCAssociations = []inventory.SecurityGroupVPCAssociation{{GroupID: sgDB, GroupOwnerID: own, VPCID: vFar, State: "associated"}}
		rs := build(t, r)
		got := rule(rs)
		if slices.Contains(got.Groups, sgApp) {
			t.Fatalf("app honoured everywhere db applies, vFar included: %+v", got)
		}
		if len(got.Scoped) != 1 || got.Scoped[0].VPC != vDB || !slices.Equal(got.Scoped[0].From, []string{vApp}) {
			t.Errorf("scoped %+v, want app's members only for db's interfaces in %s", got.Scoped, vDB)
		}
		if len(rs.Findings) == 0 || !strings.Contains(rs.Findings[0].Detail, "not with "+vFar) {
			t.Errorf("findings %+v, want one saying the peering does not reach %s", rs.Findings, vFar)
		}
	})
	t.Run("inter-region peering with a VPC record missing", func(t *testing.T) {
		r := peeringRegion(inventory.GroupRef{GroupID: sgApp, UserID: peer, VPCID: "vpc-000000bb", PeeringStatus: "active", PeeringConnectionID: "pcx-00000002"})
		r.SecurityGroups, r.NetworkInterfaces = r.SecurityGroups[:1], r.NetworkInterfaces[:1]
		w := inventory.Region{Account: peer, Name: "us-west-2",
			SecurityGroups: []inventory.SecurityGroup{{ID: sgApp, Name: "app", OwnerID: peer, VPCID: "vpc-000000bb"}},
			NetworkInterfaces: []inventory.NetworkInterface{{ID: "eni-000000bb", OwnerID: peer, VPCID: "vpc-000000bb", InterfaceType: "interface",
				Addresses: []netip.Addr{netip.MustParseAddr("10.9.0.5")}, Groups: []string{sgApp}}},
			AssociationsKnown: true, TransitGatewaysKnown: true}
		got := rule(build(t, r, w))
		if len(got.Groups) != 0 || len(got.Scoped) != 0 {
			t.Errorf("rule %+v: an inter-region peering (VPC record missing) must allow nothing", got)
		}
	})
}

// TestBuildTwoOwners: two accounts' dumps that each list one group as
// their own are refused, whatever the order (before, the first read won:
// one account's dump could rewrite another account's rules).
func TestBuildTwoOwners(t *testing.T) {
	r := peeringRegion(inventory.GroupRef{GroupID: sgApp, UserID: own})
	port := int32(22)
	p := inventory.Region{Account: peer, Name: "us-east-1",
		SecurityGroups: []inventory.SecurityGroup{{ID: sgDB, Name: "db", OwnerID: peer, VPCID: vDB,
			Ingress: []inventory.Permission{{Protocol: "tcp", FromPort: &port, ToPort: &port, CIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}}}},
		AssociationsKnown: true, TransitGatewaysKnown: true}
	for _, regions := range [][]inventory.Region{{r, p}, {p, r}} {
		_, err := Build(&inventory.Inventory{Regions: regions}, BuildOptions{GeneratedAt: time.Unix(1e9, 0)})
		if err == nil || !strings.Contains(err.Error(), "an ID has one owner") {
			t.Errorf("regions of %s then %s: %v, want a refusal naming both owners", regions[0].Account, regions[1].Account, err)
		}
	}
}
