package sgsource

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/reyes-fw/reyes/inventory"
)

// The convert functions are the one conversion from the SDK's own types
// (service/ec2/types) to the Inventory's: ReadDir decodes the AWS CLI's
// JSON into those types and EC2 gets them from the API, so both sources
// accept the same estates and return the same Inventory (in the canonical
// form described at ReadDir). Fields in errors are named as in the API's
// output.

// maxStringLen bounds the free-text strings reyes keeps (names,
// descriptions, interface types).
const maxStringLen = 4096

// where names a value of a document for errors: a JSON pointer (RFC 6901)
// and the field path in AWS' names. A source that reads no document (the
// API) names list elements by their ID once it is known to be valid; a
// file's reader keeps the index, which is the pointer's.
type where struct {
	ptr   string // "/SecurityGroups/3/IpPermissions/0"
	field string // "SecurityGroups[3].IpPermissions[0]"
	byID  bool
}

// key is the member k of the object at w.
func (w where) key(k string) where {
	f := k
	if w.field != "" {
		f = w.field + "." + k
	}
	return where{ptr: w.ptr + "/" + k, field: f, byID: w.byID}
}

// index is the element i of the array at w.
func (w where) index(i int) where {
	s := strconv.Itoa(i)
	return where{ptr: w.ptr + "/" + s, field: w.field + "[" + s + "]", byID: w.byID}
}

// named is the element of the array at list whose position is w, named by
// its (valid) ID if the source names elements so.
func (w where) named(list where, id string) where {
	if w.byID {
		w.field = list.field + "[" + id + "]"
	}
	return w
}

// fail is the *FieldError of err at w; the reader of a file sets its File.
func (w where) fail(err error) *FieldError {
	return &FieldError{Pointer: w.ptr, Field: w.field, Err: err}
}

var errMissing = errors.New("missing")

// required returns the value of a string field that must be present,
// checked with check if not nil.
func required(w where, field string, v *string, check func(string) error) (string, error) {
	if v == nil {
		return "", w.key(field).fail(errMissing)
	}
	if check != nil {
		if err := check(*v); err != nil {
			return "", w.key(field).fail(err)
		}
	}
	return *v, nil
}

// text is one string field to copy to dst, checked with check; an optional
// one may be absent.
type text struct {
	field    string
	v        *string
	dst      *string
	check    func(string) error
	optional bool
}

// copyTexts copies the fields of the object at w, in order, stopping at
// the first bad one.
func copyTexts(w where, fields ...text) error {
	for _, f := range fields {
		if f.v == nil && f.optional {
			continue
		}
		s, err := required(w, f.field, f.v, f.check)
		if err != nil {
			return err
		}
		*f.dst = s
	}
	return nil
}

// checkText bounds a free-text value.
func checkText(s string) error {
	if len(s) > maxStringLen {
		return fmt.Errorf("string longer than %d bytes", maxStringLen)
	}
	return nil
}

// parsed returns the value of a string field that must be present, parsed
// with parse for family f (parsePrefix, parseAddr).
func parsed[T any](w where, field string, v *string, parse func(string, family) (T, error), f family) (T, error) {
	var zero T
	s, err := required(w, field, v, nil)
	if err != nil {
		return zero, err
	}
	x, err := parse(s, f)
	if err != nil {
		return zero, w.key(field).fail(err)
	}
	return x, nil
}

// prefix returns the CIDR block of a string field that must be present.
func prefix(w where, field string, v *string, f family) (netip.Prefix, error) {
	return parsed(w, field, v, parsePrefix, f)
}

// addr returns the address of a string field that must be present.
func addr(w where, field string, v *string, f family) (netip.Addr, error) {
	return parsed(w, field, v, parseAddr, f)
}

// each converts the elements of the array at list and appends them to out.
func each[S, T any](list where, in []S, out *[]T, conv func(S, where) (T, error)) error {
	return eachFrom(list, 0, in, out, conv)
}

// eachFrom is each with the elements numbered from first on, for the pages
// of one list.
func eachFrom[S, T any](list where, first int, in []S, out *[]T, conv func(S, where) (T, error)) error {
	for i, s := range in {
		v, err := conv(s, list.index(first+i))
		if err != nil {
			return err
		}
		*out = append(*out, v)
	}
	return nil
}

// convertList converts the elements of list (named like the document's
// member: "SecurityGroups"), numbering them from len(*out) on so that pages
// continue a list, and appends them to out; conv gets each element's place
// and the list's. seen finds an ID listed twice, which a dump
// must not hold; over the API it means the estate changed between two
// pages.
func convertList[S, T any](list where, idField string, in []S, out *[]T, seen map[string]int, conv func(S, where, where) (T, error), id func(T) string) error {
	for _, s := range in {
		i := len(*out)
		v, err := conv(s, list.index(i), list)
		if err != nil {
			return err
		}
		if j, dup := seen[id(v)]; dup {
			return list.index(i).fail(fmt.Errorf("%s %s is also %s[%d]", idField, id(v), list.field, j))
		}
		seen[id(v)] = i
		*out = append(*out, v)
	}
	return nil
}

// convertVpc keeps the ID, the owner and the associated CIDR blocks, IPv4
// first. A block is required only when its state is "associated", but
// checked whenever it is present.
func convertVpc(v types.Vpc, w, list where) (inventory.VPC, error) {
	id, err := required(w, "VpcId", v.VpcId, checkVPCID)
	if err != nil {
		return inventory.VPC{}, err
	}
	w = w.named(list, id)
	out := inventory.VPC{ID: id}
	if out.OwnerID, err = required(w, "OwnerId", v.OwnerId, checkAccountID); err != nil {
		return inventory.VPC{}, err
	}
	type assoc struct {
		block *string
		state *types.VpcCidrBlockState
	}
	var v4, v6 []assoc
	for _, a := range v.CidrBlockAssociationSet {
		v4 = append(v4, assoc{a.CidrBlock, a.CidrBlockState})
	}
	for _, a := range v.Ipv6CidrBlockAssociationSet {
		v6 = append(v6, assoc{a.Ipv6CidrBlock, a.Ipv6CidrBlockState})
	}
	for _, set := range []struct {
		list, block string
		f           family
		in          []assoc
	}{{"CidrBlockAssociationSet", "CidrBlock", ipv4, v4}, {"Ipv6CidrBlockAssociationSet", "Ipv6CidrBlock", ipv6, v6}} {
		for j, a := range set.in {
			p, ok, err := association(w.key(set.list).index(j), set.block, a.block, a.state, set.f)
			if err != nil {
				return inventory.VPC{}, err
			}
			if ok {
				out.CIDRs = append(out.CIDRs, p)
			}
		}
	}
	return out, nil
}

// association reads a CIDR block association (its state in blockField +
// "State"); ok says whether its state is "associated".
func association(w where, blockField string, block *string, state *types.VpcCidrBlockState, f family) (p netip.Prefix, ok bool, err error) {
	stateField := blockField + "State"
	if state == nil {
		return p, false, w.key(stateField).fail(errMissing)
	}
	if state.State == "" {
		return p, false, w.key(stateField).key("State").fail(errMissing)
	}
	ok = state.State == types.VpcCidrBlockStateCodeAssociated
	if block == nil && !ok {
		return p, false, nil
	}
	p, err = prefix(w, blockField, block, f)
	return p, ok, err
}

// convertSecurityGroup keeps the ingress permissions; egress is not
// mirrored.
func convertSecurityGroup(sg types.SecurityGroup, w, list where) (inventory.SecurityGroup, error) {
	id, err := required(w, "GroupId", sg.GroupId, checkGroupID)
	if err != nil {
		return inventory.SecurityGroup{}, err
	}
	w = w.named(list, id)
	out := inventory.SecurityGroup{ID: id}
	if err := copyTexts(w,
		text{field: "GroupName", v: sg.GroupName, dst: &out.Name, check: checkText},
		text{field: "Description", v: sg.Description, dst: &out.Description, check: checkText, optional: true},
		text{field: "OwnerId", v: sg.OwnerId, dst: &out.OwnerID, check: checkAccountID},
		text{field: "VpcId", v: sg.VpcId, dst: &out.VPCID, check: checkVPCID},
	); err != nil {
		return inventory.SecurityGroup{}, err
	}
	if err := each(w.key("IpPermissions"), sg.IpPermissions, &out.Ingress, convertPermission); err != nil {
		return inventory.SecurityGroup{}, err
	}
	return out, nil
}

// convertPermission keeps one ingress rule: the IPv4 blocks (IpRanges)
// before the IPv6 ones (Ipv6Ranges).
func convertPermission(ip types.IpPermission, w where) (inventory.Permission, error) {
	proto, err := required(w, "IpProtocol", ip.IpProtocol, checkProtocol)
	if err != nil {
		return inventory.Permission{}, err
	}
	for _, port := range []struct {
		name       string
		v, partner *int32
		other      string
	}{{"FromPort", ip.FromPort, ip.ToPort, "ToPort"}, {"ToPort", ip.ToPort, ip.FromPort, "FromPort"}} {
		switch {
		case port.v == nil && port.partner != nil:
			return inventory.Permission{}, w.key(port.name).fail(errMissing)
		case port.v != nil:
			if err := checkPort(int64(*port.v)); err != nil {
				return inventory.Permission{}, w.key(port.name).fail(err)
			}
		}
	}
	p := inventory.Permission{Protocol: proto, FromPort: ip.FromPort, ToPort: ip.ToPort}
	if err := each(w.key("IpRanges"), ip.IpRanges, &p.CIDRs, func(r types.IpRange, at where) (netip.Prefix, error) {
		return prefix(at, "CidrIp", r.CidrIp, ipv4)
	}); err != nil {
		return inventory.Permission{}, err
	}
	if err := each(w.key("Ipv6Ranges"), ip.Ipv6Ranges, &p.CIDRs, func(r types.Ipv6Range, at where) (netip.Prefix, error) {
		return prefix(at, "CidrIpv6", r.CidrIpv6, ipv6)
	}); err != nil {
		return inventory.Permission{}, err
	}
	for k, pair := range ip.UserIdGroupPairs {
		at := w.key("UserIdGroupPairs").index(k)
		var ref inventory.GroupRef
		if err := copyTexts(at,
			text{field: "GroupId", v: pair.GroupId, dst: &ref.GroupID, check: checkGroupID},
			text{field: "UserId", v: pair.UserId, dst: &ref.UserID, check: checkUserID, optional: true},
			text{field: "VpcId", v: pair.VpcId, dst: &ref.VPCID, check: checkVPCID, optional: true},
			text{field: "PeeringStatus", v: pair.PeeringStatus, dst: &ref.PeeringStatus, check: checkPeeringStatus, optional: true},
			text{field: "VpcPeeringConnectionId", v: pair.VpcPeeringConnectionId, dst: &ref.PeeringConnectionID, check: checkPeeringID, optional: true},
		); err != nil {
			return inventory.Permission{}, err
		}
		p.Groups = append(p.Groups, ref)
	}
	if err := each(w.key("PrefixListIds"), ip.PrefixListIds, &p.PrefixListIDs, func(pl types.PrefixListId, at where) (string, error) {
		return required(at, "PrefixListId", pl.PrefixListId, checkPrefixListID)
	}); err != nil {
		return inventory.Permission{}, err
	}
	return p, nil
}

// convertNetworkInterface keeps every private IPv4 (PrivateIpAddresses,
// the primary among them) and then every IPv6 address, and the delegated
// prefixes (Ipv4Prefixes, then Ipv6Prefixes); the instance comes from the
// attachment. Every interface type is kept (interface, branch, trunk,
// lambda, network_load_balancer, vpc_endpoint ...): each is a member of its
// groups.
func convertNetworkInterface(n types.NetworkInterface, w, list where) (inventory.NetworkInterface, error) {
	id, err := required(w, "NetworkInterfaceId", n.NetworkInterfaceId, checkENIID)
	if err != nil {
		return inventory.NetworkInterface{}, err
	}
	w = w.named(list, id)
	out := inventory.NetworkInterface{ID: id}
	ifType := string(n.InterfaceType)
	if err := copyTexts(w,
		text{field: "VpcId", v: n.VpcId, dst: &out.VPCID, check: checkVPCID},
		text{field: "OwnerId", v: n.OwnerId, dst: &out.OwnerID, check: checkAccountID},
		text{field: "Description", v: n.Description, dst: &out.Description, check: checkText, optional: true},
		text{field: "InterfaceType", v: &ifType, dst: &out.InterfaceType, check: checkText},
		text{field: "MacAddress", v: n.MacAddress, dst: &out.MAC, check: checkMAC, optional: true},
	); err != nil {
		return inventory.NetworkInterface{}, err
	}
	if n.Attachment != nil {
		if err := copyTexts(w.key("Attachment"), text{field: "InstanceId", v: n.Attachment.InstanceId, dst: &out.InstanceID, check: checkInstanceID, optional: true}); err != nil {
			return inventory.NetworkInterface{}, err
		}
	}
	if err := each(w.key("PrivateIpAddresses"), n.PrivateIpAddresses, &out.Addresses, func(a types.NetworkInterfacePrivateIpAddress, at where) (netip.Addr, error) {
		return addr(at, "PrivateIpAddress", a.PrivateIpAddress, ipv4)
	}); err != nil {
		return inventory.NetworkInterface{}, err
	}
	if err := each(w.key("Ipv6Addresses"), n.Ipv6Addresses, &out.Addresses, func(a types.NetworkInterfaceIpv6Address, at where) (netip.Addr, error) {
		return addr(at, "Ipv6Address", a.Ipv6Address, ipv6)
	}); err != nil {
		return inventory.NetworkInterface{}, err
	}
	if err := each(w.key("Ipv4Prefixes"), n.Ipv4Prefixes, &out.Prefixes, func(p types.Ipv4PrefixSpecification, at where) (netip.Prefix, error) {
		return delegated(at, "Ipv4Prefix", p.Ipv4Prefix, ipv4)
	}); err != nil {
		return inventory.NetworkInterface{}, err
	}
	if err := each(w.key("Ipv6Prefixes"), n.Ipv6Prefixes, &out.Prefixes, func(p types.Ipv6PrefixSpecification, at where) (netip.Prefix, error) {
		return delegated(at, "Ipv6Prefix", p.Ipv6Prefix, ipv6)
	}); err != nil {
		return inventory.NetworkInterface{}, err
	}
	if err := each(w.key("Groups"), n.Groups, &out.Groups, func(g types.GroupIdentifier, at where) (string, error) {
		return required(at, "GroupId", g.GroupId, checkGroupID)
	}); err != nil {
		return inventory.NetworkInterface{}, err
	}
	return out, nil
}

// Lengths of the prefixes AWS delegates to an interface (EC2 User Guide,
// "Assign prefixes to Amazon EC2 network interfaces"): IPv4 /28, IPv6 /80.
const (
	delegatedBits4 = 28
	delegatedBits6 = 80
)

// delegated returns a delegated prefix of an interface (Ipv4Prefixes,
// Ipv6Prefixes): a CIDR block of the family's only delegated length, so
// that nothing wider (never /0) can become a member.
func delegated(w where, field string, v *string, f family) (netip.Prefix, error) {
	p, err := prefix(w, field, v, f)
	if err != nil {
		return p, err
	}
	want := delegatedBits4
	if f == ipv6 {
		want = delegatedBits6
	}
	if p.Bits() != want {
		return p, w.key(field).fail(fmt.Errorf("%q is not a delegated prefix: AWS delegates /%d blocks", p.String(), want))
	}
	return p, nil
}

// convertPrefixListEntries appends the entries of one page of
// GetManagedPrefixListEntries to out, numbering them from len(*out) on.
func convertPrefixListEntries(list where, in []types.PrefixListEntry, out *[]netip.Prefix) error {
	return eachFrom(list, len(*out), in, out, func(e types.PrefixListEntry, at where) (netip.Prefix, error) {
		return prefix(at, "Cidr", e.Cidr, anyFamily)
	})
}

// referencedPrefixLists returns the IDs of the prefix lists the ingress
// rules of groups refer to, sorted, each once.
func referencedPrefixLists(groups []inventory.SecurityGroup) []string {
	var ids []string
	for _, g := range groups {
		for _, p := range g.Ingress {
			ids = append(ids, p.PrefixListIDs...)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
