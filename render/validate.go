package render

import (
	"errors"
	"fmt"
)

// ErrInvalidRule is wrapped by the errors of Validate: a rule whose fields
// do not say one thing iptables can load as meant. The zero values are
// such rules: Rule{} has no target (it accepts nothing, and is refused
// here), Match{Protocol: 6} has port 0 where -1 means any port.
var ErrInvalidRule = errors.New("invalid rule")

// Validate checks the rule for the address family fam:
//
//   - Protocol is -1 (any) or 1..255: 0 is refused, since iptables reads
//     "-p 0" as every protocol;
//   - DPortFrom..DPortTo is -1..-1 (any), or 0 <= from <= to <= 65535 with
//     protocol tcp (6) or udp (17), but not port 0 alone (the zero value);
//   - ICMPType is -1 (any) or 0..255, ICMPCode -1 or 0..255 with a type,
//     both only with icmp (1, IPv4) or icmpv6 (58, IPv6);
//   - TCP flags only with tcp, the compared flags within the mask;
//   - negations only of something, addresses of the family;
//   - a target: the zero Action (NoAction) is refused, and Jump and Goto
//     name a chain.
func (r Rule) Validate(fam Family) error {
	m := r.Match
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidRule, fmt.Sprintf(format, a...))
	}
	tcpUDP := m.Protocol == 6 || m.Protocol == 17
	icmp := (m.Protocol == 1 && fam == IPv4) || (m.Protocol == 58 && fam == IPv6)
	switch {
	case m.Protocol == 0:
		return bad("protocol 0 (iptables reads it as every protocol): use -1 for any, or a protocol number 1..255")
	case m.Protocol < -1 || m.Protocol > 255:
		return bad("protocol %d is not -1 (any) or 1..255", m.Protocol)
	case m.DPortFrom == -1 && m.DPortTo == -1:
	case m.DPortTo == 0:
		return bad("destination port 0 (the zero value): use -1..-1 for any port")
	case m.DPortFrom < 0 || m.DPortTo < m.DPortFrom || m.DPortTo > 65535:
		return bad("destination ports %d..%d: want -1..-1 for any port, or a range within 0..65535", m.DPortFrom, m.DPortTo)
	case !tcpUDP:
		return bad("destination ports %d..%d with protocol %d: ports are for tcp and udp", m.DPortFrom, m.DPortTo, m.Protocol)
	}
	switch {
	case m.ICMPType == -1 && m.ICMPCode == -1:
	case m.ICMPType < 0 || m.ICMPType > 255 || m.ICMPCode < -1 || m.ICMPCode > 255:
		return bad("icmp type %d code %d: want -1 for any, or 0..255 (a code only with a type)", m.ICMPType, m.ICMPCode)
	case !icmp:
		return bad("icmp type %d code %d with protocol %d in IPv%d: want icmp in IPv4, icmpv6 (58) in IPv6", m.ICMPType, m.ICMPCode, m.Protocol, fam)
	}
	switch {
	case (m.TCPFlagsMask != 0 || m.TCPFlagsComp != 0) && m.Protocol != 6:
		return bad("tcp flags with protocol %d", m.Protocol)
	case m.TCPFlagsComp&^m.TCPFlagsMask != 0:
		return bad("tcp flags %s compared outside the mask %s", flagNames(m.TCPFlagsComp), flagNames(m.TCPFlagsMask))
	case m.SrcNeg && !m.Src.IsValid():
		return bad("a negated source without a source")
	case m.InIfaceNeg && m.InIface == "":
		return bad("a negated input interface without an interface")
	case m.OutIfaceNeg && m.OutIface == "":
		return bad("a negated output interface without an interface")
	case m.Src.IsValid() && m.Src.Addr().Is4() != (fam == IPv4):
		return bad("source %s in an IPv%d rule", m.Src, fam)
	case m.Dst.IsValid() && m.Dst.Addr().Is4() != (fam == IPv4):
		return bad("destination %s in an IPv%d rule", m.Dst, fam)
	}
	switch r.Action.Kind {
	case NoAction:
		return bad("no target (the zero Action): say Accept, Drop, Return, Jump, Goto, Log or Reject")
	case Jump, Goto:
		if r.Action.Chain == "" {
			return bad("jump or goto without a chain")
		}
	case Accept, Drop, Return, Log, Reject:
	default:
		return bad("unknown action %d", r.Action.Kind)
	}
	return nil
}

// Validate checks every rule of the plan with Rule.Validate. Render
// checks its plans; apply and Decide refuse a plan that fails. (Whether
// jumps and set matches name chains and sets of the plan is for apply and
// the kernel to say.)
func (fp *FamilyPlan) Validate() error {
	for _, c := range fp.Chains {
		for i, r := range c.Rules {
			if err := r.Validate(fp.Family); err != nil {
				return fmt.Errorf("IPv%d chain %s rule %d: %w", fp.Family, c.Name, i+1, err)
			}
		}
	}
	return nil
}

// Validate checks both families' plans.
func (p *Plan) Validate() error {
	for _, fp := range p.Families() {
		if err := fp.Validate(); err != nil {
			return err
		}
	}
	return nil
}
