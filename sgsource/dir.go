package sgsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/reyes-fw/reyes/inventory"
)

// Names of the files in a region directory of an offline inventory.
const (
	FileSecurityGroups    = "security-groups.json"
	FileNetworkInterfaces = "network-interfaces.json"
	FileVPCs              = "vpcs.json"
	DirPrefixLists        = "prefix-lists"
)

// Bounds of an offline inventory, so that a hostile directory cannot
// exhaust memory: ReadDir refuses anything beyond them.
const (
	// MaxFileSize is the largest file ReadDir reads.
	MaxFileSize = 256 << 20
	// MaxTotalSize bounds the sum of the sizes of all files read.
	MaxTotalSize = 1 << 30
	// MaxRegions bounds the number of region directories.
	MaxRegions = 64
	// MaxPrefixLists bounds the number of distinct prefix lists that the
	// rules of one region refer to.
	MaxPrefixLists = 10_000
)

// ErrMissingFile is wrapped by the error of ReadDir when a region directory
// lacks one of its files or a prefix list that a rule refers to.
var ErrMissingFile = errors.New("missing")

// ErrNoRegions is returned (wrapped) by ReadDir for a directory without
// any region subdirectory: an empty estate is far more likely a wrong path
// than the truth, and mirroring it would drop every rule.
var ErrNoRegions = errors.New("no region directories")

// Dir is a Source that reads an offline inventory directory with ReadDir
// on every Fetch. It holds no state and is safe for concurrent use.
type Dir struct {
	// Path is the inventory directory: one subdirectory per region.
	Path string
}

// Fetch reads the directory; see ReadDir.
func (d Dir) Fetch(ctx context.Context) (*inventory.Inventory, error) {
	return ReadDir(ctx, d.Path)
}

// ReadDir reads an offline inventory: one subdirectory per region, named
// like the region ("eu-west-1"), each holding the JSON that the AWS CLI
// prints, unchanged:
//
//	eu-west-1/security-groups.json       aws ec2 describe-security-groups
//	eu-west-1/network-interfaces.json    aws ec2 describe-network-interfaces
//	eu-west-1/vpcs.json                  aws ec2 describe-vpcs
//	eu-west-1/prefix-lists/pl-<id>.json  aws ec2 get-managed-prefix-list-entries --prefix-list-id pl-<id>
//
// The three files are required in every region directory, and a prefix
// list file for every prefix list that an ingress rule refers to. Files at
// the top level and entries whose name starts with a dot are ignored; any
// other subdirectory must be named like a region.
//
// Fields reyes does not use are ignored (egress rules, tags, ...). The ones
// it uses are checked strictly: JSON types, IDs (sg-, eni-, vpc-, pl-, i-
// and 8 to 17 lowercase hex digits), account IDs, protocols, ports,
// addresses and CIDR blocks (no host bits, the right family), required
// fields present, no duplicate keys or IDs. Every such rejection is a
// *FieldError naming the file and the field path, and wraps ErrInvalid.
// Sizes are bounded by MaxFileSize, MaxTotalSize, MaxRegions and
// MaxPrefixLists.
//
// The Inventory is in the canonical form that WriteDir writes back
// unchanged: regions sorted by name; VPCs, groups, rules and interfaces in
// file order; within a rule the IPv4 blocks (IpRanges) before the IPv6 ones
// (Ipv6Ranges), within an interface the private IPv4 addresses
// (PrivateIpAddresses) before the IPv6 ones (Ipv6Addresses), within a VPC
// the associated IPv4 blocks before the IPv6 ones (other states are left
// out); PrefixLists holds only the referenced lists, sorted by ID; empty
// lists are nil. Public and Elastic IPs are not read.
func ReadDir(ctx context.Context, dir string) (*inventory.Inventory, error) {
	inv, err := readFS(ctx, os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("reading inventory %s: %w", dir, err)
	}
	return inv, nil
}

// ReadFS is ReadDir over a file system whose root is the inventory
// directory, such as an embed.FS (after fs.Sub) that ships an estate inside
// a binary.
func ReadFS(ctx context.Context, fsys fs.FS) (*inventory.Inventory, error) {
	inv, err := readFS(ctx, fsys)
	if err != nil {
		return nil, fmt.Errorf("reading inventory: %w", err)
	}
	return inv, nil
}

func readFS(ctx context.Context, fsys fs.FS) (*inventory.Inventory, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries { // fs.ReadDir sorts by name
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		fi, err := fs.Stat(fsys, name) // follows symlinks under os.DirFS
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			continue
		}
		if err := checkRegion(name); err != nil {
			return nil, fieldError(name+"/", "", err)
		}
		if len(names) == MaxRegions {
			return nil, fieldError(name+"/", "", fmt.Errorf("more than %d region directories", MaxRegions))
		}
		names = append(names, name)
	}
	r := &dirReader{ctx: ctx, fsys: fsys}
	inv := &inventory.Inventory{}
	for _, name := range names {
		reg, err := r.region(name)
		if err != nil {
			return nil, err
		}
		inv.Regions = append(inv.Regions, reg)
	}
	if len(inv.Regions) == 0 {
		return nil, ErrNoRegions
	}
	return inv, nil
}

// dirReader reads the files of one inventory directory, keeping the total
// size read.
type dirReader struct {
	ctx   context.Context
	fsys  fs.FS
	total int64
}

func (r *dirReader) region(name string) (inventory.Region, error) {
	reg := inventory.Region{Name: name}
	if err := r.file(path.Join(name, FileVPCs), nil, func(rd io.Reader, file string) (err error) {
		reg.VPCs, err = decodeVPCs(r.ctx, rd, file)
		return err
	}); err != nil {
		return inventory.Region{}, err
	}
	sgFile := path.Join(name, FileSecurityGroups)
	if err := r.file(sgFile, nil, func(rd io.Reader, file string) (err error) {
		reg.SecurityGroups, err = decodeSecurityGroups(r.ctx, rd, file)
		return err
	}); err != nil {
		return inventory.Region{}, err
	}
	if err := r.file(path.Join(name, FileNetworkInterfaces), nil, func(rd io.Reader, file string) (err error) {
		reg.NetworkInterfaces, err = decodeNetworkInterfaces(r.ctx, rd, file)
		return err
	}); err != nil {
		return inventory.Region{}, err
	}

	refs := prefixListRefs(sgFile, reg.SecurityGroups)
	if len(refs) > MaxPrefixLists {
		return inventory.Region{}, fieldError(sgFile, "", fmt.Errorf("rules refer to more than %d prefix lists", MaxPrefixLists))
	}
	ids := make([]string, 0, len(refs))
	for id := range refs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ref := refs[id]
		plFile := path.Join(name, DirPrefixLists, id+".json")
		pl := inventory.PrefixList{ID: id}
		if err := r.file(plFile, &ref, func(rd io.Reader, file string) (err error) {
			pl.Entries, err = decodePrefixListEntries(r.ctx, rd, file)
			return err
		}); err != nil {
			return inventory.Region{}, err
		}
		reg.PrefixLists = append(reg.PrefixLists, pl)
	}
	return reg, nil
}

// prefixListRef is where a prefix list is first referred to.
type prefixListRef struct {
	id    string
	file  string // security-groups.json of the region
	field string // path in file
	group string
	rule  int
}

func prefixListRefs(file string, groups []inventory.SecurityGroup) map[string]prefixListRef {
	refs := map[string]prefixListRef{}
	for i, g := range groups {
		for j, p := range g.Ingress {
			for k, id := range p.PrefixListIDs {
				if _, ok := refs[id]; !ok {
					refs[id] = prefixListRef{
						id:    id,
						file:  file,
						field: fmt.Sprintf("SecurityGroups[%d].IpPermissions[%d].PrefixListIds[%d].PrefixListId", i, j, k),
						group: g.ID,
						rule:  j,
					}
				}
			}
		}
	}
	return refs
}

// file opens rel (slash-separated, relative to the root) and hands it to
// decode, enforcing the size bounds. ref, if set, is the rule that needs
// the file, named in the error when it is missing.
func (r *dirReader) file(rel string, ref *prefixListRef, decode func(io.Reader, string) error) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	fi, err := fs.Stat(r.fsys, rel)
	if errors.Is(err, fs.ErrNotExist) {
		if ref != nil {
			return fieldError(ref.file, ref.field, fmt.Errorf("rule %d of %s refers to %s, but %s is %w", ref.rule, ref.group, ref.id, rel, ErrMissingFile))
		}
		return fieldError(rel, "", ErrMissingFile)
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fieldError(rel, "", errors.New("not a regular file"))
	}
	if fi.Size() > MaxFileSize {
		return fieldError(rel, "", fmt.Errorf("larger than %d bytes", MaxFileSize))
	}
	if r.total+fi.Size() > MaxTotalSize {
		return fieldError(rel, "", fmt.Errorf("the inventory is larger than %d bytes", MaxTotalSize))
	}
	f, err := r.fsys.Open(rel)
	if err != nil {
		return err
	}
	defer f.Close()
	// The file may grow after the Stat: never read more than it said.
	r.total += fi.Size()
	return decode(io.LimitReader(f, fi.Size()), rel)
}

// decodeSecurityGroups decodes the output of describe-security-groups.
func decodeSecurityGroups(ctx context.Context, r io.Reader, file string) ([]inventory.SecurityGroup, error) {
	w := newWalker(ctx, r, file)
	return decodeList(w, "SecurityGroups", "GroupId", w.securityGroup, func(g inventory.SecurityGroup) string { return g.ID })
}

// decodeList reads the document's list under top, each element with item,
// and rejects two elements with one ID (idField names it in the error).
func decodeList[T any](w *walker, top, idField string, item func() (T, error), id func(T) string) ([]T, error) {
	var out []T
	seen := map[string]int{}
	err := w.document(top, func() error {
		return w.array(func(i int) error {
			v, err := item()
			if err != nil {
				return err
			}
			if j, dup := seen[id(v)]; dup {
				return w.failf("%s %s is also %s[%d]", idField, id(v), top, j)
			}
			seen[id(v)] = i
			out = append(out, v)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (w *walker) id(check func(string) error) (string, error) {
	s, err := w.str()
	if err != nil {
		return "", err
	}
	if err := check(s); err != nil {
		return "", w.fail(err)
	}
	return s, nil
}

func (w *walker) securityGroup() (inventory.SecurityGroup, error) {
	var g inventory.SecurityGroup
	var hasID, hasName, hasOwner, hasVPC bool
	err := w.object(func(key string) error {
		var err error
		switch key {
		case "GroupId":
			g.ID, err = w.id(checkGroupID)
			hasID = true
		case "GroupName":
			g.Name, err = w.str()
			hasName = true
		case "Description":
			g.Description, err = w.str()
		case "OwnerId":
			g.OwnerID, err = w.id(checkAccountID)
			hasOwner = true
		case "VpcId":
			g.VPCID, err = w.id(checkVPCID)
			hasVPC = true
		case "IpPermissions":
			err = w.array(func(int) error {
				p, err := w.permission()
				g.Ingress = append(g.Ingress, p)
				return err
			})
		default:
			err = w.skip()
		}
		return err
	})
	switch {
	case err != nil:
		return g, err
	case !hasID:
		return g, w.missing("GroupId")
	case !hasName:
		return g, w.missing("GroupName")
	case !hasOwner:
		return g, w.missing("OwnerId")
	case !hasVPC:
		return g, w.missing("VpcId")
	}
	return g, nil
}

func (w *walker) permission() (inventory.Permission, error) {
	var p inventory.Permission
	var hasProto bool
	var v6 []netip.Prefix
	err := w.object(func(key string) error {
		var err error
		switch key {
		case "IpProtocol":
			p.Protocol, err = w.id(checkProtocol)
			hasProto = true
		case "FromPort":
			var n int32
			n, err = w.port()
			p.FromPort = &n
		case "ToPort":
			var n int32
			n, err = w.port()
			p.ToPort = &n
		case "UserIdGroupPairs":
			err = w.array(func(int) error {
				ref, err := w.groupRef()
				p.Groups = append(p.Groups, ref)
				return err
			})
		case "IpRanges":
			err = w.array(func(int) error {
				c, err := w.cidrEntry("CidrIp", ipv4)
				p.CIDRs = append(p.CIDRs, c)
				return err
			})
		case "Ipv6Ranges":
			err = w.array(func(int) error {
				c, err := w.cidrEntry("CidrIpv6", ipv6)
				v6 = append(v6, c)
				return err
			})
		case "PrefixListIds":
			err = w.array(func(int) error {
				id, err := w.stringEntry("PrefixListId", checkPrefixListID)
				p.PrefixListIDs = append(p.PrefixListIDs, id)
				return err
			})
		default:
			err = w.skip()
		}
		return err
	})
	switch {
	case err != nil:
		return p, err
	case !hasProto:
		return p, w.missing("IpProtocol")
	case p.FromPort != nil && p.ToPort == nil:
		return p, w.missing("ToPort")
	case p.FromPort == nil && p.ToPort != nil:
		return p, w.missing("FromPort")
	}
	p.CIDRs = append(p.CIDRs, v6...)
	return p, nil
}

func (w *walker) groupRef() (inventory.GroupRef, error) {
	var ref inventory.GroupRef
	var hasID bool
	err := w.object(func(key string) error {
		var err error
		switch key {
		case "GroupId":
			ref.GroupID, err = w.id(checkGroupID)
			hasID = true
		case "UserId":
			ref.UserID, err = w.id(checkUserID)
		case "VpcId":
			ref.VPCID, err = w.id(checkVPCID)
		case "PeeringStatus":
			ref.PeeringStatus, err = w.id(checkPeeringStatus)
		default:
			err = w.skip()
		}
		return err
	})
	if err == nil && !hasID {
		err = w.missing("GroupId")
	}
	return ref, err
}

// cidrEntry reads an object whose field key holds a CIDR block of family f.
func (w *walker) cidrEntry(key string, f family) (netip.Prefix, error) {
	var c netip.Prefix
	var has bool
	err := w.object(func(k string) error {
		if k != key {
			return w.skip()
		}
		has = true
		s, err := w.str()
		if err != nil {
			return err
		}
		c, err = parsePrefix(s, f)
		if err != nil {
			return w.fail(err)
		}
		return nil
	})
	if err == nil && !has {
		err = w.missing(key)
	}
	return c, err
}

// addrEntry reads an object whose field key holds an address of family f.
func (w *walker) addrEntry(key string, f family) (netip.Addr, error) {
	var a netip.Addr
	var has bool
	err := w.object(func(k string) error {
		if k != key {
			return w.skip()
		}
		has = true
		s, err := w.str()
		if err != nil {
			return err
		}
		a, err = parseAddr(s, f)
		if err != nil {
			return w.fail(err)
		}
		return nil
	})
	if err == nil && !has {
		err = w.missing(key)
	}
	return a, err
}

// stringEntry reads an object whose field key holds an ID.
func (w *walker) stringEntry(key string, check func(string) error) (string, error) {
	var s string
	var has bool
	err := w.object(func(k string) error {
		if k != key {
			return w.skip()
		}
		has = true
		var err error
		s, err = w.id(check)
		return err
	})
	if err == nil && !has {
		err = w.missing(key)
	}
	return s, err
}

// decodeNetworkInterfaces decodes the output of
// describe-network-interfaces.
func decodeNetworkInterfaces(ctx context.Context, r io.Reader, file string) ([]inventory.NetworkInterface, error) {
	w := newWalker(ctx, r, file)
	return decodeList(w, "NetworkInterfaces", "NetworkInterfaceId", w.networkInterface, func(n inventory.NetworkInterface) string { return n.ID })
}

func (w *walker) networkInterface() (inventory.NetworkInterface, error) {
	var n inventory.NetworkInterface
	var hasID, hasVPC, hasOwner bool
	var v6 []netip.Addr
	err := w.object(func(key string) error {
		var err error
		switch key {
		case "NetworkInterfaceId":
			n.ID, err = w.id(checkENIID)
			hasID = true
		case "VpcId":
			n.VPCID, err = w.id(checkVPCID)
			hasVPC = true
		case "OwnerId":
			n.OwnerID, err = w.id(checkAccountID)
			hasOwner = true
		case "Description":
			n.Description, err = w.str()
		case "InterfaceType":
			n.InterfaceType, err = w.str()
		case "MacAddress":
			n.MAC, err = w.id(checkMAC)
		case "Attachment":
			err = w.object(func(key string) error {
				if key != "InstanceId" {
					return w.skip()
				}
				var err error
				n.InstanceID, err = w.id(checkInstanceID)
				return err
			})
		case "PrivateIpAddresses":
			err = w.array(func(int) error {
				a, err := w.addrEntry("PrivateIpAddress", ipv4)
				n.Addresses = append(n.Addresses, a)
				return err
			})
		case "Ipv6Addresses":
			err = w.array(func(int) error {
				a, err := w.addrEntry("Ipv6Address", ipv6)
				v6 = append(v6, a)
				return err
			})
		case "Groups":
			err = w.array(func(int) error {
				id, err := w.stringEntry("GroupId", checkGroupID)
				n.Groups = append(n.Groups, id)
				return err
			})
		default:
			err = w.skip()
		}
		return err
	})
	switch {
	case err != nil:
		return n, err
	case !hasID:
		return n, w.missing("NetworkInterfaceId")
	case !hasVPC:
		return n, w.missing("VpcId")
	case !hasOwner:
		return n, w.missing("OwnerId")
	}
	n.Addresses = append(n.Addresses, v6...)
	return n, nil
}

// decodeVPCs decodes the output of describe-vpcs.
func decodeVPCs(ctx context.Context, r io.Reader, file string) ([]inventory.VPC, error) {
	w := newWalker(ctx, r, file)
	return decodeList(w, "Vpcs", "VpcId", w.vpc, func(v inventory.VPC) string { return v.ID })
}

func (w *walker) vpc() (inventory.VPC, error) {
	var v inventory.VPC
	var hasID, hasOwner bool
	var v6 []netip.Prefix
	err := w.object(func(key string) error {
		var err error
		switch key {
		case "VpcId":
			v.ID, err = w.id(checkVPCID)
			hasID = true
		case "OwnerId":
			v.OwnerID, err = w.id(checkAccountID)
			hasOwner = true
		case "CidrBlockAssociationSet":
			err = w.array(func(int) error {
				c, ok, err := w.association("CidrBlock", "CidrBlockState", ipv4)
				if ok {
					v.CIDRs = append(v.CIDRs, c)
				}
				return err
			})
		case "Ipv6CidrBlockAssociationSet":
			err = w.array(func(int) error {
				c, ok, err := w.association("Ipv6CidrBlock", "Ipv6CidrBlockState", ipv6)
				if ok {
					v6 = append(v6, c)
				}
				return err
			})
		default:
			err = w.skip()
		}
		return err
	})
	switch {
	case err != nil:
		return v, err
	case !hasID:
		return v, w.missing("VpcId")
	case !hasOwner:
		return v, w.missing("OwnerId")
	}
	v.CIDRs = append(v.CIDRs, v6...)
	return v, nil
}

// association reads a CIDR block association; ok says whether its state is
// "associated". The block is required only then, but checked whenever it
// is present.
func (w *walker) association(blockKey, stateKey string, f family) (c netip.Prefix, ok bool, err error) {
	var hasBlock, hasState bool
	var state string
	err = w.object(func(key string) error {
		switch key {
		case blockKey:
			hasBlock = true
			s, err := w.str()
			if err != nil {
				return err
			}
			if c, err = parsePrefix(s, f); err != nil {
				return w.fail(err)
			}
			return nil
		case stateKey:
			hasState = true
			found := false
			err := w.object(func(key string) error {
				if key != "State" {
					return w.skip()
				}
				found = true
				var err error
				state, err = w.str()
				return err
			})
			if err == nil && !found {
				err = w.missing("State")
			}
			return err
		}
		return w.skip()
	})
	switch {
	case err != nil:
		return c, false, err
	case !hasState:
		return c, false, w.missing(stateKey)
	case state == "associated" && !hasBlock:
		return c, false, w.missing(blockKey)
	}
	return c, state == "associated", nil
}

// decodePrefixListEntries decodes the output of
// get-managed-prefix-list-entries.
func decodePrefixListEntries(ctx context.Context, r io.Reader, file string) ([]netip.Prefix, error) {
	w := newWalker(ctx, r, file)
	var out []netip.Prefix
	err := w.document("Entries", func() error {
		return w.array(func(int) error {
			c, err := w.cidrEntry("Cidr", anyFamily)
			out = append(out, c)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// WriteDir writes inv to dir in the layout ReadDir reads, as the AWS CLI
// would print it (fields reyes does not keep are left out; egress rules
// are written empty). It creates dir and the region directories as needed
// and overwrites the files it writes. For an inventory in the canonical
// form described at ReadDir, ReadDir(WriteDir(inv)) returns inv unchanged.
func WriteDir(dir string, inv *inventory.Inventory) error {
	if err := writeDir(dir, inv); err != nil {
		return fmt.Errorf("writing inventory %s: %w", dir, err)
	}
	return nil
}

func writeDir(dir string, inv *inventory.Inventory) error {
	for _, reg := range inv.Regions {
		if err := checkRegion(reg.Name); err != nil {
			return fmt.Errorf("region name: %w", err)
		}
		rdir := filepath.Join(dir, reg.Name)
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(rdir, FileSecurityGroups), awsSecurityGroupsOf(reg.SecurityGroups)); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(rdir, FileNetworkInterfaces), awsNetworkInterfacesOf(reg.NetworkInterfaces)); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(rdir, FileVPCs), awsVPCsOf(reg.VPCs)); err != nil {
			return err
		}
		if len(reg.PrefixLists) == 0 {
			continue
		}
		pdir := filepath.Join(rdir, DirPrefixLists)
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return err
		}
		for _, pl := range reg.PrefixLists {
			if err := checkPrefixListID(pl.ID); err != nil {
				return fmt.Errorf("prefix list in %s: %w", reg.Name, err)
			}
			doc := awsPrefixListEntries{Entries: []awsPrefixListEntry{}}
			for _, c := range pl.Entries {
				doc.Entries = append(doc.Entries, awsPrefixListEntry{Cidr: c.String()})
			}
			if err := writeJSON(filepath.Join(pdir, pl.ID+".json"), doc); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", name, err)
	}
	b = append(b, '\n')
	return os.WriteFile(name, b, 0o644)
}

// The AWS CLI shapes that WriteDir writes; the field names are AWS'.

type awsSecurityGroups struct {
	SecurityGroups []awsSecurityGroup
}

type awsSecurityGroup struct {
	Description         string
	GroupName           string
	IpPermissions       []awsPermission
	OwnerId             string
	GroupId             string
	IpPermissionsEgress []awsPermission
	VpcId               string
}

type awsPermission struct {
	FromPort         *int32 `json:",omitempty"`
	IpProtocol       string
	IpRanges         []awsIpRange
	Ipv6Ranges       []awsIpv6Range
	PrefixListIds    []awsPrefixListId
	ToPort           *int32 `json:",omitempty"`
	UserIdGroupPairs []awsUserIdGroupPair
}

type awsIpRange struct{ CidrIp string }

type awsIpv6Range struct{ CidrIpv6 string }

type awsPrefixListId struct{ PrefixListId string }

type awsUserIdGroupPair struct {
	GroupId       string
	UserId        string `json:",omitempty"`
	VpcId         string `json:",omitempty"`
	PeeringStatus string `json:",omitempty"`
}

func awsSecurityGroupsOf(groups []inventory.SecurityGroup) awsSecurityGroups {
	out := awsSecurityGroups{SecurityGroups: make([]awsSecurityGroup, 0, len(groups))}
	for _, g := range groups {
		ag := awsSecurityGroup{
			Description:         g.Description,
			GroupName:           g.Name,
			IpPermissions:       make([]awsPermission, 0, len(g.Ingress)),
			OwnerId:             g.OwnerID,
			GroupId:             g.ID,
			IpPermissionsEgress: []awsPermission{},
			VpcId:               g.VPCID,
		}
		for _, p := range g.Ingress {
			ap := awsPermission{
				FromPort:         p.FromPort,
				IpProtocol:       p.Protocol,
				IpRanges:         []awsIpRange{},
				Ipv6Ranges:       []awsIpv6Range{},
				PrefixListIds:    []awsPrefixListId{},
				ToPort:           p.ToPort,
				UserIdGroupPairs: []awsUserIdGroupPair{},
			}
			for _, c := range p.CIDRs {
				if c.Addr().Is4() {
					ap.IpRanges = append(ap.IpRanges, awsIpRange{CidrIp: c.String()})
				} else {
					ap.Ipv6Ranges = append(ap.Ipv6Ranges, awsIpv6Range{CidrIpv6: c.String()})
				}
			}
			for _, id := range p.PrefixListIDs {
				ap.PrefixListIds = append(ap.PrefixListIds, awsPrefixListId{PrefixListId: id})
			}
			for _, r := range p.Groups {
				ap.UserIdGroupPairs = append(ap.UserIdGroupPairs, awsUserIdGroupPair{GroupId: r.GroupID, UserId: r.UserID, VpcId: r.VPCID, PeeringStatus: r.PeeringStatus})
			}
			ag.IpPermissions = append(ag.IpPermissions, ap)
		}
		out.SecurityGroups = append(out.SecurityGroups, ag)
	}
	return out
}

type awsNetworkInterfaces struct {
	NetworkInterfaces []awsNetworkInterface
}

type awsNetworkInterface struct {
	Attachment         *awsAttachment `json:",omitempty"`
	Description        string
	Groups             []awsGroupIdentifier
	InterfaceType      string `json:",omitempty"`
	Ipv6Addresses      []awsIpv6Address
	MacAddress         string `json:",omitempty"`
	NetworkInterfaceId string
	OwnerId            string
	PrivateIpAddress   string `json:",omitempty"`
	PrivateIpAddresses []awsPrivateIpAddress
	VpcId              string
}

type awsAttachment struct {
	InstanceId string
	Status     string
}

type awsGroupIdentifier struct{ GroupId string }

type awsIpv6Address struct{ Ipv6Address string }

type awsPrivateIpAddress struct {
	Primary          bool
	PrivateIpAddress string
}

func awsNetworkInterfacesOf(enis []inventory.NetworkInterface) awsNetworkInterfaces {
	out := awsNetworkInterfaces{NetworkInterfaces: make([]awsNetworkInterface, 0, len(enis))}
	for _, n := range enis {
		an := awsNetworkInterface{
			Description:        n.Description,
			Groups:             make([]awsGroupIdentifier, 0, len(n.Groups)),
			InterfaceType:      n.InterfaceType,
			Ipv6Addresses:      []awsIpv6Address{},
			MacAddress:         n.MAC,
			NetworkInterfaceId: n.ID,
			OwnerId:            n.OwnerID,
			PrivateIpAddresses: []awsPrivateIpAddress{},
			VpcId:              n.VPCID,
		}
		if n.InstanceID != "" {
			an.Attachment = &awsAttachment{InstanceId: n.InstanceID, Status: "attached"}
		}
		for _, g := range n.Groups {
			an.Groups = append(an.Groups, awsGroupIdentifier{GroupId: g})
		}
		for _, a := range n.Addresses {
			if a.Is4() {
				primary := an.PrivateIpAddress == ""
				if primary {
					an.PrivateIpAddress = a.String()
				}
				an.PrivateIpAddresses = append(an.PrivateIpAddresses, awsPrivateIpAddress{Primary: primary, PrivateIpAddress: a.String()})
			} else {
				an.Ipv6Addresses = append(an.Ipv6Addresses, awsIpv6Address{Ipv6Address: a.String()})
			}
		}
		out.NetworkInterfaces = append(out.NetworkInterfaces, an)
	}
	return out
}

type awsVpcs struct {
	Vpcs []awsVpc
}

type awsVpc struct {
	CidrBlock                   string `json:",omitempty"`
	OwnerId                     string
	Ipv6CidrBlockAssociationSet []awsIpv6CidrBlockAssociation
	CidrBlockAssociationSet     []awsCidrBlockAssociation
	VpcId                       string
}

type awsCidrBlockState struct{ State string }

type awsCidrBlockAssociation struct {
	CidrBlock      string
	CidrBlockState awsCidrBlockState
}

type awsIpv6CidrBlockAssociation struct {
	Ipv6CidrBlock      string
	Ipv6CidrBlockState awsCidrBlockState
}

func awsVPCsOf(vpcs []inventory.VPC) awsVpcs {
	out := awsVpcs{Vpcs: make([]awsVpc, 0, len(vpcs))}
	associated := awsCidrBlockState{State: "associated"}
	for _, v := range vpcs {
		av := awsVpc{
			OwnerId:                     v.OwnerID,
			Ipv6CidrBlockAssociationSet: []awsIpv6CidrBlockAssociation{},
			CidrBlockAssociationSet:     []awsCidrBlockAssociation{},
			VpcId:                       v.ID,
		}
		for _, c := range v.CIDRs {
			if c.Addr().Is4() {
				if av.CidrBlock == "" {
					av.CidrBlock = c.String()
				}
				av.CidrBlockAssociationSet = append(av.CidrBlockAssociationSet, awsCidrBlockAssociation{CidrBlock: c.String(), CidrBlockState: associated})
			} else {
				av.Ipv6CidrBlockAssociationSet = append(av.Ipv6CidrBlockAssociationSet, awsIpv6CidrBlockAssociation{Ipv6CidrBlock: c.String(), Ipv6CidrBlockState: associated})
			}
		}
		out.Vpcs = append(out.Vpcs, av)
	}
	return out
}

type awsPrefixListEntries struct {
	Entries []awsPrefixListEntry
}

type awsPrefixListEntry struct {
	Cidr string
}

// Bounds on what one document may hold, so that a hostile file cannot
// exhaust memory or stack.
const (
	maxDepth     = 32        // nesting of objects and arrays
	maxItems     = 1_000_000 // elements of one array
	maxKeys      = 1024      // keys of one object
	maxStringLen = 4096      // bytes of a string value that reyes keeps
)

// walker decodes one JSON document token by token, keeping the path of the
// current value so that every error names the field, and skipping what
// reyes does not use.
type walker struct {
	ctx   context.Context
	dec   *json.Decoder
	file  string
	path  []pathElem
	depth int
	steps int
	// seen holds the keys read so far of the open object at each depth.
	seen [maxDepth + 1][]string
}

// pathElem is one step of a field path: an object key, or an array index
// when index >= 0.
type pathElem struct {
	key   string
	index int
}

func newWalker(ctx context.Context, r io.Reader, file string) *walker {
	d := json.NewDecoder(r)
	d.UseNumber()
	return &walker{ctx: ctx, dec: d, file: file}
}

func (w *walker) pathString() string {
	var b strings.Builder
	for i, e := range w.path {
		switch p := e.key; {
		case e.index >= 0:
			b.WriteString("[" + strconv.Itoa(e.index) + "]")
		case plainKey(p):
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		default: // quoted, so that a hostile key cannot forge a path
			b.WriteString("[" + strconv.Quote(clip(p)) + "]")
		}
	}
	return b.String()
}

// plainKey reports whether a key is a name that can appear unquoted in a
// field path: letters, digits and underscores, as all AWS field names are.
func plainKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// fail reports err at the current path.
func (w *walker) fail(err error) error {
	return fieldError(w.file, w.pathString(), err)
}

func (w *walker) failf(format string, args ...any) error {
	return w.fail(fmt.Errorf(format, args...))
}

// token reads the next token, turning syntax errors into a FieldError
// that names the current path and the byte offset.
func (w *walker) token() (json.Token, error) {
	w.steps++
	if w.steps&4095 == 0 {
		if err := w.ctx.Err(); err != nil {
			return nil, err
		}
	}
	t, err := w.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, w.failf("invalid JSON at byte %d: %v", se.Offset, se)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, w.failf("invalid JSON: unexpected end of file")
		}
		// An I/O error of the underlying reader.
		return nil, fmt.Errorf("reading %s: %w", w.file, err)
	}
	return t, nil
}

func describe(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", t)
}

func (w *walker) typeError(want string, got json.Token) error {
	return w.failf("want %s, got %s", want, describe(got))
}

func (w *walker) enter() error {
	w.depth++
	if w.depth > maxDepth {
		return w.failf("nested deeper than %d levels", maxDepth)
	}
	return nil
}

// object reads an object, calling fn for each key with the path set to the
// key; fn must consume exactly one value (with skip if it does not need it).
// Duplicate keys are rejected.
func (w *walker) object(fn func(key string) error) error {
	t, err := w.token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return w.typeError("an object", t)
	}
	if err := w.enter(); err != nil {
		return err
	}
	seen := w.seen[w.depth][:0]
	for w.dec.More() {
		t, err := w.token()
		if err != nil {
			return err
		}
		key, ok := t.(string)
		if !ok { // cannot happen with encoding/json, which checks syntax
			return w.failf("object key is %s", describe(t))
		}
		for _, k := range seen {
			if k == key {
				w.path = append(w.path, pathElem{key: key, index: -1})
				return w.failf("duplicate key")
			}
		}
		if len(seen) >= maxKeys {
			return w.failf("more than %d keys in one object", maxKeys)
		}
		seen = append(seen, key)
		w.seen[w.depth] = seen
		w.path = append(w.path, pathElem{key: key, index: -1})
		if err := fn(key); err != nil {
			return err
		}
		w.path = w.path[:len(w.path)-1]
	}
	if _, err := w.token(); err != nil { // '}'
		return err
	}
	w.depth--
	return nil
}

// array reads an array, calling fn for each element with the path set to
// the index; fn must consume exactly one value.
func (w *walker) array(fn func(i int) error) error {
	t, err := w.token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != '[' {
		return w.typeError("an array", t)
	}
	if err := w.enter(); err != nil {
		return err
	}
	for i := 0; w.dec.More(); i++ {
		if i >= maxItems {
			return w.failf("more than %d elements", maxItems)
		}
		w.path = append(w.path, pathElem{index: i})
		if err := fn(i); err != nil {
			return err
		}
		w.path = w.path[:len(w.path)-1]
	}
	if _, err := w.token(); err != nil { // ']'
		return err
	}
	w.depth--
	return nil
}

// skip consumes one value of any type.
func (w *walker) skip() error {
	depth := 0
	for {
		t, err := w.token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
				if w.depth+depth > maxDepth {
					return w.failf("nested deeper than %d levels", maxDepth)
				}
			default:
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// str reads a string of at most maxStringLen bytes.
func (w *walker) str() (string, error) {
	t, err := w.token()
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", w.typeError("a string", t)
	}
	if len(s) > maxStringLen {
		return "", w.failf("string longer than %d bytes", maxStringLen)
	}
	return s, nil
}

// port reads an integer FromPort or ToPort.
func (w *walker) port() (int32, error) {
	t, err := w.token()
	if err != nil {
		return 0, err
	}
	n, ok := t.(json.Number)
	if !ok {
		return 0, w.typeError("an integer", t)
	}
	v, err := strconv.ParseInt(string(n), 10, 32)
	if err != nil {
		return 0, w.failf("%s is not an integer port", clip(string(n)))
	}
	if err := checkPort(v); err != nil {
		return 0, w.fail(err)
	}
	return int32(v), nil
}

// end checks that nothing but white space follows the document.
func (w *walker) end() error {
	t, err := w.dec.Token()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return w.failf("invalid JSON at byte %d: %v", se.Offset, se)
		}
		return fmt.Errorf("reading %s: %w", w.file, err)
	}
	return w.failf("unexpected %s after the document", describe(t))
}

// missing reports a required field that an object lacks; the path is the
// object's.
func (w *walker) missing(field string) error {
	w.path = append(w.path, pathElem{key: field, index: -1})
	err := w.failf("missing")
	w.path = w.path[:len(w.path)-1]
	return err
}

// document reads a whole file: an object whose key top (such as
// "SecurityGroups") is required and read by fn; other keys are skipped.
func (w *walker) document(top string, fn func() error) error {
	found := false
	err := w.object(func(key string) error {
		if key == "NextToken" {
			// The AWS CLI writes a NextToken when it stopped early
			// (--max-items, --no-paginate): the file holds a part of the
			// answer, and a partial inventory must never be published.
			tok, err := w.str()
			if err != nil {
				return err
			}
			if tok != "" {
				return w.fail(errors.New("the dump is truncated (a NextToken is present): dump again without --max-items or --no-paginate"))
			}
			return nil
		}
		if key != top {
			return w.skip()
		}
		found = true
		return fn()
	})
	if err != nil {
		return err
	}
	if !found {
		return w.missing(top)
	}
	return w.end()
}
