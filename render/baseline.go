package render

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/reyes-fw/reyes/ruleset"
)

// Baseline is the host baseline: the "starter moat" of
// secure-linux-instances.md (ICMP handling, anti-spoofing, bad TCP flags,
// loopback, established traffic, a few inbound ports, rate-limited logging
// of what is denied, default reject, no forwarding), rendered into reyes'
// own chains after the security-group mirror. A packet must pass both.
//
// Corrections to the seed: `! -i lo` instead of `-i ! lo`; no `-i` on
// OUTPUT paths (`-o` instead); conntrack instead of state; every LOG rule is
// rate-limited (a flood of bad packets must not become a flood of logs);
// RELATED ICMP errors may leave the host (path MTU discovery needs them);
// the RFC 1918 and link-local drops spare the host's VPC, the foreign ranges
// that reyes filters by security group, and AWS' link-local services (IMDS,
// DNS, NTP at 169.254.169.0/24, ECS at 169.254.170.0/24); INVALID packets
// are dropped. The log prefixes are the seed's, so log searches keep
// working.
type Baseline struct {
	// InboundTCP are the TCP ports open to new connections (after the
	// security-group mirror). Nil means DefaultInboundTCP; empty opens none.
	InboundTCP []uint16
	// Interface is the interface the baseline guards, normally the one of
	// the default route (the caller finds it; render reads no system
	// state). Empty guards every interface but loopback.
	Interface string
	// AllowEchoRequest lets ICMP echo requests (ping) in; the seed drops
	// them.
	AllowEchoRequest bool
	// Outbound is the policy for traffic the host sends: OutboundAccept
	// (the seed's) or OutboundRestrict.
	Outbound OutboundPolicy
	// OutboundTCP and OutboundUDP are the ports the host may connect to
	// under OutboundRestrict. Nil means DefaultOutboundTCP / UDP. The
	// store (S3 over 443) and IMDS must stay reachable.
	OutboundTCP, OutboundUDP []uint16
	// KeepForward leaves FORWARD alone; by default the baseline rejects
	// forwarding ("forwarding is evil"), which breaks containers that
	// route through the host.
	KeepForward bool
}

// OutboundPolicy says what the baseline does with traffic the host sends.
type OutboundPolicy int

const (
	// OutboundAccept accepts everything the host sends (after the
	// anti-spoofing and ICMP checks), as the seed does.
	OutboundAccept OutboundPolicy = iota
	// OutboundRestrict accepts established traffic, loopback, ICMP as
	// above, and new connections to Baseline.OutboundTCP/UDP ports only.
	OutboundRestrict
)

// Defaults of the baseline, as the seed has them.
var (
	// DefaultInboundTCP: ssh, http, https.
	DefaultInboundTCP = []uint16{22, 80, 443}
	// DefaultOutboundTCP: http, https (S3, package mirrors).
	DefaultOutboundTCP = []uint16{80, 443}
	// DefaultOutboundUDP: DNS, NTP.
	DefaultOutboundUDP = []uint16{53, 123}
)

// Names of the baseline's chains.
const (
	OutputChain   = "REYES-OUTPUT"
	ForwardChain  = "REYES-FORWARD"
	SGChain       = "REYES-SG"
	BaseInChain   = "REYES-BASE-IN"
	ICMPInChain   = "REYES-ICMP-IN"
	ICMPOutChain  = "REYES-ICMP-OUT"
	SpoofInChain  = "REYES-SPOOF-IN"
	SpoofOutChain = "REYES-SPOOF-OUT"
	SpoofLogChain = "REYES-SPOOF-DROP"
	BadTCPChain   = "REYES-BAD-TCP"
)

// The seed's log prefixes.
const (
	LogSpoofed = "IPT: spoofed "
	LogDenied  = "IPT: denied "
)

// badFlags are the seed's bad TCP flag combinations, with their log
// prefixes: impossible or probing combinations, and flags that need an ACK.
// The whole-mask patterns come first, unlike in the seed, so that a Xmas or
// null scan is counted on the rule that names it (in the seed's order the
// FIN-without-ACK rule catches a Xmas packet before its own rule does).
var badFlags = []struct {
	mask, comp uint8
	prefix     string
}{
	{AllFlags, 0, "IPT: Null flag "},
	{AllFlags, AllFlags, "IPT: All flags "},
	{AllFlags, FIN | URG | PSH, "IPT: Xmas flags "},
	{AllFlags, SYN | RST | ACK | FIN | URG, "IPT: Merry Xmas flags "},
	{SYN | FIN, SYN | FIN, "IPT: Bad SF flag "},
	{SYN | RST, SYN | RST, "IPT: Bad SR flag "},
	{SYN | FIN | PSH, SYN | FIN | PSH, "IPT: Bad SFP flag "},
	{SYN | FIN | RST, SYN | FIN | RST, "IPT: Bad SFR flag "},
	{SYN | FIN | RST | PSH, SYN | FIN | RST | PSH, "IPT: Bad SFRP flag "},
	{ACK | FIN, FIN, "IPT: Bad F-A flag "},
	{ACK | PSH, PSH, "IPT: Bad P-A flag "},
	{ACK | URG, URG, "IPT: Bad U-A flag "},
}

// bogons4 are the seed's spoofed IPv4 sources (RFC 3330 and friends).
var bogons4 = []string{
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", // RFC 1918: see the exceptions
	"198.18.0.0/15", "169.254.0.0/16", "192.0.2.0/24", // benchmarking, link-local, TEST-NET
	"224.0.0.0/4", "240.0.0.0/4", // multicast, reserved
	"127.0.0.0/8", "0.0.0.0/8", "255.255.255.255/32", // loopback, "this network", broadcast
}

// bogons6 are their IPv6 counterparts. Link-local (fe80::/10) and the
// unspecified address are not among them: neighbour discovery uses them.
var bogons6 = []string{
	"::1/128", "::ffff:0:0/96", "2001:db8::/32", "ff00::/8",
}

// awsLinkLocal are AWS services on link-local addresses that must stay
// reachable: IMDS, DNS and NTP (169.254.169.0/24), ECS (169.254.170.0/24).
var awsLinkLocal = []string{"169.254.169.0/24", "169.254.170.0/24"}

func mustPrefixes(ss []string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func checkBaseline(b *Baseline) error {
	if b.Outbound != OutboundAccept && b.Outbound != OutboundRestrict {
		return fmt.Errorf("%w: baseline: unknown outbound policy %d", ErrOptions, b.Outbound)
	}
	if b.Interface != "" && !validIface(b.Interface) {
		return fmt.Errorf("%w: baseline: %q is not an interface name", ErrOptions, b.Interface)
	}
	for _, ports := range [][]uint16{b.InboundTCP, b.OutboundTCP, b.OutboundUDP} {
		if slices.Contains(ports, 0) {
			return fmt.Errorf("%w: baseline: port 0", ErrOptions)
		}
	}
	return nil
}

// validIface accepts Linux interface names (1-15 bytes, no slash, space,
// colon or quote), so a name can never change the meaning of a rule.
func validIface(s string) bool {
	if len(s) == 0 || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '@') {
			return false
		}
	}
	return true
}

// baseline adds the baseline's chains and hooks to a family plan whose
// security-group mirror was rendered into SGChain.
func (r *renderer) baseline(fp *FamilyPlan) {
	b := r.opts.Baseline
	v6 := r.fam == IPv6
	icmp := 1
	if v6 {
		icmp = 58
	}
	// in matches the guarded interface: the given one, or anything but lo.
	in := func(m *Match) {
		if b.Interface != "" {
			m.InIface = b.Interface
		} else {
			m.InIface, m.InIfaceNeg = "lo", true
		}
	}
	out := func(m *Match) {
		if b.Interface != "" {
			m.OutIface = b.Interface
		} else {
			m.OutIface, m.OutIfaceNeg = "lo", true
		}
	}
	rule := func(f func(*Match), a Action, comment string) Rule {
		return Rule{Match: anyMatch(f), Action: a, Comment: comment}
	}
	accept, drop, ret := Action{Kind: Accept}, Action{Kind: Drop}, Action{Kind: Return}
	logAction := func(prefix string) Action { return Action{Kind: Log, LogPrefix: prefix} }
	var hostAddrs []netip.Addr
	for _, n := range r.host.Interfaces {
		for _, a := range n.Addrs {
			if r.inFamily(a) {
				hostAddrs = append(hostAddrs, a)
			}
		}
	}
	slices.SortFunc(hostAddrs, netip.Addr.Compare)
	hostAddrs = slices.Compact(hostAddrs)

	// ICMP in: echo requests dropped (unless allowed), replies and errors
	// only for what the host started, everything else dropped. Allowed
	// ICMP returns, so that the anti-spoofing checks still see it.
	icmpIn := Chain{Name: ICMPInChain}
	icmpType := func(t int) func(*Match) { return func(m *Match) { m.Protocol = icmp; m.ICMPType = t } }
	if v6 {
		for _, t := range []int{133, 134, 135, 136} {
			icmpIn.Rules = append(icmpIn.Rules, rule(icmpType(t), ret, "neighbour discovery"))
		}
	}
	echoReq, echoRep, errs := 8, 0, []int{3, 11}
	if v6 {
		echoReq, echoRep, errs = 128, 129, []int{1, 2, 3, 4}
	}
	if b.AllowEchoRequest {
		icmpIn.Rules = append(icmpIn.Rules, rule(icmpType(echoReq), ret, "echo request allowed"))
	} else {
		icmpIn.Rules = append(icmpIn.Rules, rule(icmpType(echoReq), drop, "echo request"))
	}
	for _, t := range append([]int{echoRep}, errs...) {
		t := t
		icmpIn.Rules = append(icmpIn.Rules, rule(func(m *Match) { icmpType(t)(m); in(m); m.Established = true }, ret, "reply to the host"))
	}
	icmpIn.Rules = append(icmpIn.Rules, rule(func(m *Match) { m.Protocol = icmp; in(m) }, drop, "any other ICMP"))

	// Anti-spoofing, in: the host's own addresses from outside, then the
	// bogons, sparing the VPC, the foreign ranges and AWS' link-local
	// services.
	spoofLog := Chain{Name: SpoofLogChain, Rules: []Rule{
		rule(func(m *Match) { m.Limit = true }, logAction(LogSpoofed), ""),
		rule(nil, drop, "spoofed source"),
	}}
	spoofIn := Chain{Name: SpoofInChain}
	toLog := Action{Kind: Goto, Chain: SpoofLogChain}
	for _, a := range hostAddrs {
		a := a
		spoofIn.Rules = append(spoofIn.Rules, rule(func(m *Match) { in(m); m.Src = netip.PrefixFrom(a, a.BitLen()) }, toLog, "own address from outside"))
	}
	var spare []netip.Prefix
	for _, c := range r.host.VPCCIDRs {
		if r.inFamily(c.Addr()) {
			spare = append(spare, c)
		}
	}
	foreign := r.opts.ForeignCIDRs
	if foreign == nil {
		foreign = DefaultForeignCIDRs
	}
	for _, c := range foreign {
		if r.inFamily(c.Addr()) {
			spare = append(spare, c)
		}
	}
	if !v6 {
		spare = append(spare, mustPrefixes(awsLinkLocal)...)
	}
	for _, c := range ruleset.SortedPrefixes(spare) {
		if c.Bits() == 0 {
			continue // a /0 spares everything: the bogon drops below never match
		}
		c := c
		spoofIn.Rules = append(spoofIn.Rules, rule(func(m *Match) { m.Src = c }, ret, "VPC, foreign range or AWS service"))
	}
	bogons := bogons4
	if v6 {
		bogons = bogons6
	}
	for _, c := range mustPrefixes(bogons) {
		c := c
		spoofIn.Rules = append(spoofIn.Rules, rule(func(m *Match) { in(m); m.Src = c }, toLog, "bogon source "+c.String()))
	}

	// Anti-spoofing, out: the host sends only from its own addresses (and,
	// for IPv6, link-local and unspecified ones, which ND uses).
	spoofOut := Chain{Name: SpoofOutChain}
	if len(hostAddrs) > 0 {
		own := hostAddrs
		var extra []netip.Prefix
		if v6 {
			extra = mustPrefixes([]string{"::/128", "fe80::/10"})
		}
		for _, a := range own {
			a := a
			spoofOut.Rules = append(spoofOut.Rules, rule(func(m *Match) { out(m); m.Src = netip.PrefixFrom(a, a.BitLen()) }, ret, "own address"))
		}
		for _, c := range extra {
			c := c
			spoofOut.Rules = append(spoofOut.Rules, rule(func(m *Match) { out(m); m.Src = c }, ret, "link-local"))
		}
		spoofOut.Rules = append(spoofOut.Rules, rule(out, toLog, "not an address of this host"))
	}

	// Bad TCP flags: log and drop, each combination on its own rule so its
	// counter names it.
	badTCP := Chain{Name: BadTCPChain}
	for _, f := range badFlags {
		f := f
		match := func(m *Match) { m.Protocol = 6; m.TCPFlagsMask, m.TCPFlagsComp = f.mask, f.comp }
		badTCP.Rules = append(badTCP.Rules,
			rule(func(m *Match) { match(m); m.Limit = true }, logAction(f.prefix), ""),
			rule(match, drop, "bad TCP flags "+flagNames(f.mask)+" "+flagNames(f.comp)))
	}

	// Inbound.
	baseIn := Chain{Name: BaseInChain}
	baseIn.Rules = append(baseIn.Rules,
		rule(func(m *Match) { m.Protocol = icmp }, Action{Kind: Jump, Chain: ICMPInChain}, ""),
		rule(nil, Action{Kind: Jump, Chain: SpoofInChain}, ""),
		rule(func(m *Match) { m.Protocol = 6 }, Action{Kind: Jump, Chain: BadTCPChain}, ""),
		rule(func(m *Match) { m.InIface = "lo" }, accept, "loopback"),
	)
	loopNet := netip.MustParsePrefix("127.0.0.0/8")
	if v6 {
		loopNet = netip.MustParsePrefix("::1/128")
	}
	baseIn.Rules = append(baseIn.Rules, rule(func(m *Match) { m.InIface, m.InIfaceNeg = "lo", true; m.Dst = loopNet }, Action{Kind: Reject}, "loopback address not on lo"))
	if v6 {
		for _, t := range []int{133, 134, 135, 136} {
			baseIn.Rules = append(baseIn.Rules, rule(icmpType(t), accept, "neighbour discovery"))
		}
	}
	// DHCPv6 replies: a renewal goes to a multicast group and the answer
	// comes from a link-local server address, which conntrack does not tie
	// to the request; rejecting it would lose the host's address at the
	// end of its lease. (An IPv4 DHCP renewal is unicast, and its reply is
	// ESTABLISHED.)
	if v6 {
		fe80 := netip.MustParsePrefix("fe80::/10")
		baseIn.Rules = append(baseIn.Rules, rule(func(m *Match) { m.Src = fe80; m.Protocol = 17; m.DPortFrom, m.DPortTo = 546, 546 }, accept, "DHCPv6 replies"))
	}
	baseIn.Rules = append(baseIn.Rules,
		rule(func(m *Match) { m.Established = true }, accept, "established"),
		rule(func(m *Match) { m.State = "INVALID" }, drop, "invalid"),
	)
	if b.AllowEchoRequest {
		baseIn.Rules = append(baseIn.Rules, rule(icmpType(echoReq), accept, "echo request"))
	}
	ports := b.InboundTCP
	if ports == nil {
		ports = DefaultInboundTCP
	}
	for _, p := range ports {
		p := int(p)
		baseIn.Rules = append(baseIn.Rules, rule(func(m *Match) {
			m.Protocol = 6
			m.DPortFrom, m.DPortTo = p, p
			m.State = "NEW"
		}, accept, "inbound tcp/"+strconv.Itoa(p)))
	}
	baseIn.Rules = append(baseIn.Rules,
		rule(func(m *Match) { m.Limit = true }, Action{Kind: Log, LogPrefix: LogDenied, LogLevel: 7}, ""),
		rule(nil, Action{Kind: Reject}, "not explicitly permitted"),
	)

	// ICMP out: errors and replies for traffic the host answers, echo
	// requests; nothing else.
	icmpOut := Chain{Name: ICMPOutChain}
	if v6 {
		for _, t := range []int{133, 134, 135, 136} {
			icmpOut.Rules = append(icmpOut.Rules, rule(icmpType(t), ret, "neighbour discovery"))
		}
	}
	icmpOut.Rules = append(icmpOut.Rules,
		rule(func(m *Match) { m.Protocol = icmp; out(m); m.Established = true }, ret, "errors and replies"),
		rule(func(m *Match) { icmpType(echoReq)(m); out(m); m.State = "NEW" }, ret, "echo request"),
		rule(func(m *Match) { m.Protocol = icmp; out(m) }, drop, "any other ICMP"),
	)

	output := Chain{Name: OutputChain}
	output.Rules = append(output.Rules, rule(func(m *Match) { m.Protocol = icmp }, Action{Kind: Jump, Chain: ICMPOutChain}, ""))
	if len(spoofOut.Rules) > 0 {
		output.Rules = append(output.Rules, rule(nil, Action{Kind: Jump, Chain: SpoofOutChain}, ""))
	}
	if b.Outbound == OutboundRestrict {
		output.Rules = append(output.Rules,
			rule(func(m *Match) { m.OutIface = "lo" }, accept, "loopback"),
			rule(func(m *Match) { m.Established = true }, accept, "established"),
			rule(func(m *Match) { m.Protocol = icmp }, accept, "ICMP checked above"),
		)
		tcp, udp := b.OutboundTCP, b.OutboundUDP
		if tcp == nil {
			tcp = DefaultOutboundTCP
		}
		if udp == nil {
			udp = DefaultOutboundUDP
		}
		for _, pp := range []struct {
			proto int
			ports []uint16
		}{{6, tcp}, {17, udp}} {
			for _, p := range pp.ports {
				p, proto := int(p), pp.proto
				output.Rules = append(output.Rules, rule(func(m *Match) { m.Protocol = proto; m.DPortFrom, m.DPortTo = p, p }, accept, "outbound "+protoName(proto, r.fam)+"/"+strconv.Itoa(p)))
			}
		}
		if !v6 {
			imds := netip.MustParsePrefix("169.254.169.254/32")
			output.Rules = append(output.Rules, rule(func(m *Match) { m.Dst = imds }, accept, "instance metadata"))
		}
		output.Rules = append(output.Rules,
			rule(func(m *Match) { m.Limit = true }, Action{Kind: Log, LogPrefix: LogDenied, LogLevel: 7}, ""),
			rule(nil, Action{Kind: Reject}, "outbound not permitted"))
	} else {
		output.Rules = append(output.Rules, rule(nil, accept, "outbound"))
	}

	chains := []Chain{baseIn, icmpIn, spoofIn, spoofLog, badTCP, output, icmpOut}
	if len(spoofOut.Rules) > 0 {
		chains = append(chains, spoofOut)
	}
	fp.Hooks = append(fp.Hooks, Hook{Builtin: "OUTPUT", Chain: OutputChain})
	if !b.KeepForward {
		chains = append(chains, Chain{Name: ForwardChain, Rules: []Rule{rule(nil, Action{Kind: Reject}, "no forwarding")}})
		fp.Hooks = append(fp.Hooks, Hook{Builtin: "FORWARD", Chain: ForwardChain})
	}
	fp.Chains = append(fp.Chains, chains...)
}
