package reyes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// Errors of Identify. Test with errors.Is.
var (
	// ErrUnknownHost: no method found the host. reyes never renders a
	// policy for a host it cannot place: configure its groups, or check
	// that its addresses are in the ruleset.
	ErrUnknownHost = errors.New("host not found")
	// ErrAmbiguousHost: the host's addresses belong to interfaces of more
	// than one VPC in the ruleset (VPCs with overlapping CIDRs). Configure
	// IdentityOptions.VPCID, or the groups.
	ErrAmbiguousHost = errors.New("host ambiguous")
	// ErrIMDS: the instance metadata service issued a token but then
	// failed, or described the host with values reyes cannot use. Identify
	// stops there rather than guess.
	ErrIMDS = errors.New("instance metadata unusable")
	// ErrIdentityConfig: the operator's groups, addresses or CIDRs are not
	// valid.
	ErrIdentityConfig = errors.New("invalid host identity configuration")
)

// Defaults of IdentityOptions.
const (
	// DefaultIMDSEndpoint is the IPv4 address of the EC2 instance metadata
	// service. On IPv6-only instances use "http://[fd00:ec2::254]".
	DefaultIMDSEndpoint = "http://169.254.169.254"
	// DefaultIMDSTokenTimeout bounds the token request: a host that is not
	// on EC2 (nothing answers) decides this quickly.
	DefaultIMDSTokenTimeout = 400 * time.Millisecond
	// DefaultIMDSTimeout bounds each metadata read once a token was issued.
	DefaultIMDSTimeout = 2 * time.Second
	// imdsMaxBody caps one metadata answer.
	imdsMaxBody = 64 << 10
	// imdsMaxMACs caps the interfaces read from the metadata service.
	imdsMaxMACs = 64
)

// ExplicitInterfaceID is the interface ID of the one interface Identify
// makes from groups given by the operator.
const ExplicitInterfaceID = "explicit"

// IdentityMethod says how Identify found the host.
type IdentityMethod string

// The methods, in the order Identify tries them.
const (
	// IdentityExplicit: groups given by the operator.
	IdentityExplicit IdentityMethod = "explicit"
	// IdentityIMDS: the EC2 instance metadata service (IMDSv2).
	IdentityIMDS IdentityMethod = "imds"
	// IdentityAddresses: addresses looked up in the ruleset's interfaces:
	// the host's own, or those the operator gave (IdentityOptions.Addrs).
	IdentityAddresses IdentityMethod = "addresses"
)

// IdentityOptions configure Identify. The zero value tries the instance
// metadata service, then the host's own addresses.
type IdentityOptions struct {
	// Groups, if not empty, are the host's security groups: they apply to
	// all of the host's traffic (one interface, with Addrs as its
	// addresses if given). Identify asks nothing else.
	Groups []string
	// Addrs, if not empty and Groups is, are looked up in the ruleset
	// instead of the host's own addresses, and IMDS is not asked.
	Addrs []netip.Addr
	// VPCCIDRs, if not empty, replace the VPC CIDR blocks that any method
	// finds.
	VPCCIDRs []netip.Prefix
	// VPCID, if not empty, restricts the address lookup to interfaces of
	// this VPC: needed when VPCs overlap.
	VPCID string

	// DisableIMDS skips the instance metadata service.
	DisableIMDS bool
	// IMDSEndpoint is the metadata service's base URL; empty means
	// DefaultIMDSEndpoint.
	IMDSEndpoint string
	// IMDSTokenTimeout bounds the token request; 0 means
	// DefaultIMDSTokenTimeout.
	IMDSTokenTimeout time.Duration
	// IMDSTimeout bounds each later request; 0 means DefaultIMDSTimeout.
	IMDSTimeout time.Duration
	// HTTPClient, if not nil, makes the metadata requests. The default
	// uses no proxy and follows no redirect.
	HTTPClient *http.Client

	// DisableAddressLookup skips the lookup of the host's own addresses.
	DisableAddressLookup bool
	// InterfaceAddrs returns the host's own addresses; nil means those of
	// net.InterfaceAddrs, without loopback, link-local and multicast ones.
	InterfaceAddrs func() ([]netip.Addr, error)
	// PrimaryAddrs returns the addresses of the interface of the default
	// route; nil means read from /proc/net/route and the interface. The
	// address lookup accepts a match only if one of them is among the
	// matched ENIs' addresses: another address of the host (a tunnel, a
	// container bridge, an overlapping on-premises range) must not make it
	// adopt some other VPC's ENI and its groups. No default route, or no
	// address on its interface, skips the check, and so does an
	// InterfaceAddrs given without PrimaryAddrs.
	PrimaryAddrs func() ([]netip.Addr, error)

	// Logger receives what Identify decided and why; nil means
	// slog.Default().
	Logger *slog.Logger
}

// IdentitySource says how Identify found the host, and what it noticed.
type IdentitySource struct {
	Method IdentityMethod
	// UnknownGroups are groups of the host that the ruleset does not hold
	// (sorted). They stay in the host's view but allow nothing; a warning
	// was logged. Usually the leader's inventory is older than the group,
	// or the group is in a VPC or region the leader does not describe.
	UnknownGroups []string
	// IMDSSkipped says why the metadata service was not used when a later
	// method found the host: nil if it was not tried.
	IMDSSkipped error
}

// Identify finds the host's view of itself: its interfaces, their
// addresses and security groups, and its VPC's CIDR blocks. It tries, in
// order:
//
//  1. the groups or addresses the operator configured (opts.Groups,
//     opts.Addrs);
//  2. the EC2 instance metadata service, IMDSv2 only: a session token
//     first (PUT /latest/api/token), then for every MAC the interface ID,
//     security-group-ids, local-ipv4s, ipv6s, vpc-id and the VPC's IPv4 and
//     IPv6 CIDR blocks. When nothing answers the token request within
//     opts.IMDSTokenTimeout, or it is refused, Identify goes on (it never
//     falls back to IMDSv1); once a token was issued, any failure is an
//     error wrapping ErrIMDS;
//  3. the host's own addresses, looked up in the ruleset's interfaces:
//     every interface with an address the host has, and the CIDR blocks
//     of its VPC from the ruleset.
//
// A host that no method finds is an error wrapping ErrUnknownHost, never
// an empty view. Groups the ruleset does not know are kept (they allow
// nothing) and reported in IdentitySource.UnknownGroups and a warning.
func Identify(ctx context.Context, rs *ruleset.Ruleset, opts IdentityOptions) (render.Host, IdentitySource, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	p, err := probeHost(ctx, opts, log)
	if err != nil {
		return render.Host{}, IdentitySource{Method: p.method, IMDSSkipped: p.skipped}, fmt.Errorf("identifying the host: %w", err)
	}
	return identifyIn(ctx, rs, p, opts, log)
}

// hostProbe is what the host knows of itself before any ruleset is read:
// the method that will find it and that method's inputs. The follower
// asks for the parts of a split ruleset from it (request), then finds the
// host in what they hold (identifyIn), so the metadata service is asked
// once per run.
type hostProbe struct {
	method IdentityMethod
	// imds is the host as the metadata service describes it.
	imds render.Host
	// addrs are the addresses to look up (IdentityAddresses); own says
	// they are the host's own, so the default route check applies.
	addrs []netip.Addr
	own   bool
	// skipped says why the metadata service was passed over.
	skipped error
}

// probeHost decides how the host is found, asking the metadata service
// or listing the host's addresses as Identify's order says. It reads no
// ruleset.
func probeHost(ctx context.Context, opts IdentityOptions, log *slog.Logger) (hostProbe, error) {
	if err := checkIdentityOptions(opts); err != nil {
		return hostProbe{}, err
	}
	if len(opts.Groups) > 0 {
		return hostProbe{method: IdentityExplicit}, nil
	}
	if len(opts.Addrs) > 0 {
		return hostProbe{method: IdentityAddresses, addrs: opts.Addrs}, nil
	}
	var skipped error
	if !opts.DisableIMDS {
		host, err := newIMDS(opts).host(ctx)
		switch {
		case err == nil:
			return hostProbe{method: IdentityIMDS, imds: host}, nil
		case errors.Is(err, errIMDSAbsent):
			log.LogAttrs(ctx, slog.LevelDebug, "no instance metadata service", slog.Any("error", err))
			skipped = err
		case errors.Is(err, errIMDSRefused):
			log.LogAttrs(ctx, slog.LevelWarn, "the instance metadata service refused an IMDSv2 token; not trying IMDSv1",
				slog.Any("error", err))
			skipped = err
		default:
			return hostProbe{method: IdentityIMDS}, err
		}
	}
	if !opts.DisableAddressLookup {
		list := opts.InterfaceAddrs
		if list == nil {
			list = localAddrs
		}
		addrs, err := list()
		if err != nil {
			return hostProbe{skipped: skipped}, fmt.Errorf("listing the host's addresses: %w", err)
		}
		return hostProbe{method: IdentityAddresses, addrs: addrs, own: true, skipped: skipped}, nil
	}
	if skipped != nil {
		return hostProbe{skipped: skipped}, fmt.Errorf("%w: %w, and the address lookup is disabled", ErrUnknownHost, skipped)
	}
	return hostProbe{}, fmt.Errorf("%w: no groups or addresses configured, and IMDS and the address lookup are disabled", ErrUnknownHost)
}

// request names what a ruleset must hold to find the host and render
// its plan: the parts a follower reads of a split ruleset.
func (p hostProbe) request(opts IdentityOptions) ruleset.ViewRequest {
	var req ruleset.ViewRequest
	switch p.method {
	case IdentityExplicit:
		req.Groups = slices.Clone(opts.Groups)
	case IdentityIMDS:
		for _, n := range p.imds.Interfaces {
			req.InterfaceIDs = append(req.InterfaceIDs, n.ID)
			req.Groups = append(req.Groups, n.Groups...)
		}
	case IdentityAddresses:
		req.Addrs = slices.Clone(p.addrs)
	}
	return req
}

// identifyIn finds the probed host in rs and finishes Identify's work.
func identifyIn(ctx context.Context, rs *ruleset.Ruleset, p hostProbe, opts IdentityOptions, log *slog.Logger) (render.Host, IdentitySource, error) {
	src := IdentitySource{Method: p.method, IMDSSkipped: p.skipped}
	var host render.Host
	switch p.method {
	case IdentityExplicit:
		host = explicitHost(rs, opts)
		if len(host.VPCCIDRs) == 0 && len(opts.VPCCIDRs) == 0 {
			// Without VPC CIDRs the host's own VPC would be filtered as
			// foreign: refuse rather than cut it off its neighbours.
			return render.Host{}, src, fmt.Errorf("identifying the host: %w: none of the groups %v is in the ruleset, so the host's VPC is unknown; fix the group IDs or give the VPC CIDRs", ErrIdentityConfig, opts.Groups)
		}
	case IdentityIMDS:
		host = p.imds
	case IdentityAddresses:
		h, err := lookupAddrs(rs, p.addrs, opts.VPCID)
		switch {
		case err != nil && p.own:
			return render.Host{}, src, fmt.Errorf("identifying the host: looking up the host's addresses %v: %w", p.addrs, err)
		case err != nil:
			return render.Host{}, src, fmt.Errorf("identifying the host: looking up the configured addresses: %w", err)
		}
		if p.own {
			if err := checkPrimary(h, opts); err != nil {
				return render.Host{}, src, fmt.Errorf("identifying the host: %w", err)
			}
		}
		host = h
	default:
		return render.Host{}, src, fmt.Errorf("identifying the host: %w: no method", ErrUnknownHost)
	}
	if len(opts.VPCCIDRs) > 0 {
		host.VPCCIDRs = slices.Clone(opts.VPCCIDRs)
	}
	src.UnknownGroups = unknownGroups(rs, host)
	if len(src.UnknownGroups) > 0 {
		log.LogAttrs(ctx, slog.LevelWarn, "the host is in security groups that the ruleset does not know; they allow nothing",
			slog.Any("groups", src.UnknownGroups), slog.String("method", string(src.Method)))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "identified the host",
		slog.String("method", string(src.Method)), slog.Any("interfaces", interfaceIDs(host)), slog.Any("vpc_cidrs", host.VPCCIDRs))
	return host, src, nil
}

func checkIdentityOptions(opts IdentityOptions) error {
	for _, g := range opts.Groups {
		if !ruleset.ValidGroupID(g) {
			return fmt.Errorf("%w: %q is not a security group ID", ErrIdentityConfig, g)
		}
	}
	for _, a := range opts.Addrs {
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			return fmt.Errorf("%w: %q is not a plain IP address", ErrIdentityConfig, a)
		}
	}
	for _, c := range opts.VPCCIDRs {
		if !c.IsValid() || c.Masked() != c {
			return fmt.Errorf("%w: %q is not a CIDR block", ErrIdentityConfig, c)
		}
	}
	if opts.VPCID != "" && !ruleset.ValidVPCID(opts.VPCID) {
		return fmt.Errorf("%w: %q is not a VPC ID", ErrIdentityConfig, opts.VPCID)
	}
	return nil
}

// explicitHost is one interface with the operator's groups and addresses;
// the VPC CIDRs are those of the groups' VPCs in the ruleset.
func explicitHost(rs *ruleset.Ruleset, opts IdentityOptions) render.Host {
	groups := slices.Clone(opts.Groups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	var vpcs []string
	for _, g := range groups {
		// rs.Groups is sorted by ID (Validate insists): a binary search
		// each, not a scan of every group for every group.
		if i, ok := slices.BinarySearchFunc(rs.Groups, g, func(x ruleset.Group, id string) int { return strings.Compare(x.ID, id) }); ok {
			vpcs = append(vpcs, rs.Groups[i].VPC)
		}
	}
	slices.Sort(vpcs)
	vpcs = slices.Compact(vpcs)
	return render.Host{
		Interfaces: []render.HostInterface{{ID: ExplicitInterfaceID, Addrs: ruleset.SortedAddrs(opts.Addrs), Groups: groups}},
		VPCCIDRs:   rs.VPCCIDRs(vpcs),
	}
}

// lookupAddrs finds the ruleset's interfaces that have one of addrs. They
// must all be in one VPC (or in vpcID, if given).
func lookupAddrs(rs *ruleset.Ruleset, addrs []netip.Addr, vpcID string) (render.Host, error) {
	found := rs.InterfacesWith(addrs, vpcID)
	if len(found) == 0 {
		if vpcID != "" {
			return render.Host{}, fmt.Errorf("%w: no interface of %s in the ruleset has one of the addresses", ErrUnknownHost, vpcID)
		}
		return render.Host{}, fmt.Errorf("%w: no interface in the ruleset has one of the addresses", ErrUnknownHost)
	}
	var vpcs []string
	for _, n := range found {
		vpcs = append(vpcs, n.Region+"/"+n.VPC)
	}
	slices.Sort(vpcs)
	if vpcs = slices.Compact(vpcs); len(vpcs) > 1 {
		return render.Host{}, fmt.Errorf("%w: the addresses are on interfaces of %s", ErrAmbiguousHost, strings.Join(vpcs, ", "))
	}
	host := render.Host{VPCCIDRs: rs.VPCCIDRs([]string{found[0].VPC})}
	slices.SortFunc(found, func(a, b *ruleset.Interface) int { return strings.Compare(a.ID, b.ID) })
	for _, n := range found {
		host.Interfaces = append(host.Interfaces, render.HostInterface{
			ID: n.ID, Addrs: ruleset.SortedAddrs(n.Addrs), Groups: slices.Clone(n.Groups),
		})
	}
	return host, nil
}

// unknownGroups returns the host's groups that the ruleset lacks, sorted.
func unknownGroups(rs *ruleset.Ruleset, host render.Host) []string {
	known := make(map[string]bool, len(rs.Groups))
	for _, g := range rs.Groups {
		known[g.ID] = true
	}
	var out []string
	for _, n := range host.Interfaces {
		for _, g := range n.Groups {
			if !known[g] {
				out = append(out, g)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func interfaceIDs(h render.Host) []string {
	ids := make([]string, 0, len(h.Interfaces))
	for _, n := range h.Interfaces {
		ids = append(ids, n.ID)
	}
	return ids
}
