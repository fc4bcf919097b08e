package ruleset

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/reyes-fw/reyes/internal/errtext"
	"github.com/reyes-fw/reyes/inventory"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid ruleset")

// ValidationError names the offending field and why it is wrong. It wraps
// ErrInvalid.
type ValidationError struct {
	// Field is a path such as `groups[3](sg-0a1b2c3d).rules[0].cidrs[1]`.
	Field  string
	Reason string
}

// Error is "field: reason".
func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Limits bound the size of a ruleset. Zero fields take the defaults of
// DefaultLimits.
type Limits struct {
	MaxBytes           int64 // encoded size
	MaxVPCs            int
	MaxGroups          int
	MaxInterfaces      int
	MaxRulesPerGroup   int
	MaxSourcesPerRule  int
	MaxAddrsPerIface   int
	MaxGroupsPerIface  int
	MaxCIDRsPerVPC     int
	MaxTotalAddrs      int
	MaxTotalRuleSource int
	// MaxPartBytes bounds one part of a split ruleset (see Split), and
	// MaxTotalPartBytes all the parts of one root.
	MaxPartBytes      int64
	MaxTotalPartBytes int64
}

// DefaultLimits are generous for the largest estates (AWS allows 1,000
// rules per group and 16 groups per ENI) and small enough to bound memory.
var DefaultLimits = Limits{
	MaxBytes:           64 << 20,
	MaxVPCs:            10_000,
	MaxGroups:          100_000,
	MaxInterfaces:      1_000_000,
	MaxRulesPerGroup:   1_000,
	MaxSourcesPerRule:  10_000,
	MaxAddrsPerIface:   1_024,
	MaxGroupsPerIface:  32,
	MaxCIDRsPerVPC:     64,
	MaxTotalAddrs:      4_000_000,
	MaxTotalRuleSource: 2_000_000,
	MaxPartBytes:       64 << 20,
	MaxTotalPartBytes:  1 << 30,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxPartBytes == 0 {
		l.MaxPartBytes = d.MaxPartBytes
	}
	if l.MaxTotalPartBytes == 0 {
		l.MaxTotalPartBytes = d.MaxTotalPartBytes
	}
	set(&l.MaxVPCs, d.MaxVPCs)
	set(&l.MaxGroups, d.MaxGroups)
	set(&l.MaxInterfaces, d.MaxInterfaces)
	set(&l.MaxRulesPerGroup, d.MaxRulesPerGroup)
	set(&l.MaxSourcesPerRule, d.MaxSourcesPerRule)
	set(&l.MaxAddrsPerIface, d.MaxAddrsPerIface)
	set(&l.MaxGroupsPerIface, d.MaxGroupsPerIface)
	set(&l.MaxCIDRsPerVPC, d.MaxCIDRsPerVPC)
	set(&l.MaxTotalAddrs, d.MaxTotalAddrs)
	set(&l.MaxTotalRuleSource, d.MaxTotalRuleSource)
	return l
}

var (
	reScope    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$`)
	maxNameLen = 255
)

// ValidGroupID reports whether s is a well-formed security group ID. Chain
// and set names are derived from IDs only, so this is what keeps restore
// text safe.
func ValidGroupID(s string) bool { return isGroupID(s) }

// ValidInterfaceID reports whether s is a well-formed network interface ID.
func ValidInterfaceID(s string) bool { return isENIID(s) }

// ValidVPCID reports whether s is a well-formed VPC ID.
func ValidVPCID(s string) bool { return isVPCID(s) }

// ValidScope reports whether s is a valid scope name: 1 to 64 of
// A-Z a-z 0-9 . _ : / -, starting with a letter or digit.
func ValidScope(s string) bool { return reScope.MatchString(s) }

// ValidRegion reports whether s looks like an AWS region code.
func ValidRegion(s string) bool { return isRegion(s) }

// Validate checks the whole ruleset with the default limits. Any invalid
// field rejects the whole ruleset; the error is a *ValidationError naming it.
func (rs *Ruleset) Validate() error { return rs.ValidateLimits(Limits{}) }

// ValidateLimits is Validate with explicit limits.
func (rs *Ruleset) ValidateLimits(lim Limits) error {
	lim = lim.withDefaults()
	if err := rs.Header.validate(); err != nil {
		return err
	}
	if len(rs.VPCs) > lim.MaxVPCs {
		return invalid("vpcs", "%d VPCs exceed the limit of %d", len(rs.VPCs), lim.MaxVPCs)
	}
	if len(rs.Groups) > lim.MaxGroups {
		return invalid("groups", "%d groups exceed the limit of %d", len(rs.Groups), lim.MaxGroups)
	}
	if len(rs.Interfaces) > lim.MaxInterfaces {
		return invalid("interfaces", "%d interfaces exceed the limit of %d", len(rs.Interfaces), lim.MaxInterfaces)
	}
	for i, v := range rs.VPCs {
		f := at("", "vpcs", i)
		if !isVPCID(v.ID) {
			return invalid(f+".id", "%q is not a VPC ID", v.ID)
		}
		f = at("", "vpcs", i) + "(" + v.ID + ")"
		if i > 0 && rs.VPCs[i-1].ID >= v.ID {
			return invalid(f, "out of order or listed twice (not canonical; IDs name chains and sets, so a duplicate would collide)")
		}
		if !isRegion(v.Region) {
			return invalid(f+".region", "%q is not a region", v.Region)
		}
		if v.Owner != "" && !isOwner(v.Owner) {
			return invalid(f+".owner", "%q is not an account ID", v.Owner)
		}
		if len(v.CIDRs) > lim.MaxCIDRsPerVPC {
			return invalid(f+".cidrs", "%d CIDRs exceed the limit of %d", len(v.CIDRs), lim.MaxCIDRsPerVPC)
		}
		for j, p := range v.CIDRs {
			cf := at(f, ".cidrs", j)
			if err := checkPrefix(cf, p, 0); err != nil {
				return err
			}
			if j > 0 && ComparePrefix(v.CIDRs[j-1], p) >= 0 {
				return invalid(cf, "%s is out of order or listed twice", p)
			}
		}
	}
	total := 0
	for i := range rs.Groups {
		g := &rs.Groups[i]
		idx := func() string { return at("", "groups", i) }
		if !isGroupID(g.ID) {
			return invalid(idx()+".id", "%q is not a security group ID", g.ID)
		}
		// Field paths are built only on error: there are ~10^5 of these.
		f := func() string { return idx() + "(" + g.ID + ")" }
		if i > 0 && rs.Groups[i-1].ID >= g.ID {
			return invalid(f(), "out of order or listed twice (not canonical; IDs name chains and sets, so a duplicate would collide)")
		}
		if checkName("", g.Name) != nil {
			return checkName(f()+".name", g.Name)
		}
		if !isRegion(g.Region) {
			return invalid(f()+".region", "%q is not a region", g.Region)
		}
		if g.VPC != "" && !isVPCID(g.VPC) {
			return invalid(f()+".vpc", "%q is not a VPC ID", g.VPC)
		}
		if g.Owner != "" && !isOwner(g.Owner) {
			return invalid(f()+".owner", "%q is not an account ID", g.Owner)
		}
		if g.Excluded && len(g.Rules) > 0 {
			return invalid(f()+".rules", "an excluded group has no rules")
		}
		if len(g.Rules) > lim.MaxRulesPerGroup {
			return invalid(f()+".rules", "%d rules exceed the limit of %d", len(g.Rules), lim.MaxRulesPerGroup)
		}
		for j, r := range g.Rules {
			rf := func() string { return at(f(), ".rules", j) }
			n := len(r.CIDRs) + len(r.Groups) + len(r.Scoped)
			if n > lim.MaxSourcesPerRule {
				return invalid(rf(), "%d sources exceed the limit of %d", n, lim.MaxSourcesPerRule)
			}
			total += n
			if total > lim.MaxTotalRuleSource {
				return invalid(rf(), "more than %d rule sources in all", lim.MaxTotalRuleSource)
			}
			if r.validate("") != nil {
				return r.validate(rf())
			}
			if j > 0 && compareRuleKey(g.Rules[j-1], r) >= 0 {
				return invalid(rf(), "out of order, or a second rule for the same protocol and ports (not canonical)")
			}
		}

	}
	total = 0
	for i := range rs.Interfaces {
		n := &rs.Interfaces[i]
		idx := func() string { return at("", "interfaces", i) }
		if !isENIID(n.ID) {
			return invalid(idx()+".id", "%q is not a network interface ID", n.ID)
		}
		// Field paths are built only on error: there are ~10^5 of these.
		f := func() string { return idx() + "(" + n.ID + ")" }
		if i > 0 && rs.Interfaces[i-1].ID >= n.ID {
			return invalid(f(), "out of order or listed twice (not canonical; IDs name chains and sets, so a duplicate would collide)")
		}
		if !isRegion(n.Region) {
			return invalid(f()+".region", "%q is not a region", n.Region)
		}
		if n.VPC != "" && !isVPCID(n.VPC) {
			return invalid(f()+".vpc", "%q is not a VPC ID", n.VPC)
		}
		if len(n.Addrs) > lim.MaxAddrsPerIface {
			return invalid(f()+".addrs", "%d addresses exceed the limit of %d", len(n.Addrs), lim.MaxAddrsPerIface)
		}
		total += len(n.Addrs)
		if total > lim.MaxTotalAddrs {
			return invalid(f()+".addrs", "more than %d addresses in all", lim.MaxTotalAddrs)
		}
		for j, a := range n.Addrs {
			// Field paths are built only on error: there are ~10^5 addresses.
			if checkAddr("", a) != nil {
				return checkAddr(at(f(), ".addrs", j), a)
			}
			if j > 0 {
				switch c := n.Addrs[j-1].Compare(a); {
				case c == 0:
					return invalid(at(f(), ".addrs", j), "%s is listed twice", a)
				case c > 0:
					return invalid(at(f(), ".addrs", j), "%s is out of order (not canonical)", a)
				}
			}
		}
		if len(n.Prefixes) > lim.MaxAddrsPerIface {
			return invalid(f()+".prefixes", "%d prefixes exceed the limit of %d", len(n.Prefixes), lim.MaxAddrsPerIface)
		}
		total += len(n.Prefixes)
		if total > lim.MaxTotalAddrs {
			return invalid(f()+".prefixes", "more than %d addresses and prefixes in all", lim.MaxTotalAddrs)
		}
		for j, p := range n.Prefixes {
			pf := at(f(), ".prefixes", j)
			if err := checkPrefix(pf, p, 0); err != nil {
				return err
			}
			if p.Bits() == 0 {
				return invalid(pf, "%s: a /0 is never a member", p)
			}
			if j > 0 && ComparePrefix(n.Prefixes[j-1], p) >= 0 {
				return invalid(pf, "%s is out of order or listed twice", p)
			}
		}
		if len(n.Groups) > lim.MaxGroupsPerIface {
			return invalid(f()+".groups", "%d groups exceed the limit of %d", len(n.Groups), lim.MaxGroupsPerIface)
		}
		for j, g := range n.Groups {
			if !isGroupID(g) {
				return invalid(at(f(), ".groups", j), "%q is not a security group ID", g)
			}
			if j > 0 && n.Groups[j-1] >= g {
				return invalid(at(f(), ".groups", j), "%s is out of order or listed twice", g)
			}
		}
	}
	return rs.validateFindings()
}

func (h *Header) validate() error {
	if h.Format != Format {
		return invalid("format", "%q is not %q", h.Format, Format)
	}
	if h.Type != Type {
		return invalid("type", "%q is not %q", h.Type, Type)
	}
	if !reScope.MatchString(h.Scope) {
		return invalid("scope", "%q is not a scope name (1-64 of A-Z a-z 0-9 . _ : / -)", h.Scope)
	}
	if h.GeneratedAt.IsZero() {
		return invalid("generated_at", "missing")
	}
	if !h.NotAfter.After(h.GeneratedAt) {
		return invalid("not_after", "%s is not after generated_at %s", h.NotAfter, h.GeneratedAt)
	}
	return nil
}

func (r Rule) validate(f string) error {
	if r.Protocol < -1 || r.Protocol > 255 {
		return invalid(f+".proto", "%d is not a protocol (-1 or 0..255)", r.Protocol)
	}
	switch r.Protocol {
	case ProtoTCP, ProtoUDP:
		if r.FromPort < 0 || r.FromPort > 65535 {
			return invalid(f+".from", "port %d is out of 0..65535", r.FromPort)
		}
		if r.ToPort < 0 || r.ToPort > 65535 {
			return invalid(f+".to", "port %d is out of 0..65535", r.ToPort)
		}
		if r.FromPort > r.ToPort {
			return invalid(f+".to", "port range %d-%d is reversed", r.FromPort, r.ToPort)
		}
	case ProtoICMP, ProtoICMPv6:
		if r.FromPort < -1 || r.FromPort > 255 {
			return invalid(f+".from", "ICMP type %d is out of -1..255", r.FromPort)
		}
		if r.ToPort < -1 || r.ToPort > 255 {
			return invalid(f+".to", "ICMP code %d is out of -1..255", r.ToPort)
		}
		if r.FromPort == -1 && r.ToPort != -1 {
			return invalid(f+".to", "ICMP code %d given for every type", r.ToPort)
		}
	default:
		if r.FromPort != -1 || r.ToPort != -1 {
			return invalid(f+".from", "protocol %d takes no ports (want -1, -1)", r.Protocol)
		}
	}
	if len(r.CIDRs) == 0 && len(r.Groups) == 0 && len(r.Scoped) == 0 {
		return invalid(f, "no sources")
	}
	fam := 0
	switch r.Protocol {
	case ProtoICMP:
		fam = 4
	case ProtoICMPv6:
		fam = 6
	}
	for i, p := range r.CIDRs {
		if checkPrefix("", p, fam) != nil {
			return checkPrefix(at(f, ".cidrs", i), p, fam)
		}
		if i > 0 && ComparePrefix(r.CIDRs[i-1], p) >= 0 {
			return invalid(at(f, ".cidrs", i), "%s is out of order or listed twice", p)
		}
	}
	for i, g := range r.Groups {
		if !isGroupID(g) {
			return invalid(at(f, ".groups", i), "%q is not a security group ID", g)
		}
		if i > 0 && r.Groups[i-1] >= g {
			return invalid(at(f, ".groups", i), "%s is out of order or listed twice", g)
		}
	}
	for i, sr := range r.Scoped {
		sf := at(f, ".scoped", i)
		if !isGroupID(sr.Group) {
			return invalid(sf+".group", "%q is not a security group ID", sr.Group)
		}
		if !isVPCID(sr.VPC) {
			return invalid(sf+".vpc", "%q is not a VPC ID", sr.VPC)
		}
		if len(sr.From) == 0 {
			return invalid(sf+".from", "no VPCs (a reference honoured nowhere is left out)")
		}
		for j, v := range sr.From {
			if !isVPCID(v) {
				return invalid(at(sf, ".from", j), "%q is not a VPC ID", v)
			}
			if j > 0 && sr.From[j-1] >= v {
				return invalid(at(sf, ".from", j), "%s is out of order or listed twice", v)
			}
		}
		if i > 0 && compareScoped(r.Scoped[i-1], sr) >= 0 {
			return invalid(sf, "out of order or listed twice (a group and VPC once)")
		}
	}
	return nil
}

// compareScoped orders scoped references by group, then VPC.
func compareScoped(a, b ScopedRef) int {
	if c := strings.Compare(a.Group, b.Group); c != 0 {
		return c
	}
	return strings.Compare(a.VPC, b.VPC)
}

// Limits of the findings of a ruleset.
const (
	MaxFindings     = 100_000
	maxFindingBytes = 512
)

// validFindingKinds are the kinds Validate accepts.
var validFindingKinds = map[string]bool{FindingUnreadAccount: true, FindingStaleReference: true, FindingClientIP: true}

func (rs *Ruleset) validateFindings() error {
	if len(rs.Findings) > MaxFindings {
		return invalid("findings", "%d findings exceed the limit of %d", len(rs.Findings), MaxFindings)
	}
	for i, fd := range rs.Findings {
		f := at("", "findings", i)
		if !validFindingKinds[fd.Kind] {
			return invalid(f+".kind", "%q is not a kind of finding", errtext.Clip(fd.Kind))
		}
		if !isGroupID(fd.Group) {
			return invalid(f+".group", "%q is not a security group ID", errtext.Clip(fd.Group))
		}
		if fd.Ref != "" && !isGroupID(fd.Ref) {
			return invalid(f+".ref", "%q is not a security group ID", errtext.Clip(fd.Ref))
		}
		if fd.Account != "" && !isOwner(fd.Account) {
			return invalid(f+".account", "%q is not an account ID", errtext.Clip(fd.Account))
		}
		if fd.Detail == "" || len(fd.Detail) > maxFindingBytes || !utf8.ValidString(fd.Detail) || strings.ContainsFunc(fd.Detail, unicode.IsControl) {
			return invalid(f+".detail", "want 1 to %d bytes of UTF-8 text without control characters", maxFindingBytes)
		}
		if i > 0 && compareFinding(rs.Findings[i-1], fd) >= 0 {
			return invalid(f, "out of order or listed twice (not canonical)")
		}
	}
	return nil
}

// compareFinding orders findings by kind, group, ref, account and detail.
func compareFinding(a, b Finding) int {
	for _, c := range [][2]string{{a.Kind, b.Kind}, {a.Group, b.Group}, {a.Ref, b.Ref}, {a.Account, b.Account}, {a.Detail, b.Detail}} {
		if d := strings.Compare(c[0], c[1]); d != 0 {
			return d
		}
	}
	return 0
}

func checkName(f, s string) error {
	if len(s) > maxNameLen {
		return invalid(f, "%d bytes exceed the limit of %d", len(s), maxNameLen)
	}
	if !utf8.ValidString(s) {
		return invalid(f, "not valid UTF-8")
	}
	return nil
}

// checkPrefix rejects invalid prefixes, host bits, zones, IPv4-mapped IPv6
// and (fam 4 or 6) the wrong family.
func checkPrefix(f string, p netip.Prefix, fam int) error {
	if !p.IsValid() {
		return invalid(f, "not a valid CIDR")
	}
	if p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return invalid(f, "%s is not a plain IPv4 or IPv6 CIDR", p)
	}
	if p.Masked() != p {
		return invalid(f, "%s has host bits set (did you mean %s?)", p, p.Masked())
	}
	if fam == 4 && !p.Addr().Is4() {
		return invalid(f, "%s is IPv6 in an ICMP (IPv4) rule", p)
	}
	if fam == 6 && !p.Addr().Is6() {
		return invalid(f, "%s is IPv4 in an ICMPv6 rule", p)
	}
	return nil
}

func checkAddr(f string, a netip.Addr) error {
	if !a.IsValid() {
		return invalid(f, "not a valid address")
	}
	if a.Zone() != "" || a.Is4In6() {
		return invalid(f, "%s is not a plain IPv4 or IPv6 address", a)
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return invalid(f, "%s cannot be an interface address", a)
	}
	return nil
}

// compareRuleKey orders rules by protocol, then from, then to.
func compareRuleKey(a, b Rule) int {
	if a.Protocol != b.Protocol {
		return a.Protocol - b.Protocol
	}
	if a.FromPort != b.FromPort {
		return a.FromPort - b.FromPort
	}
	return a.ToPort - b.ToPort
}

// at is the field path base+name+"[i]", built without fmt: Validate names
// every element it walks, hundreds of thousands of them.
func at(base, name string, i int) string {
	return base + name + "[" + strconv.Itoa(i) + "]"
}

// The grammars of AWS names are package inventory's, shared with the
// sources, so that what a source accepts and what Validate accepts agree.
func isGroupID(s string) bool { return inventory.ValidGroupID(s) }
func isENIID(s string) bool   { return inventory.ValidInterfaceID(s) }
func isVPCID(s string) bool   { return inventory.ValidVPCID(s) }
func isOwner(s string) bool   { return inventory.ValidAccountID(s) }
func isRegion(s string) bool  { return inventory.ValidRegion(s) }
