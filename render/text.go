package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// Names of reyes' chains and the prefixes of its chains and sets.
const (
	ChainPrefix = "REYES-"
	InputChain  = "REYES-INPUT"
	FilterChain = "REYES-FILTER"
	AllowChain  = "REYES-ALLOW"
	DropChain   = "REYES-DROP"
	// SetPrefix4 and SetPrefix6 start the names of reyes' ipsets.
	SetPrefix4 = "reyes4-"
	SetPrefix6 = "reyes6-"
	// TempSuffix ends the temporary name a set is filled under before swap.
	TempSuffix = "-n"
	// Kernel limits on names (without the terminating NUL).
	MaxChainName = 28
	MaxSetName   = 31
	// MaxComment is the kernel's limit on a comment match.
	MaxComment = 255
)

// Log prefixes of the accept and drop rules.
const (
	LogAcceptPrefix = "reyes accept: "
	LogDropPrefix   = "reyes drop: "
)

// logLimit is the rate limit of LOG rules: the seed baseline's 60/min, as
// iptables-save prints it.
var logLimit = []string{"-m", "limit", "--limit", "1/sec", "--limit-burst", "100"}

// String returns "inet" or "inet6", as ipset names families.
func (f Family) String() string {
	if f == IPv6 {
		return "inet6"
	}
	return "inet"
}

// TempName is the name the set is filled under before it is swapped in.
func (s Set) TempName() string { return s.Name + TempSuffix }

// maxElem is the set's maxelem: room for its members, at least ipset's
// default, so that a later swap never fails for want of room.
func (s Set) maxElem() int {
	n := 65536
	for n < len(s.Members)+len(s.Nets) {
		n *= 2
	}
	return n
}

func (s Set) createLine(b *bytes.Buffer, name string) {
	b.WriteString("create ")
	b.WriteString(name)
	b.WriteByte(' ')
	b.WriteString(s.Type())
	b.WriteString(" family ")
	b.WriteString(s.Family.String())
	b.WriteString(" maxelem ")
	b.WriteString(strconv.Itoa(s.maxElem()))
	b.WriteString(" -exist\n")
}

// addLine appends the ipset-restore line that adds member to set.
func addLine(b *bytes.Buffer, set, member string) {
	b.WriteString("add ")
	b.WriteString(set)
	b.WriteByte(' ')
	b.WriteString(member)
	b.WriteByte('\n')
}

// writeRestore appends the ipset-restore script that fills the set under
// its temporary name, swaps it in and destroys the temporary set.
func (s Set) writeRestore(b *bytes.Buffer) {
	tmp := s.TempName()
	s.createLine(b, tmp)
	b.WriteString("flush ")
	b.WriteString(tmp)
	b.WriteByte('\n')
	for _, a := range s.Members {
		addLine(b, tmp, a.String())
	}
	for _, p := range s.Nets {
		addLine(b, tmp, p.String())
	}
	s.createLine(b, s.Name)
	b.WriteString("swap ")
	b.WriteString(tmp)
	b.WriteByte(' ')
	b.WriteString(s.Name)
	b.WriteByte('\n')
	b.WriteString("destroy ")
	b.WriteString(tmp)
	b.WriteByte('\n')
}

// RestoreText is the ipset-restore script for this set alone: fill the
// temporary set, swap it in, destroy the temporary set.
func (s Set) RestoreText() []byte {
	var b bytes.Buffer
	s.writeRestore(&b)
	return b.Bytes()
}

// Hash is a short hash of the set's name, family and members: equal hashes
// mean the set need not be touched.
func (s Set) Hash() string {
	h := sha256.New()
	h.Write([]byte(s.Name))
	h.Write([]byte{0, byte(s.Family)})
	for _, a := range s.Members {
		b, _ := a.MarshalBinary()
		h.Write(b)
	}
	if len(s.Nets) > 0 {
		// Only sets with prefixes hash them, so hash:ip sets keep the hash
		// they always had.
		h.Write([]byte("nets"))
		for _, p := range s.Nets {
			b, _ := p.MarshalBinary()
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// IpsetRestore is the ipset-restore script for every set of the plan.
func (fp *FamilyPlan) IpsetRestore() []byte {
	var b bytes.Buffer
	for _, s := range fp.Sets {
		s.writeRestore(&b)
	}
	return b.Bytes()
}

// IptablesRestore is the iptables-restore (ip6tables-restore for IPv6) text
// of the plan. In TableShared it declares and fills only reyes' chains and
// must be loaded with --noflush; the jump from INPUT is not in it (package
// apply inserts it once). In TableExclusive it is the whole filter table.
func (fp *FamilyPlan) IptablesRestore() []byte {
	var b bytes.Buffer
	b.WriteString("*filter\n")
	if fp.Table == TableExclusive {
		b.WriteString(":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	}
	for _, c := range fp.Chains {
		b.WriteString(":")
		b.WriteString(c.Name)
		b.WriteString(" - [0:0]\n")
	}
	if fp.Table == TableExclusive {
		for _, h := range fp.Hooks {
			b.WriteString("-A " + h.Builtin + " -j " + h.Chain + "\n")
		}
	}
	for _, c := range fp.Chains {
		prev := c.Name
		for _, r := range c.Rules {
			match, target := r.matchArgs(fp.Family), r.targetArgs(fp.Family)
			prev = ruleHash(prev, match, target)
			b.WriteString("-A ")
			b.WriteString(c.Name)
			for _, a := range match {
				b.WriteByte(' ')
				b.WriteString(a)
			}
			b.WriteString(" -m comment --comment \"" + RuleHashPrefix + prev + "\"")
			for _, a := range target {
				b.WriteByte(' ')
				b.WriteString(a)
			}
			b.WriteByte('\n')
		}
	}
	b.WriteString("COMMIT\n")
	return b.Bytes()
}

// Hash is a short hash of the plan's rules (not its set members): equal
// hashes mean the chains need not be reloaded. It is computed over the
// rules with the plan comment left out, and Render writes it into that
// comment ("reyes plan=<hash>") on the first rule of REYES-INPUT.
//
// For a plan not made by Render (built by hand, or by a custom renderer)
// Hash computes the same hash each time it is called.
func (fp *FamilyPlan) Hash() string {
	if fp.hash != "" {
		return fp.hash
	}
	return fp.computeHash()
}

// Seal computes the plan's hash, keeps it, and writes it into the plan
// comment of the first rule of REYES-INPUT, as Render does for its plans.
// A plan built by hand or by a custom renderer should be sealed once
// before it is applied: apply then recognises an unchanged plan without
// hashing its whole text on every run. Sealing twice changes nothing.
// Plans are values: a plan changed after Render or Seal must be sealed
// again, or apply trusts its old hash.
func (fp *FamilyPlan) Seal() {
	if len(fp.Chains) == 0 || len(fp.Chains[0].Rules) == 0 {
		return
	}
	fp.hash = fp.computeHash()
	fp.Chains[0].Rules[0].Comment = PlanComment(fp.hash)
}

// computeHash hashes the restore text with the plan comment left out.
func (fp *FamilyPlan) computeHash() string {
	c := *fp
	if len(c.Chains) > 0 && len(c.Chains[0].Rules) > 0 {
		c.Chains = slices.Clone(fp.Chains)
		c.Chains[0].Rules = slices.Clone(c.Chains[0].Rules)
		c.Chains[0].Rules[0].Comment = ""
	}
	sum := sha256.Sum256(c.IptablesRestore())
	return hex.EncodeToString(sum[:8])
}

// PlanComment is the comment of the first rule of REYES-INPUT, which holds
// the plan hash so that apply can read back one rule instead of all.
func PlanComment(hash string) string { return "reyes plan=" + hash }

// Args renders the rule as iptables arguments (without "-A CHAIN"), in the
// order iptables-save prints them, so that saved rules compare equal.
// Values that may carry text are quoted for iptables-restore.
func (r Rule) Args(fam Family) []string {
	return append(r.matchArgs(fam), r.targetArgs(fam)...)
}

// matchArgs is the part of Args before the target: the matches, the
// comment included.
func (r Rule) matchArgs(fam Family) []string {
	m := r.Match
	var a []string
	neg := func(b bool) {
		if b {
			a = append(a, "!")
		}
	}
	if m.Src.IsValid() {
		neg(m.SrcNeg)
		a = append(a, "-s", m.Src.String())
	}
	if m.Dst.IsValid() {
		a = append(a, "-d", m.Dst.String())
	}
	if m.InIface != "" {
		neg(m.InIfaceNeg)
		a = append(a, "-i", m.InIface)
	}
	if m.OutIface != "" {
		neg(m.OutIfaceNeg)
		a = append(a, "-o", m.OutIface)
	}
	if m.Protocol >= 0 {
		a = append(a, "-p", protoName(m.Protocol, fam))
		switch {
		case m.Protocol == 6 && m.TCPFlagsMask != 0:
			a = append(a, "-m", "tcp")
			if m.DPortFrom >= 0 {
				a = append(a, "--dport", portSpec(m.DPortFrom, m.DPortTo))
			}
			a = append(a, "--tcp-flags", flagNames(m.TCPFlagsMask), flagNames(m.TCPFlagsComp))
		case (m.Protocol == 6 || m.Protocol == 17) && m.DPortFrom >= 0:
			a = append(a, "-m", protoName(m.Protocol, fam), "--dport", portSpec(m.DPortFrom, m.DPortTo))
		case m.Protocol == 1 && fam == IPv4 && m.ICMPType >= 0:
			a = append(a, "-m", "icmp", "--icmp-type", icmpSpec(m.ICMPType, m.ICMPCode))
		case m.Protocol == 58 && fam == IPv6 && m.ICMPType >= 0:
			a = append(a, "-m", "icmp6", "--icmpv6-type", icmpSpec(m.ICMPType, m.ICMPCode))
		}
	}
	if m.SrcSet != "" {
		a = append(a, "-m", "set", "--match-set", m.SrcSet, "src")
	}
	if m.IPsecIn {
		a = append(a, "-m", "policy", "--dir", "in", "--pol", "ipsec")
	}
	if m.Established {
		a = append(a, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED")
	} else if m.State != "" {
		a = append(a, "-m", "conntrack", "--ctstate", m.State)
	}
	if m.Limit {
		a = append(a, logLimit...)
	}
	if r.Comment != "" {
		a = append(a, "-m", "comment", "--comment", quote(r.Comment))
	}
	return a
}

// targetArgs is the part of Args from the target on ("-j ACCEPT").
func (r Rule) targetArgs(fam Family) []string {
	var a []string
	switch r.Action.Kind {
	case Accept:
		a = append(a, "-j", "ACCEPT")
	case Drop:
		a = append(a, "-j", "DROP")
	case Return:
		a = append(a, "-j", "RETURN")
	case Jump:
		a = append(a, "-j", r.Action.Chain)
	case Goto:
		a = append(a, "-g", r.Action.Chain)
	case Log:
		a = append(a, "-j", "LOG", "--log-prefix", quote(r.Action.LogPrefix))
		if r.Action.LogLevel != 0 {
			a = append(a, "--log-level", strconv.Itoa(r.Action.LogLevel))
		}
	case Reject:
		with := "icmp-port-unreachable"
		if fam == IPv6 {
			with = "icmp6-port-unreachable"
		}
		a = append(a, "-j", "REJECT", "--reject-with", with)
	}
	return a
}

func portSpec(from, to int) string {
	if from == to {
		return strconv.Itoa(from)
	}
	return strconv.Itoa(from) + ":" + strconv.Itoa(to)
}

// flagNames writes TCP flags as iptables-save does: in FIN, SYN, RST, PSH,
// ACK, URG order, or NONE.
func flagNames(f uint8) string {
	if f == 0 {
		return "NONE"
	}
	var names []string
	for i, n := range []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG"} {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

// String renders the rule as it appears after "-A CHAIN" in restore text.
func (r Rule) String(fam Family) string { return strings.Join(r.Args(fam), " ") }

func icmpSpec(typ, code int) string {
	if code < 0 {
		return strconv.Itoa(typ)
	}
	return strconv.Itoa(typ) + "/" + strconv.Itoa(code)
}

// protoName is the name iptables prints for a protocol number.
func protoName(p int, fam Family) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		if fam == IPv6 {
			return "ipv6-icmp"
		}
		return "58"
	case 50:
		return "esp"
	case 51:
		return "ah"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(p)
}

// quote wraps s in double quotes for iptables-restore when it holds a
// space, as iptables-save does, so that saved rules read back identically.
// s must already be sanitised (see Sanitize): it holds no quote, backslash
// or control byte.
func quote(s string) string {
	if s == "" || strings.ContainsRune(s, ' ') {
		return `"` + s + `"`
	}
	return s
}

// Sanitize makes text from AWS (group names, descriptions) safe for a
// comment: only printable ASCII other than quotes and backslash survives;
// every other byte or rune becomes '_', and the result is cut to n bytes.
func Sanitize(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= n {
			break
		}
		switch {
		case r == '"' || r == '\\' || r == '\'' || r == '`' || r == '$':
			b.WriteByte('_')
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
