package apply

import (
	"context"
	"net/netip"
	"slices"
)

// flushConntrack deletes the conntrack entries of sources that were in a
// set before and are in none now.
func (a *familyApply) flushConntrack(ctx context.Context, old map[string][]netip.Addr) {
	now := map[netip.Addr]bool{}
	for _, s := range a.fp.Sets {
		for _, m := range s.Members {
			now[m] = true
		}
	}
	gone := map[netip.Addr]bool{}
	for name, ms := range old {
		if a.kernelSets[name].Refs == 0 {
			continue // not matched by any rule before: its members were not let in
		}
		for _, m := range ms {
			if !now[m] {
				gone[m] = true
			}
		}
	}
	addrs := make([]netip.Addr, 0, len(gone))
	for m := range gone {
		addrs = append(addrs, m)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, m := range addrs {
		args := []string{"-D", "-s", m.String()}
		if m.Is6() {
			args = append(args, "-f", "ipv6")
		}
		// conntrack exits 1 when no entry matched; that is fine.
		if _, err := a.r.Run(ctx, nil, "conntrack", args...); err != nil && exitCode(err) != 1 {
			a.log.Warn("flushing conntrack", "source", m, "err", err)
			continue
		}
		a.res.ConntrackFlushed = append(a.res.ConntrackFlushed, m)
	}
}
