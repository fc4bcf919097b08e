package render_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

func anyM() render.Match {
	return render.Match{Protocol: -1, DPortFrom: -1, DPortTo: -1, ICMPType: -1, ICMPCode: -1}
}

// TestZeroValuesAcceptNothing: render.Rule{} rendered "-p 0 -j ACCEPT"
// (iptables reads -p 0 as every protocol) and render.Match{Protocol: 6}
// "--dport 0". The zero Rule now has no target, and both are refused.
func TestZeroValuesAcceptNothing(t *testing.T) {
	accept := render.Action{Kind: render.Accept}
	with := func(f func(*render.Match)) render.Match { m := anyM(); f(&m); return m }
	for _, tc := range []struct {
		name  string
		rule  render.Rule
		fam   render.Family
		valid bool
	}{
		{"zero rule", render.Rule{}, render.IPv4, false},
		{"zero match, accept", render.Rule{Action: accept}, render.IPv4, false},
		{"tcp with zero ports", render.Rule{Match: render.Match{Protocol: 6}, Action: accept}, render.IPv4, false},
		{"tcp with port 0", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 6; m.DPortFrom, m.DPortTo = 0, 0 }), Action: accept}, render.IPv4, false},
		{"ports without tcp or udp", render.Rule{Match: with(func(m *render.Match) { m.DPortFrom, m.DPortTo = 22, 22 }), Action: accept}, render.IPv4, false},
		{"reversed ports", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 17; m.DPortFrom, m.DPortTo = 90, 80 }), Action: accept}, render.IPv4, false},
		{"icmp fields on tcp", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 6; m.ICMPType = 8 }), Action: accept}, render.IPv4, false},
		{"icmpv6 type in IPv4", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 58; m.ICMPType = 128 }), Action: accept}, render.IPv4, false},
		{"code without type", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 1; m.ICMPCode = 0 }), Action: accept}, render.IPv4, false},
		{"negated nothing", render.Rule{Match: with(func(m *render.Match) { m.SrcNeg = true }), Action: accept}, render.IPv4, false},
		{"IPv6 source in IPv4", render.Rule{Match: with(func(m *render.Match) { m.Src = netip.MustParsePrefix("fd00::/8") }), Action: accept}, render.IPv4, false},
		{"goto nowhere", render.Rule{Match: anyM(), Action: render.Action{Kind: render.Goto}}, render.IPv4, false},
		{"tcp flags on udp", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 17; m.TCPFlagsMask = render.SYN }), Action: accept}, render.IPv4, false},

		{"any", render.Rule{Match: anyM(), Action: render.Action{Kind: render.Drop}}, render.IPv4, true},
		{"tcp 22", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 6; m.DPortFrom, m.DPortTo = 22, 22 }), Action: accept}, render.IPv4, true},
		{"tcp range from 0", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 6; m.DPortFrom, m.DPortTo = 0, 1023 }), Action: accept}, render.IPv4, true},
		{"udp range", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 17; m.DPortFrom, m.DPortTo = 1, 65535 }), Action: accept}, render.IPv6, true},
		{"icmp echo reply (type 0)", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 1; m.ICMPType = 0 }), Action: accept}, render.IPv4, true},
		{"icmpv6 type code", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 58; m.ICMPType, m.ICMPCode = 1, 4 }), Action: accept}, render.IPv6, true},
		{"syn", render.Rule{Match: with(func(m *render.Match) { m.Protocol = 6; m.TCPFlagsMask, m.TCPFlagsComp = render.AllFlags, render.SYN }), Action: render.Action{Kind: render.Drop}}, render.IPv4, true},
		{"jump", render.Rule{Match: anyM(), Action: render.Action{Kind: render.Jump, Chain: render.FilterChain}}, render.IPv4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Validate(tc.fam)
			if tc.valid != (err == nil) || (err != nil && !errors.Is(err, render.ErrInvalidRule)) {
				t.Fatalf("Validate(%q) = %v, want valid=%v", tc.rule.String(tc.fam), err, tc.valid)
			}
		})
	}
	// The zero Rule has no target: loaded anyway, it would accept nothing.
	if args := (render.Rule{}).Args(render.IPv4); slices.Contains(args, "ACCEPT") || slices.Contains(args, "-j") || slices.Contains(args, "-g") {
		t.Errorf("render.Rule{} renders %q", args)
	}
}

// zeroRulePlan is a plan whose REYES-INPUT starts with a zero Rule.
func zeroRulePlan() *render.Plan {
	fp := func(fam render.Family) render.FamilyPlan {
		return render.FamilyPlan{Family: fam, Chains: []render.Chain{{Name: render.InputChain, Rules: []render.Rule{
			{}, {Match: anyM(), Action: render.Action{Kind: render.Drop}},
		}}}, Hooks: []render.Hook{{Builtin: "INPUT", Chain: render.InputChain}}}
	}
	return &render.Plan{V4: fp(render.IPv4), V6: fp(render.IPv6)}
}

func TestZeroRuleRefused(t *testing.T) {
	p := zeroRulePlan()
	if err := p.Validate(); !errors.Is(err, render.ErrInvalidRule) || !strings.Contains(err.Error(), "REYES-INPUT rule 1") {
		t.Fatalf("Plan.Validate: %v", err)
	}
	_, err := render.Decide(p, render.Packet{Src: netip.MustParseAddr("10.1.1.1"), Dst: netip.MustParseAddr("10.2.2.2"), Protocol: 6, Port: 22})
	if !errors.Is(err, render.ErrInvalidRule) {
		t.Fatalf("Decide: %v", err)
	}
	k := applytest.New("nft")
	if _, err := apply.Apply(context.Background(), p, apply.Options{Runner: k, StateDir: t.TempDir()}); !errors.Is(err, render.ErrInvalidRule) {
		t.Fatalf("apply.Apply: %v", err)
	}
	if len(k.Calls()) != 0 && strings.Contains(k.Dump(), "REYES-INPUT") {
		t.Fatalf("apply loaded the plan:\n%s", k.Dump())
	}
}

// TestPortZeroRules: a security group rule for tcp port 0 alone allows
// nothing (the plan would hold the zero-value port match, which Validate
// refuses), while a range from 0 is kept.
func TestPortZeroRules(t *testing.T) {
	rs := &ruleset.Ruleset{
		Header: ruleset.Header{Format: ruleset.Format, Type: ruleset.Type, Scope: "t",
			GeneratedAt: time.Unix(0, 0).UTC(), NotAfter: time.Unix(3600, 0).UTC()},
		Groups: []ruleset.Group{{ID: "sg-0000000a", Name: "a", Region: "us-east-1", Rules: []ruleset.Rule{
			{Protocol: ruleset.ProtoTCP, FromPort: 0, ToPort: 0, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			{Protocol: ruleset.ProtoUDP, FromPort: 0, ToPort: 1023, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		}}},
		Interfaces: []ruleset.Interface{{ID: "eni-0000000a", Region: "us-east-1", Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.1")}, Groups: []string{"sg-0000000a"}}},
	}
	if err := rs.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := render.Render(rs, render.Host{Interfaces: []render.HostInterface{{Groups: []string{"sg-0000000a"}}}}, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	text := string(p.V4.IptablesRestore())
	if strings.Contains(text, "--dport 0 ") || !strings.Contains(text, "--dport 0:1023") {
		t.Fatalf("port 0 rules:\n%s", text)
	}
}
