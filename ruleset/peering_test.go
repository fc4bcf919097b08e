package ruleset

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/inventory"
)

// TestPeeringStatus: a reference through a deleted VPC peering is stale in
// AWS and allows nothing; an active one resolves as usual.
func TestPeeringStatus(t *testing.T) {
	port := int32(5432)
	inv := &inventory.Inventory{Regions: []inventory.Region{{
		Name: "us-east-1",
		SecurityGroups: []inventory.SecurityGroup{
			{ID: "sg-0000000a", Name: "db", OwnerID: "123456789012", VPCID: "vpc-0000000a", Ingress: []inventory.Permission{
				{Protocol: "tcp", FromPort: &port, ToPort: &port, Groups: []inventory.GroupRef{
					{GroupID: "sg-0000000b", VPCID: "vpc-0000000b", PeeringStatus: "active"},
					{GroupID: "sg-0000000c", VPCID: "vpc-0000000c", PeeringStatus: "deleted"},
				}},
				{Protocol: "udp", FromPort: &port, ToPort: &port, Groups: []inventory.GroupRef{
					{GroupID: "sg-0000000c", VPCID: "vpc-0000000c", PeeringStatus: "deleted"},
				}},
			}},
		},
		NetworkInterfaces: []inventory.NetworkInterface{{ID: "eni-0000000a", VPCID: "vpc-0000000a", Addresses: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Groups: []string{"sg-0000000a"}}},
	}}}
	rs, err := Build(inv, BuildOptions{GeneratedAt: time.Unix(1e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	rules := rs.Groups[0].Rules
	if len(rules) != 1 || rules[0].Protocol != ProtoTCP || !slices.Equal(rules[0].Groups, []string{"sg-0000000b"}) {
		t.Fatalf("rules %+v: want only tcp/5432 from the actively peered group", rules)
	}
}
