package render

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Packet is one packet arriving at the host, as Decide sees it.
type Packet struct {
	Src, Dst netip.Addr
	// Protocol is the IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6).
	Protocol int
	// Port is the destination port of TCP and UDP.
	Port int
	// ICMPType and ICMPCode of ICMP and ICMPv6.
	ICMPType, ICMPCode int
	// IPsec is set when the packet arrived over IPsec (decapsulated with
	// an inbound policy).
	IPsec bool
	// Established is set when the packet belongs to a connection that
	// conntrack already knows (RELATED or ESTABLISHED).
	Established bool
	// InIface is the interface the packet came in on; "lo" is loopback.
	InIface string
	// OutIface is the interface it leaves on (Hook OUTPUT or FORWARD).
	OutIface string
	// TCPFlags are the packet's TCP flags (FIN, SYN, ...). Zero means an
	// ordinary packet: SYN when it opens a connection, ACK when Established.
	// A packet with none of the six flags (a null scan) is CWR alone.
	TCPFlags uint8
	// Related and Invalid are other conntrack states (Established takes
	// RELATED too; these are for finer questions).
	Related, Invalid bool
	// Hook is the built-in chain the packet traverses: "" or "INPUT" for
	// packets to the host, "OUTPUT" for packets it sends, "FORWARD".
	Hook string
}

// Verdict is what the rendered policy does with a packet.
type Verdict struct {
	Action Outcome
	// Chain and Index (1-based) locate the deciding rule; Index is 0 when
	// the packet ran off the end of reyes' chains.
	Chain string
	Index int
	// Rule is the deciding rule as restore text ("-A CHAIN ..."), empty
	// when no rule decided.
	Rule string
	// Comment is the deciding rule's comment, which names the security
	// group and rule for security group verdicts.
	Comment string
	// Path lists the chains the packet went through.
	Path []string
}

// Outcome is the kind of a verdict.
type Outcome int

const (
	// Pass: not reyes' business; the packet goes on to the host's other
	// rules untouched (in exclusive mode, to INPUT's ACCEPT policy).
	Pass Outcome = iota
	// Allowed by reyes: a security group rule, an established connection,
	// loopback or a fail-safe rule. In shared mode the host's own INPUT
	// rules still see the packet after reyes.
	Allowed
	// Dropped by reyes.
	Dropped
	// Rejected by reyes (the baseline's default): dropped, with an ICMP
	// port unreachable sent back.
	Rejected
)

// String returns "pass", "allow" or "drop".
func (o Outcome) String() string {
	switch o {
	case Allowed:
		return "allow"
	case Dropped:
		return "drop"
	case Rejected:
		return "reject"
	}
	return "pass"
}

// ErrPacket is returned by Decide for a packet it cannot judge.
var ErrPacket = errors.New("invalid packet")

// Decide says what the plan does with one packet, and which rule decides,
// by walking the plan's chains as netfilter does (jump, goto, return; set
// matches against the plan's set members). It does not model the host's
// other rules: in shared mode a packet reyes allows or passes still meets
// them. A plan that fails Validate (a zero Rule, say) is refused with an
// error wrapping ErrInvalidRule.
func Decide(plan *Plan, pkt Packet) (Verdict, error) {
	if !pkt.Src.IsValid() || !pkt.Dst.IsValid() || pkt.Src.Is4() != pkt.Dst.Is4() {
		return Verdict{}, fmt.Errorf("%w: source %v and destination %v must be valid addresses of one family", ErrPacket, pkt.Src, pkt.Dst)
	}
	pkt.Src, pkt.Dst = pkt.Src.Unmap(), pkt.Dst.Unmap()
	if pkt.Src.Is4() != pkt.Dst.Is4() {
		return Verdict{}, fmt.Errorf("%w: mixed families", ErrPacket)
	}
	fp := &plan.V4
	if pkt.Src.Is6() {
		fp = &plan.V6
	}
	return fp.Decide(pkt)
}

// Decide is Decide for one family's plan.
func (fp *FamilyPlan) Decide(pkt Packet) (Verdict, error) {
	// A plan the kernel would not run as written (a zero Rule, port 0...)
	// has no honest answer.
	if err := fp.Validate(); err != nil {
		return Verdict{}, err
	}
	chains := make(map[string]*Chain, len(fp.Chains))
	for i := range fp.Chains {
		chains[fp.Chains[i].Name] = &fp.Chains[i]
	}
	sets := make(map[string]*Set, len(fp.Sets))
	for i := range fp.Sets {
		sets[fp.Sets[i].Name] = &fp.Sets[i]
	}
	type frame struct {
		chain *Chain
		next  int
	}
	hook := pkt.Hook
	if hook == "" {
		hook = "INPUT"
	}
	var start *Chain
	for _, h := range fp.Hooks {
		if h.Builtin == hook {
			start = chains[h.Chain]
		}
	}
	if start == nil {
		if hook == "INPUT" {
			return Verdict{}, fmt.Errorf("plan has no %s chain", InputChain)
		}
		// reyes does not hook this chain: not its business.
		return fp.verdict(Verdict{}, Pass, nil, "", 0), nil
	}
	var v Verdict
	var decider *Rule
	var dChain string
	var dIndex int
	// The stack holds return points; INPUT itself is the empty stack.
	stack := []frame{}
	cur, i := start, 0
	v.Path = append(v.Path, cur.Name)
	for steps := 0; ; steps++ {
		if steps > 1<<20 {
			return Verdict{}, errors.New("plan loops")
		}
		if i >= len(cur.Rules) {
			// End of chain: return to the caller.
			if len(stack) == 0 {
				break
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			cur, i = top.chain, top.next
			continue
		}
		r := &cur.Rules[i]
		i++
		if !fp.matches(&r.Match, pkt, sets) {
			continue
		}
		verdictChain := cur.Name == AllowChain || cur.Name == DropChain || cur.Name == SpoofLogChain
		if !verdictChain && r.Action.Kind != Log && r.Action.Kind != NoAction {
			decider, dChain, dIndex = r, cur.Name, i
		}
		switch r.Action.Kind {
		case Log, NoAction:
			continue
		case Accept:
			return fp.verdict(v, Allowed, decider, dChain, dIndex), nil
		case Drop:
			return fp.verdict(v, Dropped, decider, dChain, dIndex), nil
		case Reject:
			return fp.verdict(v, Rejected, decider, dChain, dIndex), nil
		case Return:
			if len(stack) == 0 {
				out := Pass
				if r.Allow {
					out = Allowed
				}
				return fp.verdict(v, out, decider, dChain, dIndex), nil
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			cur, i = top.chain, top.next
		case Jump, Goto:
			next := chains[r.Action.Chain]
			if next == nil {
				return Verdict{}, fmt.Errorf("rule %d of %s jumps to unknown chain %s", i, cur.Name, r.Action.Chain)
			}
			if r.Action.Kind == Jump {
				stack = append(stack, frame{cur, i})
			}
			cur, i = next, 0
			v.Path = append(v.Path, cur.Name)
		}
	}
	return fp.verdict(v, Pass, nil, "", 0), nil
}

func (fp *FamilyPlan) verdict(v Verdict, o Outcome, r *Rule, chain string, idx int) Verdict {
	v.Action = o
	if r != nil {
		v.Chain, v.Index, v.Comment = chain, idx, r.Comment
		v.Rule = "-A " + chain + " " + r.String(fp.Family)
	}
	return v
}

func (fp *FamilyPlan) matches(m *Match, p Packet, sets map[string]*Set) bool {
	if m.InIface != "" && (m.InIface == p.InIface) == m.InIfaceNeg {
		return false
	}
	if m.OutIface != "" && (m.OutIface == p.OutIface) == m.OutIfaceNeg {
		return false
	}
	if m.Established && !p.Established && !p.Related {
		return false
	}
	if m.State != "" && !stateMatches(m.State, p) {
		return false
	}
	if m.IPsecIn && !p.IPsec {
		return false
	}
	if m.Src.IsValid() && m.Src.Contains(p.Src) == m.SrcNeg {
		return false
	}
	if m.Dst.IsValid() && !m.Dst.Contains(p.Dst) {
		return false
	}
	if m.SrcSet != "" {
		if s := sets[m.SrcSet]; s == nil || !s.Contains(p.Src) {
			return false
		}
	}
	if m.Protocol >= 0 {
		if m.Protocol != p.Protocol {
			return false
		}
		if (m.Protocol == 6 || m.Protocol == 17) && m.DPortFrom >= 0 && (p.Port < m.DPortFrom || p.Port > m.DPortTo) {
			return false
		}
		if m.Protocol == 6 && m.TCPFlagsMask != 0 && tcpFlags(p)&m.TCPFlagsMask != m.TCPFlagsComp {
			return false
		}
		// As the kernel does, an IPv4 icmp match of type 255 is any type.
		if (m.Protocol == 1 && fp.Family == IPv4 && m.ICMPType != 255 || m.Protocol == 58 && fp.Family == IPv6) && m.ICMPType >= 0 {
			if p.ICMPType != m.ICMPType || (m.ICMPCode >= 0 && p.ICMPCode != m.ICMPCode) {
				return false
			}
		}
	}
	// A rate limit (Limit) only decides whether a LOG rule logs; it never
	// changes the verdict.
	return true
}

// tcpFlags are the packet's flags, with the zero value read as an
// ordinary SYN (new connection) or ACK (established).
func tcpFlags(p Packet) uint8 {
	switch {
	case p.TCPFlags != 0:
		return p.TCPFlags
	case p.Established:
		return ACK
	}
	return SYN
}

// stateMatches reports whether the packet's conntrack state is one of the
// comma-separated states.
func stateMatches(states string, p Packet) bool {
	var st string
	switch {
	case p.Invalid:
		st = "INVALID"
	case p.Related:
		st = "RELATED"
	case p.Established:
		st = "ESTABLISHED"
	default:
		st = "NEW"
	}
	for _, s := range strings.Split(states, ",") {
		if s == st {
			return true
		}
	}
	return false
}
