package ruleset_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/ruleset"
)

// randomRuleset is a small random estate with what synth does not make:
// VPCs with overlapping CIDRs (one address on interfaces of two VPCs),
// scoped references, stale references (to groups not in the estate),
// excluded groups, interfaces in groups the estate does not hold,
// delegated prefixes and findings.
func randomRuleset(rng *rand.Rand) *ruleset.Ruleset {
	hexID := func(prefix string, n int) string { return fmt.Sprintf("%s%08x", prefix, n) }
	rs := &ruleset.Ruleset{Header: ruleset.Header{
		Format: ruleset.Format, Type: ruleset.Type, Scope: "prod", Serial: 17,
		GeneratedAt: splitTime, NotAfter: splitTime.Add(3600e9),
	}}
	nVPC := 2 + rng.IntN(4)
	for v := range nVPC {
		// VPCs 0 and 1 share 10.0.0.0/16: overlapping CIDRs.
		oct := v
		if v == 1 {
			oct = 0
		}
		vpc := ruleset.VPC{ID: hexID("vpc-", v+1), Region: "eu-west-1", CIDRs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(oct), 0, 0}), 16)}}
		if rng.IntN(2) == 0 {
			vpc.CIDRs = append(vpc.CIDRs, netip.MustParsePrefix(fmt.Sprintf("2600:1f18:%x::/56", v)))
		}
		rs.VPCs = append(rs.VPCs, vpc)
	}
	nGroups := 4 + rng.IntN(25)
	groupID := func(i int) string { return hexID("sg-", i+1) }
	stale := func() string { return hexID("sg-", 0xdead0000+rng.IntN(3)) }
	for i := range nGroups {
		g := ruleset.Group{ID: groupID(i), Name: fmt.Sprintf("g%d", i), Region: "eu-west-1", VPC: rs.VPCs[rng.IntN(nVPC)].ID, Rules: []ruleset.Rule{}}
		if rng.IntN(8) == 0 {
			g.Excluded = true
			rs.Groups = append(rs.Groups, g)
			continue
		}
		for range rng.IntN(5) {
			r := ruleset.Rule{Protocol: ruleset.ProtoTCP, FromPort: 1 + rng.IntN(1000)}
			r.ToPort = r.FromPort + rng.IntN(3)
			switch rng.IntN(4) {
			case 0:
				r = ruleset.Rule{Protocol: ruleset.ProtoAll, FromPort: -1, ToPort: -1}
			case 1:
				r = ruleset.Rule{Protocol: ruleset.ProtoUDP, FromPort: 53, ToPort: 53}
			}
			for range rng.IntN(3) {
				switch k := rng.IntN(10); {
				case k < 2:
					r.CIDRs = append(r.CIDRs, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(rng.IntN(4)), 0}), 24))
				case k < 6:
					r.Groups = append(r.Groups, groupID(rng.IntN(nGroups)))
				case k < 7:
					r.Groups = append(r.Groups, stale())
				default:
					ref := groupID(rng.IntN(nGroups))
					if rng.IntN(5) == 0 {
						ref = stale()
					}
					from := []string{rs.VPCs[rng.IntN(nVPC)].ID, rs.VPCs[rng.IntN(nVPC)].ID}
					r.Scoped = append(r.Scoped, ruleset.ScopedRef{Group: ref, VPC: rs.VPCs[rng.IntN(nVPC)].ID, From: from})
				}
			}
			if len(r.CIDRs)+len(r.Groups)+len(r.Scoped) == 0 {
				r.Groups = []string{g.ID} // self
			}
			g.Rules = append(g.Rules, r)
		}
		rs.Groups = append(rs.Groups, g)
	}
	nIfs := 5 + rng.IntN(60)
	next := make([]int, nVPC)
	for i := range nIfs {
		v := rng.IntN(nVPC)
		vpc := rs.VPCs[v]
		n := ruleset.Interface{ID: hexID("eni-", i+1), Region: "eu-west-1", VPC: vpc.ID}
		for range 1 + rng.IntN(3) {
			next[v]++
			h := next[v]
			if rng.IntN(4) == 0 && v <= 1 {
				h = 1 + rng.IntN(8) // collide with the other of the overlapping VPCs
			}
			n.Addrs = append(n.Addrs, netip.AddrFrom4([4]byte{10, vpc.CIDRs[0].Addr().As4()[1], byte(h >> 8), byte(h)}))
		}
		if len(vpc.CIDRs) > 1 && rng.IntN(2) == 0 {
			a := vpc.CIDRs[1].Addr().As16()
			a[15] = byte(1 + rng.IntN(200))
			n.Addrs = append(n.Addrs, netip.AddrFrom16(a))
		}
		if rng.IntN(6) == 0 {
			n.Prefixes = append(n.Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, vpc.CIDRs[0].Addr().As4()[1], 0x80 + byte(i), 0x10}), 28))
		}
		for range 1 + rng.IntN(3) {
			if rng.IntN(10) == 0 {
				n.Groups = append(n.Groups, stale()) // a group the estate does not hold
				continue
			}
			n.Groups = append(n.Groups, groupID(rng.IntN(nGroups)))
		}
		rs.Interfaces = append(rs.Interfaces, n)
	}
	if rng.IntN(2) == 0 {
		rs.Findings = []ruleset.Finding{{Kind: ruleset.FindingStaleReference, Group: groupID(0), Ref: stale(), Detail: "deleted"}}
	}
	rs.Canonicalize()
	if err := rs.Validate(); err != nil {
		panic(err)
	}
	return rs
}

// TestLoadViewRandomEstates: the invariant of LoadView on random estates,
// with bins small enough that every kind has several.
func TestLoadViewRandomEstates(t *testing.T) {
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 42))
		rs := randomRuleset(rng)
		target := []int64{0, 64, 256}[seed%3]
		root, _, parts := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: target})
		st := newStore(parts)
		joined, err := ruleset.Join(context.Background(), root, st.fetch)
		if err != nil {
			t.Fatalf("seed %d: Join: %v", seed, err)
		}
		if !reflect.DeepEqual(joined, rs) {
			t.Fatalf("seed %d: Join differs from the ruleset split", seed)
		}
		for _, c := range randomHosts(rs, rng, 6) {
			st := newStore(parts)
			v, err := ruleset.LoadView(context.Background(), root, c.req, st.fetch)
			if err != nil {
				t.Fatalf("seed %d: %s: LoadView: %v", seed, c.name, err)
			}
			checkFetched(t, c.name, v, st)
			hf, okf := c.host(rs)
			hv, okv := c.host(v.Ruleset)
			if okf != okv || !reflect.DeepEqual(hf, hv) {
				t.Fatalf("seed %d: %s: host in the view %v (%v), in the full ruleset %v (%v)", seed, c.name, hv, okv, hf, okf)
			}
			if !okf {
				continue
			}
			if got, want := restoreText(t, v.Ruleset, hv), restoreText(t, rs, hf); got != want {
				t.Fatalf("seed %d: %s: the view renders\n%s\nthe full ruleset\n%s", seed, c.name, got, want)
			}
		}
	}
}

// planGroups are the groups a view's plan involves: the host's groups and
// those their rules refer to (refd).
func planGroups(v *ruleset.View, req ruleset.ViewRequest) (plan, refd map[string]bool) {
	x := ruleset.NewIndex(v.Ruleset)
	plan, refd = map[string]bool{}, map[string]bool{}
	host := slices.Clone(req.Groups)
	for _, id := range req.InterfaceIDs {
		if n := x.Interface(id); n != nil {
			host = append(host, n.Groups...)
		}
	}
	for _, a := range req.Addrs {
		for _, n := range x.InterfacesByAddr(a) {
			host = append(host, n.Groups...)
		}
	}
	for _, g := range host {
		plan[g] = true
		if gr := x.Group(g); gr != nil {
			for _, r := range gr.Rules {
				for _, ref := range r.Groups {
					plan[ref], refd[ref] = true, true
				}
				for _, sr := range r.Scoped {
					plan[sr.Group], refd[sr.Group] = true, true
				}
			}
		}
	}
	return plan, refd
}

// TestLoadViewAfterChange: after a change elsewhere (an interface in no
// group of the host's plan, none of whose parts the view read, gets
// another address), the next root lists every part of the view, and the
// same request reads the same parts and gives the same view: the
// follower's fast path. After a change to a member of a group of the plan,
// the next root does not list every part of the view, and the view
// renders the change.
func TestLoadViewAfterChange(t *testing.T) {
	rs := buildSynth(func() synth.Config { c := synth.Small(); c.ENIs = 2000; return c }())
	opts := ruleset.SplitOptions{TargetBinBytes: 256}
	root, _, parts := mustSplit(t, rs, opts)
	ctx := context.Background()
	unrelated, related := 0, 0
	for i := 0; i < len(rs.Interfaces) && (unrelated < 5 || related < 5); i += 37 {
		host := rs.Interfaces[i]
		req := ruleset.ViewRequest{Addrs: host.Addrs}
		v, err := ruleset.LoadView(ctx, root, req, newStore(parts).fetch)
		if err != nil {
			t.Fatal(err)
		}
		read := map[string]bool{}
		for _, p := range v.Parts {
			read[p.Name] = true
		}
		plan, refd := planGroups(v, req)
		hostRT := func(rs *ruleset.Ruleset) string {
			h, ok := hostByAddrs(rs, req.Addrs, "")
			if !ok {
				t.Fatalf("host %s not found", host.ID)
			}
			return restoreText(t, rs, h)
		}
		// Unrelated: an interface in none of the plan's groups whose
		// parts the view did not read.
		for j := range rs.Interfaces {
			n := &rs.Interfaces[j]
			if slices.ContainsFunc(n.Groups, func(g string) bool { return plan[g] }) {
				continue
			}
			partsOf := []string{partOf(t, root, ruleset.KindInterfaces, n.ID)}
			for _, g := range n.Groups {
				partsOf = append(partsOf, partOf(t, root, ruleset.KindMembers, g))
			}
			extra := netip.MustParseAddr("10.255.255.1")
			partsOf = append(partsOf, partOf(t, root, ruleset.KindAddrs, extra.String()))
			if slices.ContainsFunc(partsOf, func(p string) bool { return read[p] }) {
				continue
			}
			changed := cloneRuleset(rs)
			changed.Serial++
			c := &changed.Interfaces[j]
			c.Addrs = ruleset.SortedAddrs(append(slices.Clone(c.Addrs), extra))
			root2, _, parts2 := mustSplit(t, changed, ruleset.SplitOptions{Previous: root.Bins, TargetBinBytes: 256})
			for _, p := range v.Parts {
				if !root2.Has(p.Name) {
					t.Fatalf("host %s: after a change to %s, the new root does not list %s", host.ID, n.ID, p.Name)
				}
			}
			st := newStore(parts2)
			v2, err := ruleset.LoadView(ctx, root2, req, st.fetch)
			if err != nil {
				t.Fatal(err)
			}
			checkFetched(t, host.ID, v2, st)
			if !slices.Equal(v2.Parts, v.Parts) {
				t.Fatalf("host %s: the view of the new root read other parts", host.ID)
			}
			v2.Ruleset.Header = v.Ruleset.Header
			if !reflect.DeepEqual(v2.Ruleset, v.Ruleset) {
				t.Fatalf("host %s: the view of the new root differs", host.ID)
			}
			if hostRT(changed) != hostRT(rs) {
				t.Fatalf("host %s: an unrelated change changed the plan", host.ID)
			}
			unrelated++
			break
		}
		// Related: a member of a referenced group of the plan gets
		// another address.
		x := ruleset.NewIndex(rs)
		for g := range refd {
			if x.Group(g) == nil || len(x.Members(g)) == 0 {
				continue
			}
			changed := cloneRuleset(rs)
			changed.Serial++
			var member *ruleset.Interface
			for k := range changed.Interfaces {
				if slices.Contains(changed.Interfaces[k].Groups, g) && changed.Interfaces[k].ID != host.ID {
					member = &changed.Interfaces[k]
					break
				}
			}
			if member == nil {
				continue
			}
			member.Addrs = ruleset.SortedAddrs(append(slices.Clone(member.Addrs), netip.MustParseAddr("10.255.255.2")))
			root2, _, parts2 := mustSplit(t, changed, ruleset.SplitOptions{Previous: root.Bins, TargetBinBytes: 256})
			if !slices.ContainsFunc(v.Parts, func(p ruleset.PartRef) bool { return !root2.Has(p.Name) }) {
				t.Fatalf("host %s: after a change to %s in %s, the new root still lists every part of the view", host.ID, member.ID, g)
			}
			v2, err := ruleset.LoadView(ctx, root2, req, newStore(parts2).fetch)
			if err != nil {
				t.Fatal(err)
			}
			h2, _ := hostByAddrs(v2.Ruleset, req.Addrs, "")
			if got, want := restoreText(t, v2.Ruleset, h2), hostRT(changed); got != want {
				t.Fatalf("host %s: after a related change the view renders\n%s\nthe full ruleset\n%s", host.ID, got, want)
			}
			related++
			break
		}
	}
	if unrelated < 3 || related < 3 {
		t.Fatalf("only %d unrelated and %d related changes tried", unrelated, related)
	}
	t.Logf("%d unrelated and %d related changes", unrelated, related)
}

func partOf(t *testing.T, root *ruleset.Root, kind, key string) string {
	t.Helper()
	p, ok := root.Part(kind, key)
	if !ok {
		t.Fatalf("no part for %s %s", kind, key)
	}
	return p.Name
}

// cloneRuleset copies the lists a test changes.
func cloneRuleset(rs *ruleset.Ruleset) *ruleset.Ruleset {
	c := *rs
	c.Interfaces = slices.Clone(rs.Interfaces)
	c.Groups = slices.Clone(rs.Groups)
	return &c
}

// TestLoadViewMembersOfReferencedGroupsOnly: a view reads the member bins
// of the referenced groups that are in the estate and no other, so a
// change to the members of a host's own group that no rule of its plan
// refers to leaves every part of its view in place (the fast path), and
// does not change its plan.
func TestLoadViewMembersOfReferencedGroupsOnly(t *testing.T) {
	rs := buildSynth(func() synth.Config { c := synth.Small(); c.ENIs = 2000; return c }())
	opts := ruleset.SplitOptions{TargetBinBytes: 256}
	root, _, parts := mustSplit(t, rs, opts)
	ctx := context.Background()
	full := ruleset.NewIndex(rs)
	ownOnly := 0
	for i := 0; i < len(rs.Interfaces); i += 23 {
		host := rs.Interfaces[i]
		req := ruleset.ViewRequest{Addrs: host.Addrs}
		v, err := ruleset.LoadView(ctx, root, req, newStore(parts).fetch)
		if err != nil {
			t.Fatal(err)
		}
		_, refd := planGroups(v, req)
		want := map[string]bool{}
		for g := range refd {
			if full.Group(g) != nil {
				want[partOf(t, root, ruleset.KindMembers, g)] = true
			}
		}
		got := map[string]bool{}
		for _, p := range v.Parts {
			if p.Kind == ruleset.KindMembers {
				got[p.Name] = true
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("host %s: the view read the member parts %v, want those of the referenced groups %v", host.ID, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
		// A member of one of the host's own groups that no rule refers
		// to, whose members' bin the view did not read, gets an address.
		for _, g := range host.Groups {
			if refd[g] || got[partOf(t, root, ruleset.KindMembers, g)] {
				continue
			}
			changed := cloneRuleset(rs)
			changed.Serial++
			var member *ruleset.Interface
			for k := range changed.Interfaces {
				n := &changed.Interfaces[k]
				if n.ID != host.ID && slices.Contains(n.Groups, g) &&
					!slices.ContainsFunc(n.Groups, func(g string) bool { return refd[g] || got[partOf(t, root, ruleset.KindMembers, g)] }) &&
					!slices.ContainsFunc(v.Parts, func(p ruleset.PartRef) bool { p2, _ := root.Part(ruleset.KindInterfaces, n.ID); return p == p2 }) {
					member = n
					break
				}
			}
			if member == nil {
				continue
			}
			extra := netip.MustParseAddr("10.255.255.3")
			if p, _ := root.Part(ruleset.KindAddrs, extra.String()); slices.Contains(v.Parts, p) {
				continue
			}
			member.Addrs = ruleset.SortedAddrs(append(slices.Clone(member.Addrs), extra))
			root2, _, _ := mustSplit(t, changed, ruleset.SplitOptions{Previous: root.Bins, TargetBinBytes: 256})
			for _, p := range v.Parts {
				if !root2.Has(p.Name) {
					t.Fatalf("host %s: after a change to %s, a member of its own group %s, the new root does not list %s", host.ID, member.ID, g, p.Name)
				}
			}
			h1, _ := hostByAddrs(rs, req.Addrs, "")
			h2, _ := hostByAddrs(changed, req.Addrs, "")
			if restoreText(t, rs, h1) != restoreText(t, changed, h2) {
				t.Fatalf("host %s: a change to the members of its own group %s changed its plan", host.ID, g)
			}
			ownOnly++
			break
		}
	}
	if ownOnly < 3 {
		t.Fatalf("only %d changes to the members of a host's own group tried", ownOnly)
	}
	t.Logf("%d changes to the members of a host's own group", ownOnly)
}
