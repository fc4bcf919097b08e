package synth_test

import (
	"fmt"

	"github.com/reyes-fw/reyes/internal/synth"
)

// Generate the estate of the performance targets and measure it.
func ExampleGenerate() {
	inv := synth.Generate(synth.Large())
	c := synth.Count(inv)
	fmt.Printf("%d regions, %d VPCs, %d groups, %d rules, %d interfaces, %d addresses\n",
		c.Regions, c.VPCs, c.Groups, c.Rules, c.ENIs, c.Addresses)
	fmt.Println(inv.Regions[0].Name, inv.Regions[0].SecurityGroups[0].Name, len(inv.Regions[0].SecurityGroups[0].ID))
	// Output:
	// 4 regions, 20 VPCs, 5000 groups, 20000 rules, 50000 interfaces, 100000 addresses
	// ap-southeast-2 default 20
}
