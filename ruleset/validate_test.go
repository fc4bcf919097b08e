package ruleset

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
	t0   = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
)

// validRuleset returns a small canonical ruleset that passes Validate; the
// cases of TestValidateRejects break one thing in it each.
func validRuleset() *Ruleset {
	return &Ruleset{
		Header: Header{
			Format: Format, Type: Type, Scope: "prod", Serial: 7,
			GeneratedAt: t0, NotAfter: t0.Add(time.Hour),
		},
		VPCs: []VPC{
			{ID: "vpc-00000001", Region: "eu-west-1", Owner: "123456789012", CIDRs: []netip.Prefix{pfx("10.0.0.0/16"), pfx("fd00::/56")}},
			{ID: "vpc-00000002", Region: "us-west-2", CIDRs: []netip.Prefix{pfx("10.1.0.0/16")}},
		},
		Groups: []Group{
			{ID: "sg-0000000a", Name: "web", Region: "eu-west-1", VPC: "vpc-00000001", Owner: "123456789012", Rules: []Rule{
				{Protocol: ProtoICMP, FromPort: 8, ToPort: -1, CIDRs: []netip.Prefix{pfx("10.0.0.0/8")}},
				{Protocol: ProtoTCP, FromPort: 443, ToPort: 443, CIDRs: []netip.Prefix{pfx("0.0.0.0/0"), pfx("::/0")}, Groups: []string{"sg-0000000b"}},
			}},
			{ID: "sg-0000000b", Name: "db", Region: "eu-west-1", VPC: "vpc-00000001", Rules: []Rule{
				{Protocol: ProtoTCP, FromPort: 5432, ToPort: 5432, Groups: []string{"sg-0000000a", "sg-0000000c"}},
				{Protocol: ProtoICMPv6, FromPort: -1, ToPort: -1, CIDRs: []netip.Prefix{pfx("fd00::/8")}},
			}},
			{ID: "sg-0000000d", Name: "vpn", Region: "us-west-2", Excluded: true, Rules: []Rule{}},
		},
		Interfaces: []Interface{
			{ID: "eni-00000001", Region: "eu-west-1", VPC: "vpc-00000001",
				Addrs:  []netip.Addr{addr("10.0.0.1"), addr("10.0.0.2"), addr("fd00::1")},
				Groups: []string{"sg-0000000a", "sg-0000000b"}},
			{ID: "eni-00000002", Region: "us-west-2", VPC: "vpc-00000002",
				Addrs: []netip.Addr{addr("10.1.0.5")}, Groups: []string{"sg-0000000d"}},
		},
	}
}

func TestValidRulesetValidates(t *testing.T) {
	if err := validRuleset().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejects(t *testing.T) {
	const (
		g0 = "groups[0](sg-0000000a)"
		g1 = "groups[1](sg-0000000b)"
		n0 = "interfaces[0](eni-00000001)"
		v0 = "vpcs[0](vpc-00000001)"
	)
	r0 := g0 + ".rules[0]"  // icmp 8/-1
	r1 := g0 + ".rules[1]"  // tcp 443
	rb1 := g1 + ".rules[1]" // icmpv6
	tests := []struct {
		name  string
		lim   Limits
		mut   func(rs *Ruleset)
		field string
	}{
		// Delegated prefixes of an interface.
		{"iface prefix /0", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Prefixes = []netip.Prefix{pfx("0.0.0.0/0")} }, n0 + ".prefixes[0]"},
		{"iface prefix host bits", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Prefixes = []netip.Prefix{pfx("10.0.0.17/28")} }, n0 + ".prefixes[0]"},
		{"iface prefix invalid", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Prefixes = []netip.Prefix{{}} }, n0 + ".prefixes[0]"},
		{"iface prefixes unsorted", Limits{}, func(rs *Ruleset) {
			rs.Interfaces[0].Prefixes = []netip.Prefix{pfx("10.0.0.32/28"), pfx("10.0.0.16/28")}
		}, n0 + ".prefixes[1]"},
		{"iface prefixes twice", Limits{}, func(rs *Ruleset) {
			rs.Interfaces[0].Prefixes = []netip.Prefix{pfx("10.0.0.16/28"), pfx("10.0.0.16/28")}
		}, n0 + ".prefixes[1]"},
		{"iface prefixes over the limit", Limits{MaxAddrsPerIface: 1}, func(rs *Ruleset) {
			rs.Interfaces[0].Addrs = rs.Interfaces[0].Addrs[:1]
			rs.Interfaces[0].Prefixes = []netip.Prefix{pfx("10.0.0.16/28"), pfx("10.0.0.32/28")}
		}, n0 + ".prefixes"},
		// Header.
		{"format", Limits{}, func(rs *Ruleset) { rs.Format = "reyes.ruleset/v2" }, "format"},
		{"type", Limits{}, func(rs *Ruleset) { rs.Type = "other" }, "type"},
		{"scope empty", Limits{}, func(rs *Ruleset) { rs.Scope = "" }, "scope"},
		{"scope bad char", Limits{}, func(rs *Ruleset) { rs.Scope = "prod\n" }, "scope"},
		{"scope leading dash", Limits{}, func(rs *Ruleset) { rs.Scope = "-prod" }, "scope"},
		{"scope too long", Limits{}, func(rs *Ruleset) { rs.Scope = strings.Repeat("a", 65) }, "scope"},
		{"generated_at missing", Limits{}, func(rs *Ruleset) { rs.GeneratedAt = time.Time{} }, "generated_at"},
		{"not_after equal", Limits{}, func(rs *Ruleset) { rs.NotAfter = rs.GeneratedAt }, "not_after"},
		{"not_after before", Limits{}, func(rs *Ruleset) { rs.NotAfter = rs.GeneratedAt.Add(-time.Second) }, "not_after"},
		{"not_after missing", Limits{}, func(rs *Ruleset) { rs.NotAfter = time.Time{} }, "not_after"},

		// Count limits.
		{"too many vpcs", Limits{MaxVPCs: 1}, nil, "vpcs"},
		{"too many groups", Limits{MaxGroups: 2}, nil, "groups"},
		{"too many interfaces", Limits{MaxInterfaces: 1}, nil, "interfaces"},
		{"too many vpc cidrs", Limits{MaxCIDRsPerVPC: 1}, nil, v0 + ".cidrs"},
		{"too many rules", Limits{MaxRulesPerGroup: 1}, nil, g0 + ".rules"},
		{"too many sources in a rule", Limits{MaxSourcesPerRule: 2}, nil, r1},
		{"too many rule sources in all", Limits{MaxTotalRuleSource: 4}, nil, g1 + ".rules[0]"},
		{"too many addrs on an interface", Limits{MaxAddrsPerIface: 2}, nil, n0 + ".addrs"},
		{"too many addrs in all", Limits{MaxTotalAddrs: 3}, nil, "interfaces[1](eni-00000002).addrs"},
		{"too many groups on an interface", Limits{MaxGroupsPerIface: 1}, nil, n0 + ".groups"},

		// VPCs.
		{"vpc id", Limits{}, func(rs *Ruleset) { rs.VPCs[0].ID = "vpc-XYZ" }, "vpcs[0].id"},
		{"vpc id empty", Limits{}, func(rs *Ruleset) { rs.VPCs[1].ID = "" }, "vpcs[1].id"},
		{"vpc id duplicate", Limits{}, func(rs *Ruleset) { rs.VPCs[1].ID = rs.VPCs[0].ID }, "vpcs[1](vpc-00000001)"},
		{"vpcs unsorted", Limits{}, func(rs *Ruleset) { rs.VPCs[0], rs.VPCs[1] = rs.VPCs[1], rs.VPCs[0] }, "vpcs[1](vpc-00000001)"},
		{"vpc region", Limits{}, func(rs *Ruleset) { rs.VPCs[0].Region = "Europe" }, v0 + ".region"},
		{"vpc region empty", Limits{}, func(rs *Ruleset) { rs.VPCs[0].Region = "" }, v0 + ".region"},
		{"vpc owner", Limits{}, func(rs *Ruleset) { rs.VPCs[0].Owner = "12345" }, v0 + ".owner"},
		{"vpc cidr invalid", Limits{}, func(rs *Ruleset) { rs.VPCs[0].CIDRs[0] = netip.Prefix{} }, v0 + ".cidrs[0]"},
		{"vpc cidr host bits", Limits{}, func(rs *Ruleset) { rs.VPCs[0].CIDRs[0] = pfx("10.0.0.1/16") }, v0 + ".cidrs[0]"},
		{"vpc cidr 4in6", Limits{}, func(rs *Ruleset) { rs.VPCs[0].CIDRs[0] = pfx("::ffff:10.0.0.0/112") }, v0 + ".cidrs[0]"},
		{"vpc cidrs unsorted", Limits{}, func(rs *Ruleset) { c := rs.VPCs[0].CIDRs; c[0], c[1] = c[1], c[0] }, v0 + ".cidrs[1]"},
		{"vpc cidr duplicate", Limits{}, func(rs *Ruleset) { rs.VPCs[0].CIDRs[1] = rs.VPCs[0].CIDRs[0] }, v0 + ".cidrs[1]"},

		// Groups.
		{"group id", Limits{}, func(rs *Ruleset) { rs.Groups[0].ID = "sg-0000000A" }, "groups[0].id"},
		{"group id too short", Limits{}, func(rs *Ruleset) { rs.Groups[0].ID = "sg-0a" }, "groups[0].id"},
		{"group id with newline", Limits{}, func(rs *Ruleset) { rs.Groups[0].ID = "sg-0000000a\n" }, "groups[0].id"},
		{"group id duplicate", Limits{}, func(rs *Ruleset) { rs.Groups[1].ID = rs.Groups[0].ID }, "groups[1](sg-0000000a)"},
		{"groups unsorted", Limits{}, func(rs *Ruleset) { rs.Groups[0], rs.Groups[1] = rs.Groups[1], rs.Groups[0] }, "groups[1](sg-0000000a)"},
		{"group name too long", Limits{}, func(rs *Ruleset) { rs.Groups[0].Name = strings.Repeat("n", 256) }, g0 + ".name"},
		{"group name invalid utf-8", Limits{}, func(rs *Ruleset) { rs.Groups[0].Name = "we\xffb" }, g0 + ".name"},
		{"group region", Limits{}, func(rs *Ruleset) { rs.Groups[0].Region = "eu-west-1\n" }, g0 + ".region"},
		{"group vpc", Limits{}, func(rs *Ruleset) { rs.Groups[0].VPC = "vpc-1" }, g0 + ".vpc"},
		{"group owner", Limits{}, func(rs *Ruleset) { rs.Groups[0].Owner = "amazon" }, g0 + ".owner"},
		{"excluded group with rules", Limits{}, func(rs *Ruleset) { rs.Groups[0].Excluded = true }, g0 + ".rules"},

		// Rules: protocol and ports.
		{"protocol below -1", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].Protocol = -2 }, r1 + ".proto"},
		{"protocol above 255", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].Protocol = 256 }, r1 + ".proto"},
		{"tcp from negative", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].FromPort = -1 }, r1 + ".from"},
		{"tcp from too big", Limits{}, func(rs *Ruleset) { r := &rs.Groups[0].Rules[1]; r.FromPort, r.ToPort = 65536, 65536 }, r1 + ".from"},
		{"tcp to negative", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].ToPort = -1 }, r1 + ".to"},
		{"tcp to too big", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].ToPort = 65536 }, r1 + ".to"},
		{"tcp range reversed", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].ToPort = 442 }, r1 + ".to"},
		{"udp from negative", Limits{}, func(rs *Ruleset) { r := &rs.Groups[0].Rules[1]; r.Protocol, r.FromPort = ProtoUDP, -1 }, r1 + ".from"},
		{"udp to too big", Limits{}, func(rs *Ruleset) { r := &rs.Groups[0].Rules[1]; r.Protocol, r.ToPort = ProtoUDP, 70000 }, r1 + ".to"},
		{"udp range reversed", Limits{}, func(rs *Ruleset) { r := &rs.Groups[0].Rules[1]; r.Protocol, r.FromPort, r.ToPort = ProtoUDP, 53, 52 }, r1 + ".to"},
		{"icmp type below -1", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[0].FromPort = -2 }, r0 + ".from"},
		{"icmp type above 255", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[0].FromPort = 256 }, r0 + ".from"},
		{"icmp code below -1", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[0].ToPort = -2 }, r0 + ".to"},
		{"icmp code above 255", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[0].ToPort = 256 }, r0 + ".to"},
		{"icmp code without type", Limits{}, func(rs *Ruleset) { r := &rs.Groups[0].Rules[0]; r.FromPort, r.ToPort = -1, 0 }, r0 + ".to"},
		{"icmpv6 type above 255", Limits{}, func(rs *Ruleset) { rs.Groups[1].Rules[1].FromPort = 300 }, rb1 + ".from"},
		{"icmpv6 code without type", Limits{}, func(rs *Ruleset) { rs.Groups[1].Rules[1].ToPort = 4 }, rb1 + ".to"},
		{"ports on all protocols", Limits{}, func(rs *Ruleset) { r := &rs.Groups[1].Rules[1]; r.Protocol, r.FromPort, r.ToPort = ProtoAll, 0, 65535 }, rb1 + ".from"},
		{"ports on esp", Limits{}, func(rs *Ruleset) { r := &rs.Groups[1].Rules[1]; r.Protocol, r.FromPort = 50, 0 }, rb1 + ".from"},
		{"to port on gre", Limits{}, func(rs *Ruleset) { r := &rs.Groups[1].Rules[1]; r.Protocol, r.ToPort = 47, 5 }, rb1 + ".from"},
		{"no sources", Limits{}, func(rs *Ruleset) { r := &rs.Groups[0].Rules[1]; r.CIDRs, r.Groups = nil, nil }, r1},
		{"rules unsorted", Limits{}, func(rs *Ruleset) { r := rs.Groups[0].Rules; r[0], r[1] = r[1], r[0] }, r1},
		{"two rules with the same ports", Limits{}, func(rs *Ruleset) {
			r := &rs.Groups[0].Rules[0]
			*r = rs.Groups[0].Rules[1]
			r.CIDRs = []netip.Prefix{pfx("10.9.0.0/16")}
		}, r1},

		// Rules: sources.
		{"rule cidr invalid", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].CIDRs[0] = netip.Prefix{} }, r1 + ".cidrs[0]"},
		{"rule cidr host bits", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].CIDRs[0] = pfx("1.2.3.4/24") }, r1 + ".cidrs[0]"},
		{"rule cidr ipv6 host bits", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].CIDRs[1] = pfx("2001:db8::1/64") }, r1 + ".cidrs[1]"},
		{"rule cidr bad length", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].CIDRs[0] = netip.PrefixFrom(addr("1.2.3.0"), 33) }, r1 + ".cidrs[0]"},
		{"rule cidr 4in6", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].CIDRs[1] = pfx("::ffff:0.0.0.0/96") }, r1 + ".cidrs[1]"},
		{"icmp rule with ipv6 cidr", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[0].CIDRs[0] = pfx("fd00::/8") }, r0 + ".cidrs[0]"},
		{"icmpv6 rule with ipv4 cidr", Limits{}, func(rs *Ruleset) { rs.Groups[1].Rules[1].CIDRs[0] = pfx("10.0.0.0/8") }, rb1 + ".cidrs[0]"},
		{"rule cidrs unsorted", Limits{}, func(rs *Ruleset) { c := rs.Groups[0].Rules[1].CIDRs; c[0], c[1] = c[1], c[0] }, r1 + ".cidrs[1]"},
		{"rule cidr duplicate", Limits{}, func(rs *Ruleset) { c := rs.Groups[0].Rules[1].CIDRs; c[1] = c[0] }, r1 + ".cidrs[1]"},
		{"rule group id", Limits{}, func(rs *Ruleset) { rs.Groups[0].Rules[1].Groups[0] = "sg-0000000b; rm" }, r1 + ".groups[0]"},
		{"rule groups unsorted", Limits{}, func(rs *Ruleset) { g := rs.Groups[1].Rules[0].Groups; g[0], g[1] = g[1], g[0] }, g1 + ".rules[0].groups[1]"},
		{"rule group duplicate", Limits{}, func(rs *Ruleset) { g := rs.Groups[1].Rules[0].Groups; g[1] = g[0] }, g1 + ".rules[0].groups[1]"},

		// Interfaces.
		{"interface id", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].ID = "i-00000001" }, "interfaces[0].id"},
		{"interface id duplicate", Limits{}, func(rs *Ruleset) { rs.Interfaces[1].ID = rs.Interfaces[0].ID }, "interfaces[1](eni-00000001)"},
		{"interfaces unsorted", Limits{}, func(rs *Ruleset) { n := rs.Interfaces; n[0], n[1] = n[1], n[0] }, "interfaces[1](eni-00000001)"},
		{"interface region", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Region = "eu-west" }, n0 + ".region"},
		{"interface vpc", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].VPC = "sg-0000000a" }, n0 + ".vpc"},
		{"addr invalid", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Addrs[0] = netip.Addr{} }, n0 + ".addrs[0]"},
		{"addr zone", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Addrs[2] = addr("fd00::1%eth0") }, n0 + ".addrs[2]"},
		{"addr 4in6", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Addrs[2] = addr("::ffff:10.0.0.3") }, n0 + ".addrs[2]"},
		{"addr unspecified v4", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Addrs[0] = addr("0.0.0.0") }, n0 + ".addrs[0]"},
		{"addr unspecified v6", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Addrs[2] = addr("::") }, n0 + ".addrs[2]"},
		{"addr multicast v4", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Addrs[1] = addr("224.0.0.1") }, n0 + ".addrs[1]"},
		{"addr multicast v6", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Addrs[2] = addr("ff02::1") }, n0 + ".addrs[2]"},
		{"addr duplicate", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Addrs[1] = rs.Interfaces[0].Addrs[0] }, n0 + ".addrs[1]"},
		{"addrs unsorted", Limits{}, func(rs *Ruleset) { a := rs.Interfaces[0].Addrs; a[1], a[2] = a[2], a[1] }, n0 + ".addrs[2]"},
		{"interface group id", Limits{}, func(rs *Ruleset) { rs.Interfaces[0].Groups[1] = "default" }, n0 + ".groups[1]"},
		{"interface groups unsorted", Limits{}, func(rs *Ruleset) { g := rs.Interfaces[0].Groups; g[0], g[1] = g[1], g[0] }, n0 + ".groups[1]"},
		{"interface group duplicate", Limits{}, func(rs *Ruleset) { g := rs.Interfaces[0].Groups; g[1] = g[0] }, n0 + ".groups[1]"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		if seen[tt.name] {
			t.Fatalf("duplicate case name %q", tt.name)
		}
		seen[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			rs := validRuleset()
			if tt.mut != nil {
				tt.mut(rs)
			}
			err := rs.ValidateLimits(tt.lim)
			checkInvalid(t, err, tt.field)
			// Encode refuses what Validate refuses (with default limits).
			if tt.lim == (Limits{}) {
				if _, err := Encode(rs); !errors.Is(err, ErrInvalid) {
					t.Errorf("Encode: got %v, want ErrInvalid", err)
				}
			}
		})
	}
}

// checkInvalid asserts that err is a *ValidationError for field.
func checkInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one for %s", field)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("errors.As(%v, *ValidationError) = false", err)
	}
	if ve.Field != field {
		t.Errorf("Field = %q, want %q (error: %v)", ve.Field, field, err)
	}
	if ve.Reason == "" || !strings.Contains(err.Error(), field+": ") {
		t.Errorf("error %q does not name %q with a reason", err, field)
	}
}

// IDs of different kinds cannot collide: their prefixes differ and the ID
// patterns leave no room for anything else. The collision check therefore
// only fires within a kind (see the "duplicate" cases above); this test
// pins the premise.
func TestIDKindsDisjoint(t *testing.T) {
	ids := []string{"sg-00000001", "eni-00000001", "vpc-00000001"}
	checks := []func(string) bool{ValidGroupID, ValidInterfaceID, ValidVPCID}
	for i, id := range ids {
		for j, ok := range checks {
			if got := ok(id); got != (i == j) {
				t.Errorf("check %d(%q) = %v", j, id, got)
			}
		}
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		mut  func(rs *Ruleset)
	}{
		{"no owner, no vpc", func(rs *Ruleset) { rs.Groups[0].Owner, rs.Groups[0].VPC, rs.Interfaces[0].VPC = "", "", "" }},
		{"name of 255 bytes", func(rs *Ruleset) { rs.Groups[0].Name = strings.Repeat("é", 127) + "x" }},
		{"empty name", func(rs *Ruleset) { rs.Groups[0].Name = "" }},
		{"tcp all ports", func(rs *Ruleset) { r := &rs.Groups[0].Rules[1]; r.FromPort, r.ToPort = 0, 65535 }},
		{"icmp type and code", func(rs *Ruleset) { r := &rs.Groups[0].Rules[0]; r.FromPort, r.ToPort = 255, 255 }},
		{"protocol 0", func(rs *Ruleset) { r := &rs.Groups[0].Rules[0]; r.Protocol, r.FromPort, r.ToPort = 0, -1, -1 }},
		{"protocol 255", func(rs *Ruleset) { r := &rs.Groups[1].Rules[1]; r.Protocol = 255 }},
		{"stale group reference", func(rs *Ruleset) { rs.Groups[0].Rules[1].Groups = []string{"sg-ffffffffffffffff0"} }},
		{"interface without groups or addrs", func(rs *Ruleset) { rs.Interfaces[1].Groups, rs.Interfaces[1].Addrs = nil, nil }},
		{"empty ruleset", func(rs *Ruleset) { rs.VPCs, rs.Groups, rs.Interfaces = nil, nil, nil }},
		{"longest scope", func(rs *Ruleset) { rs.Scope = "a" + strings.Repeat("-._:/9Z", 9) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := validRuleset()
			tt.mut(rs)
			if err := rs.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The ID, region, owner and scope checks are hand-written for speed; they
// must accept exactly what these regular expressions (the specification)
// accept. The region grammar covers the region patterns of every AWS
// partition (eusc-de-east-1 included), at most 32 bytes.
func TestMatchersAgreeWithRegexps(t *testing.T) {
	specs := []struct {
		name   string
		re     *regexp.Regexp
		maxLen int // if not 0, longer strings do not match
		ok     func(string) bool
	}{
		{"group", regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`), 0, ValidGroupID},
		{"eni", regexp.MustCompile(`^eni-[0-9a-f]{8,17}$`), 0, ValidInterfaceID},
		{"vpc", regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`), 0, ValidVPCID},
		{"region", regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+){1,3}-[0-9]{1,2}$`), 32, ValidRegion},
		{"owner", regexp.MustCompile(`^[0-9]{12}$`), 0, func(s string) bool {
			rs := validRuleset()
			rs.VPCs[0].Owner = s
			return s != "" && rs.Validate() == nil
		}},
		{"scope", regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$`), 0, func(s string) bool {
			rs := validRuleset()
			rs.Scope = s
			return rs.Validate() == nil
		}},
	}
	fixed := []string{
		"", "sg-", "sg-0000000", "sg-00000000", "sg-0123456789abcdef0", "sg-0123456789abcdef01",
		"sg-0000000g", "sg-0000000A", "SG-00000000", "sg-00000000\n", "xsg-00000000", "sg--0000000",
		"eni-00000000", "vpc-00000000", "vpc-ffffffffffffffff", "eni-12345678 ",
		"eu-west-1", "us-gov-east-1", "ap-southeast-12", "eu-west-123", "eu-west-", "eu-1", "eu--west-1",
		"e-west-1", "eur-west-1", "eusc-de-east-1", "eusco-de-east-1", "us-isob-east-1", "us-a-b-c-1", "us-a-b-c-d-1",
		"us-aaaaaaaaaaaaaaaaaaaaaaaaa-1", "us-aaaaaaaaaaaaaaaaaaaaaaaaaa-1", "eu-west-1a", "eu-West-1", "-eu-west-1", "eu-west-1-", "eu-west-x",
		"123456789012", "12345678901", "1234567890123", "12345678901a", "١٢٣٤٥٦٧٨٩٠١٢",
		"a", "Z", "0", "-a", ".a", "a b", "prod/eu-west-1:blue_green.v2", "a\x00", "é",
		strings.Repeat("a", 64), strings.Repeat("a", 65),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alpha := []string{"sg-", "eni-", "vpc-", "-", "0", "9", "a", "f", "g", "z", "A", "_", ".", "/", ":", " ", "\n", "é", "eu", "west", "1", "12"}
	random := func() string {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(alpha[rng.IntN(len(alpha))])
		}
		return b.String()
	}
	for _, sp := range specs {
		t.Run(sp.name, func(t *testing.T) {
			cases := slices.Clone(fixed)
			for range 3000 {
				cases = append(cases, random())
			}
			for _, s := range cases {
				want := sp.re.MatchString(s) && (sp.maxLen == 0 || len(s) <= sp.maxLen)
				if got := sp.ok(s); got != want {
					t.Errorf("%q: got %v, regexp says %v", s, got, want)
				}
			}
		})
	}
}
