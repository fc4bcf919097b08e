package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
)

// defaultChurn is the fraction of the estate's interfaces that a churn
// publish adds and removes when -churn is not given: autoscaling replaces
// about that many between two leader runs of a large estate.
const defaultChurn = 0.01

// churnSpec is how many interfaces a churn publish adds, and how many it
// removes: a count, or a fraction of the estate's interfaces (at least
// one). It is a flag.Value: "1%", "0.5%" or "500".
type churnSpec struct {
	N        int     // a count, if > 0
	Fraction float64 // otherwise this fraction; 0 is defaultChurn
}

// String implements flag.Value.
func (c *churnSpec) String() string {
	if c.N > 0 {
		return strconv.Itoa(c.N)
	}
	f := c.Fraction
	if f == 0 {
		f = defaultChurn
	}
	return strconv.FormatFloat(100*f, 'g', -1, 64) + "%"
}

// Set implements flag.Value.
func (c *churnSpec) Set(s string) error {
	if p, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f <= 0 || f > 50 || math.IsNaN(f) {
			return fmt.Errorf("%q: want a percentage in (0, 50], such as 1%%", s)
		}
		*c = churnSpec{Fraction: f / 100}
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 {
		return fmt.Errorf("%q: want a count of interfaces (at least 1) or a percentage such as 1%%", s)
	}
	*c = churnSpec{N: n}
	return nil
}

// count is the number of interfaces added and removed in an estate of
// enis interfaces.
func (c churnSpec) count(enis int) int {
	if c.N > 0 {
		return c.N
	}
	f := c.Fraction
	if f == 0 {
		f = defaultChurn
	}
	return max(1, int(math.Round(f*float64(enis))))
}

// seedFor is a PCG seed for one host kind and one scenario, from the run's
// seed: each scenario draws the same changes whatever else was measured.
func seedFor(seed uint64, kind, scenario string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(kind + "\x00" + scenario))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// involvedGroups returns the groups a host's plan involves: the groups of
// the interfaces that hold one of its addresses (or its explicit groups),
// and every group the rules of those groups refer to. A change in the
// membership of any other group cannot change the host's plan.
func involvedGroups(rs *ruleset.Ruleset, id reyes.IdentityOptions) map[string]bool {
	own := map[netip.Addr]bool{}
	for _, a := range id.Addrs {
		own[a] = true
	}
	mine := map[string]bool{}
	for _, g := range id.Groups {
		mine[g] = true
	}
	for i := range rs.Interfaces {
		n := &rs.Interfaces[i]
		if slices.ContainsFunc(n.Addrs, func(a netip.Addr) bool { return own[a] }) {
			for _, g := range n.Groups {
				mine[g] = true
			}
		}
	}
	out := map[string]bool{}
	for _, g := range rs.Groups {
		if !mine[g.ID] {
			continue
		}
		out[g.ID] = true
		for _, r := range g.Rules {
			for _, ref := range r.Groups {
				out[ref] = true
			}
		}
	}
	for g := range mine { // a group the ruleset does not hold
		out[g] = true
	}
	return out
}

// estate indexes an inventory for adding interfaces to it: the IDs and
// addresses in use, and where each VPC is.
type estate struct {
	ids       map[string]bool
	used      map[netip.Addr]bool
	delegated []netip.Prefix            // every interface's delegated prefixes
	vpcs      map[string][]netip.Prefix // VPC ID: its CIDRs
	region    map[string]int            // VPC ID: index of its region
}

func newEstate(inv *inventory.Inventory) *estate {
	e := &estate{ids: map[string]bool{}, used: map[netip.Addr]bool{}, vpcs: map[string][]netip.Prefix{}, region: map[string]int{}}
	for ri, r := range inv.Regions {
		for _, v := range r.VPCs {
			if _, ok := e.region[v.ID]; !ok {
				e.vpcs[v.ID], e.region[v.ID] = v.CIDRs, ri
			}
		}
		for _, n := range r.NetworkInterfaces {
			e.ids[n.ID] = true
			for _, a := range n.Addresses {
				e.used[a] = true
			}
			e.delegated = append(e.delegated, n.Prefixes...)
		}
	}
	return e
}

// hex returns n random lowercase hexadecimal digits.
func hex(rng *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[rng.IntN(16)]
	}
	return string(b)
}

// free returns a random address of p that no interface holds, none of the
// first four nor the last of an IPv4 block (AWS reserves them) and in no
// delegated prefix, and marks it used.
func (e *estate) free(rng *rand.Rand, p netip.Prefix) (netip.Addr, error) {
	p = p.Masked()
	bits := p.Addr().BitLen() - p.Bits()
	for range 1000 {
		var a netip.Addr
		if p.Addr().Is4() {
			if bits < 3 {
				return a, fmt.Errorf("%s is too small", p)
			}
			base := p.Addr().As4()
			v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
			v += 4 + uint32(rng.Uint64N(uint64(1)<<bits-5))
			a = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		} else {
			// A random interface identifier in the block's first /64
			// (a subnet), or anywhere in a longer block.
			b := p.Addr().As16()
			low := max(0, min(64, bits))
			for i := 16 - low/8; i < 16; i++ {
				b[i] = byte(rng.IntN(256))
			}
			a = netip.AddrFrom16(b)
		}
		if e.used[a] || slices.ContainsFunc(e.delegated, func(d netip.Prefix) bool { return d.Contains(a) }) {
			continue
		}
		e.used[a] = true
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("no free address found in %s", p)
}

// like returns a new interface like t (VPC, groups, type, description, and
// as many addresses of each family), with a new random ID, instance and
// MAC and new random free addresses: the replacement an autoscaling group
// launches from the same template.
func (e *estate) like(rng *rand.Rand, t *inventory.NetworkInterface) (inventory.NetworkInterface, error) {
	n := inventory.NetworkInterface{
		VPCID: t.VPCID, OwnerID: t.OwnerID, Description: t.Description, InterfaceType: t.InterfaceType,
		Groups: slices.Clone(t.Groups),
		MAC:    fmt.Sprintf("02:%s:%s:%s:%s:%s", hex(rng, 2), hex(rng, 2), hex(rng, 2), hex(rng, 2), hex(rng, 2)),
	}
	for {
		if n.ID = "eni-" + hex(rng, 17); !e.ids[n.ID] {
			e.ids[n.ID] = true
			break
		}
	}
	if t.InstanceID != "" {
		n.InstanceID = "i-" + hex(rng, 17)
	}
	var v4 netip.Prefix
	for _, c := range e.vpcs[t.VPCID] {
		if c.Addr().Is4() {
			v4 = c
			break
		}
	}
	for _, a := range t.Addresses {
		p := v4
		if a.Is6() {
			// In the template's subnet.
			p = netip.PrefixFrom(a, 64)
		} else if !p.IsValid() {
			return n, fmt.Errorf("VPC %s of %s has no IPv4 block in the inventory", t.VPCID, t.ID)
		}
		x, err := e.free(rng, p)
		if err != nil {
			return n, fmt.Errorf("a new interface in VPC %s: %w", t.VPCID, err)
		}
		n.Addresses = append(n.Addresses, x)
	}
	return n, nil
}

// errNoChurn: every interface of the estate is in a group the host's plan
// involves (a host in every group), so no churn can miss its plan.
var errNoChurn = errors.New("every interface is in a group the plan involves")

// churn returns a copy of inv in which n interfaces are removed and n
// added, at random, in groups the host's plan does not involve: the
// removed ones are drawn among the interfaces none of whose groups is in
// involved and that hold none of the host's own addresses; each added one
// is like one of those drawn at random (the same VPC and groups, as many
// addresses; see estate.like), with new random addresses of its VPC. inv
// itself is not changed. It also says what it did.
func churn(inv *inventory.Inventory, involved map[string]bool, own []netip.Addr, n int, rng *rand.Rand) (*inventory.Inventory, string, error) {
	mine := map[netip.Addr]bool{}
	for _, a := range own {
		mine[a] = true
	}
	type loc struct{ r, i int }
	var free []loc
	for ri, r := range inv.Regions {
		for i := range r.NetworkInterfaces {
			ni := &r.NetworkInterfaces[i]
			if len(ni.Groups) == 0 || slices.ContainsFunc(ni.Groups, func(g string) bool { return involved[g] }) ||
				slices.ContainsFunc(ni.Addresses, func(a netip.Addr) bool { return mine[a] }) {
				continue
			}
			free = append(free, loc{ri, i})
		}
	}
	if len(free) == 0 {
		return nil, "", errNoChurn
	}
	if n > len(free) {
		return nil, "", fmt.Errorf("%d interfaces to remove, but only %d are outside the plan's groups", n, len(free))
	}
	e := newEstate(inv)
	groups := map[string]bool{}
	added := make([][]inventory.NetworkInterface, len(inv.Regions))
	for range n {
		t := free[rng.IntN(len(free))]
		ni, err := e.like(rng, &inv.Regions[t.r].NetworkInterfaces[t.i])
		if err != nil {
			return nil, "", err
		}
		for _, g := range ni.Groups {
			groups[g] = true
		}
		added[t.r] = append(added[t.r], ni)
	}
	// The first n of a partial shuffle are removed.
	removed := make([]map[int]bool, len(inv.Regions))
	for k := range n {
		j := k + rng.IntN(len(free)-k)
		free[k], free[j] = free[j], free[k]
		l := free[k]
		if removed[l.r] == nil {
			removed[l.r] = map[int]bool{}
		}
		removed[l.r][l.i] = true
		for _, g := range inv.Regions[l.r].NetworkInterfaces[l.i].Groups {
			groups[g] = true
		}
	}
	out := &inventory.Inventory{Regions: slices.Clone(inv.Regions)}
	for ri := range out.Regions {
		if removed[ri] == nil && added[ri] == nil {
			continue
		}
		old := inv.Regions[ri].NetworkInterfaces
		nis := make([]inventory.NetworkInterface, 0, len(old)-len(removed[ri])+len(added[ri]))
		for i, ni := range old {
			if !removed[ri][i] {
				nis = append(nis, ni)
			}
		}
		out.Regions[ri].NetworkInterfaces = append(nis, added[ri]...)
	}
	return out, fmt.Sprintf("%s interfaces removed and %s added at random in %s groups the plan does not involve (of the %s groups outside it; %s interfaces to draw from)",
		num(n), num(n), num(len(groups)), num(outside(inv, involved)), num(len(free))), nil
}

// outside counts the groups of inv that involved does not hold.
func outside(inv *inventory.Inventory, involved map[string]bool) int {
	n := 0
	for _, r := range inv.Regions {
		for _, g := range r.SecurityGroups {
			if !involved[g.ID] {
				n++
			}
		}
	}
	return n
}

// addOne returns a copy of inv with one interface added to a group drawn
// at random among those the host's plan does not involve (whatever parts
// that touches), with one new random IPv4 address of the group's VPC.
func addOne(inv *inventory.Inventory, involved map[string]bool, rng *rand.Rand) (*inventory.Inventory, string, error) {
	return addOneIn(inv, func(id string) bool { return !involved[id] }, rng)
}

// addOneIn is addOne into a group drawn among those in (with a VPC).
func addOneIn(inv *inventory.Inventory, in func(id string) bool, rng *rand.Rand) (*inventory.Inventory, string, error) {
	var gs []*inventory.SecurityGroup
	for ri := range inv.Regions {
		for gi := range inv.Regions[ri].SecurityGroups {
			if g := &inv.Regions[ri].SecurityGroups[gi]; in(g.ID) && g.VPCID != "" {
				gs = append(gs, g)
			}
		}
	}
	if len(gs) == 0 {
		return nil, "", errNoChurn
	}
	g := gs[rng.IntN(len(gs))]
	e := newEstate(inv)
	ri, ok := e.region[g.VPCID]
	if !ok {
		return nil, "", fmt.Errorf("group %s: VPC %s is not in the inventory", g.ID, g.VPCID)
	}
	var v4 netip.Addr
	for _, c := range e.vpcs[g.VPCID] {
		if c.Addr().Is4() {
			v4 = c.Addr()
			break
		}
	}
	ni, err := e.like(rng, &inventory.NetworkInterface{
		ID: "template", VPCID: g.VPCID, OwnerID: g.OwnerID, InterfaceType: "interface", InstanceID: "i",
		Description: "Primary network interface", Groups: []string{g.ID}, Addresses: []netip.Addr{v4},
	})
	if err != nil {
		return nil, "", err
	}
	out := &inventory.Inventory{Regions: slices.Clone(inv.Regions)}
	out.Regions[ri].NetworkInterfaces = append(slices.Clip(out.Regions[ri].NetworkInterfaces), ni)
	return out, fmt.Sprintf("%s (%s) added to %s", ni.ID, ni.Addresses[0], g.ID), nil
}
