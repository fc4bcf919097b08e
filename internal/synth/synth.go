package synth

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/reyes-fw/reyes/inventory"
)

// Config describes the estate to generate. All counts are totals over the
// estate unless the name says otherwise.
type Config struct {
	// Seed selects the estate: the same Config always gives the same one.
	Seed int64
	// Regions is the number of regions (1 to 16), named like real ones.
	Regions int
	// VPCsPerRegion is the number of VPCs in each region. Regions ×
	// VPCsPerRegion may not exceed 256: VPC number v has 10.v.0.0/16.
	VPCsPerRegion int
	// Groups is the number of security groups, including one "default"
	// group per VPC; at least Regions × VPCsPerRegion.
	Groups int
	// ENIs is the number of network interfaces.
	ENIs int
	// AddrsPerENI is the average number of addresses (IPv4 and IPv6) of an
	// interface, at least 1: the estate has round(ENIs × AddrsPerENI)
	// addresses. Every interface has a primary IPv4 address; the others are
	// IPv6 addresses and secondary IPv4 addresses, many of them on a few
	// busy interfaces (container hosts).
	AddrsPerENI float64
	// RulesPerGroup is the average number of ingress rules (IpPermissions)
	// of a group: the estate has round(Groups × RulesPerGroup) rules, one
	// per default group (all traffic from the group itself) and the rest
	// spread over the other groups.
	RulesPerGroup float64
	// IPv6 is the fraction (0 to 1) of VPCs that have an IPv6 block; about
	// half of the interfaces in those VPCs get an IPv6 address.
	IPv6 float64
	// PrefixLists is the number of managed prefix lists per region that
	// rules may refer to; only the ones referred to are in the inventory.
	PrefixLists int
	// StaleRefs is the number of rules whose source is a group that does
	// not exist (deleted since), which must allow nothing.
	StaleRefs int
	// OwnerID is the account of everything; "123456789012" if empty.
	OwnerID string
	// Prefixes is the fraction (0 to 1) of interfaces that have delegated
	// prefixes (EKS prefix delegation): a /28 from the upper half of their
	// VPC's block, and a /80 in a VPC with IPv6. Zero leaves the estates of
	// every seed as they were.
	Prefixes float64
}

// Small is a preset of 500 interfaces (2 regions, 4 VPCs, 50 groups,
// 1,000 addresses, 200 rules).
func Small() Config {
	return Config{Seed: 1, Regions: 2, VPCsPerRegion: 2, Groups: 50, ENIs: 500, AddrsPerENI: 2, RulesPerGroup: 4, IPv6: 0.5, PrefixLists: 2}
}

// Medium is a preset of 5,000 interfaces (3 regions, 12 VPCs, 500 groups,
// 10,000 addresses, 2,000 rules).
func Medium() Config {
	return Config{Seed: 1, Regions: 3, VPCsPerRegion: 4, Groups: 500, ENIs: 5_000, AddrsPerENI: 2, RulesPerGroup: 4, IPv6: 0.5, PrefixLists: 3}
}

// Large is the preset of the performance targets: 50,000 interfaces
// (4 regions, 20 VPCs, 5,000 groups, 100,000 addresses, 20,000 rules).
func Large() Config {
	return Config{Seed: 1, Regions: 4, VPCsPerRegion: 5, Groups: 5_000, ENIs: 50_000, AddrsPerENI: 2, RulesPerGroup: 4, IPv6: 0.5, PrefixLists: 4}
}

// regionNames are the regions of a synthetic estate, in this order.
var regionNames = [...]string{
	"us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2",
	"eu-central-1", "ap-northeast-1", "sa-east-1", "ca-central-1",
	"eu-north-1", "ap-south-1", "us-east-2", "eu-west-2",
	"ap-northeast-2", "eu-west-3", "us-west-1", "af-south-1",
}

// Limits of a Config.
const (
	maxVPCs         = 256
	maxAddrsPerVPC  = 60_000 // IPv4 addresses of one 10.v.0.0/16
	maxAddrsPerENI  = 50     // AWS' largest instance types
	maxPrefixLists  = 1_000
	defaultOwnerID  = "123456789012"
	addrsPerBusyENI = 30
)

// Validate reports what is wrong with c, if anything.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	nVPC := c.Regions * c.VPCsPerRegion
	switch {
	case c.Regions < 1 || c.Regions > len(regionNames):
		bad("Regions is %d, want 1..%d", c.Regions, len(regionNames))
	case c.VPCsPerRegion < 1 || nVPC > maxVPCs:
		bad("VPCsPerRegion is %d, want at least 1 and at most %d VPCs in all", c.VPCsPerRegion, maxVPCs)
	case c.Groups < nVPC:
		bad("Groups is %d, want at least one per VPC (%d)", c.Groups, nVPC)
	case c.Groups == nVPC && c.rules() > nVPC:
		bad("%d rules need groups besides the %d default groups", c.rules(), nVPC)
	}
	if c.ENIs < 0 {
		bad("ENIs is %d", c.ENIs)
	}
	if c.ENIs > 0 && (c.AddrsPerENI < 1 || c.AddrsPerENI > maxAddrsPerENI/2 || math.IsNaN(c.AddrsPerENI)) {
		bad("AddrsPerENI is %v, want 1..%d", c.AddrsPerENI, maxAddrsPerENI/2)
	}
	if nVPC > 0 && float64(c.ENIs)*c.AddrsPerENI > float64(nVPC)*maxAddrsPerVPC/2 {
		bad("%d ENIs with %v addresses do not fit in %d VPCs", c.ENIs, c.AddrsPerENI, nVPC)
	}
	if !(c.RulesPerGroup >= 0 && c.RulesPerGroup <= 60) {
		bad("RulesPerGroup is %v, want 0..60", c.RulesPerGroup)
	}
	if !(c.IPv6 >= 0 && c.IPv6 <= 1) {
		bad("IPv6 is %v, want 0..1", c.IPv6)
	}
	if c.PrefixLists < 0 || c.PrefixLists > maxPrefixLists {
		bad("PrefixLists is %d, want 0..%d", c.PrefixLists, maxPrefixLists)
	}
	if c.StaleRefs < 0 || c.StaleRefs > c.rules()-min(nVPC, c.rules()) {
		bad("StaleRefs is %d, want 0..the number of rules of non-default groups", c.StaleRefs)
	}
	if c.OwnerID != "" && !inventory.ValidAccountID(c.OwnerID) {
		bad("OwnerID %q is not 12 digits", c.OwnerID)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid synth.Config: %w", err)
	}
	return nil
}

func (c Config) rules() int     { return int(math.Round(float64(c.Groups) * c.RulesPerGroup)) }
func (c Config) addresses() int { return int(math.Round(float64(c.ENIs) * c.AddrsPerENI)) }

// Counts are the sizes of an inventory.
type Counts struct {
	Regions, VPCs, Groups, ENIs int
	// Addresses counts every address of every interface.
	Addresses int
	// Rules counts IpPermissions; Sources counts their CIDR blocks, group
	// references and prefix lists.
	Rules, Sources int
	// PrefixLists counts prefix lists and Entries their CIDR blocks.
	PrefixLists, Entries int
}

// Count measures an inventory, synthetic or not.
func Count(inv *inventory.Inventory) Counts {
	var c Counts
	c.Regions = len(inv.Regions)
	for _, r := range inv.Regions {
		c.VPCs += len(r.VPCs)
		c.Groups += len(r.SecurityGroups)
		c.ENIs += len(r.NetworkInterfaces)
		for _, g := range r.SecurityGroups {
			c.Rules += len(g.Ingress)
			for _, p := range g.Ingress {
				c.Sources += len(p.CIDRs) + len(p.Groups) + len(p.PrefixListIDs)
			}
		}
		for _, n := range r.NetworkInterfaces {
			c.Addresses += len(n.Addresses)
		}
		c.PrefixLists += len(r.PrefixLists)
		for _, pl := range r.PrefixLists {
			c.Entries += len(pl.Entries)
		}
	}
	return c
}

// Expected returns the counts that Generate(c) has for sure: regions, VPCs,
// groups, ENIs, addresses and rules (not sources or prefix lists, which
// depend on the draw).
func (c Config) Expected() Counts {
	return Counts{
		Regions:   c.Regions,
		VPCs:      c.Regions * c.VPCsPerRegion,
		Groups:    c.Groups,
		ENIs:      c.ENIs,
		Addresses: c.addresses(),
		Rules:     c.rules(),
	}
}

// Generate builds the estate that c describes. It panics if c is invalid
// (see Validate). It is deterministic and safe for concurrent use.
func Generate(c Config) *inventory.Inventory {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	if c.OwnerID == "" {
		c.OwnerID = defaultOwnerID
	}
	g := &gen{
		c:   c,
		rng: rand.New(rand.NewPCG(uint64(c.Seed), 0x5eed_5eed_5eed_5eed)),
		ids: mix(uint64(c.Seed) ^ 0x243f6a8885a308d3),
	}
	return g.run()
}

// gen holds the state of one Generate.
type gen struct {
	c   Config
	rng *rand.Rand
	ids uint64 // base of the ID sequences

	names   []string // region names, sorted
	vpcs    []vpcInfo
	groups  []groupInfo
	regions []inventory.Region
	// plRefs[r][p] says whether prefix list p of region r is referred to.
	plRefs [][]bool
}

type vpcInfo struct {
	id     string
	region int
	index  int // global VPC number: 10.index.0.0/16
	v6     netip.Prefix
	groups []int // indexes in gen.groups, default group first
	next4  int   // next IPv4 host number
	next6  uint64
	// nextPrefix numbers the delegated prefixes of the VPC.
	nextPrefix int
}

type groupInfo struct {
	id  string
	vpc int
}

// ID kinds, each its own sequence; the first hex digit keeps stale group
// IDs apart from real ones.
const (
	kindGroup uint64 = iota + 1
	kindENI
	kindVPC
	kindInstance
	kindPrefixList
	kindStale
	kindTransitGateway
)

// mix is the SplitMix64 finalizer: a bijection on uint64, so distinct
// inputs give distinct IDs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

const hexDigits = "0123456789abcdef"

// id returns prefix and 17 lowercase hex digits, unique for (kind, n).
func (g *gen) id(prefix string, kind uint64, n int) string {
	var b [24]byte
	i := copy(b[:], prefix)
	first := byte(0)
	if kind == kindStale {
		first = 0xf
	}
	b[i] = hexDigits[first]
	i++
	v := mix(g.ids + kind*0x9e3779b97f4a7c15 + uint64(n))
	for s := 60; s >= 0; s -= 4 {
		b[i] = hexDigits[(v>>uint(s))&0xf]
		i++
	}
	return string(b[:i])
}

func (g *gen) run() *inventory.Inventory {
	c := g.c
	g.names = append([]string(nil), regionNames[:c.Regions]...)
	slices.Sort(g.names)
	g.regions = make([]inventory.Region, c.Regions)
	g.plRefs = make([][]bool, c.Regions)
	for r := range g.regions {
		g.regions[r].Name = g.names[r]
		g.plRefs[r] = make([]bool, c.PrefixLists)
	}
	g.makeVPCs()
	g.makeGroups()
	g.makeRules()
	g.makeENIs()
	g.makePrefixLists()
	g.makeTransitGateways()
	return &inventory.Inventory{Regions: g.regions}
}

// makeTransitGateways gives each region one transit gateway with security
// group referencing enabled, every VPC of the region attached: the
// references to groups of other VPCs of the region (srcOtherVPC) are then
// honoured, as AWS honours them over such a gateway.
func (g *gen) makeTransitGateways() {
	for r := range g.regions {
		reg := &g.regions[r]
		tgw := g.id("tgw-", kindTransitGateway, r)
		reg.TransitGateways = []inventory.TransitGateway{{ID: tgw, OwnerID: g.c.OwnerID, State: "available", SecurityGroupReferencing: true}}
		for _, v := range reg.VPCs {
			reg.TransitGatewayAttachments = append(reg.TransitGatewayAttachments, inventory.TransitGatewayVPCAttachment{
				ID: "tgw-attach-" + strings.TrimPrefix(v.ID, "vpc-"), TransitGatewayID: tgw, VPCID: v.ID, VPCOwnerID: g.c.OwnerID,
				State: "available", SecurityGroupReferencing: true,
			})
		}
		reg.TransitGatewaysKnown, reg.AssociationsKnown = true, true
	}
}

func (g *gen) makeVPCs() {
	c := g.c
	n := c.Regions * c.VPCsPerRegion
	n6 := int(math.Round(float64(n) * c.IPv6))
	g.vpcs = make([]vpcInfo, n)
	for v := range g.vpcs {
		r := v / c.VPCsPerRegion
		info := vpcInfo{id: g.id("vpc-", kindVPC, v), region: r, index: v, next4: 10}
		cidrs := []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(v), 0, 0}), 16)}
		// Spread the IPv6 VPCs evenly: VPC v has IPv6 when the running
		// share crosses an integer.
		if (v+1)*n6/n > v*n6/n {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x26, 0x00, 0x1f, 0x18
			a[5], a[6] = byte(v>>8), byte(v)
			info.v6 = netip.PrefixFrom(netip.AddrFrom16(a), 56)
			cidrs = append(cidrs, info.v6)
		}
		g.vpcs[v] = info
		g.regions[r].VPCs = append(g.regions[r].VPCs, inventory.VPC{ID: info.id, OwnerID: c.OwnerID, CIDRs: cidrs})
	}
}

// Names of the roles that groups play, for their names.
var roles = [...]string{"web", "api", "db", "cache", "queue", "worker", "bastion", "lb", "search", "metrics", "vpn", "batch"}

func (g *gen) makeGroups() {
	c := g.c
	nVPC := len(g.vpcs)
	g.groups = make([]groupInfo, c.Groups)
	for i := range g.groups {
		v := i % nVPC
		vpc := &g.vpcs[v]
		gi := groupInfo{id: g.id("sg-", kindGroup, i), vpc: v}
		g.groups[i] = gi
		vpc.groups = append(vpc.groups, i)
		sg := inventory.SecurityGroup{ID: gi.id, OwnerID: c.OwnerID, VPCID: vpc.id}
		if i < nVPC {
			sg.Name, sg.Description = "default", "default VPC security group"
		} else {
			role := roles[(i/nVPC)%len(roles)]
			sg.Name = role + "-" + strconv.Itoa(i)
			sg.Description = role + " servers"
		}
		g.regions[vpc.region].SecurityGroups = append(g.regions[vpc.region].SecurityGroups, sg)
	}
}

// group returns the SecurityGroup of group i in its region's list.
func (g *gen) group(i int) *inventory.SecurityGroup {
	gi := g.groups[i]
	r := g.vpcs[gi.vpc].region
	// Groups are appended region by region in index order; find it by
	// position: group i is the k-th group of its region where k counts the
	// groups before i in the same region.
	return &g.regions[r].SecurityGroups[g.posInRegion(i)]
}

func (g *gen) posInRegion(i int) int {
	// Group i's VPC is i % nVPC; the VPCs of region r are
	// r*VPCsPerRegion .. (r+1)*VPCsPerRegion-1. Among the groups j < i, those
	// in region r are those with j % nVPC in that range.
	nVPC := len(g.vpcs)
	per := g.c.VPCsPerRegion
	v := i % nVPC
	r := v / per
	full := i / nVPC // complete rounds before i's round
	return full*per + (v - r*per)
}

func (g *gen) makeRules() {
	c := g.c
	nVPC := len(g.vpcs)
	total := c.rules()
	nDefault := min(nVPC, total)
	others := c.Groups - nVPC
	stale := 0
	for k := range total {
		if k < nDefault {
			// AWS' default group: all traffic from the group itself.
			sg := g.group(k)
			sg.Ingress = append(sg.Ingress, inventory.Permission{
				Protocol: "-1",
				Groups:   []inventory.GroupRef{{GroupID: sg.ID, UserID: c.OwnerID}},
			})
			continue
		}
		if others == 0 {
			break
		}
		gi := nVPC + g.rng.IntN(others)
		sg := g.group(gi)
		p := g.permission(gi)
		// Stale references are spread evenly over the rules.
		if stale < c.StaleRefs && (k-nDefault)*c.StaleRefs/(total-nDefault) >= stale {
			p.CIDRs, p.PrefixListIDs = nil, nil
			p.Groups = []inventory.GroupRef{{GroupID: g.id("sg-", kindStale, stale), UserID: c.OwnerID}}
			stale++
		}
		sg.Ingress = append(sg.Ingress, p)
	}
}

func p32(n int32) *int32 { return &n }

var (
	tcpPorts   = [...]int32{22, 80, 443, 3306, 5432, 6379, 8080, 8443, 9090, 9200, 27017, 2049, 3389, 5439, 11211, 9092, 2181, 53}
	tcpRanges  = [...][2]int32{{8000, 8999}, {30000, 32767}, {1024, 65535}, {9000, 9100}, {6000, 6010}}
	udpPorts   = [...]int32{53, 123, 161, 500, 4500, 514, 51820, 1194}
	udpRanges  = [...][2]int32{{60000, 61000}, {33434, 33534}, {10000, 20000}}
	protoNums  = [...]string{"50", "47", "4"}
	icmpForms  = [...][2]int32{{8, -1}, {-1, -1}, {3, 4}, {0, -1}, {11, 0}}
	icmp6Forms = [...][2]int32{{-1, -1}, {128, -1}, {1, 4}}
)

// pick returns an index in [0, len(weights)) with the given weights.
func (g *gen) pick(weights []int) int {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	n := g.rng.IntN(sum)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

// Protocol forms of a rule, and their weights.
const (
	formTCPPort = iota
	formTCPRange
	formTCPAll
	formUDPPort
	formUDPRange
	formICMP
	formICMPv6
	formAll
	formNumber
)

var formWeights = []int{50, 8, 4, 8, 3, 7, 2, 8, 2}

// Source kinds of a rule, and their weights.
const (
	srcGroup = iota
	srcSelf
	srcOtherVPC
	srcCIDR4
	srcCIDR6
	srcPrefixList
)

var srcWeights = []int{40, 10, 10, 25, 5, 5}

func (g *gen) permission(gi int) inventory.Permission {
	var p inventory.Permission
	form := g.pick(formWeights)
	switch form {
	case formTCPPort:
		port := tcpPorts[g.rng.IntN(len(tcpPorts))]
		p.Protocol, p.FromPort, p.ToPort = "tcp", p32(port), p32(port)
	case formTCPRange:
		r := tcpRanges[g.rng.IntN(len(tcpRanges))]
		p.Protocol, p.FromPort, p.ToPort = "tcp", p32(r[0]), p32(r[1])
	case formTCPAll:
		p.Protocol, p.FromPort, p.ToPort = "tcp", p32(0), p32(65535)
	case formUDPPort:
		port := udpPorts[g.rng.IntN(len(udpPorts))]
		p.Protocol, p.FromPort, p.ToPort = "udp", p32(port), p32(port)
	case formUDPRange:
		r := udpRanges[g.rng.IntN(len(udpRanges))]
		p.Protocol, p.FromPort, p.ToPort = "udp", p32(r[0]), p32(r[1])
	case formICMP:
		f := icmpForms[g.rng.IntN(len(icmpForms))]
		p.Protocol, p.FromPort, p.ToPort = "icmp", p32(f[0]), p32(f[1])
	case formICMPv6:
		f := icmp6Forms[g.rng.IntN(len(icmp6Forms))]
		p.Protocol, p.FromPort, p.ToPort = "icmpv6", p32(f[0]), p32(f[1])
	case formAll:
		p.Protocol = "-1"
	case formNumber:
		p.Protocol = protoNums[g.rng.IntN(len(protoNums))]
	}
	n := 1
	if g.rng.IntN(10) == 0 {
		n = 2 + g.rng.IntN(2)
	}
	var v6 []netip.Prefix
	for range n {
		kind := g.pick(srcWeights)
		// ICMP sources of the other family would be rejected by AWS.
		if form == formICMP && kind == srcCIDR6 {
			kind = srcCIDR4
		}
		if form == formICMPv6 && kind == srcCIDR4 {
			kind = srcCIDR6
		}
		if kind == srcPrefixList && g.c.PrefixLists == 0 {
			kind = srcCIDR4
		}
		switch kind {
		case srcGroup, srcSelf, srcOtherVPC:
			ref := g.groupRef(gi, kind)
			if !slices.Contains(p.Groups, ref) {
				p.Groups = append(p.Groups, ref)
			}
		case srcCIDR4:
			if c := g.cidr4(); !slices.Contains(p.CIDRs, c) {
				p.CIDRs = append(p.CIDRs, c)
			}
		case srcCIDR6:
			if c := g.cidr6(); !slices.Contains(v6, c) {
				v6 = append(v6, c)
			}
		case srcPrefixList:
			r := g.vpcs[g.groups[gi].vpc].region
			pl := g.rng.IntN(g.c.PrefixLists)
			g.plRefs[r][pl] = true
			if id := g.prefixListID(r, pl); !slices.Contains(p.PrefixListIDs, id) {
				p.PrefixListIDs = append(p.PrefixListIDs, id)
			}
		}
	}
	p.CIDRs = append(p.CIDRs, v6...) // IPv4 first, as ReadDir returns them
	return p
}

func (g *gen) groupRef(gi, kind int) inventory.GroupRef {
	own := g.groups[gi].vpc
	vpc := &g.vpcs[own]
	ref := inventory.GroupRef{UserID: g.c.OwnerID}
	switch {
	case kind == srcSelf:
		ref.GroupID = g.groups[gi].id
	case kind == srcOtherVPC && g.c.VPCsPerRegion > 1:
		// Another VPC of the same region (peered or behind a transit
		// gateway); AWS then also gives the VPC.
		first := vpc.region * g.c.VPCsPerRegion
		other := first + (own-first+1+g.rng.IntN(g.c.VPCsPerRegion-1))%g.c.VPCsPerRegion
		ref.GroupID = g.groups[g.popular(g.vpcs[other].groups)].id
		ref.VPCID = g.vpcs[other].id
	default:
		ref.GroupID = g.groups[g.popular(vpc.groups)].id
	}
	return ref
}

// popular picks one of groups, favouring the first ones (after the default
// group, which it picks rarely), so that some groups are large and most
// are small.
func (g *gen) popular(groups []int) int {
	if len(groups) == 1 || g.rng.IntN(20) == 0 {
		return groups[0]
	}
	u := g.rng.Float64()
	return groups[1+int(u*u*float64(len(groups)-1))]
}

func (g *gen) cidr4() netip.Prefix {
	nVPC := len(g.vpcs)
	switch g.rng.IntN(8) {
	case 0:
		return netip.MustParsePrefix("0.0.0.0/0")
	case 1:
		return [...]netip.Prefix{
			netip.MustParsePrefix("192.168.0.0/16"),
			netip.MustParsePrefix("172.16.0.0/12"),
			netip.MustParsePrefix("203.0.113.0/24"),
			netip.MustParsePrefix("10.0.0.0/8"),
		}[g.rng.IntN(4)]
	case 2, 3:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(g.rng.IntN(nVPC)), 0, 0}), 16)
	case 4, 5:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(g.rng.IntN(nVPC)), byte(g.rng.IntN(256)), 0}), 24)
	default:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(g.rng.IntN(nVPC)), byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))}), 32)
	}
}

func (g *gen) cidr6() netip.Prefix {
	var with6 []int
	for v := range g.vpcs {
		if g.vpcs[v].v6.IsValid() {
			with6 = append(with6, v)
		}
	}
	if len(with6) == 0 || g.rng.IntN(4) == 0 {
		return netip.MustParsePrefix("::/0")
	}
	base := g.vpcs[with6[g.rng.IntN(len(with6))]].v6
	if g.rng.IntN(2) == 0 {
		return base
	}
	a := base.Addr().As16()
	a[7] = byte(g.rng.IntN(256))
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

func (g *gen) prefixListID(region, pl int) string {
	return g.id("pl-", kindPrefixList, region*maxPrefixLists+pl)
}

func (g *gen) makePrefixLists() {
	for r := range g.regions {
		var lists []inventory.PrefixList
		for p, used := range g.plRefs[r] {
			if !used {
				continue
			}
			pl := inventory.PrefixList{ID: g.prefixListID(r, p)}
			n := 1 + g.rng.IntN(10)
			for e := range n {
				pl.Entries = append(pl.Entries, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(16 + p%16), byte(e), 0}), 24))
			}
			if p%3 == 2 {
				var a [16]byte
				a[0], a[1], a[2], a[3], a[5] = 0x20, 0x01, 0x0d, 0xb8, byte(p)
				pl.Entries = append(pl.Entries, netip.PrefixFrom(netip.AddrFrom16(a), 48))
			}
			lists = append(lists, pl)
		}
		slices.SortFunc(lists, func(a, b inventory.PrefixList) int {
			switch {
			case a.ID < b.ID:
				return -1
			case a.ID > b.ID:
				return 1
			}
			return 0
		})
		g.regions[r].PrefixLists = lists
	}
}

// Interfaces without an instance: what creates them, and their type.
var serviceENIs = [...]struct{ description, typ string }{
	{"ELB app/web/50dc6c495c0c9188", "interface"},
	{"RDSNetworkInterface", "interface"},
	{"AWS Lambda VPC ENI-worker-8d7c2a1b", "lambda"},
	{"Interface for NAT Gateway nat-0a1b2c3d4e5f60718", "nat_gateway"},
	{"ELB net/ingress/7e2f1c0a9b8d6e5f", "network_load_balancer"},
	{"VPC Endpoint Interface vpce-0123456789abcdef0", "vpc_endpoint"},
}

func (g *gen) makeENIs() {
	c := g.c
	if c.ENIs == 0 {
		return
	}
	nVPC := len(g.vpcs)
	vpcOf := make([]int, c.ENIs)
	v4 := make([]int, c.ENIs) // IPv4 addresses per ENI
	v6 := make([]int, c.ENIs) // IPv6 addresses per ENI
	for i := range vpcOf {
		vpcOf[i] = g.rng.IntN(nVPC)
		v4[i] = 1
	}
	extra := c.addresses() - c.ENIs
	// About half of the interfaces of IPv6 VPCs get an IPv6 address.
	for i := 0; i < c.ENIs && extra > 0; i++ {
		if g.vpcs[vpcOf[i]].v6.IsValid() && g.rng.IntN(2) == 0 {
			v6[i] = 1
			extra--
		}
	}
	// The rest are secondary IPv4 addresses, most of them on a few busy
	// interfaces (container hosts), the others anywhere.
	busy := max(1, c.ENIs/(2*addrsPerBusyENI))
	for ; extra > 0; extra-- {
		for {
			i := g.rng.IntN(c.ENIs)
			if g.rng.IntN(5) < 3 {
				i = g.rng.IntN(busy) * (c.ENIs / busy)
			}
			if v4[i]+v6[i] < maxAddrsPerENI {
				v4[i]++
				break
			}
		}
	}

	instance := 0
	for i := range c.ENIs {
		vpc := &g.vpcs[vpcOf[i]]
		n := inventory.NetworkInterface{
			ID:            g.id("eni-", kindENI, i),
			VPCID:         vpc.id,
			OwnerID:       c.OwnerID,
			InterfaceType: "interface",
			MAC:           mac(i),
		}
		switch k := g.rng.IntN(100); {
		case k < 80:
			instance++
			n.InstanceID = g.id("i-", kindInstance, instance)
			n.Description = "Primary network interface"
		case k < 85 && instance > 0 && i > 0 && vpcOf[i-1] == vpcOf[i]:
			// A second interface of the previous instance.
			n.InstanceID = g.id("i-", kindInstance, instance)
			n.Description = "secondary interface"
		default:
			s := serviceENIs[g.rng.IntN(len(serviceENIs))]
			n.Description, n.InterfaceType = s.description, s.typ
		}
		n.Addresses = make([]netip.Addr, 0, v4[i]+v6[i])
		for range v4[i] {
			h := vpc.next4
			vpc.next4++
			if h > 0xffff { // Validate leaves ample room; never happens
				panic("synth: VPC " + vpc.id + " has no free IPv4 address")
			}
			n.Addresses = append(n.Addresses, netip.AddrFrom4([4]byte{10, byte(vpc.index), byte(h >> 8), byte(h)}))
		}
		for range v6[i] {
			vpc.next6++
			a := vpc.v6.Addr().As16()
			for b := 0; b < 8; b++ {
				a[15-b] = byte(vpc.next6 >> (8 * b))
			}
			n.Addresses = append(n.Addresses, netip.AddrFrom16(a))
		}
		if c.Prefixes > 0 && i%max(1, int(math.Round(1/c.Prefixes))) == 0 {
			// The upper half of 10.index.0.0/16 holds no address; a /28
			// each, in order.
			k := vpc.nextPrefix
			vpc.nextPrefix++
			n.Prefixes = append(n.Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(vpc.index), byte(0x80 + k>>4), byte(k << 4)}), 28))
			if vpc.v6.IsValid() {
				a := vpc.v6.Addr().As16()
				a[7], a[8], a[9] = 0x80, byte(k>>8), byte(k)
				n.Prefixes = append(n.Prefixes, netip.PrefixFrom(netip.AddrFrom16(a), 80))
			}
			n.InterfaceType = "trunk"
		}
		// One to five groups of the interface's VPC.
		k := 1 + g.pick([]int{50, 30, 12, 5, 3})
		k = min(k, len(vpc.groups))
		n.Groups = make([]string, 0, k)
		for len(n.Groups) < k {
			id := g.groups[g.popular(vpc.groups)].id
			if !slices.Contains(n.Groups, id) {
				n.Groups = append(n.Groups, id)
			}
		}
		r := vpc.region
		g.regions[r].NetworkInterfaces = append(g.regions[r].NetworkInterfaces, n)
	}
}

// mac returns a locally administered MAC address unique for i < 2^40.
func mac(i int) string {
	b := []byte("02:00:00:00:00:00")
	for k := 0; k < 5; k++ {
		v := byte(uint64(i) >> (8 * (4 - k)))
		b[3+3*k] = hexDigits[v>>4]
		b[4+3*k] = hexDigits[v&0xf]
	}
	return string(b)
}
