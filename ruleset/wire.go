package ruleset

import (
	"fmt"
	"net/netip"
	"time"
)

// The wire types mirror Ruleset with addresses, prefixes and times as
// strings, so that Decode parses them itself and reports a bad one as a
// *ValidationError with the field named as Validate names it (the group or
// interface by its ID), wrapping ErrInvalid like every other invalid value,
// rather than as a JSON error. Keep their JSON names in step with types.go;
// the round-trip tests check it.

type wireRuleset struct {
	Format      *string         `json:"format"` // nil: missing
	Type        string          `json:"type"`
	Scope       string          `json:"scope"`
	Serial      uint64          `json:"serial"`
	GeneratedAt *string         `json:"generated_at"`
	NotAfter    *string         `json:"not_after"`
	VPCs        []wireVPC       `json:"vpcs"`
	Groups      []wireGroup     `json:"groups"`
	Interfaces  []wireInterface `json:"interfaces"`
}

type wireVPC struct {
	ID     string   `json:"id"`
	Region string   `json:"region"`
	Owner  string   `json:"owner"`
	CIDRs  []string `json:"cidrs"`
}

type wireGroup struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Region   string     `json:"region"`
	VPC      string     `json:"vpc"`
	Owner    string     `json:"owner"`
	Excluded bool       `json:"excluded"`
	Rules    []wireRule `json:"rules"`
}

type wireRule struct {
	Protocol int      `json:"proto"`
	FromPort int      `json:"from"`
	ToPort   int      `json:"to"`
	CIDRs    []string `json:"cidrs"`
	Groups   []string `json:"groups"`
}

type wireInterface struct {
	ID     string   `json:"id"`
	Region string   `json:"region"`
	VPC    string   `json:"vpc"`
	Addrs  []string `json:"addrs"`
	Groups []string `json:"groups"`
}

// ruleset converts the wire form, parsing every address, prefix and time.
// Lists come out non-nil (null and [] both mean empty), except the sources
// of a rule, which are nil when empty as Build leaves them.
func (w *wireRuleset) ruleset() (*Ruleset, error) {
	rs := &Ruleset{Header: Header{Type: w.Type, Scope: w.Scope, Serial: w.Serial}}
	if w.Format != nil {
		rs.Format = *w.Format
	}
	var err error
	if rs.GeneratedAt, err = parseTime("generated_at", w.GeneratedAt); err != nil {
		return nil, err
	}
	if rs.NotAfter, err = parseTime("not_after", w.NotAfter); err != nil {
		return nil, err
	}
	rs.VPCs = make([]VPC, len(w.VPCs))
	for i, v := range w.VPCs {
		f := wireField("vpcs", i, v.ID, ValidVPCID)
		cidrs, err := parsePrefixes(f+".cidrs", v.CIDRs)
		if err != nil {
			return nil, err
		}
		rs.VPCs[i] = VPC{ID: v.ID, Region: v.Region, Owner: v.Owner, CIDRs: nonNil(cidrs)}
	}
	rs.Groups = make([]Group, len(w.Groups))
	for i, g := range w.Groups {
		f := wireField("groups", i, g.ID, ValidGroupID)
		rules := make([]Rule, len(g.Rules))
		for j, r := range g.Rules {
			cidrs, err := parsePrefixes(fmt.Sprintf("%s.rules[%d].cidrs", f, j), r.CIDRs)
			if err != nil {
				return nil, err
			}
			var groups []string
			if len(r.Groups) > 0 {
				groups = r.Groups
			}
			rules[j] = Rule{Protocol: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort, CIDRs: cidrs, Groups: groups}
		}
		rs.Groups[i] = Group{
			ID: g.ID, Name: g.Name, Region: g.Region, VPC: g.VPC, Owner: g.Owner,
			Excluded: g.Excluded, Rules: rules,
		}
	}
	rs.Interfaces = make([]Interface, len(w.Interfaces))
	for i, n := range w.Interfaces {
		f := wireField("interfaces", i, n.ID, ValidInterfaceID)
		addrs := make([]netip.Addr, len(n.Addrs))
		for j, s := range n.Addrs {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, invalid(fmt.Sprintf("%s.addrs[%d]", f, j), "%q is not an IP address", s)
			}
			addrs[j] = a
		}
		rs.Interfaces[i] = Interface{ID: n.ID, Region: n.Region, VPC: n.VPC, Addrs: addrs, Groups: nonNil(n.Groups)}
	}
	return rs, nil
}

// wireField names list[i] the way Validate does: with the ID when it is
// well formed.
func wireField(list string, i int, id string, valid func(string) bool) string {
	if valid(id) {
		return fmt.Sprintf("%s[%d](%s)", list, i, id)
	}
	return fmt.Sprintf("%s[%d]", list, i)
}

func parseTime(f string, s *string) (time.Time, error) {
	var t time.Time
	if s == nil {
		return t, nil // missing: Validate says so
	}
	if err := t.UnmarshalText([]byte(*s)); err != nil {
		return t, invalid(f, "%q is not an RFC 3339 time", *s)
	}
	return t, nil
}

// parsePrefixes returns nil for an empty list.
func parsePrefixes(f string, ss []string) ([]netip.Prefix, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, invalid(fmt.Sprintf("%s[%d]", f, i), "%q is not a CIDR", s)
		}
		ps[i] = p
	}
	return ps, nil
}
