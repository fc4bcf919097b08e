package ruleset_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/netip"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

// Split a ruleset into a root and parts as a leader publishes it, and load
// the view of one host as a follower does: only the parts it needs.
func ExampleSplit() {
	ctx := context.Background()
	inv, err := sgsource.ReadDir(ctx, "../examples/quickstart/inventory")
	if err != nil {
		log.Fatal(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{
		Scope: "quickstart", GeneratedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Exclude: []string{"bastion"},
	})
	if err != nil {
		log.Fatal(err)
	}
	// TargetBinBytes this small only to have several bins in a tiny estate.
	root, parts, err := ruleset.Split(rs, ruleset.SplitOptions{TargetBinBytes: 256})
	if err != nil {
		log.Fatal(err)
	}
	payload, err := ruleset.EncodeRoot(root) // what the leader signs
	if err != nil {
		log.Fatal(err)
	}
	lines := strings.Split(string(payload), "\n")
	fmt.Println(lines[0])
	fmt.Println(lines[1][:60] + "...")
	fmt.Println("bins", root.Bins, "parts", len(root.Parts))

	// The follower: decode the (verified) root, then read what its host
	// needs, found by its address.
	got, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
	if err != nil {
		log.Fatal(err)
	}
	fetch := func(_ context.Context, ref ruleset.PartRef) ([]byte, error) {
		b, ok := parts[ref.Name]
		if !ok {
			return nil, fmt.Errorf("part %s: %w", ref.Name, ruleset.ErrPartMissing)
		}
		return bytes.Clone(b), nil
	}
	v, err := ruleset.LoadView(ctx, got, ruleset.ViewRequest{Addrs: []netip.Addr{netip.MustParseAddr("10.20.1.60")}}, fetch)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("view reads", len(v.Parts), "of", len(got.Parts), "parts")
	for _, g := range v.Ruleset.Groups {
		fmt.Println("group", g.ID, g.Name)
	}
	for _, n := range v.Ruleset.Interfaces {
		fmt.Println("interface", n.ID, n.Addrs, n.Groups)
	}
	// Output:
	// # reyes.root/v1
	// # {"type":"security-groups","scope":"quickstart","serial":17...
	// bins map[a:2 g:4 i:2 m:4] parts 13
	// view reads 7 of 13 parts
	// group sg-41c9bbb04cf721a80 db
	// group sg-b238c182ba23a5210 api
	// interface eni-d878fc34d4aa25ed0 [10.20.1.60] [sg-41c9bbb04cf721a80]
	// interface eni-f105372af0061d156 [10.20.1.11 10.20.1.12 2400:6500:60ec:9c00::11] [sg-41c9bbb04cf721a80 sg-b238c182ba23a5210]
	// interface eni-f9d642e9aab729078 [10.20.1.10] [sg-b238c182ba23a5210]
}
