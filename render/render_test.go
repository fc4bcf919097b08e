package render_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

func smallRuleset(t *testing.T) *ruleset.Ruleset {
	t.Helper()
	rs := &ruleset.Ruleset{
		Header: ruleset.Header{Format: ruleset.Format, Type: ruleset.Type, Scope: "t",
			GeneratedAt: time.Unix(0, 0).UTC(), NotAfter: time.Unix(3600, 0).UTC()},
		Groups: []ruleset.Group{
			{ID: "sg-0000000a", Name: "a", Region: "us-east-1", Rules: []ruleset.Rule{
				{Protocol: ruleset.ProtoTCP, FromPort: 22, ToPort: 22, Groups: []string{"sg-0000000b"}},
			}},
			{ID: "sg-0000000b", Name: "b", Region: "us-east-1", Rules: []ruleset.Rule{}},
		},
		Interfaces: []ruleset.Interface{
			{ID: "eni-0000000a", Region: "us-east-1", Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.1")}, Groups: []string{"sg-0000000a"}},
			{ID: "eni-0000000b", Region: "us-east-1", Addrs: []netip.Addr{netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("fd00::1")}, Groups: []string{"sg-0000000b"}},
		},
	}
	if err := rs.Validate(); err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRenderRejects(t *testing.T) {
	rs := smallRuleset(t)
	a := netip.MustParseAddr("10.1.0.1")
	tests := []struct {
		name string
		host render.Host
		opts render.Options
		want error
		msg  string
	}{
		{"no interfaces", render.Host{}, render.Options{}, render.ErrHost, "no interfaces"},
		{"no groups", render.Host{Interfaces: []render.HostInterface{{ID: "eni-0000000a", Addrs: []netip.Addr{a}}}}, render.Options{}, render.ErrHost, "no security group"},
		{"bad group ID", render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-x; -j ACCEPT"}}}}, render.Options{}, render.ErrHost, `"sg-x; -j ACCEPT" is not a security group ID`},
		{"bad ENI ID with two interfaces", render.Host{Interfaces: []render.HostInterface{
			{ID: "eni-0000000a", Addrs: []netip.Addr{a}, Groups: []string{"sg-0000000a"}},
			{ID: "REYES-INPUT", Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.2")}, Groups: []string{"sg-0000000a"}},
		}}, render.Options{}, render.ErrHost, `"REYES-INPUT" is not a network interface ID`},
		{"duplicate ENI", render.Host{Interfaces: []render.HostInterface{
			{ID: "eni-0000000a", Addrs: []netip.Addr{a}, Groups: []string{"sg-0000000a"}},
			{ID: "eni-0000000a", Addrs: []netip.Addr{a}, Groups: []string{"sg-0000000a"}},
		}}, render.Options{}, render.ErrHost, "listed twice"},
		{"bad VPC CIDR", render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-0000000a"}}}, VPCCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/16")}}, render.Options{}, render.ErrHost, "10.1.2.3/16"},
		{"unknown mode", render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-0000000a"}}}}, render.Options{Mode: 7}, render.ErrOptions, "unknown mode"},
		{"unknown table", render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-0000000a"}}}}, render.Options{Table: 7}, render.ErrOptions, "unknown table mode"},
		{"foreign host bits", render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-0000000a"}}}}, render.Options{ForeignCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8")}}, render.ErrOptions, "foreign CIDR"},
		{"fail-safe port without protocol", render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-0000000a"}}}}, render.Options{FailSafe: []render.FailSafe{{Protocol: -1, Port: 22}}}, render.ErrOptions, "fail-safe[0]"},
		{"fail-safe icmp", render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-0000000a"}}}}, render.Options{FailSafe: []render.FailSafe{{Protocol: 1}}}, render.ErrOptions, "fail-safe[0]: protocol 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render.Render(rs, tt.host, tt.opts)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Render: %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"web", "web"},
		{`a"b`, "a_b"},
		{"a\nb\r", "a_b_"},
		{`back\slash`, "back_slash"},
		{"tab\tnul\x00", "tab_nul_"},
		{"snow\u2603man", "snow_man"},
		{"$(rm) `x` 'y'", "_(rm) _x_ _y_"},
		{"\xff\xfe", "__"},
		{strings.Repeat("a", 300), strings.Repeat("a", 64)},
	}
	for _, tt := range tests {
		if got := render.Sanitize(tt.in, 64); got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestOneMemberChangeKeepsRules(t *testing.T) {
	rs := smallRuleset(t)
	host := render.Host{Interfaces: []render.HostInterface{{ID: "eni-0000000a", Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.1")}, Groups: []string{"sg-0000000a"}}}}
	p1, err := render.Render(rs, host, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs.Interfaces[1].Addrs = []netip.Addr{netip.MustParseAddr("10.2.0.2"), netip.MustParseAddr("fd00::1")}
	p2, err := render.Render(rs, host, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p1.V4.Hash() != p2.V4.Hash() || string(p1.V4.IptablesRestore()) != string(p2.V4.IptablesRestore()) {
		t.Error("a member change changed the rules")
	}
	if p1.V4.Sets[0].Hash() == p2.V4.Sets[0].Hash() {
		t.Error("a member change did not change the set hash")
	}
	if p1.V6.Sets[0].Hash() != p2.V6.Sets[0].Hash() {
		t.Error("an IPv4 member change changed the IPv6 set")
	}
}

func TestParseModes(t *testing.T) {
	for _, s := range []string{"vpc", "ipsec"} {
		m, err := render.ParseMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	for _, s := range []string{"shared", "exclusive"} {
		m, err := render.ParseTableMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseTableMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := render.ParseMode("VPC "); !errors.Is(err, render.ErrOptions) {
		t.Errorf("ParseMode accepted a bad mode: %v", err)
	}
	if _, err := render.ParseTableMode("all"); !errors.Is(err, render.ErrOptions) {
		t.Errorf("ParseTableMode accepted a bad mode: %v", err)
	}
}

func TestDecideRejectsMixedFamilies(t *testing.T) {
	rs := smallRuleset(t)
	host := render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-0000000a"}}}}
	p, err := render.Render(rs, host, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = render.Decide(p, render.Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("fd00::1"), Protocol: 6})
	if !errors.Is(err, render.ErrPacket) {
		t.Errorf("Decide: %v, want ErrPacket", err)
	}
}

// TestWildcardValuesAllowNothing: iptables reads "-p 0" as every
// protocol, so a rule for IP protocol 0 (HOPOPT) must not be rendered as
// one; the kernel reads "--icmp-type 255" as any ICMP type, so a rule for
// type 255 must not be rendered as one either.
func TestWildcardValuesAllowNothing(t *testing.T) {
	tests := []struct {
		name     string
		rule     ruleset.Rule
		rendered string // must not be in the IPv4 rules
		packet   render.Packet
	}{
		{"protocol 0", ruleset.Rule{Protocol: 0, FromPort: -1, ToPort: -1, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			"-p 0", render.Packet{Src: netip.MustParseAddr("10.1.1.1"), Dst: netip.MustParseAddr("10.2.2.2"), Protocol: 6, Port: 22}},
		{"ICMP type 255", ruleset.Rule{Protocol: ruleset.ProtoICMP, FromPort: 255, ToPort: -1, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}},
			"icmp-type 255", render.Packet{Src: netip.MustParseAddr("10.1.2.3"), Dst: netip.MustParseAddr("10.2.2.2"), Protocol: 1, ICMPType: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := smallRuleset(t)
			rs.Groups[0].Rules = []ruleset.Rule{tt.rule}
			host := render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-0000000a"}}}}
			p, err := render.Render(rs, host, render.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(p.V4.IptablesRestore()), tt.rendered) {
				t.Fatalf("rendered %s:\n%s", tt.rendered, p.V4.IptablesRestore())
			}
			v, err := render.Decide(p, tt.packet)
			if err != nil || v.Action != render.Dropped {
				t.Fatalf("%+v after a %s rule: %v %v", tt.packet, tt.name, v.Action, err)
			}
		})
	}
}
