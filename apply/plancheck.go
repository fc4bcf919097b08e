package apply

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/reyes-fw/reyes/render"
)

func setPrefix(fam render.Family) string {
	if fam == render.IPv6 {
		return render.SetPrefix6
	}
	return render.SetPrefix4
}

// checkPlan refuses plans apply cannot load safely.
func checkPlan(fp *render.FamilyPlan, failSafe []render.FailSafe) error {
	if len(fp.Chains) == 0 {
		if len(fp.Sets) > 0 {
			return fmt.Errorf("%w: sets without chains", ErrPlan)
		}
		return nil
	}
	if fp.Family != render.IPv4 && fp.Family != render.IPv6 {
		return fmt.Errorf("%w: family %d", ErrPlan, fp.Family)
	}
	if fp.Chains[0].Name != render.InputChain {
		return fmt.Errorf("%w: first chain is %q, not %s", ErrPlan, fp.Chains[0].Name, render.InputChain)
	}
	if err := fp.Validate(); err != nil { // a zero Rule, port 0, protocol 0...
		return fmt.Errorf("%w: %w", ErrPlan, err)
	}
	names := map[string]bool{}
	for _, s := range fp.Sets {
		names[s.Name] = true
	}
	for _, s := range fp.Sets {
		if names[secondSlot(s)] {
			// Each set needs its second name as its second slot.
			return fmt.Errorf("%w: set %q is the second name of set %q", ErrPlan, secondSlot(s), s.Name)
		}
		if !strings.HasPrefix(s.Name, setPrefix(fp.Family)) || len(s.TempName()) > render.MaxSetName || strings.ContainsAny(s.Name, " \t\n") {
			return fmt.Errorf("%w: set name %q", ErrPlan, s.Name)
		}
		if s.Family != fp.Family {
			return fmt.Errorf("%w: set %s is not of family %d", ErrPlan, s.Name, fp.Family)
		}
	}
	for _, c := range fp.Chains {
		if !strings.HasPrefix(c.Name, render.ChainPrefix) || len(c.Name) > render.MaxChainName {
			return fmt.Errorf("%w: chain name %q", ErrPlan, c.Name)
		}
	}
	return checkFailSafe(fp, failSafe)
}

// checkSharedText makes sure a shared-mode restore text touches nothing
// but reyes' chains. It runs on the text about to be loaded, so only when
// rules change.
func checkSharedText(text []byte) error {
	for i, l := range strings.Split(string(text), "\n") {
		ok := l == "" || l == "*filter" || l == "COMMIT" || strings.HasPrefix(l, "#") ||
			strings.HasPrefix(l, ":"+render.ChainPrefix) || strings.HasPrefix(l, "-A "+render.ChainPrefix)
		if !ok {
			return fmt.Errorf("%w: shared-mode line %d touches a chain reyes does not own: %q", ErrPlan, i+1, l)
		}
	}
	return nil
}

// checkFailSafe checks that each fail-safe of the plan's family is allowed
// in REYES-INPUT before any rule that can drop or divert traffic.
func checkFailSafe(fp *render.FamilyPlan, failSafe []render.FailSafe) error {
	rules := fp.Chains[0].Rules
	for _, f := range failSafe {
		if f.Source.IsValid() && f.Source.Bits() != 0 && f.Source.Addr().Is4() != (fp.Family == render.IPv4) {
			continue
		}
		found := false
		for _, r := range rules {
			if matchesFailSafe(r, f) && (r.Action.Kind == render.Accept || r.Action.Kind == render.Return) {
				found = true
				break
			}
			if k := r.Action.Kind; k != render.Accept && k != render.Return && k != render.Log {
				break
			}
		}
		if !found {
			return fmt.Errorf("%w: ipv%d: source %v protocol %d port %d", ErrFailSafe, fp.Family, f.Source, f.Protocol, f.Port)
		}
	}
	return nil
}

func matchesFailSafe(r render.Rule, f render.FailSafe) bool {
	m := r.Match
	src := f.Source
	if src.IsValid() && src.Bits() == 0 {
		src = netip.Prefix{}
	}
	if m.Src != src || m.Protocol != f.Protocol || m.SrcSet != "" || m.Dst.IsValid() || m.InIface != "" || m.IPsecIn || m.Established {
		return false
	}
	if f.Port == 0 {
		return m.DPortFrom < 0
	}
	return m.DPortFrom == int(f.Port) && m.DPortTo == int(f.Port)
}
