package ruleset

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reyes-fw/reyes/inventory"
)

// DefaultTTL is how long a ruleset stays valid when BuildOptions.TTL is 0.
const DefaultTTL = time.Hour

// DefaultScope is the scope of a ruleset when BuildOptions.Scope is empty.
const DefaultScope = "default"

// BuildOptions say how Build turns an inventory into a ruleset.
type BuildOptions struct {
	// Scope names the estate (DefaultScope if empty).
	Scope string
	// Serial of the ruleset. Zero means GeneratedAt in Unix nanoseconds,
	// which increases from publish to publish and agrees between hot-spare
	// leaders whose clocks agree.
	Serial uint64
	// GeneratedAt is the time of generation (required; Build reads no
	// clock). It is stored in UTC.
	GeneratedAt time.Time
	// TTL is the validity; NotAfter = GeneratedAt + TTL. Zero means
	// DefaultTTL.
	TTL time.Duration
	// Exclude lists group names or IDs whose rules are not mirrored: the
	// group that lets VPN traffic in wholesale must be one of them. An
	// excluded group keeps its members, so rules of other groups that
	// refer to it still match them. A name matches every group of that
	// name, in every VPC.
	Exclude []string
}

// Build turns an inventory into a canonical, validated ruleset: referenced
// prefix lists are expanded to CIDRs, protocols and ports normalised, rules
// with the same protocol and ports merged, and every list sorted, so that
// the same inventory gives byte-identical encodings whatever its order.
// References to groups that are not in the inventory are kept; they allow
// nothing. Any inconsistency (a missing prefix list, an invalid port, two
// objects with one ID) fails the whole build.
func Build(inv *inventory.Inventory, opts BuildOptions) (*Ruleset, error) {
	if opts.GeneratedAt.IsZero() {
		return nil, fmt.Errorf("building ruleset: GeneratedAt is required")
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("building ruleset: negative TTL %s", opts.TTL)
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	scope := opts.Scope
	if scope == "" {
		scope = DefaultScope
	}
	gen := opts.GeneratedAt.UTC()
	serial := opts.Serial
	if serial == 0 {
		serial = uint64(gen.UnixNano())
	}
	excluded := make(map[string]bool, len(opts.Exclude))
	for _, e := range opts.Exclude {
		excluded[e] = true
	}
	rs := &Ruleset{Header: Header{
		Format: Format, Type: Type, Scope: scope, Serial: serial,
		GeneratedAt: gen, NotAfter: gen.Add(ttl),
	}}
	e, err := mergeEstate(inv)
	if err != nil {
		return nil, fmt.Errorf("building ruleset: %w", err)
	}
	for _, id := range sortedKeys(e.vpcs) {
		v := e.vpcs[id]
		rs.VPCs = append(rs.VPCs, VPC{ID: v.v.ID, Region: v.region, Owner: v.v.OwnerID, CIDRs: append([]netip.Prefix(nil), v.v.CIDRs...)})
	}
	for _, id := range sortedKeys(e.groups) {
		mg := e.groups[id]
		sg := mg.g
		g := Group{
			ID: sg.ID, Name: strings.ToValidUTF8(sg.Name, "\uFFFD"), Region: mg.region,
			VPC: sg.VPCID, Owner: sg.OwnerID, Rules: []Rule{},
		}
		if len(g.Name) > maxNameLen {
			g.Name = strings.ToValidUTF8(g.Name[:maxNameLen], "")
		}
		if excluded[sg.ID] || excluded[sg.Name] {
			g.Excluded = true
		} else {
			res := e.resolver(mg, &rs.Findings)
			for i, p := range sg.Ingress {
				r, err := buildRule(p, mg.pls, res)
				if err != nil {
					return nil, fmt.Errorf("building ruleset: %s: group %s: IpPermissions[%d]: %w", mg.region, sg.ID, i, err)
				}
				g.Rules = append(g.Rules, r)
			}
		}
		rs.Groups = append(rs.Groups, g)
	}
	for _, id := range sortedKeys(e.enis) {
		m := e.enis[id]
		n := m.n
		rs.Interfaces = append(rs.Interfaces, Interface{
			ID: n.ID, Region: m.region, VPC: n.VPCID,
			Addrs:    append([]netip.Addr(nil), n.Addresses...),
			Prefixes: append([]netip.Prefix(nil), n.Prefixes...),
			Groups:   append([]string(nil), n.Groups...),
		})
	}
	rs.Canonicalize()
	if err := rs.Validate(); err != nil {
		return nil, fmt.Errorf("building ruleset: %w", err)
	}
	return rs, nil
}

// ParseProtocol turns AWS' IpProtocol ("tcp", "udp", "icmp", "icmpv6", "-1",
// "all" or a number 0..255) into a protocol number, ProtoAll for all.
func ParseProtocol(s string) (int, error) {
	switch strings.ToLower(s) {
	case "-1", "all":
		return ProtoAll, nil
	case "tcp":
		return ProtoTCP, nil
	case "udp":
		return ProtoUDP, nil
	case "icmp":
		return ProtoICMP, nil
	case "icmpv6", "ipv6-icmp":
		return ProtoICMPv6, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 || strconv.Itoa(n) != s {
		return 0, fmt.Errorf("IpProtocol %q is not a protocol", s)
	}
	return n, nil
}

func buildRule(p inventory.Permission, pls map[string][]netip.Prefix, res *resolver) (Rule, error) {
	proto, err := ParseProtocol(p.Protocol)
	if err != nil {
		return Rule{}, err
	}
	r := Rule{Protocol: proto, FromPort: -1, ToPort: -1}
	port := func(v *int32) int {
		if v == nil {
			return -1
		}
		return int(*v)
	}
	from, to := port(p.FromPort), port(p.ToPort)
	switch proto {
	case ProtoTCP, ProtoUDP:
		if from == -1 && to == -1 {
			from, to = 0, 65535
		}
		if from < 0 || from > 65535 || to < 0 || to > 65535 || from > to {
			return Rule{}, fmt.Errorf("port range %d-%d is not valid for %s", from, to, p.Protocol)
		}
		r.FromPort, r.ToPort = from, to
	case ProtoICMP, ProtoICMPv6:
		if from < -1 || from > 255 || to < -1 || to > 255 {
			return Rule{}, fmt.Errorf("ICMP type/code %d/%d is not valid", from, to)
		}
		if from == -1 {
			to = -1
		}
		r.FromPort, r.ToPort = from, to
	}
	want := 0 // the only family an ICMP rule can match
	switch proto {
	case ProtoICMP:
		want = 4
	case ProtoICMPv6:
		want = 6
	}
	add := func(c netip.Prefix) {
		if want == 4 && !c.Addr().Is4() || want == 6 && !c.Addr().Is6() {
			return // ICMPv4 never comes from an IPv6 source, nor the reverse
		}
		r.CIDRs = append(r.CIDRs, c)
	}
	for _, c := range p.CIDRs {
		add(c)
	}
	for _, id := range p.PrefixListIDs {
		entries, ok := pls[id]
		if !ok {
			return Rule{}, fmt.Errorf("prefix list %s is not in the inventory", id)
		}
		for _, c := range entries {
			add(c)
		}
	}
	for _, g := range p.Groups {
		res.resolve(&r, g)
	}
	return r, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Index answers membership questions about a ruleset quickly. Build one
// with NewIndex; it is read-only and safe for concurrent use. Members are
// computed on demand, so indexing a large ruleset for one host costs little.
type Index struct {
	rs      *Ruleset
	groups  map[string]*Group
	byGroup map[string][]int32 // group ID -> indexes into rs.Interfaces
	vpcs    map[string]*VPC

	addrOnce sync.Once
	byAddr   map[netip.Addr][]*Interface
}

// NewIndex indexes a ruleset. The ruleset must not change afterwards.
func NewIndex(rs *Ruleset) *Index {
	x := &Index{
		rs:      rs,
		groups:  make(map[string]*Group, len(rs.Groups)),
		byGroup: make(map[string][]int32, len(rs.Groups)),
		vpcs:    make(map[string]*VPC, len(rs.VPCs)),
	}
	for i := range rs.Groups {
		x.groups[rs.Groups[i].ID] = &rs.Groups[i]
	}
	for i := range rs.VPCs {
		x.vpcs[rs.VPCs[i].ID] = &rs.VPCs[i]
	}
	for i := range rs.Interfaces {
		for _, g := range rs.Interfaces[i].Groups {
			x.byGroup[g] = append(x.byGroup[g], int32(i))
		}
	}
	return x
}

// Group returns the group with the given ID, or nil.
func (x *Index) Group(id string) *Group { return x.groups[id] }

// VPC returns the VPC with the given ID, or nil.
func (x *Index) VPC(id string) *VPC { return x.vpcs[id] }

// Members returns the sorted, distinct member addresses of a group: every
// address of every interface in it. The slice is the caller's.
func (x *Index) Members(groupID string) []netip.Addr {
	var out []netip.Addr
	for _, i := range x.byGroup[groupID] {
		out = append(out, x.rs.Interfaces[i].Addrs...)
	}
	return sortedAddrs(out)
}

// MemberPrefixes returns the sorted, distinct delegated prefixes of the
// interfaces in a group (IPv4 /28, IPv6 /80): every address in them is a
// member too. The slice is the caller's.
func (x *Index) MemberPrefixes(groupID string) []netip.Prefix {
	var out []netip.Prefix
	for _, i := range x.byGroup[groupID] {
		out = append(out, x.rs.Interfaces[i].Prefixes...)
	}
	sortPrefixes(&out)
	return out
}

// Interface returns the interface with the given ID, or nil.
func (x *Index) Interface(id string) *Interface {
	i, ok := slices.BinarySearchFunc(x.rs.Interfaces, id, func(n Interface, id string) int { return strings.Compare(n.ID, id) })
	if !ok {
		return nil
	}
	return &x.rs.Interfaces[i]
}

// MembersIn returns the sorted, distinct member addresses and delegated
// prefixes of a group whose interfaces are in one of vpcs: the sources of
// a ScopedRef.
func (x *Index) MembersIn(groupID string, vpcs []string) ([]netip.Addr, []netip.Prefix) {
	var addrs []netip.Addr
	var nets []netip.Prefix
	for _, i := range x.byGroup[groupID] {
		n := &x.rs.Interfaces[i]
		if slices.Contains(vpcs, n.VPC) {
			addrs = append(addrs, n.Addrs...)
			nets = append(nets, n.Prefixes...)
		}
	}
	sortPrefixes(&nets)
	return sortedAddrs(addrs), nets
}

// InterfacesByAddr returns the interfaces that have address a (more than
// one only when VPCs overlap).
func (x *Index) InterfacesByAddr(a netip.Addr) []*Interface {
	x.addrOnce.Do(func() {
		x.byAddr = make(map[netip.Addr][]*Interface, len(x.rs.Interfaces))
		for i := range x.rs.Interfaces {
			n := &x.rs.Interfaces[i]
			for _, a := range n.Addrs {
				x.byAddr[a] = append(x.byAddr[a], n)
			}
		}
	})
	return x.byAddr[a.Unmap()]
}
