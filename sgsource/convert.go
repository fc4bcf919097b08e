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

// optional returns the value of a string field that may be absent, checked
// with check when present.
func optional(w where, field string, v *string, check func(string) error) (string, error) {
	if v == nil {
		return "", nil
	}
	return required(w, field, v, check)
}

// checkText bounds a free-text value.
func checkText(s string) error {
	if len(s) > maxStringLen {
		return fmt.Errorf("string longer than %d bytes", maxStringLen)
	}
	return nil
}

// prefix returns the CIDR block of a string field that must be present.
func prefix(w where, field string, v *string, f family) (netip.Prefix, error) {
	s, err := required(w, field, v, nil)
	if err != nil {
		return netip.Prefix{}, err
	}
	p, err := parsePrefix(s, f)
	if err != nil {
		return netip.Prefix{}, w.key(field).fail(err)
	}
	return p, nil
}

// addr returns the address of a string field that must be present.
func addr(w where, field string, v *string, f family) (netip.Addr, error) {
	s, err := required(w, field, v, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := parseAddr(s, f)
	if err != nil {
		return netip.Addr{}, w.key(field).fail(err)
	}
	return a, nil
}

// convertList converts the elements of the list at w (its field named
// like the document's: "SecurityGroups"), numbering them from len(*out)
// on, and appends them to out. seen finds an ID listed twice, which a dump
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
	for j, a := range v.CidrBlockAssociationSet {
		var state *types.VpcCidrBlockStateCode
		if a.CidrBlockState != nil {
			state = &a.CidrBlockState.State
		}
		p, ok, err := association(w.key("CidrBlockAssociationSet").index(j), "CidrBlock", a.CidrBlock, "CidrBlockState", state, ipv4)
		if err != nil {
			return inventory.VPC{}, err
		}
		if ok {
			out.CIDRs = append(out.CIDRs, p)
		}
	}
	for j, a := range v.Ipv6CidrBlockAssociationSet {
		var state *types.VpcCidrBlockStateCode
		if a.Ipv6CidrBlockState != nil {
			state = &a.Ipv6CidrBlockState.State
		}
		p, ok, err := association(w.key("Ipv6CidrBlockAssociationSet").index(j), "Ipv6CidrBlock", a.Ipv6CidrBlock, "Ipv6CidrBlockState", state, ipv6)
		if err != nil {
			return inventory.VPC{}, err
		}
		if ok {
			out.CIDRs = append(out.CIDRs, p)
		}
	}
	return out, nil
}

// association reads a CIDR block association; ok says whether its state is
// "associated".
func association(w where, blockField string, block *string, stateField string, state *types.VpcCidrBlockStateCode, f family) (p netip.Prefix, ok bool, err error) {
	if state == nil {
		return p, false, w.key(stateField).fail(errMissing)
	}
	if *state == "" {
		return p, false, w.key(stateField).key("State").fail(errMissing)
	}
	ok = *state == types.VpcCidrBlockStateCodeAssociated
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
	if out.Name, err = required(w, "GroupName", sg.GroupName, checkText); err != nil {
		return inventory.SecurityGroup{}, err
	}
	if out.Description, err = optional(w, "Description", sg.Description, checkText); err != nil {
		return inventory.SecurityGroup{}, err
	}
	if out.OwnerID, err = required(w, "OwnerId", sg.OwnerId, checkAccountID); err != nil {
		return inventory.SecurityGroup{}, err
	}
	if out.VPCID, err = required(w, "VpcId", sg.VpcId, checkVPCID); err != nil {
		return inventory.SecurityGroup{}, err
	}
	for j, ip := range sg.IpPermissions {
		p, err := convertPermission(ip, w.key("IpPermissions").index(j))
		if err != nil {
			return inventory.SecurityGroup{}, err
		}
		out.Ingress = append(out.Ingress, p)
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
	for k, r := range ip.IpRanges {
		c, err := prefix(w.key("IpRanges").index(k), "CidrIp", r.CidrIp, ipv4)
		if err != nil {
			return inventory.Permission{}, err
		}
		p.CIDRs = append(p.CIDRs, c)
	}
	for k, r := range ip.Ipv6Ranges {
		c, err := prefix(w.key("Ipv6Ranges").index(k), "CidrIpv6", r.CidrIpv6, ipv6)
		if err != nil {
			return inventory.Permission{}, err
		}
		p.CIDRs = append(p.CIDRs, c)
	}
	for k, pair := range ip.UserIdGroupPairs {
		at := w.key("UserIdGroupPairs").index(k)
		var ref inventory.GroupRef
		if ref.GroupID, err = required(at, "GroupId", pair.GroupId, checkGroupID); err != nil {
			return inventory.Permission{}, err
		}
		if ref.UserID, err = optional(at, "UserId", pair.UserId, checkUserID); err != nil {
			return inventory.Permission{}, err
		}
		if ref.VPCID, err = optional(at, "VpcId", pair.VpcId, checkVPCID); err != nil {
			return inventory.Permission{}, err
		}
		if ref.PeeringStatus, err = optional(at, "PeeringStatus", pair.PeeringStatus, checkPeeringStatus); err != nil {
			return inventory.Permission{}, err
		}
		p.Groups = append(p.Groups, ref)
	}
	for k, pl := range ip.PrefixListIds {
		id, err := required(w.key("PrefixListIds").index(k), "PrefixListId", pl.PrefixListId, checkPrefixListID)
		if err != nil {
			return inventory.Permission{}, err
		}
		p.PrefixListIDs = append(p.PrefixListIDs, id)
	}
	return p, nil
}

// convertNetworkInterface keeps every private IPv4 (PrivateIpAddresses,
// the primary among them) and then every IPv6 address; the instance comes
// from the attachment.
func convertNetworkInterface(n types.NetworkInterface, w, list where) (inventory.NetworkInterface, error) {
	id, err := required(w, "NetworkInterfaceId", n.NetworkInterfaceId, checkENIID)
	if err != nil {
		return inventory.NetworkInterface{}, err
	}
	w = w.named(list, id)
	out := inventory.NetworkInterface{ID: id}
	if out.VPCID, err = required(w, "VpcId", n.VpcId, checkVPCID); err != nil {
		return inventory.NetworkInterface{}, err
	}
	if out.OwnerID, err = required(w, "OwnerId", n.OwnerId, checkAccountID); err != nil {
		return inventory.NetworkInterface{}, err
	}
	if out.Description, err = optional(w, "Description", n.Description, checkText); err != nil {
		return inventory.NetworkInterface{}, err
	}
	if err := checkText(string(n.InterfaceType)); err != nil {
		return inventory.NetworkInterface{}, w.key("InterfaceType").fail(err)
	}
	out.InterfaceType = string(n.InterfaceType)
	if out.MAC, err = optional(w, "MacAddress", n.MacAddress, checkMAC); err != nil {
		return inventory.NetworkInterface{}, err
	}
	if n.Attachment != nil {
		if out.InstanceID, err = optional(w.key("Attachment"), "InstanceId", n.Attachment.InstanceId, checkInstanceID); err != nil {
			return inventory.NetworkInterface{}, err
		}
	}
	for j, a := range n.PrivateIpAddresses {
		ad, err := addr(w.key("PrivateIpAddresses").index(j), "PrivateIpAddress", a.PrivateIpAddress, ipv4)
		if err != nil {
			return inventory.NetworkInterface{}, err
		}
		out.Addresses = append(out.Addresses, ad)
	}
	for j, a := range n.Ipv6Addresses {
		ad, err := addr(w.key("Ipv6Addresses").index(j), "Ipv6Address", a.Ipv6Address, ipv6)
		if err != nil {
			return inventory.NetworkInterface{}, err
		}
		out.Addresses = append(out.Addresses, ad)
	}
	for j, g := range n.Groups {
		gid, err := required(w.key("Groups").index(j), "GroupId", g.GroupId, checkGroupID)
		if err != nil {
			return inventory.NetworkInterface{}, err
		}
		out.Groups = append(out.Groups, gid)
	}
	return out, nil
}

// convertPrefixListEntries appends the entries of one page of
// GetManagedPrefixListEntries to out, numbering them from len(*out) on.
func convertPrefixListEntries(list where, in []types.PrefixListEntry, out *[]netip.Prefix) error {
	for _, e := range in {
		p, err := prefix(list.index(len(*out)), "Cidr", e.Cidr, anyFamily)
		if err != nil {
			return err
		}
		*out = append(*out, p)
	}
	return nil
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
