package render

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/reyes-fw/reyes/ruleset"
)

// ErrHost is wrapped by errors about the host view: no groups, bad IDs or
// addresses. Render never turns a bad host view into an empty policy.
var ErrHost = errors.New("invalid host view")

// ErrOptions is wrapped by errors about Options.
var ErrOptions = errors.New("invalid render options")

// Render turns a validated ruleset and a host's view of itself into a Plan.
// It is pure and deterministic. The union of the rules of every group of
// every host interface applies; with several interfaces that have
// addresses, each interface's rules apply only to traffic to its addresses.
func Render(rs *ruleset.Ruleset, host Host, opts Options) (*Plan, error) {
	return RenderIndex(ruleset.NewIndex(rs), host, opts)
}

// RenderIndex is Render over an index the caller already built.
func RenderIndex(x *ruleset.Index, host Host, opts Options) (*Plan, error) {
	if err := checkHost(host); err != nil {
		return nil, err
	}
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
	p := &Plan{Table: opts.Table}
	for _, fam := range []Family{IPv4, IPv6} {
		r := renderer{x: x, host: host, opts: opts, fam: fam, sets: map[string]*Set{}}
		fp, err := r.render()
		if err != nil {
			return nil, err
		}
		if err := fp.Validate(); err != nil {
			return nil, fmt.Errorf("rendering: %w", err)
		}
		if fam == IPv4 {
			p.V4 = *fp
		} else {
			p.V6 = *fp
		}
	}
	return p, nil
}

func checkHost(h Host) error {
	if len(h.Interfaces) == 0 {
		return fmt.Errorf("%w: no interfaces", ErrHost)
	}
	ids := map[string]bool{}
	groups := 0
	for i, n := range h.Interfaces {
		if len(h.Interfaces) > 1 && len(n.Addrs) > 0 {
			if !ruleset.ValidInterfaceID(n.ID) {
				return fmt.Errorf("%w: interfaces[%d]: %q is not a network interface ID", ErrHost, i, n.ID)
			}
			if ids[n.ID] {
				return fmt.Errorf("%w: interfaces[%d]: %s listed twice", ErrHost, i, n.ID)
			}
			ids[n.ID] = true
		}
		for _, a := range n.Addrs {
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
				return fmt.Errorf("%w: interfaces[%d]: %q is not a plain address", ErrHost, i, a)
			}
		}
		for _, g := range n.Groups {
			if !ruleset.ValidGroupID(g) {
				return fmt.Errorf("%w: interfaces[%d]: %q is not a security group ID", ErrHost, i, g)
			}
		}
		groups += len(n.Groups)
	}
	if groups == 0 {
		return fmt.Errorf("%w: the host is in no security group; refusing to render a policy that drops all filtered traffic", ErrHost)
	}
	for _, c := range h.VPCCIDRs {
		if !c.IsValid() || c.Masked() != c {
			return fmt.Errorf("%w: VPC CIDR %s is not a valid prefix", ErrHost, c)
		}
	}
	return nil
}

func checkOptions(o Options) error {
	if o.Mode != ModeVPC && o.Mode != ModeIPsec {
		return fmt.Errorf("%w: unknown mode %d", ErrOptions, o.Mode)
	}
	if o.Table != TableShared && o.Table != TableExclusive {
		return fmt.Errorf("%w: unknown table mode %d", ErrOptions, o.Table)
	}
	if o.Baseline != nil {
		if err := checkBaseline(o.Baseline); err != nil {
			return err
		}
	}
	for _, c := range o.ForeignCIDRs {
		if !c.IsValid() || c.Masked() != c {
			return fmt.Errorf("%w: foreign CIDR %s is not a valid prefix", ErrOptions, c)
		}
	}
	for i, f := range o.FailSafe {
		if f.Source.IsValid() && f.Source.Masked() != f.Source {
			return fmt.Errorf("%w: fail-safe[%d]: %s has host bits set", ErrOptions, i, f.Source)
		}
		switch f.Protocol {
		case ruleset.ProtoAll:
			if f.Port != 0 {
				return fmt.Errorf("%w: fail-safe[%d]: a port needs protocol tcp or udp", ErrOptions, i)
			}
		case ruleset.ProtoTCP, ruleset.ProtoUDP:
		default:
			return fmt.Errorf("%w: fail-safe[%d]: protocol %d is not all, tcp or udp", ErrOptions, i, f.Protocol)
		}
	}
	return nil
}

// modeNames and tableModeNames name the values of Mode and TableMode, the
// zero value (the default) first.
var (
	modeNames      = [2]string{"vpc", "ipsec"}
	tableModeNames = [2]string{"shared", "exclusive"}
)

// String returns "vpc" or "ipsec".
func (m Mode) String() string { return optionName(modeNames, m) }

// ParseMode parses "vpc" or "ipsec".
func ParseMode(s string) (Mode, error) { return parseOption[Mode]("mode", modeNames, s) }

// String returns "shared" or "exclusive".
func (t TableMode) String() string { return optionName(tableModeNames, t) }

// ParseTableMode parses "shared" or "exclusive".
func ParseTableMode(s string) (TableMode, error) {
	return parseOption[TableMode]("table mode", tableModeNames, s)
}

// optionName names v, an option of two values: any value but the second
// is the first (the default).
func optionName[T ~int](names [2]string, v T) string {
	if v == 1 {
		return names[1]
	}
	return names[0]
}

// parseOption parses one of names (or "", the first) as the option what.
func parseOption[T ~int](what string, names [2]string, s string) (T, error) {
	switch s {
	case names[0], "":
		return 0, nil
	case names[1]:
		return 1, nil
	}
	return 0, fmt.Errorf("%w: %s %q is not %s or %s", ErrOptions, what, s, names[0], names[1])
}

type renderer struct {
	x    *ruleset.Index
	host Host
	opts Options
	fam  Family
	sets map[string]*Set
}

func (r *renderer) inFamily(a netip.Addr) bool { return a.Is4() == (r.fam == IPv4) }

// allow is the verdict of traffic reyes lets through: in shared mode it
// returns to the host's own INPUT rules, in exclusive mode it is accepted.
func (r *renderer) allow() Action {
	if r.opts.Table == TableExclusive && r.opts.Baseline == nil {
		return Action{Kind: Accept}
	}
	return Action{Kind: Return}
}

func (r *renderer) render() (*FamilyPlan, error) {
	fp := &FamilyPlan{Family: r.fam, Table: r.opts.Table, Hooks: []Hook{{Builtin: "INPUT", Chain: InputChain}}}
	input := Chain{Name: InputChain}
	input.Rules = append(input.Rules,
		Rule{Match: anyMatch(func(m *Match) { m.Established = true }), Action: r.allow(), Allow: true},
		Rule{Match: anyMatch(func(m *Match) { m.InIface = "lo" }), Action: r.allow(), Allow: true, Comment: "loopback"},
	)
	if r.fam == IPv6 {
		// Neighbour discovery is link-local plumbing that no security group
		// governs; dropping it would cut the host off its own link.
		for _, typ := range []int{133, 134, 135, 136} {
			input.Rules = append(input.Rules, Rule{
				Match:  anyMatch(func(m *Match) { m.Protocol = 58; m.ICMPType = typ }),
				Action: r.allow(), Allow: true, Comment: "neighbour discovery",
			})
		}
	}
	input.Rules = append(input.Rules, r.failSafe(r.allow())...)
	filter := Action{Kind: Goto, Chain: FilterChain}
	switch r.opts.Mode {
	case ModeVPC:
		for _, c := range ruleset.SortedPrefixes(r.host.VPCCIDRs) {
			if r.inFamily(c.Addr()) {
				input.Rules = append(input.Rules, Rule{Match: srcMatch(c), Action: Action{Kind: Return}, Comment: "own VPC"})
			}
		}
		foreign := r.opts.ForeignCIDRs
		if foreign == nil {
			foreign = DefaultForeignCIDRs
		}
		for _, c := range ruleset.SortedPrefixes(foreign) {
			if r.inFamily(c.Addr()) {
				input.Rules = append(input.Rules, Rule{Match: srcMatch(c), Action: filter, Comment: "foreign range"})
			}
		}
	case ModeIPsec:
		input.Rules = append(input.Rules, Rule{Match: anyMatch(func(m *Match) { m.IPsecIn = true }), Action: filter, Comment: "arrived over IPsec"})
	}

	chains := []Chain{input}
	fchain := Chain{Name: FilterChain}
	scoped := len(r.host.Interfaces) > 1
	for _, n := range r.host.Interfaces {
		if len(n.Addrs) == 0 {
			scoped = false
		}
	}
	dropRule := Rule{Match: anyMatch(nil), Action: Action{Kind: Goto, Chain: DropChain}, Comment: "no security group allows this"}
	if !scoped {
		var groups []string
		for _, n := range r.host.Interfaces {
			groups = append(groups, n.Groups...)
		}
		rules, err := r.groupRules(groups, r.hostVPCs(r.host.Interfaces...))
		if err != nil {
			return nil, err
		}
		fchain.Rules = append(rules, dropRule)
		chains = append(chains, fchain)
	} else {
		var eniChains []Chain
		for _, n := range r.host.Interfaces {
			var addrs []netip.Addr
			for _, a := range n.Addrs {
				if r.inFamily(a) {
					addrs = append(addrs, a)
				}
			}
			if len(addrs) == 0 {
				continue
			}
			name := ChainPrefix + n.ID
			if len(name) > MaxChainName {
				return nil, fmt.Errorf("%w: chain name %s is longer than %d", ErrHost, name, MaxChainName)
			}
			slices.SortFunc(addrs, netip.Addr.Compare)
			for _, a := range slices.Compact(addrs) {
				fchain.Rules = append(fchain.Rules, Rule{
					Match:   anyMatch(func(m *Match) { m.Dst = netip.PrefixFrom(a, a.BitLen()) }),
					Action:  Action{Kind: Goto, Chain: name},
					Comment: n.ID,
				})
			}
			rules, err := r.groupRules(n.Groups, r.hostVPCs(n))
			if err != nil {
				return nil, err
			}
			eniChains = append(eniChains, Chain{Name: name, Rules: append(rules, dropRule)})
		}
		fchain.Rules = append(fchain.Rules, dropRule)
		chains = append(chains, fchain)
		slices.SortFunc(eniChains, func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
		chains = append(chains, eniChains...)
	}

	allow := Chain{Name: AllowChain}
	if r.opts.LogAccept {
		allow.Rules = append(allow.Rules, Rule{Match: anyMatch(func(m *Match) { m.Limit = true }), Action: Action{Kind: Log, LogPrefix: LogAcceptPrefix}})
	}
	allow.Rules = append(allow.Rules, Rule{Match: anyMatch(nil), Action: r.allow(), Allow: true})
	drop := Chain{Name: DropChain}
	if r.opts.LogDrop {
		drop.Rules = append(drop.Rules, Rule{Match: anyMatch(func(m *Match) { m.Limit = true }), Action: Action{Kind: Log, LogPrefix: LogDropPrefix}})
	}
	drop.Rules = append(drop.Rules, Rule{Match: anyMatch(nil), Action: Action{Kind: Drop}})
	chains = append(chains, allow, drop)
	fp.Chains = chains
	if r.opts.Baseline != nil {
		// The mirror becomes REYES-SG; REYES-INPUT runs it, then the
		// baseline. Every verdict chain of the mirror returns here.
		// Fail-safe traffic is accepted before either, so that neither
		// the mirror nor the baseline's default reject can lock out the
		// administrators or the store.
		fp.Chains[0].Name = SGChain
		input := append(r.failSafe(Action{Kind: Accept}),
			Rule{Match: anyMatch(nil), Action: Action{Kind: Jump, Chain: SGChain}},
			Rule{Match: anyMatch(nil), Action: Action{Kind: Jump, Chain: BaseInChain}})
		fp.Chains = append([]Chain{{Name: InputChain, Rules: input}}, fp.Chains...)
		r.baseline(fp)
	}

	for _, s := range r.sets {
		fp.Sets = append(fp.Sets, *s)
	}
	slices.SortFunc(fp.Sets, func(a, b Set) int { return strings.Compare(a.Name, b.Name) })

	// The plan hash covers the rules, not the set members, and is written
	// into the comment of the first rule of REYES-INPUT.
	fp.Seal()
	return fp, nil
}

// failSafe renders the fail-safe traffic of this family as rules with
// action a: RETURN or ACCEPT in the mirror, ACCEPT ahead of the baseline.
func (r *renderer) failSafe(a Action) []Rule {
	var out []Rule
	for _, f := range r.opts.FailSafe {
		if f.Source.IsValid() && !r.inFamily(f.Source.Addr()) {
			continue
		}
		m := anyMatch(func(m *Match) { m.Src = f.Source; m.Protocol = f.Protocol })
		if f.Source.IsValid() && f.Source.Bits() == 0 {
			m.Src = netip.Prefix{}
		}
		if f.Port != 0 {
			m.DPortFrom, m.DPortTo = int(f.Port), int(f.Port)
		}
		out = append(out, Rule{Match: m, Action: a, Allow: true, Comment: "fail-safe"})
	}
	return out
}

func anyMatch(f func(*Match)) Match {
	m := Match{Protocol: -1, DPortFrom: -1, DPortTo: -1, ICMPType: -1, ICMPCode: -1}
	if f != nil {
		f(&m)
	}
	return m
}

func srcMatch(c netip.Prefix) Match {
	return anyMatch(func(m *Match) {
		if c.Bits() > 0 {
			m.Src = c
		}
	})
}

// hostVPCs returns the VPCs of the given host interfaces, as the ruleset
// knows them, or nil when one of them is not in the ruleset (interfaces
// given by the operator): then a reference AWS honours only between some
// VPCs counts wherever it counts at all.
func (r *renderer) hostVPCs(ifaces ...HostInterface) []string {
	var vpcs []string
	for _, n := range ifaces {
		ri := r.x.Interface(n.ID)
		if ri == nil || ri.VPC == "" {
			return nil
		}
		vpcs = append(vpcs, ri.VPC)
	}
	slices.Sort(vpcs)
	return slices.Compact(vpcs)
}

// groupRules renders the rules of the given groups (sorted, deduplicated)
// for this family, for interfaces in vpcs (nil: unknown).
func (r *renderer) groupRules(groups []string, vpcs []string) ([]Rule, error) {
	groups = slices.Clone(groups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	var out []Rule
	for _, gid := range groups {
		g := r.x.Group(gid)
		if g == nil {
			continue // a group unknown to the ruleset allows nothing
		}
		for _, rule := range g.Rules {
			rs, err := r.rule(g, rule, vpcs)
			if err != nil {
				return nil, err
			}
			out = append(out, rs...)
		}
	}
	return out, nil
}

func (r *renderer) rule(g *ruleset.Group, rule ruleset.Rule, vpcs []string) ([]Rule, error) {
	switch {
	case rule.Protocol == ruleset.ProtoICMP && r.fam != IPv4:
		return nil, nil
	case rule.Protocol == ruleset.ProtoICMPv6 && r.fam != IPv6:
		return nil, nil
	case rule.Protocol == 0:
		// IP protocol 0 (HOPOPT) cannot be matched: iptables reads -p 0 as
		// every protocol. The rule allows nothing rather than everything.
		return nil, nil
	case (rule.Protocol == ruleset.ProtoTCP || rule.Protocol == ruleset.ProtoUDP) && rule.ToPort == 0:
		// Port 0 alone: reserved, no TCP or UDP service uses it, and a
		// port-0 match is the zero value Rule.Validate refuses. The rule
		// allows nothing.
		return nil, nil
	case rule.Protocol == ruleset.ProtoICMP && rule.FromPort == 255:
		// The kernel's icmp match reads type 255 as any type (ip6tables
		// has no such case). ICMP type 255 is reserved; the rule allows
		// nothing rather than all of ICMP.
		return nil, nil
	}
	base := anyMatch(func(m *Match) { m.Protocol = rule.Protocol })
	switch rule.Protocol {
	case ruleset.ProtoTCP, ruleset.ProtoUDP:
		if !rule.AllPorts() {
			base.DPortFrom, base.DPortTo = rule.FromPort, rule.ToPort
		}
	case ruleset.ProtoICMP, ruleset.ProtoICMPv6:
		base.ICMPType, base.ICMPCode = rule.FromPort, rule.ToPort
	}
	what := describe(rule)
	head := g.ID
	if name := Sanitize(g.Name, 64); name != "" {
		head += " (" + name + ")"
	}
	var out []Rule
	for _, c := range rule.CIDRs {
		if !r.inFamily(c.Addr()) {
			continue
		}
		m := base
		if c.Bits() > 0 {
			m.Src = c
		}
		out = append(out, Rule{Match: m, Action: Action{Kind: Goto, Chain: AllowChain}, Allow: true,
			Comment: clip(head + ": " + what + " from " + c.String())})
	}
	for _, ref := range rule.Groups {
		if r.x.Group(ref) == nil {
			continue // stale: allows nothing
		}
		set, err := r.set(ref)
		if err != nil {
			return nil, err
		}
		m := base
		m.SrcSet = set
		out = append(out, Rule{Match: m, Action: Action{Kind: Goto, Chain: AllowChain}, Allow: true,
			Comment: clip(head + ": " + what + " from " + ref)})
	}
	// References AWS honours only from some VPCs: the members in those
	// VPCs, for the VPCs of this host's interfaces.
	from := map[string][]string{}
	var refs []string
	for _, sr := range rule.Scoped {
		if vpcs != nil && !slices.Contains(vpcs, sr.VPC) {
			continue
		}
		if r.x.Group(sr.Group) == nil {
			continue
		}
		if _, ok := from[sr.Group]; !ok {
			refs = append(refs, sr.Group)
		}
		from[sr.Group] = append(from[sr.Group], sr.From...)
	}
	slices.Sort(refs)
	for _, ref := range refs {
		f := from[ref]
		slices.Sort(f)
		f = slices.Compact(f)
		set, err := r.scopedSet(ref, f)
		if err != nil {
			return nil, err
		}
		m := base
		m.SrcSet = set
		out = append(out, Rule{Match: m, Action: Action{Kind: Goto, Chain: AllowChain}, Allow: true,
			Comment: clip(head + ": " + what + " from " + ref + " in " + strings.Join(f, ","))})
	}
	return out, nil
}

// scopedSet returns the name of the set of the members of group gid in
// the VPCs from, in this family, adding it to the plan. Its name is the
// family's prefix, "x" and a hash of the group, the VPCs and the set's
// type: short enough for ipset whatever the IDs, and never the name of a
// set of another type.
func (r *renderer) scopedSet(gid string, from []string) (string, error) {
	s := &Set{Group: gid, Family: r.fam}
	addrs, nets := r.x.MembersIn(gid, from)
	for _, a := range addrs {
		if r.inFamily(a) {
			s.Members = append(s.Members, a)
		}
	}
	for _, p := range nets {
		if r.inFamily(p.Addr()) && p.Bits() > 0 {
			s.Nets = append(s.Nets, p)
		}
	}
	h := sha256.Sum256([]byte(gid + "|" + strings.Join(from, ",") + "|" + s.Type()))
	return r.addSet(r.setPrefix()+"x"+hex.EncodeToString(h[:8]), s)
}

// set returns the name of the set of members of group gid in this family,
// adding the set to the plan. A group whose interfaces have delegated
// prefixes gets a hash:net set under another name (NetSetMark before the
// ID): a set never changes type under one name, which ipset swap cannot do.
func (r *renderer) set(gid string) (string, error) {
	s := &Set{Group: gid, Family: r.fam}
	for _, a := range r.x.Members(gid) {
		if r.inFamily(a) {
			s.Members = append(s.Members, a)
		}
	}
	for _, p := range r.x.MemberPrefixes(gid) {
		if r.inFamily(p.Addr()) && p.Bits() > 0 {
			s.Nets = append(s.Nets, p)
		}
	}
	name := r.setPrefix() + gid
	if len(s.Nets) > 0 {
		name = r.setPrefix() + NetSetMark + gid
	}
	return r.addSet(name, s)
}

// NetSetMark marks the name of a hash:net set of a group's members:
// "reyes4-" + NetSetMark + group ID.
const NetSetMark = "p"

func (r *renderer) setPrefix() string {
	if r.fam == IPv6 {
		return SetPrefix6
	}
	return SetPrefix4
}

// addSet adds s under name unless the plan has it, checking the length.
func (r *renderer) addSet(name string, s *Set) (string, error) {
	if len(name+TempSuffix) > MaxSetName {
		return "", fmt.Errorf("set name %s is longer than %d", name+TempSuffix, MaxSetName)
	}
	if _, ok := r.sets[name]; !ok {
		s.Name = name
		r.sets[name] = s
	}
	return name, nil
}

func describe(rule ruleset.Rule) string {
	switch rule.Protocol {
	case ruleset.ProtoAll:
		return "all"
	case ruleset.ProtoTCP, ruleset.ProtoUDP:
		p := "tcp"
		if rule.Protocol == ruleset.ProtoUDP {
			p = "udp"
		}
		switch {
		case rule.AllPorts():
			return p
		case rule.FromPort == rule.ToPort:
			return p + "/" + strconv.Itoa(rule.FromPort)
		default:
			return p + "/" + strconv.Itoa(rule.FromPort) + "-" + strconv.Itoa(rule.ToPort)
		}
	case ruleset.ProtoICMP, ruleset.ProtoICMPv6:
		p := "icmp"
		if rule.Protocol == ruleset.ProtoICMPv6 {
			p = "icmpv6"
		}
		if rule.FromPort < 0 {
			return p
		}
		return p + "/" + icmpSpec(rule.FromPort, rule.ToPort)
	}
	return "proto " + strconv.Itoa(rule.Protocol)
}

func clip(s string) string {
	if len(s) > MaxComment {
		return s[:MaxComment]
	}
	return s
}
