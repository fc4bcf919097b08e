package reyes

// The host's own addresses, for the address lookup and its check that a
// match carries an address of the default route's interface.

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/reyes-fw/reyes/internal/route"
	"github.com/reyes-fw/reyes/render"
)

// localAddrs returns the host's unicast addresses, without loopback and
// link-local ones.
func localAddrs() ([]netip.Addr, error) {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ia := range ifaddrs {
		ipn, ok := ia.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// checkPrimary refuses an address lookup whose matched ENIs do not carry
// an address of the default route's interface.
func checkPrimary(host render.Host, opts IdentityOptions) error {
	primary := opts.PrimaryAddrs
	if primary == nil {
		if opts.InterfaceAddrs != nil {
			return nil // the caller gave the addresses: do not read this host's
		}
		primary = defaultRouteAddrs
	}
	addrs, err := primary()
	if err != nil || len(addrs) == 0 {
		return nil // nothing to check against
	}
	for _, n := range host.Interfaces {
		for _, a := range n.Addrs {
			if slices.Contains(addrs, a) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: the default route's interface has %v, none of which is an address of the ENIs %v that other addresses of this host matched (a tunnel or overlapping address?); configure the groups or addresses, or wait for the leader to list this host's ENI",
		ErrUnknownHost, addrs, interfaceIDs(host))
}

// defaultRouteAddrs are the addresses of the IPv4 default route's interface.
func defaultRouteAddrs() ([]netip.Addr, error) {
	name, err := route.DefaultInterface(route.ProcNetRoute)
	if err != nil {
		return nil, err
	}
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	as, err := ifc.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}
