package cli

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/reyes-fw/reyes/internal/route"
	"github.com/reyes-fw/reyes/reyes"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// planConfig holds the keys of planOptions: everything that shapes the
// plan of one host (identity, mode, table, logging, fail-safe, baseline).
// reyes-follower and reyesctl explain take them from the same table.
type planConfig struct {
	Mode        string   `koanf:"mode"`
	Table       string   `koanf:"table"`
	ForeignCIDR []string `koanf:"foreign_cidr"`
	VPCCIDR     []string `koanf:"vpc_cidr"`
	Groups      []string `koanf:"groups"`
	Addrs       []string `koanf:"addrs"`
	LogAccept   bool     `koanf:"log_accept"`
	LogDrop     bool     `koanf:"log_drop"`
	FailSafe    []string `koanf:"fail_safe"`

	Baseline            bool     `koanf:"baseline"`
	BaselineTCPPorts    []string `koanf:"baseline_tcp_ports"`
	BaselineInterface   string   `koanf:"baseline_interface"`
	BaselineAllowEcho   bool     `koanf:"baseline_allow_echo"`
	BaselineOutbound    string   `koanf:"baseline_outbound"`
	BaselineOutboundTCP []string `koanf:"baseline_outbound_tcp"`
	BaselineOutboundUDP []string `koanf:"baseline_outbound_udp"`
	BaselineKeepForward bool     `koanf:"baseline_keep_forward"`
}

// planOptions are the follower's keys that shape a host's plan; reyesctl
// explain takes them too (DefinePlanFlags).
var planOptions = []option{
	{"mode", kString, "vpc", "vpc: filter traffic from the foreign ranges outside the host's VPC; ipsec: filter traffic that arrived over IPsec"},
	{"table", kString, "shared", "shared: own REYES-* chains and one jump in INPUT; exclusive: the whole filter table"},
	{"foreign_cidr", kList, []string{"10.0.0.0/8"}, "foreign range filtered in vpc mode"},
	{"vpc_cidr", kList, []string(nil), "the host's own VPC CIDR blocks (default: found with the host's identity)"},
	{"groups", kList, []string(nil), "the host's security group IDs (default: from IMDSv2 or the host's addresses found in the ruleset)"},
	{"addrs", kList, []string(nil), "look these addresses up in the ruleset instead of the host's own (skips IMDS)"},
	{"log_accept", kBool, false, "log accepted packets (rate-limited, prefix \"reyes accept: \")"},
	{"log_drop", kBool, false, "log dropped packets (rate-limited, prefix \"reyes drop: \")"},
	{"fail_safe", kList, []string(nil), "traffic always allowed first, as CIDR, CIDR/tcp/PORT or CIDR/udp/PORT (e.g. 10.1.0.0/16/tcp/22)"},
	{"baseline", kBool, false, "add the host baseline (the starter moat) after the security-group rules: a packet must pass both"},
	{"baseline_tcp_ports", kList, []string{"22", "80", "443"}, "TCP ports the baseline opens to new connections"},
	{"baseline_interface", kString, "", "interface the baseline guards (default: the default route's)"},
	{"baseline_allow_echo", kBool, false, "let ICMP echo requests (ping) through the baseline"},
	{"baseline_outbound", kString, "accept", "outbound policy of the baseline: accept, or restrict to the outbound ports"},
	{"baseline_outbound_tcp", kList, []string{"80", "443"}, "TCP ports the host may connect to with baseline_outbound restrict (keep the store reachable)"},
	{"baseline_outbound_udp", kList, []string{"53", "123"}, "UDP ports the host may send to with baseline_outbound restrict"},
	{"baseline_keep_forward", kBool, false, "leave FORWARD alone (the baseline rejects forwarding otherwise; containers need it)"},
}

// plan turns the plan keys into render options and the identity options
// they imply. local says the plan is for this very host (the follower):
// the baseline interface must then exist here, and defaults to the one of
// the default route; otherwise (reyesctl explain) it defaults to eth0.
func (c *planConfig) plan(local bool) (render.Options, reyes.IdentityOptions, error) {
	var ropts render.Options
	var id reyes.IdentityOptions
	var err error
	if ropts.Mode, err = render.ParseMode(c.Mode); err != nil {
		return ropts, id, fmt.Errorf("%w: mode: %q is not vpc or ipsec", reyes.ErrConfig, c.Mode)
	}
	if ropts.Table, err = render.ParseTableMode(c.Table); err != nil {
		return ropts, id, fmt.Errorf("%w: table: %q is not shared or exclusive", reyes.ErrConfig, c.Table)
	}
	if ropts.ForeignCIDRs, err = parsePrefixes("foreign_cidr", c.ForeignCIDR); err != nil {
		return ropts, id, err
	}
	if ropts.Mode == render.ModeVPC && len(ropts.ForeignCIDRs) == 0 {
		return ropts, id, fmt.Errorf("%w: foreign_cidr: empty in vpc mode, which would filter nothing", reyes.ErrConfig)
	}
	ropts.LogAccept, ropts.LogDrop = c.LogAccept, c.LogDrop
	for _, s := range c.FailSafe {
		fsafe, err := parseFailSafe(s)
		if err != nil {
			return ropts, id, fmt.Errorf("%w: fail_safe: %w", reyes.ErrConfig, err)
		}
		ropts.FailSafe = append(ropts.FailSafe, fsafe)
	}
	for i, f := range ropts.FailSafe {
		if f.Protocol == ruleset.ProtoAll && (!f.Source.IsValid() || f.Source.Bits() == 0) {
			return ropts, id, fmt.Errorf("%w: fail_safe: %q allows every packet from everywhere, which would filter nothing", reyes.ErrConfig, c.FailSafe[i])
		}
	}
	if c.Baseline {
		b, err := c.baseline(local)
		if err != nil {
			return ropts, id, err
		}
		ropts.Baseline = b
	}
	for _, g := range c.Groups {
		if !ruleset.ValidGroupID(g) {
			return ropts, id, fmt.Errorf("%w: groups: %q is not a security group ID", reyes.ErrConfig, g)
		}
	}
	id.Groups = c.Groups
	for _, a := range c.Addrs {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return ropts, id, fmt.Errorf("%w: addrs: %q is not an address", reyes.ErrConfig, a)
		}
		id.Addrs = append(id.Addrs, addr)
	}
	if id.VPCCIDRs, err = parsePrefixes("vpc_cidr", c.VPCCIDR); err != nil {
		return ropts, id, err
	}
	if ropts.Mode == render.ModeVPC {
		for _, f := range ropts.ForeignCIDRs {
			for _, v := range id.VPCCIDRs {
				if v.Bits() <= f.Bits() && v.Contains(f.Addr()) {
					return ropts, id, fmt.Errorf("%w: vpc_cidr: %s covers the foreign range %s, which would then be filtered nowhere", reyes.ErrConfig, v, f)
				}
			}
		}
	}
	return ropts, id, nil
}

// PlanFlags are reyes-follower's flags that shape a host's plan (its
// identity, mode, table, logging, fail-safe and baseline), defined from the
// follower's own option table so that reyesctl explain takes exactly the
// flags, defaults and checks the follower does.
type PlanFlags struct {
	set map[string]any
}

// DefinePlanFlags defines the plan flags on fs. After fs.Parse, Options
// turns them into render and identity options.
func DefinePlanFlags(fs *flag.FlagSet) *PlanFlags {
	p := &PlanFlags{set: map[string]any{}}
	defineFlags(fs, planOptions, p.set, true)
	return p
}

// Options returns the render options and identity options the flags give,
// checked as reyes-follower checks them (an error wraps ErrConfig and
// names the key). The plan is not for this host: a baseline without
// --baseline-interface guards eth0.
func (p *PlanFlags) Options() (render.Options, reyes.IdentityOptions, error) {
	k := koanf.New(".")
	defs := map[string]any{}
	for _, o := range planOptions {
		defs[o.key] = o.def
	}
	if err := k.Load(confmap.Provider(defs, "."), nil); err != nil {
		return render.Options{}, reyes.IdentityOptions{}, fmt.Errorf("%w: defaults: %w", reyes.ErrConfig, err)
	}
	if err := k.Load(confmap.Provider(p.set, "\x00"), nil); err != nil {
		return render.Options{}, reyes.IdentityOptions{}, fmt.Errorf("%w: flags: %w", reyes.ErrConfig, err)
	}
	var c planConfig
	if err := unmarshalConfig(k, &c); err != nil {
		return render.Options{}, reyes.IdentityOptions{}, err
	}
	return c.plan(false)
}

func parsePrefixes(key string, ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %q is not a CIDR", reyes.ErrConfig, key, s)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%w: %s: %s has host bits set (did you mean %s?)", reyes.ErrConfig, key, p, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

// parseFailSafe parses CIDR, CIDR/tcp/PORT or CIDR/udp/PORT.
func parseFailSafe(s string) (render.FailSafe, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 2 && len(parts) != 4 {
		return render.FailSafe{}, fmt.Errorf("%q is not CIDR or CIDR/tcp|udp/PORT", s)
	}
	p, err := netip.ParsePrefix(parts[0] + "/" + parts[1])
	if err != nil || p.Masked() != p {
		return render.FailSafe{}, fmt.Errorf("%q does not start with a CIDR without host bits", s)
	}
	fs := render.FailSafe{Source: p, Protocol: ruleset.ProtoAll}
	if len(parts) == 4 {
		switch parts[2] {
		case "tcp":
			fs.Protocol = ruleset.ProtoTCP
		case "udp":
			fs.Protocol = ruleset.ProtoUDP
		default:
			return render.FailSafe{}, fmt.Errorf("%q: protocol %q is not tcp or udp", s, parts[2])
		}
		port, err := strconv.ParseUint(parts[3], 10, 16)
		if err != nil || port == 0 {
			return render.FailSafe{}, fmt.Errorf("%q: %q is not a port 1-65535", s, parts[3])
		}
		fs.Port = uint16(port)
	}
	return fs, nil
}

// baseline builds the baseline options; the guarded interface defaults to
// the one of the default route.
func (c *planConfig) baseline(local bool) (*render.Baseline, error) {
	b := &render.Baseline{Interface: c.BaselineInterface, AllowEchoRequest: c.BaselineAllowEcho, KeepForward: c.BaselineKeepForward}
	var err error
	if b.InboundTCP, err = parsePorts("baseline_tcp_ports", c.BaselineTCPPorts); err != nil {
		return nil, err
	}
	if b.OutboundTCP, err = parsePorts("baseline_outbound_tcp", c.BaselineOutboundTCP); err != nil {
		return nil, err
	}
	if b.OutboundUDP, err = parsePorts("baseline_outbound_udp", c.BaselineOutboundUDP); err != nil {
		return nil, err
	}
	switch c.BaselineOutbound {
	case "accept":
	case "restrict":
		b.Outbound = render.OutboundRestrict
	default:
		return nil, fmt.Errorf("%w: baseline_outbound: %q is not accept or restrict", reyes.ErrConfig, c.BaselineOutbound)
	}
	if !local {
		if b.Interface == "" {
			b.Interface = "eth0"
		}
		return b, nil
	}
	if b.Interface != "" {
		if _, err := net.InterfaceByName(b.Interface); err != nil {
			return nil, fmt.Errorf("%w: baseline_interface: %q: %w (a missing interface would leave the baseline guarding nothing)", reyes.ErrConfig, b.Interface, err)
		}
	}
	if b.Interface == "" {
		iface, err := route.DefaultInterface(route.ProcNetRoute)
		if err != nil {
			return nil, fmt.Errorf("%w: baseline_interface: not given, and %w", reyes.ErrConfig, err)
		}
		b.Interface = iface
	}
	return b, nil
}

func parsePorts(key string, ss []string) ([]uint16, error) {
	out := []uint16{}
	for _, s := range ss {
		p, err := strconv.ParseUint(s, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%w: %s: %q is not a port 1-65535", reyes.ErrConfig, key, s)
		}
		out = append(out, uint16(p))
	}
	return out, nil
}
