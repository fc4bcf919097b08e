package ruleset

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/reyes-fw/reyes/inventory"
)

func TestParseProtocol(t *testing.T) {
	tests := []struct {
		in   string
		want int
		bad  bool
	}{
		{in: "tcp", want: ProtoTCP},
		{in: "TCP", want: ProtoTCP},
		{in: "udp", want: ProtoUDP},
		{in: "icmp", want: ProtoICMP},
		{in: "icmpv6", want: ProtoICMPv6},
		{in: "ipv6-icmp", want: ProtoICMPv6},
		{in: "-1", want: ProtoAll},
		{in: "all", want: ProtoAll},
		{in: "6", want: ProtoTCP},
		{in: "17", want: ProtoUDP},
		{in: "1", want: ProtoICMP},
		{in: "58", want: ProtoICMPv6},
		{in: "0", want: 0},
		{in: "50", want: 50},
		{in: "255", want: 255},
		{in: "", bad: true},
		{in: "256", bad: true},
		{in: "-2", bad: true},
		{in: "06", bad: true},
		{in: "+6", bad: true},
		{in: " 6", bad: true},
		{in: "tcp ", bad: true},
		{in: "0x6", bad: true},
		{in: "sctp", bad: true},
		{in: "99999999999999999999", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseProtocol(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("got %d, want an error", got)
				}
				if !strings.Contains(err.Error(), "IpProtocol") {
					t.Errorf("error %q does not name IpProtocol", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func p32(v int32) *int32 { return &v }

const (
	sgA = "sg-000000000000000a1"
	sgB = "sg-000000000000000b1"
	sgV = "sg-000000000000000c1" // "vpn"
	sgW = "sg-000000000000000c2" // "vpn" in another VPC
	plA = "pl-00000000000000001"
)

// testInventory is one region with a few groups, interfaces and a prefix
// list; perms are the ingress of sgA.
func testInventory(perms ...inventory.Permission) *inventory.Inventory {
	return &inventory.Inventory{Regions: []inventory.Region{{
		Name: "eu-west-1",
		VPCs: []inventory.VPC{
			{ID: "vpc-00000001", OwnerID: "123456789012", CIDRs: []netip.Prefix{pfx("fd00:1::/56"), pfx("10.1.0.0/16")}},
			{ID: "vpc-00000002", OwnerID: "123456789012", CIDRs: []netip.Prefix{pfx("10.2.0.0/16")}},
		},
		SecurityGroups: []inventory.SecurityGroup{
			{ID: sgA, Name: "app", VPCID: "vpc-00000001", OwnerID: "123456789012", Ingress: perms},
			{ID: sgB, Name: "db", VPCID: "vpc-00000001", Ingress: []inventory.Permission{
				{Protocol: "tcp", FromPort: p32(5432), ToPort: p32(5432), Groups: []inventory.GroupRef{{GroupID: sgA}}},
			}},
			{ID: sgV, Name: "vpn", VPCID: "vpc-00000001", Ingress: []inventory.Permission{{Protocol: "-1", CIDRs: []netip.Prefix{pfx("0.0.0.0/0")}}}},
			{ID: sgW, Name: "vpn", VPCID: "vpc-00000002", Ingress: []inventory.Permission{{Protocol: "-1", CIDRs: []netip.Prefix{pfx("::/0")}}}},
		},
		NetworkInterfaces: []inventory.NetworkInterface{
			{ID: "eni-00000003", VPCID: "vpc-00000001", Addresses: []netip.Addr{addr("10.1.0.30"), addr("fd00:1::30"), addr("10.1.0.31")}, Groups: []string{sgB, sgA}},
			{ID: "eni-00000001", VPCID: "vpc-00000001", Addresses: []netip.Addr{addr("10.1.0.10")}, Groups: []string{sgA}},
			{ID: "eni-00000002", VPCID: "vpc-00000001", Addresses: []netip.Addr{addr("10.1.0.20"), addr("10.1.0.21")}, Groups: []string{sgV, sgA}},
			// An overlapping VPC reuses an address.
			{ID: "eni-00000004", VPCID: "vpc-00000002", Addresses: []netip.Addr{addr("10.1.0.10")}, Groups: []string{sgW}},
		},
		PrefixLists: []inventory.PrefixList{{ID: plA, Entries: []netip.Prefix{pfx("192.0.2.0/24"), pfx("2001:db8::/32"), pfx("198.51.100.0/24")}}},
	}}}
}

func TestBuildRules(t *testing.T) {
	cidrs := func(s ...string) []netip.Prefix {
		var ps []netip.Prefix
		for _, c := range s {
			ps = append(ps, pfx(c))
		}
		return ps
	}
	any4 := cidrs("0.0.0.0/0")
	both := cidrs("0.0.0.0/0", "::/0")
	tests := []struct {
		name  string
		perms []inventory.Permission
		want  []Rule
	}{
		{"tcp without ports is all ports",
			[]inventory.Permission{{Protocol: "tcp", CIDRs: any4}},
			[]Rule{{Protocol: ProtoTCP, FromPort: 0, ToPort: 65535, CIDRs: any4}}},
		{"tcp -1 is all ports",
			[]inventory.Permission{{Protocol: "tcp", FromPort: p32(-1), ToPort: p32(-1), CIDRs: any4}},
			[]Rule{{Protocol: ProtoTCP, FromPort: 0, ToPort: 65535, CIDRs: any4}}},
		{"udp -1 is all ports",
			[]inventory.Permission{{Protocol: "udp", FromPort: p32(-1), ToPort: p32(-1), CIDRs: any4}},
			[]Rule{{Protocol: ProtoUDP, FromPort: 0, ToPort: 65535, CIDRs: any4}}},
		{"tcp range",
			[]inventory.Permission{{Protocol: "tcp", FromPort: p32(8000), ToPort: p32(8080), CIDRs: both}},
			[]Rule{{Protocol: ProtoTCP, FromPort: 8000, ToPort: 8080, CIDRs: both}}},
		{"protocol 6 is tcp",
			[]inventory.Permission{{Protocol: "6", FromPort: p32(22), ToPort: p32(22), CIDRs: any4}},
			[]Rule{{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDRs: any4}}},
		{"protocol 17 without ports is all udp ports",
			[]inventory.Permission{{Protocol: "17", CIDRs: any4}},
			[]Rule{{Protocol: ProtoUDP, FromPort: 0, ToPort: 65535, CIDRs: any4}}},
		{"all protocols",
			[]inventory.Permission{{Protocol: "-1", CIDRs: both}},
			[]Rule{{Protocol: ProtoAll, FromPort: -1, ToPort: -1, CIDRs: both}}},
		{"all protocols ignores ports",
			[]inventory.Permission{{Protocol: "-1", FromPort: p32(0), ToPort: p32(65535), CIDRs: both}},
			[]Rule{{Protocol: ProtoAll, FromPort: -1, ToPort: -1, CIDRs: both}}},
		{"esp ignores ports",
			[]inventory.Permission{{Protocol: "50", FromPort: p32(0), ToPort: p32(0), CIDRs: any4}},
			[]Rule{{Protocol: 50, FromPort: -1, ToPort: -1, CIDRs: any4}}},
		{"icmp type -1 forces code -1",
			[]inventory.Permission{{Protocol: "icmp", FromPort: p32(-1), ToPort: p32(4), CIDRs: any4}},
			[]Rule{{Protocol: ProtoICMP, FromPort: -1, ToPort: -1, CIDRs: any4}}},
		{"icmp type and code",
			[]inventory.Permission{{Protocol: "icmp", FromPort: p32(3), ToPort: p32(4), CIDRs: any4}},
			[]Rule{{Protocol: ProtoICMP, FromPort: 3, ToPort: 4, CIDRs: any4}}},
		{"icmp type, any code",
			[]inventory.Permission{{Protocol: "1", FromPort: p32(8), ToPort: p32(-1), CIDRs: any4}},
			[]Rule{{Protocol: ProtoICMP, FromPort: 8, ToPort: -1, CIDRs: any4}}},
		{"icmp drops ipv6 sources",
			[]inventory.Permission{{Protocol: "icmp", FromPort: p32(-1), ToPort: p32(-1), CIDRs: cidrs("::/0", "10.0.0.0/8", "fd00::/8")}},
			[]Rule{{Protocol: ProtoICMP, FromPort: -1, ToPort: -1, CIDRs: cidrs("10.0.0.0/8")}}},
		{"icmpv6 drops ipv4 sources",
			[]inventory.Permission{{Protocol: "icmpv6", FromPort: p32(128), ToPort: p32(0), CIDRs: both}},
			[]Rule{{Protocol: ProtoICMPv6, FromPort: 128, ToPort: 0, CIDRs: cidrs("::/0")}}},
		{"icmp left without sources is dropped",
			[]inventory.Permission{{Protocol: "icmp", CIDRs: cidrs("::/0")}, {Protocol: "58", CIDRs: any4}},
			[]Rule{}},
		{"icmp keeps group sources",
			[]inventory.Permission{{Protocol: "icmp", CIDRs: cidrs("::/0"), Groups: []inventory.GroupRef{{GroupID: sgB}}}},
			[]Rule{{Protocol: ProtoICMP, FromPort: -1, ToPort: -1, Groups: []string{sgB}}}},
		{"prefix list expanded",
			[]inventory.Permission{{Protocol: "tcp", FromPort: p32(443), ToPort: p32(443), PrefixListIDs: []string{plA}, CIDRs: cidrs("192.0.2.0/24")}},
			[]Rule{{Protocol: ProtoTCP, FromPort: 443, ToPort: 443, CIDRs: cidrs("192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32")}}},
		{"prefix list in icmp keeps ipv4 only",
			[]inventory.Permission{{Protocol: "icmp", FromPort: p32(8), ToPort: p32(0), PrefixListIDs: []string{plA}}},
			[]Rule{{Protocol: ProtoICMP, FromPort: 8, ToPort: 0, CIDRs: cidrs("192.0.2.0/24", "198.51.100.0/24")}}},
		{"prefix list in icmpv6 keeps ipv6 only",
			[]inventory.Permission{{Protocol: "icmpv6", PrefixListIDs: []string{plA}}},
			[]Rule{{Protocol: ProtoICMPv6, FromPort: -1, ToPort: -1, CIDRs: cidrs("2001:db8::/32")}}},
		{"same protocol and ports merged",
			[]inventory.Permission{
				{Protocol: "tcp", FromPort: p32(22), ToPort: p32(22), CIDRs: cidrs("10.0.0.0/8")},
				{Protocol: "6", FromPort: p32(22), ToPort: p32(22), CIDRs: cidrs("10.0.0.0/8", "fd00::/8"), Groups: []inventory.GroupRef{{GroupID: sgB}, {GroupID: sgA}}},
				{Protocol: "tcp", FromPort: p32(22), ToPort: p32(23), Groups: []inventory.GroupRef{{GroupID: sgB}}},
				{Protocol: "TCP", FromPort: p32(22), ToPort: p32(22), Groups: []inventory.GroupRef{{GroupID: sgB}}},
			},
			[]Rule{
				{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDRs: cidrs("10.0.0.0/8", "fd00::/8"), Groups: []string{sgA, sgB}},
				{Protocol: ProtoTCP, FromPort: 22, ToPort: 23, Groups: []string{sgB}},
			}},
		{"rules sorted by protocol and ports",
			[]inventory.Permission{
				{Protocol: "udp", FromPort: p32(53), ToPort: p32(53), CIDRs: any4},
				{Protocol: "tcp", FromPort: p32(443), ToPort: p32(443), CIDRs: any4},
				{Protocol: "-1", Groups: []inventory.GroupRef{{GroupID: sgA}}},
				{Protocol: "tcp", FromPort: p32(80), ToPort: p32(80), CIDRs: any4},
			},
			[]Rule{
				{Protocol: ProtoAll, FromPort: -1, ToPort: -1, Groups: []string{sgA}},
				{Protocol: ProtoTCP, FromPort: 80, ToPort: 80, CIDRs: any4},
				{Protocol: ProtoTCP, FromPort: 443, ToPort: 443, CIDRs: any4},
				{Protocol: ProtoUDP, FromPort: 53, ToPort: 53, CIDRs: any4},
			}},
		{"stale reference kept",
			[]inventory.Permission{{Protocol: "tcp", FromPort: p32(80), ToPort: p32(80), Groups: []inventory.GroupRef{{GroupID: "sg-0ddba11deadbeef00", UserID: "210987654321"}}}},
			[]Rule{{Protocol: ProtoTCP, FromPort: 80, ToPort: 80, Groups: []string{"sg-0ddba11deadbeef00"}}}},
		{"no permissions", nil, []Rule{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustBuild(t, testInventory(tt.perms...), BuildOptions{})
			g := NewIndex(rs).Group(sgA)
			if g == nil {
				t.Fatal("group missing")
			}
			if !reflect.DeepEqual(g.Rules, tt.want) {
				t.Errorf("rules:\n got %+v\nwant %+v", g.Rules, tt.want)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name  string
		inv   func() *inventory.Inventory
		opts  BuildOptions
		want  []string // in the error text
		field string   // ErrInvalid and this field, if set
	}{
		{name: "bad protocol",
			inv: func() *inventory.Inventory {
				return testInventory(inventory.Permission{Protocol: "sctp", CIDRs: []netip.Prefix{pfx("10.0.0.0/8")}})
			},
			want: []string{"eu-west-1", sgA, "IpPermissions[0]", `"sctp"`}},
		{name: "port out of range",
			inv: func() *inventory.Inventory {
				return testInventory(
					inventory.Permission{Protocol: "tcp", FromPort: p32(22), ToPort: p32(22), CIDRs: []netip.Prefix{pfx("10.0.0.0/8")}},
					inventory.Permission{Protocol: "tcp", FromPort: p32(1), ToPort: p32(65536)})
			},
			want: []string{sgA, "IpPermissions[1]", "1-65536"}},
		{name: "reversed port range",
			inv: func() *inventory.Inventory {
				return testInventory(inventory.Permission{Protocol: "udp", FromPort: p32(10), ToPort: p32(5)})
			},
			want: []string{"IpPermissions[0]", "10-5"}},
		{name: "half of all ports",
			inv: func() *inventory.Inventory {
				return testInventory(inventory.Permission{Protocol: "tcp", FromPort: p32(-1), ToPort: p32(80)})
			},
			want: []string{"IpPermissions[0]", "-1-80"}},
		{name: "icmp type out of range",
			inv: func() *inventory.Inventory {
				return testInventory(inventory.Permission{Protocol: "icmp", FromPort: p32(256), ToPort: p32(0)})
			},
			want: []string{"IpPermissions[0]", "256/0"}},
		{name: "icmp code out of range",
			inv: func() *inventory.Inventory {
				return testInventory(inventory.Permission{Protocol: "icmpv6", FromPort: p32(1), ToPort: p32(-2)})
			},
			want: []string{"IpPermissions[0]", "1/-2"}},
		{name: "missing prefix list",
			inv: func() *inventory.Inventory {
				return testInventory(inventory.Permission{Protocol: "tcp", PrefixListIDs: []string{"pl-0000000000000dead"}})
			},
			want: []string{sgA, "prefix list pl-0000000000000dead is not in the inventory"}},
		{name: "prefix list of another region",
			inv: func() *inventory.Inventory {
				inv := testInventory()
				inv.Regions = append(inv.Regions, inventory.Region{Name: "us-west-2", SecurityGroups: []inventory.SecurityGroup{
					{ID: "sg-00000000000000099", Name: "x", Ingress: []inventory.Permission{{Protocol: "tcp", PrefixListIDs: []string{plA}}}},
				}})
				return inv
			},
			want: []string{"us-west-2", "sg-00000000000000099", "prefix list " + plA}},
		{name: "zero GeneratedAt", inv: func() *inventory.Inventory { return testInventory() }, opts: BuildOptions{GeneratedAt: time.Time{}},
			want: []string{"GeneratedAt is required"}},
		{name: "negative TTL", inv: func() *inventory.Inventory { return testInventory() }, opts: BuildOptions{GeneratedAt: t0, TTL: -time.Minute},
			want: []string{"negative TTL -1m0s"}},
		{name: "invalid scope", inv: func() *inventory.Inventory { return testInventory() }, opts: BuildOptions{GeneratedAt: t0, Scope: "a b"},
			field: "scope"},
		{name: "group in two regions",
			inv: func() *inventory.Inventory {
				inv := testInventory()
				inv.Regions = append(inv.Regions, inventory.Region{Name: "us-west-2", SecurityGroups: []inventory.SecurityGroup{{ID: sgB, Name: "copy"}}})
				return inv
			},
			field: "groups(" + sgB + ")"},
		{name: "vpc cidr with host bits",
			inv: func() *inventory.Inventory {
				inv := testInventory()
				inv.Regions[0].VPCs[1].CIDRs[0] = pfx("10.2.0.1/16")
				return inv
			},
			field: "vpcs[1](vpc-00000002).cidrs[0]"},
		{name: "bad region name",
			inv: func() *inventory.Inventory {
				inv := testInventory()
				inv.Regions[0].Name = "EU"
				return inv
			},
			field: "vpcs[0](vpc-00000001).region"},
		{name: "multicast interface address",
			inv: func() *inventory.Inventory {
				inv := testInventory()
				inv.Regions[0].NetworkInterfaces[1].Addresses[0] = addr("239.1.2.3")
				return inv
			},
			field: "interfaces[0](eni-00000001).addrs[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts.GeneratedAt.IsZero() && tt.name != "zero GeneratedAt" {
				opts.GeneratedAt = t0
			}
			rs, err := Build(tt.inv(), opts)
			if err == nil {
				t.Fatalf("Build succeeded: %+v", rs)
			}
			if rs != nil {
				t.Errorf("Build returned a ruleset with its error")
			}
			if !strings.HasPrefix(err.Error(), "building ruleset: ") {
				t.Errorf("error %q lacks the verb-ing prefix", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.field != "" {
				checkInvalid(t, err, tt.field)
			} else if errors.Is(err, ErrInvalid) {
				t.Errorf("error %q is ErrInvalid", err)
			}
		})
	}
}

func TestBuildExclude(t *testing.T) {
	perms := []inventory.Permission{{Protocol: "tcp", FromPort: p32(22), ToPort: p32(22), Groups: []inventory.GroupRef{{GroupID: sgV}}}}
	tests := []struct {
		name     string
		exclude  []string
		excluded []string
	}{
		{"nothing", nil, nil},
		{"by name, in every VPC", []string{"vpn"}, []string{sgV, sgW}},
		{"by ID", []string{sgW}, []string{sgW}},
		{"by name and ID", []string{"db", sgV}, []string{sgB, sgV}},
		{"unknown name", []string{"nope", "sg-00000000000000fff"}, nil},
		{"name is case-sensitive", []string{"VPN"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustBuild(t, testInventory(perms...), BuildOptions{Exclude: tt.exclude})
			x := NewIndex(rs)
			for _, g := range rs.Groups {
				want := slices.Contains(tt.excluded, g.ID)
				if g.Excluded != want {
					t.Errorf("%s: Excluded = %v, want %v", g.ID, g.Excluded, want)
				}
				if want && (g.Rules == nil || len(g.Rules) != 0) {
					t.Errorf("%s: excluded group has rules %#v, want []", g.ID, g.Rules)
				}
				if !want && g.ID != sgA && len(g.Rules) == 0 {
					t.Errorf("%s: rules lost", g.ID)
				}
			}
			// An excluded group keeps its members, so that sgA's rule
			// still lets them in.
			if got := x.Members(sgV); !slices.Equal(got, []netip.Addr{addr("10.1.0.20"), addr("10.1.0.21")}) {
				t.Errorf("Members(vpn) = %v", got)
			}
			if got := x.Group(sgA).Rules[0].Groups; !slices.Equal(got, []string{sgV}) {
				t.Errorf("reference to the excluded group: %v", got)
			}
		})
	}
}

func TestBuildHeader(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	gen := time.Date(2025, 6, 1, 14, 30, 0, 123, paris)
	tests := []struct {
		name string
		opts BuildOptions
		want Header
	}{
		{"defaults", BuildOptions{GeneratedAt: gen},
			Header{Format: Format, Type: Type, Scope: DefaultScope, Serial: uint64(gen.UnixNano()), GeneratedAt: gen.UTC(), NotAfter: gen.UTC().Add(DefaultTTL)}},
		{"explicit", BuildOptions{GeneratedAt: gen, Scope: "prod/eu", Serial: 42, TTL: 5 * time.Minute},
			Header{Format: Format, Type: Type, Scope: "prod/eu", Serial: 42, GeneratedAt: gen.UTC(), NotAfter: gen.UTC().Add(5 * time.Minute)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustBuild(t, testInventory(), tt.opts)
			if !reflect.DeepEqual(rs.Header, tt.want) {
				t.Errorf("got  %+v\nwant %+v", rs.Header, tt.want)
			}
			if rs.GeneratedAt.Location() != time.UTC {
				t.Errorf("GeneratedAt in %v, want UTC", rs.GeneratedAt.Location())
			}
		})
	}
	if DefaultTTL != time.Hour {
		t.Errorf("DefaultTTL = %v", DefaultTTL)
	}
}

func TestBuildNames(t *testing.T) {
	long := strings.Repeat("a", 254) + "é" // 256 bytes, cut inside é
	tests := []struct {
		name, in, want string
	}{
		{"plain", "web", "web"},
		{"invalid utf-8 repaired", "we\xffb\xc3", "we\uFFFDb\uFFFD"},
		{"newline kept (render sanitises)", "a\nb", "a\nb"},
		{"too long truncated on a rune boundary", long, strings.Repeat("a", 254)},
		{"a run of invalid bytes is one replacement", strings.Repeat("\xff", 300), "\uFFFD"},
		{"replacement cut by the limit", strings.Repeat("a", 254) + "\xff", strings.Repeat("a", 254)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := testInventory()
			inv.Regions[0].SecurityGroups[0].Name = tt.in
			rs := mustBuild(t, inv, BuildOptions{})
			got := NewIndex(rs).Group(sgA).Name
			if got != tt.want {
				t.Errorf("name = %q, want %q", got, tt.want)
			}
			if !utf8.ValidString(got) || len(got) > 255 {
				t.Errorf("name %q is not valid", got)
			}
		})
	}
}

func TestBuildDoesNotModifyInventory(t *testing.T) {
	inv := testInventory(
		inventory.Permission{Protocol: "tcp", FromPort: p32(22), ToPort: p32(22), CIDRs: []netip.Prefix{pfx("fd00::/8"), pfx("10.0.0.0/8")}, PrefixListIDs: []string{plA}},
		inventory.Permission{Protocol: "tcp", FromPort: p32(22), ToPort: p32(22), Groups: []inventory.GroupRef{{GroupID: sgB}, {GroupID: sgA}}},
	)
	before := testInventory(inv.Regions[0].SecurityGroups[0].Ingress...)
	mustBuild(t, inv, BuildOptions{Exclude: []string{"vpn"}})
	if !reflect.DeepEqual(inv, before) {
		t.Error("Build modified its inventory")
	}
}

func TestBuildInterfaces(t *testing.T) {
	rs := mustBuild(t, testInventory(), BuildOptions{})
	var ids []string
	for _, n := range rs.Interfaces {
		ids = append(ids, n.ID)
	}
	if want := []string{"eni-00000001", "eni-00000002", "eni-00000003", "eni-00000004"}; !slices.Equal(ids, want) {
		t.Errorf("interfaces %v, want %v", ids, want)
	}
	n := rs.Interfaces[2]
	want := Interface{ID: "eni-00000003", Region: "eu-west-1", VPC: "vpc-00000001",
		Addrs:  []netip.Addr{addr("10.1.0.30"), addr("10.1.0.31"), addr("fd00:1::30")},
		Groups: []string{sgA, sgB}}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("got  %+v\nwant %+v", n, want)
	}
	v := NewIndex(rs).VPC("vpc-00000001")
	if v == nil || v.Region != "eu-west-1" || v.Owner != "123456789012" ||
		!slices.Equal(v.CIDRs, []netip.Prefix{pfx("10.1.0.0/16"), pfx("fd00:1::/56")}) {
		t.Errorf("VPC = %+v", v)
	}
}

func TestIndex(t *testing.T) {
	rs := mustBuild(t, testInventory(), BuildOptions{})
	x := NewIndex(rs)
	t.Run("Members", func(t *testing.T) {
		tests := []struct {
			group string
			want  []netip.Addr
		}{
			// 10.1.0.10 is on two interfaces; it is listed once.
			{sgA, []netip.Addr{addr("10.1.0.10"), addr("10.1.0.20"), addr("10.1.0.21"), addr("10.1.0.30"), addr("10.1.0.31"), addr("fd00:1::30")}},
			{sgB, []netip.Addr{addr("10.1.0.30"), addr("10.1.0.31"), addr("fd00:1::30")}},
			{sgW, []netip.Addr{addr("10.1.0.10")}},
			{"sg-00000000000000fff", nil},
		}
		for _, tt := range tests {
			if got := x.Members(tt.group); !slices.Equal(got, tt.want) {
				t.Errorf("Members(%s) = %v, want %v", tt.group, got, tt.want)
			}
		}
		// Members of a group shared by two interfaces with the same
		// address are unique.
		rs := validRuleset()
		rs.Interfaces[1].Addrs = []netip.Addr{addr("10.0.0.2")}
		rs.Interfaces[1].Groups = []string{"sg-0000000a"}
		if got := NewIndex(rs).Members("sg-0000000a"); !slices.Equal(got, []netip.Addr{addr("10.0.0.1"), addr("10.0.0.2"), addr("fd00::1")}) {
			t.Errorf("Members = %v", got)
		}
	})
	t.Run("InterfacesByAddr", func(t *testing.T) {
		tests := []struct {
			a    netip.Addr
			want []string
		}{
			{addr("10.1.0.10"), []string{"eni-00000001", "eni-00000004"}},
			{addr("10.1.0.31"), []string{"eni-00000003"}},
			{addr("::ffff:10.1.0.31"), []string{"eni-00000003"}},
			{addr("fd00:1::30"), []string{"eni-00000003"}},
			{addr("10.1.0.99"), nil},
			{netip.Addr{}, nil},
		}
		for _, tt := range tests {
			var got []string
			for _, n := range x.InterfacesByAddr(tt.a) {
				got = append(got, n.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("InterfacesByAddr(%v) = %v, want %v", tt.a, got, tt.want)
			}
		}
	})
	t.Run("Group and VPC", func(t *testing.T) {
		if g := x.Group(sgB); g == nil || g.Name != "db" || g != &rs.Groups[1] {
			t.Errorf("Group(%s) = %+v", sgB, g)
		}
		if g := x.Group("sg-00000000000000fff"); g != nil {
			t.Errorf("Group(unknown) = %+v", g)
		}
		if v := x.VPC("vpc-00000002"); v == nil || v.ID != "vpc-00000002" {
			t.Errorf("VPC = %+v", v)
		}
		if v := x.VPC("vpc-0000000f"); v != nil {
			t.Errorf("VPC(unknown) = %+v", v)
		}
	})
}

func TestRuleAllPorts(t *testing.T) {
	tests := []struct {
		r    Rule
		want bool
	}{
		{Rule{Protocol: ProtoTCP, FromPort: 0, ToPort: 65535}, true},
		{Rule{Protocol: ProtoTCP, FromPort: 1, ToPort: 65535}, false},
		{Rule{Protocol: ProtoUDP, FromPort: 53, ToPort: 53}, false},
		{Rule{Protocol: ProtoICMP, FromPort: -1, ToPort: -1}, true},
		{Rule{Protocol: ProtoICMPv6, FromPort: 128, ToPort: -1}, false},
		{Rule{Protocol: ProtoAll, FromPort: -1, ToPort: -1}, true},
		{Rule{Protocol: 50, FromPort: -1, ToPort: -1}, true},
	}
	for _, tt := range tests {
		if got := tt.r.AllPorts(); got != tt.want {
			t.Errorf("%+v.AllPorts() = %v", tt.r, got)
		}
	}
}
