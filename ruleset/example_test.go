package ruleset_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

// Build a ruleset from the bundled example inventory, encode it as a
// leader would publish it, and decode it as a follower would.
func Example() {
	ctx := context.Background()
	inv, err := sgsource.ReadDir(ctx, "../examples/quickstart/inventory")
	if err != nil {
		log.Fatal(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{
		Scope:       "quickstart",
		GeneratedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Exclude:     []string{"bastion"}, // the IPsec endpoint: lets VPN traffic in
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, g := range rs.Groups {
		fmt.Printf("group %s %-8s rules=%d excluded=%v\n", g.ID, g.Name, len(g.Rules), g.Excluded)
	}
	for _, n := range rs.Interfaces {
		fmt.Printf("interface %s %v %v\n", n.ID, n.Addrs, n.Groups)
	}

	data, err := ruleset.Encode(rs)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s...\n", data[:130])

	got, err := ruleset.Decode(data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("decoded serial", got.Serial, "valid until", got.NotAfter)

	_, err = ruleset.Decode(append(data[:len(data)-2:len(data)-2], `,"extra":1}`...))
	fmt.Println(err)
	// Output:
	// group sg-21cc1dad43aefaabf default  rules=0 excluded=false
	// group sg-3afd97af72adefa56 lb       rules=0 excluded=false
	// group sg-41c9bbb04cf721a80 db       rules=2 excluded=false
	// group sg-79301694b40c8c891 default  rules=0 excluded=false
	// group sg-a98e1355d843415a1 default  rules=0 excluded=false
	// group sg-b238c182ba23a5210 api      rules=5 excluded=false
	// group sg-bbd193eaf1c36c316 bastion  rules=0 excluded=true
	// group sg-ed32b44bc9a423b89 default  rules=0 excluded=false
	// interface eni-13ad82cd3d507ee54 [10.20.1.50] [sg-3afd97af72adefa56]
	// interface eni-7be938ba11b8ec7b0 [10.30.0.5] [sg-bbd193eaf1c36c316]
	// interface eni-d878fc34d4aa25ed0 [10.20.1.60] [sg-41c9bbb04cf721a80]
	// interface eni-f105372af0061d156 [10.20.1.11 10.20.1.12 2400:6500:60ec:9c00::11] [sg-41c9bbb04cf721a80 sg-b238c182ba23a5210]
	// interface eni-f9d642e9aab729078 [10.20.1.10] [sg-b238c182ba23a5210]
	// {"format":"reyes.ruleset/v1","type":"security-groups","scope":"quickstart","serial":1735689600000000000,"generated_at":"2025-01-01...
	// decoded serial 1735689600000000000 valid until 2025-01-01 01:00:00 +0000 UTC
	// decoding ruleset: malformed ruleset: /extra: unknown field "extra"
}
