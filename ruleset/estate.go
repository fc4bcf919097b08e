package ruleset

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/reyes-fw/reyes/inventory"
)

// estate is an inventory of one or more accounts merged into one view: each
// VPC, group and interface once (from its owner's view where two accounts
// describe it), with what reference resolution needs to know.
type estate struct {
	// read holds the accounts whose estate was read: the accounts of the
	// regions, and for an inventory of one account without names the
	// owners of its groups and VPCs.
	read   map[string]bool
	vpcs   map[string]*mergedVPC
	groups map[string]*mergedGroup
	enis   map[string]*mergedENI
	// The IDs in the order first seen: Build's output is sorted anyway.
	vpcOrder, groupOrder, eniOrder []string

	// members: group ID -> the VPCs in which the group has interfaces.
	members map[string][]string
	// assoc: group ID + " " + VPC ID -> association state; assocKnown:
	// region names in which some account described its associations.
	assoc      map[string]string
	assocKnown map[string]bool
	// tgw: gateway ID -> gateway; att: VPC ID -> its attachments.
	tgw      map[string]inventory.TransitGateway
	att      map[string][]inventory.TransitGatewayVPCAttachment
	tgwKnown map[string]bool

	// lbs: group ID -> its members that are load balancers preserving
	// client addresses; memberCache: memberVPCs of a group, computed once.
	lbs         map[string][]*inventory.NetworkInterface
	memberCache map[string][2][]string
}

// view says which account's dump of a region an object was taken from.
type view struct {
	from   string // the view: account/region
	region string
	owned  bool // from the owner's own view
}

func (v *view) origin() *view { return v }

type mergedVPC struct {
	view
	v *inventory.VPC
}

type mergedGroup struct {
	view
	g *inventory.SecurityGroup
	// pls are the prefix lists of the view the group was taken from.
	pls map[string][]netip.Prefix
}

type mergedENI struct {
	view
	n *inventory.NetworkInterface
}

// mergeView records obj (id, of kind, seen in view at) in m, keeping the
// order of first sight: one ID is one object in one region with one
// owner, and of two views of it the owner's wins.
func mergeView[T any, P interface {
	*T
	origin() *view
}](m map[string]P, order *[]string, kind, id string, at view, obj P) error {
	if old, ok := m[id]; ok {
		o := old.origin()
		switch {
		case o.from == at.from:
			return invalid(kind+"("+id+")", "listed twice in %s", at.from)
		case o.region != at.region:
			return invalid(kind+"("+id+")", "in %s and in %s: an ID names one object in one region", o.region, at.from)
		case o.owned && at.owned:
			// Two accounts' dumps each list the object as their own:
			// impossible in AWS, and either view could rewrite the other
			// account's rules.
			return invalid(kind+"("+id+")", "owned by the account of %s and by the account of %s: an ID has one owner", o.from, at.from)
		case o.owned || !at.owned:
			return nil
		}
	} else {
		*order = append(*order, id)
	}
	*obj.origin() = at
	m[id] = obj
	return nil
}

// mergeEstate merges the regions of every account. Two views of one object
// are fine; the owner's wins (a shared VPC's CIDRs come from the VPC
// owner's view, a participant's interface from the participant's).
func mergeEstate(inv *inventory.Inventory) (*estate, error) {
	e := &estate{
		read: map[string]bool{}, vpcs: map[string]*mergedVPC{}, groups: map[string]*mergedGroup{},
		enis: map[string]*mergedENI{}, members: map[string][]string{},
		assoc: map[string]string{}, assocKnown: map[string]bool{}, tgw: map[string]inventory.TransitGateway{},
		att: map[string][]inventory.TransitGatewayVPCAttachment{}, tgwKnown: map[string]bool{},
		lbs: map[string][]*inventory.NetworkInterface{}, memberCache: map[string][2][]string{},
	}
	named, unnamed := false, false
	for _, reg := range inv.Regions {
		if reg.Account == "" {
			unnamed = true
		} else {
			named = true
			e.read[reg.Account] = true
		}
	}
	if named && unnamed {
		return nil, fmt.Errorf("the inventory mixes regions of named accounts with regions of no account")
	}
	assocSeen, tgwSeen := map[string]bool{}, map[string]bool{}
	attSeen := map[string]bool{}
	for ri := range inv.Regions {
		reg := &inv.Regions[ri]
		where := reg.Name
		if reg.Account != "" {
			where = reg.Account + "/" + reg.Name
		}
		for vi := range reg.VPCs {
			v := &reg.VPCs[vi]
			if unnamed {
				e.read[v.OwnerID] = true
			}
			at := view{from: where, region: reg.Name, owned: reg.Account == "" || reg.Account == v.OwnerID}
			if err := mergeView(e.vpcs, &e.vpcOrder, "vpcs", v.ID, at, &mergedVPC{v: v}); err != nil {
				return nil, err
			}
		}
		pls := make(map[string][]netip.Prefix, len(reg.PrefixLists))
		for _, pl := range reg.PrefixLists {
			pls[pl.ID] = pl.Entries
		}
		for gi := range reg.SecurityGroups {
			g := &reg.SecurityGroups[gi]
			if unnamed {
				e.read[g.OwnerID] = true
			}
			at := view{from: where, region: reg.Name, owned: reg.Account == "" || reg.Account == g.OwnerID}
			if err := mergeView(e.groups, &e.groupOrder, "groups", g.ID, at, &mergedGroup{g: g, pls: pls}); err != nil {
				return nil, err
			}
		}
		for ni := range reg.NetworkInterfaces {
			n := &reg.NetworkInterfaces[ni]
			at := view{from: where, region: reg.Name, owned: reg.Account == "" || reg.Account == n.OwnerID}
			if err := mergeView(e.enis, &e.eniOrder, "interfaces", n.ID, at, &mergedENI{n: n}); err != nil {
				return nil, err
			}
		}
		if reg.AssociationsKnown {
			assocSeen[reg.Name] = true
		}
		for _, a := range reg.SecurityGroupVPCAssociations {
			k := a.GroupID + " " + a.VPCID
			// The group owner's view wins over another account's.
			if _, ok := e.assoc[k]; !ok || reg.Account == a.GroupOwnerID {
				e.assoc[k] = a.State
			}
		}
		if reg.TransitGatewaysKnown {
			tgwSeen[reg.Name] = true
		}
		for _, g := range reg.TransitGateways {
			if old, ok := e.tgw[g.ID]; !ok || reg.Account == g.OwnerID || old.OwnerID == "" {
				e.tgw[g.ID] = g
			}
		}
		for _, a := range reg.TransitGatewayAttachments {
			if attSeen[a.ID] {
				continue
			}
			attSeen[a.ID] = true
			e.att[a.VPCID] = append(e.att[a.VPCID], a)
		}
	}
	// One view that read them is enough: transit gateways and
	// associations are described by the accounts that own them, and an
	// account without any (a participant) may leave its files out.
	e.assocKnown, e.tgwKnown = assocSeen, tgwSeen
	for _, id := range e.eniOrder {
		m := e.enis[id]
		for _, g := range m.n.Groups {
			if vs := e.members[g]; !slices.Contains(vs, m.n.VPCID) {
				e.members[g] = append(vs, m.n.VPCID)
			}
			if preservesClientIP(m.n) {
				e.lbs[g] = append(e.lbs[g], m.n)
			}
		}
	}
	return e, nil
}

// memberVPCs returns the VPCs in which group gid has interfaces that count
// as members, sorted. An interface in a VPC other than the group's own
// counts only while the group is associated with that VPC
// (DescribeSecurityGroupVpcAssociations state "associated"); the others are
// returned in stale, with why.
func (e *estate) memberVPCs(g *mergedGroup) (vpcs []string, stale []string) {
	if c, ok := e.memberCache[g.g.ID]; ok {
		return c[0], c[1]
	}
	defer func() { e.memberCache[g.g.ID] = [2][]string{vpcs, stale} }()
	for _, v := range e.members[g.g.ID] {
		if v == g.g.VPCID {
			vpcs = append(vpcs, v)
			continue
		}
		state, ok := e.assoc[g.g.ID+" "+v]
		switch {
		case ok && state == "associated":
			vpcs = append(vpcs, v)
		case ok:
			stale = append(stale, fmt.Sprintf("its interfaces in %s: the association with %s is %s", v, v, state))
		case !e.assocKnown[g.region]:
			stale = append(stale, fmt.Sprintf("its interfaces in %s: security group VPC associations of %s were not read (%s)", v, g.region, "security-group-vpc-associations.json"))
		default:
			stale = append(stale, fmt.Sprintf("its interfaces in %s: the group is not associated with %s", v, v))
		}
	}
	slices.Sort(vpcs)
	slices.Sort(stale)
	return vpcs, stale
}

// tgwPath reports whether AWS honours a reference from members in VPC s for
// interfaces in VPC d over a transit gateway: same region, both VPCs
// attached (available) to one available gateway, and security group
// referencing enabled on the gateway and on both attachments. why says
// what is missing when it does not.
func (e *estate) tgwPath(s, d string) (ok bool, why string) {
	vs, vd := e.vpcs[s], e.vpcs[d]
	if vs == nil || vd == nil {
		return false, "a VPC is not in the inventory"
	}
	if vs.region != vd.region {
		return false, fmt.Sprintf("%s and %s are in different regions (transit gateway references are regional)", s, d)
	}
	if !e.tgwKnown[vs.region] {
		return false, fmt.Sprintf("transit gateways of %s were not read (transit-gateways.json, transit-gateway-vpc-attachments.json)", vs.region)
	}
	why = fmt.Sprintf("%s and %s share no transit gateway", s, d)
	for _, as := range e.att[s] {
		for _, ad := range e.att[d] {
			if as.TransitGatewayID != ad.TransitGatewayID {
				continue
			}
			g, known := e.tgw[as.TransitGatewayID]
			switch {
			case !known:
				why = fmt.Sprintf("transit gateway %s is not in the inventory", as.TransitGatewayID)
			case g.State != "available":
				why = fmt.Sprintf("transit gateway %s is %s", g.ID, g.State)
			case !g.SecurityGroupReferencing:
				why = fmt.Sprintf("security group referencing is disabled on transit gateway %s", g.ID)
			case as.State != "available" || ad.State != "available":
				why = fmt.Sprintf("an attachment to %s is not available (%s, %s)", g.ID, as.State, ad.State)
			case !as.SecurityGroupReferencing || !ad.SecurityGroupReferencing:
				why = fmt.Sprintf("security group referencing is disabled on an attachment to %s", g.ID)
			default:
				return true, ""
			}
		}
	}
	return false, why
}

// loadBalancerTypes are the interface types whose traffic arrives from the
// clients' addresses (client IP preservation; a gateway load balancer is
// transparent), not from the interface's own.
var loadBalancerTypes = map[string]bool{
	"network_load_balancer":          true,
	"gateway_load_balancer":          true,
	"gateway_load_balancer_endpoint": true,
}

// resolver turns the group references of one group's rules into sources
// and findings.
type resolver struct {
	e        *estate
	from     *mergedGroup
	dests    []string // VPCs where the group's rules apply
	findings *[]Finding
}

func (e *estate) resolver(g *mergedGroup, findings *[]Finding) *resolver {
	dests := append([]string{g.g.VPCID}, e.members[g.g.ID]...)
	slices.Sort(dests)
	return &resolver{e: e, from: g, dests: slices.Compact(dests), findings: findings}
}

func (r *resolver) find(kind, ref, account, detail string) {
	*r.findings = append(*r.findings, Finding{Kind: kind, Group: r.from.g.ID, Ref: ref, Account: account, Detail: clipDetail(detail)})
}

// resolve adds the reference ref of rule rule to it: to Groups when AWS
// honours it for every member wherever the rule applies, to Scoped when for
// some, and to nothing (a finding) when for none.
func (r *resolver) resolve(rule *Rule, ref inventory.GroupRef) {
	e := r.e
	if ref.PeeringStatus != "" && ref.PeeringStatus != "active" {
		r.find(FindingStaleReference, ref.GroupID, "", fmt.Sprintf("the peering %s of the reference is %s", orWord(ref.PeeringConnectionID, "connection"), ref.PeeringStatus))
		return
	}
	g := e.groups[ref.GroupID]
	if g == nil {
		// The reference stays in the rule, as AWS keeps it: a group that is
		// not in the ruleset has no members and allows nothing.
		rule.Groups = append(rule.Groups, ref.GroupID)
		if inventory.ValidAccountID(ref.UserID) && !e.read[ref.UserID] {
			r.find(FindingUnreadAccount, ref.GroupID, ref.UserID, fmt.Sprintf("the group belongs to account %s, which was not read", ref.UserID))
			return
		}
		owner := ref.UserID
		if owner == "" {
			owner = "its account"
		}
		r.find(FindingStaleReference, ref.GroupID, "", fmt.Sprintf("the group is not in the inventory of %s (deleted?)", owner))
		return
	}
	vpcs, stale := e.memberVPCs(g)
	for _, s := range stale {
		r.find(FindingStaleReference, g.g.ID, "", "not members: "+s)
	}
	if len(vpcs) == 0 {
		// No members anywhere: nothing to scope, and the reference allows
		// nothing until the group has members.
		if len(stale) == 0 {
			rule.Groups = append(rule.Groups, g.g.ID)
		}
		return
	}
	peerVPC := ""
	if ref.PeeringConnectionID != "" || ref.PeeringStatus == "active" {
		peerVPC = orWord(ref.VPCID, g.g.VPCID)
	}
	// The common case first, without allocating: every member honoured
	// wherever the rule applies.
	if len(stale) == 0 && r.allHonoured(vpcs, peerVPC) {
		if len(e.lbs[g.g.ID]) > 0 {
			if lb := r.loadBalancers(g, vpcs); lb != "" {
				r.find(FindingClientIP, g.g.ID, "", lb)
			}
		}
		rule.Groups = append(rule.Groups, g.g.ID)
		return
	}
	full := len(stale) == 0
	var scoped []ScopedRef
	var whyNot []string
	for _, d := range r.dests {
		var from []string
		for _, s := range vpcs {
			switch ok, why := r.honoured(s, d, peerVPC); {
			case ok:
				from = append(from, s)
			default:
				full = false
				whyNot = append(whyNot, fmt.Sprintf("from %s to %s: %s", s, d, why))
			}
		}
		if len(from) > 0 {
			scoped = append(scoped, ScopedRef{Group: g.g.ID, VPC: d, From: from})
		}
	}
	slices.Sort(whyNot)
	whyNot = slices.Compact(whyNot)
	if len(e.lbs[g.g.ID]) > 0 {
		var honoured []string // the member VPCs that are sources somewhere
		for _, sr := range scoped {
			honoured = append(honoured, sr.From...)
		}
		if lb := r.loadBalancers(g, honoured); lb != "" {
			r.find(FindingClientIP, g.g.ID, "", lb)
		}
	}
	switch {
	case full:
		rule.Groups = append(rule.Groups, g.g.ID)
	case len(scoped) == 0:
		r.find(FindingStaleReference, g.g.ID, "", "AWS honours the reference nowhere: "+strings.Join(whyNot, "; "))
	default:
		rule.Scoped = append(rule.Scoped, scoped...)
		if len(whyNot) > 0 { // else the stale members were reported above
			r.find(FindingStaleReference, g.g.ID, "", "AWS honours the reference only in part: "+strings.Join(whyNot, "; "))
		}
	}
}

// allHonoured reports whether AWS honours the reference for members in
// every one of vpcs wherever the rule applies.
func (r *resolver) allHonoured(vpcs []string, peerVPC string) bool {
	for _, d := range r.dests {
		for _, s := range vpcs {
			if s == d || r.peered(s, d, peerVPC) || r.e.tgwOK(s, d) {
				continue
			}
			return false
		}
	}
	return true
}

// peered reports whether a peering reference to members in VPC s holds
// for an interface in VPC d: the peering connects the referenced VPC with
// the rule group's own VPC, nothing else (an interface of an associated
// VPC is not on the peering), and only within a region.
func (r *resolver) peered(s, d, peerVPC string) bool {
	return peerVPC != "" && s == peerVPC && d == r.from.g.VPCID && r.e.sameRegion(s, d)
}

// sameRegion reports whether two VPCs of the inventory are in one region.
func (e *estate) sameRegion(a, b string) bool {
	va, vb := e.vpcs[a], e.vpcs[b]
	return va != nil && vb != nil && va.region == vb.region
}

// tgwOK is tgwPath without the why.
func (e *estate) tgwOK(s, d string) bool {
	if !e.sameRegion(s, d) || !e.tgwKnown[e.vpcs[s].region] {
		return false
	}
	for _, as := range e.att[s] {
		for _, ad := range e.att[d] {
			if as.TransitGatewayID != ad.TransitGatewayID {
				continue
			}
			g, known := e.tgw[as.TransitGatewayID]
			if known && g.State == "available" && g.SecurityGroupReferencing && as.State == "available" && ad.State == "available" &&
				as.SecurityGroupReferencing && ad.SecurityGroupReferencing {
				return true
			}
		}
	}
	return false
}

// honoured says whether AWS honours a reference to members in VPC s for
// an interface in VPC d: the same VPC; the peered VPC of an active
// peering reference; or a transit gateway path with security group
// referencing.
func (r *resolver) honoured(s, d, peerVPC string) (bool, string) {
	if s == d {
		return true, ""
	}
	if peerVPC != "" && s == peerVPC && d == r.from.g.VPCID {
		// A peered group is referenced only within a region: AWS does not
		// honour references over an inter-region peering. A VPC record
		// missing from the inventory fails closed.
		if !r.e.sameRegion(s, d) {
			return false, fmt.Sprintf("the peering between %s and %s crosses regions (or a VPC is not in the inventory), where AWS honours no group reference", s, d)
		}
		return true, ""
	}
	ok, why := r.e.tgwPath(s, d)
	if ok {
		return true, ""
	}
	if peerVPC != "" && s == peerVPC {
		return false, fmt.Sprintf("the peering connects %s with %s, not with %s; and %s", peerVPC, r.from.g.VPCID, d, why)
	}
	if peerVPC != "" {
		return false, fmt.Sprintf("the peering connects %s, not %s; and %s", peerVPC, s, why)
	}
	return false, "no active peering, and " + why
}

// loadBalancers names the members of g (in vpcs) that forward their
// clients' addresses, or returns "".
func (r *resolver) loadBalancers(g *mergedGroup, vpcs []string) string {
	var ids []string
	for _, n := range r.e.lbs[g.g.ID] {
		if slices.Contains(vpcs, n.VPCID) {
			ids = append(ids, n.ID)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	slices.Sort(ids)
	return fmt.Sprintf("members %s are load balancers that may preserve client IP addresses: traffic they forward arrives from the clients, which the mirror does not match", strings.Join(ids, ","))
}

// preservesClientIP reports whether traffic an interface forwards may
// arrive from its clients' addresses: network and gateway load balancers.
func preservesClientIP(n *inventory.NetworkInterface) bool {
	return loadBalancerTypes[n.InterfaceType] || strings.HasPrefix(n.Description, "ELB net/") || strings.HasPrefix(n.Description, "ELB gwy/")
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func clipDetail(s string) string {
	if len(s) <= maxFindingBytes {
		return s
	}
	return strings.ToValidUTF8(s[:maxFindingBytes-3], "") + "..."
}
