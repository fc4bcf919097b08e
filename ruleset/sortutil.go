package ruleset

import (
	"net/netip"
	"slices"
)

// ComparePrefix orders prefixes as rulesets list them: by address (IPv4
// before IPv6), then by length.
func ComparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// SortedPrefixes returns a sorted copy of ps, each prefix once, in the
// order of ComparePrefix; nil for none.
func SortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone(ps)
	slices.SortFunc(out, ComparePrefix)
	return slices.Compact(out)
}

// SortedAddrs returns a sorted copy of as, each address once, in the
// order of netip.Addr.Compare; nil for none.
func SortedAddrs(as []netip.Addr) []netip.Addr {
	if len(as) == 0 {
		return nil
	}
	return sortedAddrs(slices.Clone(as))
}

// sortedAddrs sorts a in place and returns it with each address once.
func sortedAddrs(a []netip.Addr) []netip.Addr {
	slices.SortFunc(a, netip.Addr.Compare)
	return slices.Compact(a)
}
