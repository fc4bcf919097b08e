package sgsource

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/reyes-fw/reyes/inventory"
)

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
