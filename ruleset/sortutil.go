package ruleset

import (
	"net/netip"
	"slices"
)

func sortAddrs(a []netip.Addr) { slices.SortFunc(a, func(x, y netip.Addr) int { return x.Compare(y) }) }

func compactAddrs(a []netip.Addr) []netip.Addr { return slices.Compact(a) }
