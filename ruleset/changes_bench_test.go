package ruleset_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/reyes-fw/reyes/ruleset"
)

// churned is rs after n interfaces were terminated and n launched (copies
// of others, in their groups, with new IDs and addresses): autoscaling
// between two publishes.
func churned(rs *ruleset.Ruleset, n int) *ruleset.Ruleset {
	c := cloneRuleset(rs)
	c.Serial++
	step := max(1, len(c.Interfaces)/(2*n))
	var launched []ruleset.Interface
	for i := 0; i < n; i++ {
		src := c.Interfaces[(2*i+1)*step%len(c.Interfaces)]
		x := src
		x.ID = fmt.Sprintf("eni-c%016x", i)
		x.Groups = slices.Clone(src.Groups)
		x.Addrs = []netip.Addr{netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})}
		x.Prefixes = nil
		launched = append(launched, x)
	}
	var kept []ruleset.Interface
	for i, x := range c.Interfaces {
		if i%step == 0 && i/step%2 == 0 && len(c.Interfaces)-len(kept) <= len(c.Interfaces) && i/step/2 < n {
			continue // terminated
		}
		kept = append(kept, x)
	}
	c.Interfaces = append(kept, launched...)
	c.Canonicalize()
	return c
}

// BenchmarkChangedKeys: what the leader does per publish to list the
// changes (diff the bins whose parts changed), for churn of 0.1 % and 1 %
// of the interfaces of synth.Large; it reports the records listed, the
// filter's bytes and the root's bytes with the list.
func BenchmarkChangedKeys(b *testing.B) {
	rs := largeRuleset()
	root, payload, parts := mustSplit(b, rs, ruleset.SplitOptions{})
	ctx := context.Background()
	for _, n := range []int{50, 500} {
		rs2 := churned(rs, n)
		if err := rs2.Validate(); err != nil {
			b.Fatal(err)
		}
		root2, parts2, err := ruleset.Split(rs2, ruleset.SplitOptions{Previous: root.Bins})
		if err != nil {
			b.Fatal(err)
		}
		all := maps.Clone(parts)
		maps.Copy(all, parts2)
		fetch := func(_ context.Context, ref ruleset.PartRef) ([]byte, error) { return all[ref.Name], nil }
		b.Run(fmt.Sprintf("churn-%d", n), func(b *testing.B) {
			var keys []string
			for b.Loop() {
				var ok bool
				if keys, ok, err = ruleset.ChangedKeys(ctx, root, root2, fetch); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
			root2.Changes = ruleset.NewChanges(sha256.Sum256(payload), keys)
			p2, err := ruleset.EncodeRoot(root2)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(keys)), "records")
			b.ReportMetric(float64(len(root2.Changes.Bits)), "filter-bytes")
			b.ReportMetric(float64(len(p2)), "root-bytes")
			b.ReportMetric(float64(len(payload)), "root-bytes-before")
		})
	}
}
