package ruleset_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
)

// redteamMutate makes changes that TestChangesInvariant's mutate does not:
// a stale group created (with members), a group excluded or included, a
// group renamed, a scoped reference's VPCs, IPv6 addresses and delegated
// prefixes, a group taken off an interface, an address moved between
// interfaces, findings alone, a rule's CIDRs, an address removed, an
// interface moved to another VPC.
func redteamMutate(rng *rand.Rand, rs *ruleset.Ruleset) (*ruleset.Ruleset, []string) {
	c := cloneRuleset(rs)
	c.VPCs = slices.Clone(rs.VPCs)
	c.Findings = slices.Clone(rs.Findings)
	c.Serial++
	for i := range c.Interfaces {
		n := &c.Interfaces[i]
		n.Addrs, n.Prefixes, n.Groups = slices.Clone(n.Addrs), slices.Clone(n.Prefixes), slices.Clone(n.Groups)
	}
	for i := range c.Groups {
		g := &c.Groups[i]
		g.Rules = slices.Clone(g.Rules)
		for j := range g.Rules {
			r := &g.Rules[j]
			r.CIDRs, r.Groups, r.Scoped = slices.Clone(r.CIDRs), slices.Clone(r.Groups), slices.Clone(r.Scoped)
			for k := range r.Scoped {
				r.Scoped[k].From = slices.Clone(r.Scoped[k].From)
			}
		}
	}
	anyIf := func() *ruleset.Interface { return &c.Interfaces[rng.IntN(len(c.Interfaces))] }
	anyGroup := func() *ruleset.Group { return &c.Groups[rng.IntN(len(c.Groups))] }
	var what []string
	for range 1 + rng.IntN(3) {
		switch rng.IntN(11) {
		case 0: // a stale reference's group is created, with a member
			id := fmt.Sprintf("sg-%08x", 0xdead0000+rng.IntN(3))
			if slices.ContainsFunc(c.Groups, func(g ruleset.Group) bool { return g.ID == id }) {
				continue
			}
			c.Groups = append(c.Groups, ruleset.Group{ID: id, Name: "late", Region: "eu-west-1", VPC: c.VPCs[0].ID, Rules: []ruleset.Rule{}})
			n := anyIf()
			n.Groups = append(n.Groups, id)
			what = append(what, "create "+id)
		case 1:
			g := anyGroup()
			g.Excluded = !g.Excluded
			if g.Excluded {
				g.Rules = []ruleset.Rule{}
			}
			what = append(what, "exclusion of "+g.ID)
		case 2:
			g := anyGroup()
			g.Name += "-renamed"
			what = append(what, "rename "+g.ID)
		case 3:
			for _, g := range c.Groups {
				for _, r := range g.Rules {
					if len(r.Scoped) > 0 {
						s := &r.Scoped[0]
						s.From = []string{c.VPCs[rng.IntN(len(c.VPCs))].ID}
						what = append(what, "scoped ref of "+g.ID)
						break
					}
				}
			}
		case 4:
			n := anyIf()
			for _, v := range c.VPCs {
				if v.ID == n.VPC && len(v.CIDRs) > 1 {
					a := v.CIDRs[1].Addr().As16()
					a[14], a[15] = 0x7f, byte(rng.IntN(256))
					n.Addrs = ruleset.SortedAddrs(append(n.Addrs, netip.AddrFrom16(a)))
					what = append(what, "ipv6 of "+n.ID)
				}
			}
		case 5:
			n := anyIf()
			if len(n.Prefixes) > 0 {
				n.Prefixes = nil
			} else {
				n.Prefixes = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(rng.IntN(256)), 0x20}), 28)}
			}
			what = append(what, "prefixes of "+n.ID)
		case 6:
			n := anyIf()
			if len(n.Groups) > 1 {
				n.Groups = n.Groups[1:]
				what = append(what, "group off "+n.ID)
			}
		case 7:
			a, b := anyIf(), anyIf()
			if a.ID != b.ID && a.VPC == b.VPC && len(a.Addrs) > 1 {
				moved := a.Addrs[len(a.Addrs)-1]
				a.Addrs = a.Addrs[:len(a.Addrs)-1]
				b.Addrs = ruleset.SortedAddrs(append(b.Addrs, moved))
				what = append(what, "move "+moved.String())
			}
		case 8:
			c.Findings = append(c.Findings, ruleset.Finding{Kind: ruleset.FindingStaleReference, Group: c.Groups[0].ID, Ref: "sg-0000000000000abcd", Detail: "deleted"})
			what = append(what, "finding")
		case 9:
			g := anyGroup()
			if len(g.Rules) > 0 {
				g.Rules[0].CIDRs = append(g.Rules[0].CIDRs, netip.MustParsePrefix("198.51.100.0/24"))
				what = append(what, "cidr of a rule of "+g.ID)
			}
		case 10:
			n := anyIf()
			if len(n.Addrs) > 1 {
				n.Addrs = n.Addrs[1:]
				what = append(what, "address off "+n.ID)
			}
		}
	}
	c.Canonicalize()
	return c, what
}

// mapped returns the IPv4 addresses of addrs in their IPv4-mapped IPv6
// form (a request may carry them so).
func mapped(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		out[i] = a
		if a.Is4() {
			out[i] = netip.AddrFrom16(a.As16())
		}
	}
	return out
}

// TestRedteamChangesInvariantMore is TestChangesInvariant's invariant on
// changes and requests it does not make: whenever the filter says none of
// a view's keys changed, the new root gives the very same view.
func TestRedteamChangesInvariantMore(t *testing.T) {
	ctx := context.Background()
	tried, passed, changed := 0, 0, 0
	for seed := range uint64(150) {
		rng := rand.New(rand.NewPCG(seed, 99))
		rs := randomRuleset(rng)
		target := []int64{0, 64, 256}[seed%3]
		root1, payload1, parts1 := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: target})
		rs2, what := redteamMutate(rng, rs)
		if len(what) == 0 || rs2.Validate() != nil {
			continue
		}
		root2, _, parts2 := mustSplit(t, rs2, ruleset.SplitOptions{Previous: root1.Bins, TargetBinBytes: target})
		keys, ok, err := ruleset.ChangedKeys(ctx, root1, root2, union(parts1, parts2))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !ok {
			continue
		}
		since := sha256.Sum256(payload1)
		c := ruleset.NewChanges(since, keys)
		hosts := append(randomHosts(rs, rng, 3), randomHosts(rs2, rng, 2)...)
		for _, n := range []ruleset.Interface{rs.Interfaces[rng.IntN(len(rs.Interfaces))], rs2.Interfaces[rng.IntN(len(rs2.Interfaces))]} {
			hosts = append(hosts, viewCase{name: "mapped " + n.ID, req: ruleset.ViewRequest{Addrs: mapped(n.Addrs)}})
		}
		hosts = append(hosts, viewCase{name: "stale groups", req: ruleset.ViewRequest{Groups: []string{"sg-dead0000", "sg-dead0001", "sg-dead0002"}}},
			viewCase{name: "absent interface", req: ruleset.ViewRequest{InterfaceIDs: []string{"eni-0fffffffffffffff0"}, Groups: []string{rs.Groups[0].ID}}})
		for _, hc := range hosts {
			v1, err1 := ruleset.LoadView(ctx, root1, hc.req, newStore(parts1).fetch)
			v2, err2 := ruleset.LoadView(ctx, root2, hc.req, newStore(parts2).fetch)
			if err1 != nil {
				t.Fatalf("seed %d: %s: %v", seed, hc.name, err1)
			}
			for _, k := range v1.Keys {
				if strings.Contains(k, "::ffff:") {
					t.Fatalf("seed %d: %s: key %q in the mapped form: no line has it", seed, hc.name, k)
				}
			}
			if !c.Unchanged(since, v1.Keys) {
				continue
			}
			tried++
			if err2 != nil {
				t.Fatalf("seed %d: %s: the filter says unchanged, but the new root's view fails: %v (changes %v)", seed, hc.name, err2, what)
			}
			v2.Ruleset.Header = v1.Ruleset.Header
			if !reflect.DeepEqual(v1.Ruleset, v2.Ruleset) || !slices.Equal(v1.Keys, v2.Keys) {
				t.Fatalf("seed %d: %s: the filter says unchanged, the view changed (changes %v, keys %v)", seed, hc.name, what, keys)
			}
			passed++
		}
		changed += len(keys)
	}
	if tried < 100 {
		t.Fatalf("only %d views passed by the filter", tried)
	}
	t.Logf("%d views passed by the filter, all the same; %d changed keys in all", passed, changed)
}

// TestRedteamChangesFilterCost bounds the work a root's change list can
// cost a follower: the largest filter with the largest k, checked against
// many keys, and decoded from a root.
func TestRedteamChangesFilterCost(t *testing.T) {
	keys := make([]string, 70000)
	for i := range keys {
		keys[i] = ruleset.ViewKey(ruleset.KindAddrs, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String())
	}
	c := ruleset.NewChanges([32]byte{1}, keys)
	if c == nil || len(c.Bits) > ruleset.MaxChangesBytes {
		t.Fatalf("70,000 keys: %v", c)
	}
	c.K = ruleset.MaxChangesK
	probe := make([]string, 5000)
	for i := range probe {
		probe[i] = ruleset.ViewKey(ruleset.KindGroups, fmt.Sprintf("sg-%017x", i))
	}
	start := time.Now()
	c.Unchanged([32]byte{1}, probe)
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("checking 5,000 keys against the largest filter took %v", d)
	}
	if ruleset.NewChanges([32]byte{}, make([]string, 80000)) != nil {
		t.Fatal("a filter over MaxChangesBytes")
	}
}
