package render_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/sgsource"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// fuzzInput turns fuzz arguments into a ruleset, a host and options. The
// ruleset comes through the strict decoder, so only valid rulesets reach
// Render, as in production.
func fuzzInput(data []byte, hostSel uint16, flags uint8) (*ruleset.Ruleset, render.Host, render.Options, bool) {
	rs, err := ruleset.Decode(data)
	if err != nil || len(rs.Interfaces) == 0 {
		return nil, render.Host{}, render.Options{}, false
	}
	var host render.Host
	n := int(hostSel>>8)%3 + 1
	for i := 0; i < n && i < len(rs.Interfaces); i++ {
		ifc := rs.Interfaces[(int(hostSel&0xff)+i)%len(rs.Interfaces)]
		if slices.ContainsFunc(host.Interfaces, func(h render.HostInterface) bool { return h.ID == ifc.ID }) {
			continue
		}
		host.Interfaces = append(host.Interfaces, render.HostInterface{ID: ifc.ID, Addrs: ifc.Addrs, Groups: ifc.Groups})
		for _, v := range rs.VPCs {
			if v.ID == ifc.VPC && host.VPCCIDRs == nil {
				host.VPCCIDRs = v.CIDRs
			}
		}
	}
	opts := render.Options{
		Mode:      render.Mode(flags & 1),
		Table:     render.TableMode(flags >> 1 & 1),
		LogAccept: flags&4 != 0,
		LogDrop:   flags&8 != 0,
	}
	if flags&16 != 0 {
		opts.ForeignCIDRs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	if flags&32 != 0 {
		opts.FailSafe = []render.FailSafe{{Source: netip.MustParsePrefix("10.255.0.0/16"), Protocol: ruleset.ProtoTCP, Port: 22}}
	}
	return rs, host, opts, true
}

var (
	reChainDecl = regexp.MustCompile(`^:(REYES-[A-Za-z0-9-]{1,22}|INPUT ACCEPT|FORWARD ACCEPT|OUTPUT ACCEPT)( - )?\s?\[0:0\]$`)
	reAppend    = regexp.MustCompile(`^-A (INPUT|REYES-[A-Za-z0-9-]{1,22}) [ -~]+$`)
	reSetLine   = regexp.MustCompile(`^(create|flush|add|swap|destroy) reyes[46]-sg-[0-9a-f]{8,17}(-n)?( [ -~]+)?$`)
)

// checkText checks the restore text line by line against the only forms
// reyes writes, so that nothing from AWS can have added a line or an option.
func checkText(fp *render.FamilyPlan) error {
	for i, l := range strings.Split(strings.TrimSuffix(string(fp.IptablesRestore()), "\n"), "\n") {
		switch {
		case l == "*filter", l == "COMMIT", reChainDecl.MatchString(l):
		case reAppend.MatchString(l):
			if strings.Count(l, `"`)%2 != 0 || strings.Contains(l, `\`) {
				return fmt.Errorf("rules line %d has unbalanced quotes or a backslash: %q", i+1, l)
			}
		default:
			return fmt.Errorf("rules line %d is not a form reyes writes: %q", i+1, l)
		}
	}
	for i, l := range strings.Split(strings.TrimSuffix(string(fp.IpsetRestore()), "\n"), "\n") {
		if l != "" && !reSetLine.MatchString(l) {
			return fmt.Errorf("ipset line %d is not a form reyes writes: %q", i+1, l)
		}
	}
	for _, c := range fp.Chains {
		if len(c.Name) > render.MaxChainName {
			return fmt.Errorf("chain %s is longer than %d", c.Name, render.MaxChainName)
		}
	}
	for _, s := range fp.Sets {
		if len(s.TempName()) > render.MaxSetName {
			return fmt.Errorf("set %s is longer than %d", s.TempName(), render.MaxSetName)
		}
	}
	return nil
}

// checkAsked checks that every rule that allows traffic from a source
// comes from a rule of one of the host's groups: reyes adds no allow rule
// the ruleset did not ask for.
func checkAsked(rs *ruleset.Ruleset, host render.Host, fp *render.FamilyPlan) error {
	x := ruleset.NewIndex(rs)
	hostGroups := map[string]bool{}
	for _, n := range host.Interfaces {
		for _, g := range n.Groups {
			hostGroups[g] = true
		}
	}
	for _, c := range fp.Chains {
		if c.Name == render.InputChain || c.Name == render.AllowChain || c.Name == render.DropChain {
			continue
		}
		for _, r := range c.Rules {
			if r.Action.Kind != render.Goto || r.Action.Chain != render.AllowChain {
				continue
			}
			if !asked(x, hostGroups, r.Match) {
				return fmt.Errorf("%s: rule %q allows what no group of the host asked for", c.Name, r.String(fp.Family))
			}
		}
	}
	return nil
}

func asked(x *ruleset.Index, hostGroups map[string]bool, m render.Match) bool {
	for gid := range hostGroups {
		g := x.Group(gid)
		if g == nil {
			continue
		}
		for _, r := range g.Rules {
			if r.Protocol != m.Protocol && !(r.Protocol == ruleset.ProtoAll && m.Protocol == -1) {
				continue
			}
			switch r.Protocol {
			case ruleset.ProtoTCP, ruleset.ProtoUDP:
				if r.AllPorts() != (m.DPortFrom < 0) || !r.AllPorts() && (r.FromPort != m.DPortFrom || r.ToPort != m.DPortTo) {
					continue
				}
			case ruleset.ProtoICMP, ruleset.ProtoICMPv6:
				if r.FromPort != m.ICMPType || r.ToPort != m.ICMPCode {
					continue
				}
			}
			switch {
			case m.SrcSet != "":
				for _, ref := range r.Groups {
					if strings.HasSuffix(m.SrcSet, "-"+ref) {
						return true
					}
				}
			case m.Src.IsValid():
				if slices.Contains(r.CIDRs, m.Src) {
					return true
				}
			default:
				for _, c := range r.CIDRs {
					if c.Bits() == 0 {
						return true
					}
				}
			}
		}
	}
	return false
}

func FuzzRender(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed, uint16(0x0100), uint8(0))
		f.Add(seed, uint16(0x0203), uint8(0x3f))
	}
	f.Fuzz(func(t *testing.T, data []byte, hostSel uint16, flags uint8) {
		rs, host, opts, ok := fuzzInput(data, hostSel, flags)
		if !ok {
			return
		}
		plan, err := render.Render(rs, host, opts)
		if errors.Is(err, render.ErrHost) {
			return // e.g. an interface in no group: refused, never empty
		}
		if err != nil {
			t.Fatalf("a valid ruleset failed to render: %v", err)
		}
		again, err := render.Render(rs, host, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i, fp := range plan.Families() {
			if err := checkText(fp); err != nil {
				t.Fatal(err)
			}
			if err := checkAsked(rs, host, fp); err != nil {
				t.Fatal(err)
			}
			if string(fp.IptablesRestore()) != string(again.Families()[i].IptablesRestore()) {
				t.Fatal("rendering is not deterministic")
			}
		}
	})
}

// fuzzSeeds are the encoded rulesets of the golden inventories.
func fuzzSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, inv := range []string{"estate", "sample"} {
		for _, exclude := range [][]string{nil, {"vpn-in"}} {
			i, err := sgsource.ReadDir(context.Background(), filepath.Join("testdata", "inventories", inv))
			if err != nil {
				t.Fatal(err)
			}
			rs, err := ruleset.Build(i, ruleset.BuildOptions{GeneratedAt: genTime, Exclude: exclude})
			if err != nil {
				t.Fatal(err)
			}
			b, err := ruleset.Encode(rs)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}
