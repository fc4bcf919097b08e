package sgsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

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
	// MaxRegions bounds the number of region directories (of each
	// account).
	MaxRegions = 64
	// MaxAccounts bounds the number of account directories.
	MaxAccounts = 1024
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
// list file for every prefix list that an ingress rule refers to. Three
// more are optional (the last two together or not at all):
//
//	eu-west-1/security-group-vpc-associations.json  aws ec2 describe-security-group-vpc-associations
//	eu-west-1/transit-gateways.json                 aws ec2 describe-transit-gateways
//	eu-west-1/transit-gateway-vpc-attachments.json  aws ec2 describe-transit-gateway-vpc-attachments
//
// Region.AssociationsKnown and TransitGatewaysKnown say whether they were
// there. Files at the top level and entries whose name starts with a dot
// are ignored; any other subdirectory must be named like a region.
//
// An estate of several accounts is a directory with one subdirectory per
// 12-digit account ID, each in the layout above; every Region then names
// its Account. A directory holds accounts or regions, never both.
//
// Each file is decoded into the SDK's output type of its call
// (ec2.DescribeSecurityGroupsOutput ...), whose field names are the CLI's,
// and converted by the same functions as the EC2 source's answers. Members
// the SDK does not model are ignored (a newer CLI's), and so are the values
// reyes does not use (egress rules, tags, times ...), whatever their
// content. The document is checked strictly: valid JSON and UTF-8, no
// duplicate keys, no key that matches a field only in another case, no null
// and the right JSON type for a field the SDK knows, nesting at most 32
// deep, no NextToken (a truncated dump). The fields reyes uses are checked
// too: IDs (sg-, eni-, vpc-, pl-, i- and 8 to 17 lowercase hex digits),
// account IDs, protocols, ports, addresses and CIDR blocks (no host bits,
// the right family), required fields present, no ID listed twice. Every
// such rejection is a *FieldError naming the file, the field path and its
// JSON pointer, and wraps ErrInvalid. Sizes are bounded by MaxFileSize,
// MaxTotalSize, MaxRegions and MaxPrefixLists.
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
	top, err := subdirs(fsys, ".")
	if err != nil {
		return nil, err
	}
	// A directory of accounts holds only 12-digit names; one of regions
	// only region names. A mix is a mistake (a dump copied into the wrong
	// place) and is refused rather than guessed at.
	var accounts, regions []string
	for _, name := range top {
		if inventory.ValidAccountID(name) {
			accounts = append(accounts, name)
		} else {
			regions = append(regions, name)
		}
	}
	if len(accounts) > 0 && len(regions) > 0 {
		return nil, fieldError(regions[0]+"/", "", fmt.Errorf("a directory of account directories (%s/ ...) cannot also hold a region or other directory", accounts[0]))
	}
	if len(accounts) > MaxAccounts {
		return nil, fieldError(accounts[MaxAccounts]+"/", "", fmt.Errorf("more than %d account directories", MaxAccounts))
	}
	r := &dirReader{ctx: ctx, fsys: fsys}
	inv := &inventory.Inventory{}
	if len(accounts) == 0 {
		if err := r.regions(inv, "", "", regions); err != nil {
			return nil, err
		}
		if len(inv.Regions) == 0 {
			return nil, ErrNoRegions
		}
		return inv, nil
	}
	for _, acct := range accounts {
		names, err := subdirs(fsys, acct)
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fieldError(acct+"/", "", ErrNoRegions)
		}
		if err := r.regions(inv, acct, acct+"/", names); err != nil {
			return nil, err
		}
	}
	return inv, nil
}

// subdirs returns the names of the subdirectories of dir, sorted, leaving
// out names that start with a dot; files are ignored.
func subdirs(fsys fs.FS, dir string) ([]string, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries { // fs.ReadDir sorts by name
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		fi, err := fs.Stat(fsys, path.Join(dir, name)) // follows symlinks under os.DirFS
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			names = append(names, name)
		}
	}
	return names, nil
}

// regions reads the region directories names under base (the account's
// directory, or the root) into inv, for account acct.
func (r *dirReader) regions(inv *inventory.Inventory, acct, base string, names []string) error {
	if len(names) > MaxRegions {
		return fieldError(base+names[MaxRegions]+"/", "", fmt.Errorf("more than %d region directories", MaxRegions))
	}
	for _, name := range names {
		if err := checkRegion(name); err != nil {
			return fieldError(base+name+"/", "", err)
		}
	}
	for _, name := range names {
		reg, err := r.region(base, name)
		if err != nil {
			return err
		}
		reg.Account = acct
		inv.Regions = append(inv.Regions, reg)
	}
	return nil
}

// dirReader reads the files of one inventory directory, keeping the total
// size read.
type dirReader struct {
	ctx   context.Context
	fsys  fs.FS
	total int64
}

func (r *dirReader) region(base, name string) (inventory.Region, error) {
	reg := inventory.Region{Name: name}
	name = base + name
	sgFile := path.Join(name, FileSecurityGroups)
	if _, err := readList(r, path.Join(name, FileVPCs), false, vpcsCall, &reg.VPCs); err != nil {
		return inventory.Region{}, err
	}
	if _, err := readList(r, sgFile, false, securityGroupsCall, &reg.SecurityGroups); err != nil {
		return inventory.Region{}, err
	}
	if _, err := readList(r, path.Join(name, FileNetworkInterfaces), false, networkInterfacesCall, &reg.NetworkInterfaces); err != nil {
		return inventory.Region{}, err
	}

	refs := prefixListRefs(sgFile, reg.SecurityGroups)
	if len(refs) > MaxPrefixLists {
		return inventory.Region{}, fieldError(sgFile, "", fmt.Errorf("rules refer to more than %d prefix lists", MaxPrefixLists))
	}
	for _, id := range referencedPrefixLists(reg.SecurityGroups) {
		ref := refs[id]
		pl := inventory.PrefixList{ID: id}
		if err := r.file(path.Join(name, DirPrefixLists, id+".json"), &ref, func(data []byte, file string) (err error) {
			pl.Entries, err = decodePrefixListEntries(r.ctx, data, file)
			return err
		}); err != nil {
			return inventory.Region{}, err
		}
		reg.PrefixLists = append(reg.PrefixLists, pl)
	}
	var err error
	reg.AssociationsKnown, err = readList(r, path.Join(name, FileSecurityGroupVPCAssociations), true, associationsCall, &reg.SecurityGroupVPCAssociations)
	if err != nil {
		return inventory.Region{}, err
	}
	tgw, att := path.Join(name, FileTransitGateways), path.Join(name, FileTransitGatewayAttachments)
	tgwSeen, err := readList(r, tgw, true, transitGatewaysCall, &reg.TransitGateways)
	if err != nil {
		return inventory.Region{}, err
	}
	attSeen, err := readList(r, att, true, attachmentsCall, &reg.TransitGatewayAttachments)
	if err != nil {
		return inventory.Region{}, err
	}
	switch {
	case tgwSeen && !attSeen:
		return inventory.Region{}, fieldError(att, "", fmt.Errorf("%w: %s is present, and a transit gateway means nothing without its attachments", ErrMissingFile, FileTransitGateways))
	case attSeen && !tgwSeen:
		return inventory.Region{}, fieldError(tgw, "", fmt.Errorf("%w: %s is present, and an attachment means nothing without its gateway", ErrMissingFile, FileTransitGatewayAttachments))
	}
	reg.TransitGatewaysKnown = tgwSeen && attSeen
	return reg, nil
}

// readList reads the file rel of a region directory, the AWS CLI's output
// of c's call, into *dst, and says whether the file was there: an optional
// file may not be, any other must.
func readList[O, S, T any](r *dirReader, rel string, optional bool, c listCall[O, S, T], dst *[]T) (seen bool, err error) {
	decode := func(data []byte, file string) (err error) {
		seen = true
		*dst, err = decodeList(r.ctx, data, file, c)
		return err
	}
	if optional {
		err = r.optional(rel, decode)
	} else {
		err = r.file(rel, nil, decode)
	}
	return seen, err
}

// optional reads rel with decode if it exists.
func (r *dirReader) optional(rel string, decode func([]byte, string) error) error {
	if _, err := fs.Stat(r.fsys, rel); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return r.file(rel, nil, decode)
}

// decodeList reads one file of a region directory, the AWS CLI's output
// of c's call, into the SDK's output type of the call, and converts its
// list with the EC2 source's conversion. Elements are named by their index
// in errors, as the JSON pointer does.
func decodeList[O, S, T any](ctx context.Context, data []byte, file string, c listCall[O, S, T]) ([]T, error) {
	var out O
	if err := decodeDocument(ctx, data, file, c.list, &out, func() *string { _, next := c.items(&out); return next }); err != nil {
		return nil, err
	}
	in, _ := c.items(&out)
	var list []T
	if err := convertList(fileList(c.list), c.idField, in, &list, map[string]int{}, c.conv, c.id); err != nil {
		return nil, inFile(file, err)
	}
	return list, nil
}

// decodePrefixListEntries decodes the output of
// get-managed-prefix-list-entries.
func decodePrefixListEntries(ctx context.Context, data []byte, file string) ([]netip.Prefix, error) {
	var out ec2.GetManagedPrefixListEntriesOutput
	if err := decodeDocument(ctx, data, file, "Entries", &out, func() *string { return out.NextToken }); err != nil {
		return nil, err
	}
	var entries []netip.Prefix
	if err := convertPrefixListEntries(fileList("Entries"), out.Entries, &entries); err != nil {
		return nil, inFile(file, err)
	}
	return entries, nil
}

// fileList is the top-level list of a file.
func fileList(name string) where { return where{}.key(name) }

// prefixListRef is where a prefix list is first referred to.
type prefixListRef struct {
	id    string
	file  string // security-groups.json of the region
	at    where  // in file
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
						at:    fileList("SecurityGroups").index(i).key("IpPermissions").index(j).key("PrefixListIds").index(k).key("PrefixListId"),
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
func (r *dirReader) file(rel string, ref *prefixListRef, decode func([]byte, string) error) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	fi, err := fs.Stat(r.fsys, rel)
	if errors.Is(err, fs.ErrNotExist) {
		if ref != nil {
			return inFile(ref.file, ref.at.fail(fmt.Errorf("rule %d of %s refers to %s, but %s is %w", ref.rule, ref.group, ref.id, rel, ErrMissingFile)))
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
	data, err := io.ReadAll(io.LimitReader(f, fi.Size()))
	if err != nil {
		return fmt.Errorf("reading %s: %w", rel, err)
	}
	return decode(data, rel)
}
