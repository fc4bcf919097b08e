package render

import (
	"net/netip"
	"slices"
)

// Mode says which traffic reyes filters.
type Mode int

const (
	// ModeVPC filters traffic from the foreign ranges that is not from the
	// host's own VPC CIDRs.
	ModeVPC Mode = iota
	// ModeIPsec filters only traffic that arrived over IPsec
	// (-m policy --dir in --pol ipsec).
	ModeIPsec
)

// TableMode says how much of the filter table reyes owns.
type TableMode int

const (
	// TableShared: reyes owns only its REYES-* chains and one jump at the
	// top of INPUT; the text loads with iptables-restore --noflush.
	TableShared TableMode = iota
	// TableExclusive: reyes writes the whole filter table, as the original
	// tool did. Every other rule is discarded.
	TableExclusive
)

// Family is an address family.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// DefaultForeignCIDRs are the foreign ranges filtered in ModeVPC when
// Options.ForeignCIDRs is nil.
var DefaultForeignCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}

// Options choose how a ruleset is rendered. The zero value is the default:
// vpc mode, shared table, foreign range 10.0.0.0/8, no logging.
type Options struct {
	Mode  Mode
	Table TableMode
	// ForeignCIDRs are the ranges filtered in ModeVPC (both families may
	// be given). Nil means DefaultForeignCIDRs; an empty non-nil slice
	// filters nothing.
	ForeignCIDRs []netip.Prefix
	// LogAccept and LogDrop add rate-limited LOG rules ("reyes accept: ",
	// "reyes drop: ").
	LogAccept, LogDrop bool
	// FailSafe lists traffic always allowed before any reyes rule, so that
	// reyes can never cut a host off its administrators or its store.
	FailSafe []FailSafe
	// Baseline, if not nil, adds the host baseline after the security-group
	// mirror: a packet must pass both. See Baseline.
	Baseline *Baseline
}

// FailSafe is traffic that reyes always lets through.
type FailSafe struct {
	// Source is the allowed source prefix; the zero Prefix means any.
	Source netip.Prefix
	// Protocol is ruleset.ProtoAll, ProtoTCP or ProtoUDP.
	Protocol int
	// Port is the destination port; 0 means all ports.
	Port uint16
}

// Host is the host's view of itself: which interfaces (ENIs) it has, their
// addresses and groups, and the CIDRs of its own VPC.
type Host struct {
	// Interfaces of the host. With more than one, rules are scoped per
	// interface by destination address. An interface without addresses
	// (groups given by the operator) applies its groups to all traffic.
	Interfaces []HostInterface
	// VPCCIDRs are the host's own VPC CIDR blocks: in ModeVPC traffic from
	// them is not reyes' business.
	VPCCIDRs []netip.Prefix
}

// HostInterface is one of the host's network interfaces.
type HostInterface struct {
	ID     string
	Addrs  []netip.Addr
	Groups []string
}

// Plan is everything apply needs to load for one host: per family, the sets
// and the chains. A Plan is a value and safe for concurrent reads.
type Plan struct {
	Table TableMode
	V4    FamilyPlan
	V6    FamilyPlan
}

// Families returns the plans of both families, IPv4 first.
func (p *Plan) Families() []*FamilyPlan { return []*FamilyPlan{&p.V4, &p.V6} }

// FamilyPlan is the plan for one address family.
type FamilyPlan struct {
	Family Family
	Table  TableMode
	// Sets are the ipsets the rules refer to, sorted by name.
	Sets []Set
	// Chains are reyes' own chains, REYES-INPUT first.
	Chains []Chain
	// Hooks are the jumps from built-in chains, INPUT -> REYES-INPUT
	// first. Without the baseline that is the only one; the baseline adds
	// OUTPUT and, unless told not to, FORWARD.
	Hooks []Hook

	hash string
}

// Set is one ipset of security group members.
type Set struct {
	Name string
	// Group is the security group whose members the set holds.
	Group   string
	Family  Family
	Members []netip.Addr
	// Nets are the delegated prefixes of the group's interfaces (IPv4 /28,
	// IPv6 /80; never /0), sorted. A set with Nets is a hash:net set (see
	// Type); without, a hash:ip set as before.
	Nets []netip.Prefix
}

// Set types, as ipset names them.
const (
	SetHashIP  = "hash:ip"
	SetHashNet = "hash:net"
)

// Type is the ipset type of the set: hash:net when it holds delegated
// prefixes, else hash:ip.
func (s Set) Type() string {
	if len(s.Nets) > 0 {
		return SetHashNet
	}
	return SetHashIP
}

// Contains reports whether a is a member: one of Members, or inside one of
// Nets (as the kernel's set match decides).
func (s *Set) Contains(a netip.Addr) bool {
	if _, ok := slices.BinarySearchFunc(s.Members, a, netip.Addr.Compare); ok {
		return true
	}
	for _, p := range s.Nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Chain is one of reyes' chains and its rules in order.
type Chain struct {
	Name  string
	Rules []Rule
}

// Rule is one iptables rule in structured form. Text renders it as the
// arguments of an iptables-restore "-A" line.
type Rule struct {
	Match  Match
	Action Action
	// Allow marks a rule whose action lets the packet through as allowed
	// (an accept, or in shared mode a RETURN to the host's own rules), as
	// opposed to a RETURN for traffic that is not reyes' business. Decide
	// reads it; it does not appear in the text.
	Allow   bool
	Comment string
}

// Match is what a Rule matches. Zero addresses, interfaces, sets and flags
// match anything; Protocol, ports and ICMP type and code say "any" with -1,
// and their zero values (protocol 0, port 0) are refused by Rule.Validate
// rather than read as "any".
type Match struct {
	// InIface is the input interface ("lo"); InIfaceNeg negates it
	// ("! -i lo").
	InIface    string
	InIfaceNeg bool
	// OutIface is the output interface (OUTPUT and FORWARD paths);
	// OutIfaceNeg negates it.
	OutIface    string
	OutIfaceNeg bool
	// Established matches conntrack state RELATED,ESTABLISHED.
	Established bool
	// IPsecIn matches -m policy --dir in --pol ipsec.
	IPsecIn bool
	// State matches other conntrack states, as iptables writes them
	// ("NEW", "INVALID", "RELATED,ESTABLISHED").
	State  string
	Src    netip.Prefix // zero: any
	SrcNeg bool         // ! -s
	Dst    netip.Prefix // zero: any
	// SrcSet is an ipset matched against the source address.
	SrcSet string
	// Protocol is -1 for any, else the IP protocol number.
	Protocol int
	// DPortFrom..DPortTo is the destination port range (TCP, UDP); -1: any.
	DPortFrom, DPortTo int
	// ICMPType and ICMPCode match ICMP (ICMPv6 in IPv6); -1: any.
	ICMPType, ICMPCode int
	// TCPFlagsMask and TCPFlagsComp match --tcp-flags MASK COMP (TCP
	// only; a zero mask matches any flags).
	TCPFlagsMask, TCPFlagsComp uint8
	// Limit rate-limits the rule (for LOG).
	Limit bool
}

// ActionKind is what a Rule does when it matches.
type ActionKind int

const (
	// NoAction is the zero ActionKind: no target. Such a rule accepts
	// nothing (iptables counts its packets and goes on); Validate, and so
	// Render, Decide and apply, refuse it.
	NoAction ActionKind = iota
	Accept
	Drop
	Return
	Jump
	Goto
	Log
	// Reject answers with an ICMP port unreachable (ICMPv6 in IPv6).
	Reject
)

// Action is the target of a Rule.
type Action struct {
	Kind ActionKind
	// Chain is the target chain of Jump and Goto.
	Chain string
	// LogPrefix is the prefix of Log.
	LogPrefix string
	// LogLevel is the syslog level of Log; 0 means the default (warning).
	LogLevel int
}

// TCP flag bits, as --tcp-flags names them.
const (
	FIN uint8 = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	// ECE and CWR are outside iptables' ALL: a packet with only one of them
	// has none of the six flags ALL covers (a "null" packet to --tcp-flags).
	ECE
	CWR
	// AllFlags is iptables' ALL.
	AllFlags = FIN | SYN | RST | PSH | ACK | URG
)

// Hook is a jump from a built-in chain to one of reyes' chains, inserted
// first in the built-in chain.
type Hook struct {
	// Builtin is INPUT, OUTPUT or FORWARD.
	Builtin string
	// Chain is reyes' chain it jumps to.
	Chain string
}
