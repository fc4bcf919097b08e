package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/sgsource"
)

// CSV is an sgsource.Source that reads an estate described in a CSV file
// (see estate.csv for the format): for VPCs, security groups and interfaces
// that do not come from the EC2 API, such as a CMDB export. Every Fetch reads
// the file again. It holds no state and is safe for concurrent use.
type CSV struct {
	// Path is the CSV file.
	Path string
}

// Fetch reads and parses the file.
func (c CSV) Fetch(ctx context.Context) (*inventory.Inventory, error) {
	f, err := os.Open(c.Path)
	if err != nil {
		return nil, fmt.Errorf("reading estate: %w", err)
	}
	defer f.Close()
	inv, err := ParseCSV(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("reading estate %s: %w", c.Path, err)
	}
	return inv, nil
}

// ErrCSV is wrapped by every error of ParseCSV about the file's content.
var ErrCSV = errors.New("invalid estate")

// maxCSVSize bounds what ParseCSV reads.
const maxCSVSize = 16 << 20

// ParseCSV parses an estate: vpc, group, allow and eni records, in any
// order, except that a VPC's record comes before the records that name it,
// and a group's before its allow records. IDs, regions, addresses and CIDR
// blocks are checked here, with the line in the error; ruleset.Build checks
// the rest (duplicate IDs, port ranges).
func ParseCSV(ctx context.Context, r io.Reader) (*inventory.Inventory, error) {
	cr := csv.NewReader(io.LimitReader(r, maxCSVSize))
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	p := &csvParser{
		regions: map[string]*inventory.Region{},
		vpcs:    map[string]vpcInfo{},
		groups:  map[string]*inventory.SecurityGroup{},
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCSV, err)
		}
		line, _ := cr.FieldPos(0)
		if err := p.record(rec); err != nil {
			return nil, fmt.Errorf("%w: line %d: %s: %w", ErrCSV, line, rec[0], err)
		}
	}
	// Groups go to their region once all their allow records are read.
	for _, g := range p.order {
		reg := p.regions[g.region]
		reg.SecurityGroups = append(reg.SecurityGroups, *p.groups[g.id])
	}
	inv := &inventory.Inventory{}
	for _, name := range sortedKeys(p.regions) {
		inv.Regions = append(inv.Regions, *p.regions[name])
	}
	if len(inv.Regions) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrCSV)
	}
	return inv, nil
}

// csvParser is the state of one ParseCSV.
type csvParser struct {
	regions map[string]*inventory.Region
	vpcs    map[string]vpcInfo
	groups  map[string]*inventory.SecurityGroup
	order   []struct{ id, region string } // groups in file order
}

func (p *csvParser) region(name string) (*inventory.Region, error) {
	if !inventory.ValidRegion(name) {
		return nil, fmt.Errorf("%q is not a region", name)
	}
	if p.regions[name] == nil {
		p.regions[name] = &inventory.Region{Name: name}
	}
	return p.regions[name], nil
}

// vpcInfo is what a vpc record says that later records need.
type vpcInfo struct{ owner, region string }

// vpc checks that the VPC had its record, in region, and returns its owner.
func (p *csvParser) vpc(id, region string) (owner string, err error) {
	v, ok := p.vpcs[id]
	switch {
	case !ok:
		return "", fmt.Errorf("VPC %q has no vpc record before it", id)
	case v.region != region:
		return "", fmt.Errorf("VPC %s is in %s, not %s", id, v.region, region)
	}
	return v.owner, nil
}

// regionVPC checks the region (rec[1]) and the VPC (rec[2]) of a group
// or eni record: the region, and the VPC's owner.
func (p *csvParser) regionVPC(rec []string) (*inventory.Region, string, error) {
	reg, err := p.region(rec[1])
	if err != nil {
		return nil, "", err
	}
	owner, err := p.vpc(rec[2], rec[1])
	if err != nil {
		return nil, "", err
	}
	return reg, owner, nil
}

var fieldCount = map[string]int{"vpc": 5, "group": 5, "allow": 6, "eni": 6}

func (p *csvParser) record(rec []string) error {
	n, ok := fieldCount[rec[0]]
	switch {
	case !ok:
		return fmt.Errorf("unknown record kind (want vpc, group, allow or eni)")
	case len(rec) != n:
		return fmt.Errorf("%d fields, want %d", len(rec), n)
	}
	switch rec[0] {
	case "vpc":
		reg, err := p.region(rec[1])
		if err != nil {
			return err
		}
		if !inventory.ValidVPCID(rec[2]) {
			return fmt.Errorf("%q is not a VPC ID", rec[2])
		}
		if _, dup := p.vpcs[rec[2]]; dup {
			return fmt.Errorf("VPC %s twice", rec[2])
		}
		cidrs, err := parseList(rec[4], parseCIDR)
		if err != nil {
			return err
		}
		p.vpcs[rec[2]] = vpcInfo{owner: rec[3], region: rec[1]}
		reg.VPCs = append(reg.VPCs, inventory.VPC{ID: rec[2], OwnerID: rec[3], CIDRs: cidrs})
	case "group":
		_, owner, err := p.regionVPC(rec)
		if err != nil {
			return err
		}
		id, err := parseGroupID(rec[3])
		if err != nil {
			return err
		}
		if p.groups[id] != nil {
			return fmt.Errorf("group %s twice", id)
		}
		p.groups[id] = &inventory.SecurityGroup{ID: id, Name: rec[4], OwnerID: owner, VPCID: rec[2]}
		p.order = append(p.order, struct{ id, region string }{id, rec[1]})
	case "allow":
		g := p.groups[rec[1]]
		if g == nil {
			return fmt.Errorf("group %q has no group record before it", rec[1])
		}
		perm, err := parsePermission(rec[2], rec[3], rec[4], rec[5])
		if err != nil {
			return err
		}
		g.Ingress = append(g.Ingress, perm)
	case "eni":
		reg, owner, err := p.regionVPC(rec)
		if err != nil {
			return err
		}
		id := rec[3]
		if !inventory.ValidInterfaceID(id) {
			return fmt.Errorf("%q is not a network interface ID", id)
		}
		addrs, err := parseList(rec[4], parseAddr)
		if err != nil {
			return err
		}
		gs, err := parseList(rec[5], parseGroupID)
		if err != nil {
			return err
		}
		reg.NetworkInterfaces = append(reg.NetworkInterfaces, inventory.NetworkInterface{
			ID: id, VPCID: rec[2], OwnerID: owner, InterfaceType: "interface", Addresses: addrs, Groups: gs,
		})
	}
	return nil
}

func parseGroupID(s string) (string, error) {
	if !inventory.ValidGroupID(s) {
		return "", fmt.Errorf("%q is not a security group ID", s)
	}
	return s, nil
}

// parsePermission parses an allow record's protocol, ports and sources.
func parsePermission(proto, from, to, sources string) (inventory.Permission, error) {
	p := inventory.Permission{Protocol: proto}
	switch proto {
	case "tcp", "udp", "icmp", "icmpv6":
	case "-1":
		if from != "" || to != "" {
			return p, fmt.Errorf("protocol -1 takes no ports")
		}
	default:
		n, err := strconv.Atoi(proto)
		if err != nil || n < 0 || n > 255 {
			return p, fmt.Errorf("%q is not tcp, udp, icmp, icmpv6, -1 or a protocol number", proto)
		}
	}
	if proto != "-1" {
		f, err1 := strconv.ParseInt(from, 10, 32)
		t, err2 := strconv.ParseInt(to, 10, 32)
		if err1 != nil || err2 != nil {
			return p, fmt.Errorf("ports %q and %q are not numbers", from, to)
		}
		f32, t32 := int32(f), int32(t)
		p.FromPort, p.ToPort = &f32, &t32
	}
	for _, s := range strings.Split(sources, ";") {
		s = strings.TrimSpace(s)
		switch {
		case inventory.ValidGroupID(s):
			p.Groups = append(p.Groups, inventory.GroupRef{GroupID: s})
		case strings.Contains(s, "@"):
			gid, pcx, _ := strings.Cut(s, "@")
			if !inventory.ValidGroupID(gid) || !inventory.ValidID(pcx, "pcx-") {
				return p, fmt.Errorf("source %q is not GROUP-ID@PEERING-ID", s)
			}
			p.Groups = append(p.Groups, inventory.GroupRef{GroupID: gid, PeeringStatus: "active", PeeringConnectionID: pcx})
		case strings.Contains(s, "/"):
			c, err := parseCIDR(s)
			if err != nil {
				return p, err
			}
			p.CIDRs = append(p.CIDRs, c)
		default:
			return p, fmt.Errorf("source %q is neither a CIDR nor a security group ID", s)
		}
	}
	return p, nil
}

func parseCIDR(s string) (netip.Prefix, error) {
	c, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR block", s)
	}
	if c.Masked() != c {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set (did you mean %s?)", c, c.Masked())
	}
	return c, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an address", s)
	}
	return a, nil
}

// parseList parses a ;-separated list of at least one element.
func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, e := range strings.Split(s, ";") {
		v, err := parse(strings.TrimSpace(e))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Merge is an sgsource.Source that fetches every source in turn and merges
// their inventories region by region: several accounts (one sgsource.EC2
// each, with its own credentials in Config), or EC2 plus a CSV estate. Rules
// may refer to groups of another source: only the merged ruleset resolves
// them. A VPC, group or interface ID found in two sources is an error, and so
// is a prefix list with different entries. Like every Source it returns a
// complete inventory or an error: one failing source fails the Fetch.
type Merge []sgsource.Source

// Fetch fetches and merges.
func (m Merge) Fetch(ctx context.Context) (*inventory.Inventory, error) {
	if len(m) == 0 {
		return nil, errors.New("merging inventories: no sources")
	}
	regions := map[string]*inventory.Region{}
	seen := map[string]int{} // ID -> 1-based source number
	prefixLists := map[string]inventory.PrefixList{}
	claim := func(id string, src int) error {
		if first, ok := seen[id]; ok {
			return fmt.Errorf("merging inventories: %s is in source %d and source %d", id, first, src)
		}
		seen[id] = src
		return nil
	}
	for i, s := range m {
		src := i + 1
		inv, err := s.Fetch(ctx)
		if err != nil {
			return nil, fmt.Errorf("fetching source %d: %w", src, err)
		}
		for _, r := range inv.Regions {
			dst := regions[r.Name]
			if dst == nil {
				dst = &inventory.Region{Name: r.Name}
				regions[r.Name] = dst
			}
			for _, v := range r.VPCs {
				if err := claim(v.ID, src); err != nil {
					return nil, err
				}
			}
			for _, g := range r.SecurityGroups {
				if err := claim(g.ID, src); err != nil {
					return nil, err
				}
			}
			for _, n := range r.NetworkInterfaces {
				if err := claim(n.ID, src); err != nil {
					return nil, err
				}
			}
			dst.VPCs = append(dst.VPCs, r.VPCs...)
			dst.SecurityGroups = append(dst.SecurityGroups, r.SecurityGroups...)
			dst.NetworkInterfaces = append(dst.NetworkInterfaces, r.NetworkInterfaces...)
			for _, pl := range r.PrefixLists {
				key := r.Name + "/" + pl.ID
				if have, ok := prefixLists[key]; ok {
					if !slices.Equal(have.Entries, pl.Entries) {
						return nil, fmt.Errorf("merging inventories: prefix list %s in %s differs between sources", pl.ID, r.Name)
					}
					continue
				}
				prefixLists[key] = pl
				dst.PrefixLists = append(dst.PrefixLists, pl)
			}
		}
	}
	out := &inventory.Inventory{}
	for _, name := range sortedKeys(regions) {
		r := regions[name]
		slices.SortFunc(r.PrefixLists, func(a, b inventory.PrefixList) int { return strings.Compare(a.ID, b.ID) })
		out.Regions = append(out.Regions, *r)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
