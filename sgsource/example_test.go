package sgsource_test

import (
	"context"
	"fmt"
	"log"

	"github.com/reyes-fw/reyes/sgsource"
)

// Read the bundled sample estate, a directory of AWS CLI output with one
// subdirectory per region.
func ExampleReadDir() {
	inv, err := sgsource.ReadDir(context.Background(), "../examples/quickstart/inventory")
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range inv.Regions {
		addrs := 0
		for _, n := range r.NetworkInterfaces {
			addrs += len(n.Addresses)
		}
		fmt.Printf("%s: %d VPCs, %d groups, %d interfaces with %d addresses, %d prefix lists\n",
			r.Name, len(r.VPCs), len(r.SecurityGroups), len(r.NetworkInterfaces), addrs, len(r.PrefixLists))
	}
	// Output:
	// eu-west-1: 2 VPCs, 5 groups, 4 interfaces with 6 addresses, 1 prefix lists
	// us-west-2: 2 VPCs, 3 groups, 1 interfaces with 1 addresses, 0 prefix lists
}

// A malformed file is rejected with an error that names the file, the field
// and its JSON pointer.
func ExampleFieldError() {
	_, err := sgsource.ReadDir(context.Background(), "testdata/hostbits")
	fmt.Println(err)
	// Output:
	// reading inventory testdata/hostbits: us-east-1/security-groups.json: SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp: "10.0.0.1/8" has host bits set (the block is 10.0.0.0/8) (JSON pointer /SecurityGroups/0/IpPermissions/0/IpRanges/0/CidrIp)
}
