package ruleset

import (
	"net/netip"
	"slices"
)

// InterfacesWith returns the interfaces that have one of addrs (IPv4-mapped
// addresses count as IPv4), in the ruleset's order, only those of vpcID
// when it is not empty. More than one VPC among them means overlapping
// VPCs: the caller decides what that is. A host finds itself with it.
func (rs *Ruleset) InterfacesWith(addrs []netip.Addr, vpcID string) []*Interface {
	have := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		have[a.Unmap()] = true
	}
	var found []*Interface
	for i := range rs.Interfaces {
		n := &rs.Interfaces[i]
		if vpcID != "" && n.VPC != vpcID {
			continue
		}
		if slices.ContainsFunc(n.Addrs, func(a netip.Addr) bool { return have[a] }) {
			found = append(found, n)
		}
	}
	return found
}

// VPCCIDRs returns the CIDR blocks of the VPCs ids, sorted, each once.
func (rs *Ruleset) VPCCIDRs(ids []string) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range rs.VPCs {
		if slices.Contains(ids, v.ID) {
			out = append(out, v.CIDRs...)
		}
	}
	return SortedPrefixes(out)
}
