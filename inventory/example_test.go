package inventory_test

import (
	"fmt"
	"net/netip"

	"github.com/reyes-fw/reyes/inventory"
)

// An inventory built by hand, as a custom source (a CMDB export, say) or a
// policy test would build one, without the AWS SDK. ruleset.Build turns it
// into a ruleset.
func Example() {
	https := int32(443)
	inv := &inventory.Inventory{Regions: []inventory.Region{{
		Name: "eu-west-1",
		VPCs: []inventory.VPC{{ID: "vpc-0a1b2c3d", OwnerID: "123456789012", CIDRs: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}},
		SecurityGroups: []inventory.SecurityGroup{{
			ID: "sg-0a1b2c3d", Name: "web", OwnerID: "123456789012", VPCID: "vpc-0a1b2c3d",
			Ingress: []inventory.Permission{{Protocol: "tcp", FromPort: &https, ToPort: &https, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
		}},
		NetworkInterfaces: []inventory.NetworkInterface{{
			ID: "eni-0a1b2c3d", VPCID: "vpc-0a1b2c3d", OwnerID: "123456789012",
			Addresses: []netip.Addr{netip.MustParseAddr("10.20.1.10")}, Groups: []string{"sg-0a1b2c3d"},
		}},
	}}}
	for _, r := range inv.Regions {
		fmt.Println(r.Name, inventory.ValidRegion(r.Name), len(r.SecurityGroups), "group(s)")
	}
	fmt.Println(inventory.ValidGroupID("sg-0a1b2c3d"), inventory.ValidGroupID("sg-XYZ"))
	fmt.Println(inventory.ValidRegion("eusc-de-east-1"), inventory.ValidRegion("../etc"))
	// Output:
	// eu-west-1 true 1 group(s)
	// true false
	// true false
}
