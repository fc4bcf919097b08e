package sgsource

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/reyes-fw/reyes/inventory"
)

// WriteDir writes inv to dir in the layout ReadDir reads, as the AWS CLI
// would print it (fields reyes does not keep are left out; egress rules
// are written empty). It creates dir and the region directories as needed
// and overwrites the files it writes. For an inventory in the canonical
// form described at ReadDir, ReadDir(WriteDir(inv)) returns inv unchanged.
//
// The files are the SDK's output types of the calls, the same types ReadDir
// decodes into, encoded with the fields the SDK leaves unset left out.
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
		if reg.Account != "" {
			if err := checkAccountID(reg.Account); err != nil {
				return fmt.Errorf("account: %w", err)
			}
		}
		rdir := filepath.Join(dir, reg.Account, reg.Name)
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return err
		}
		for _, f := range []struct {
			name string
			doc  any
		}{
			{FileSecurityGroups, &ec2.DescribeSecurityGroupsOutput{SecurityGroups: securityGroupsOut(reg.SecurityGroups)}},
			{FileNetworkInterfaces, &ec2.DescribeNetworkInterfacesOutput{NetworkInterfaces: networkInterfacesOut(reg.NetworkInterfaces)}},
			{FileVPCs, &ec2.DescribeVpcsOutput{Vpcs: vpcsOut(reg.VPCs)}},
		} {
			if err := writeJSON(filepath.Join(rdir, f.name), f.doc); err != nil {
				return err
			}
		}
		if err := writeOptional(rdir, reg); err != nil {
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
			if err := writeJSON(filepath.Join(pdir, pl.ID+".json"), prefixListEntriesOut(pl.Entries)); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeJSON(name string, doc any) error {
	b, err := encodeDocument(doc)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", name, err)
	}
	return os.WriteFile(name, b, 0o644)
}

// encodeDocument encodes an SDK output type as the AWS CLI prints it:
// indented by four spaces, fields the SDK leaves unset (nil, "") left out.
func encodeDocument(doc any) ([]byte, error) {
	b, err := json.Marshal(doc, json.OmitZeroStructFields(true), jsontext.Multiline(true), jsontext.WithIndent("    "))
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// The out functions are the inverse of the conversion: Inventory to the
// SDK's types. Lists are never nil, so that they are written as [].

func securityGroupsOut(groups []inventory.SecurityGroup) []types.SecurityGroup {
	out := make([]types.SecurityGroup, 0, len(groups))
	for _, g := range groups {
		sg := types.SecurityGroup{
			Description:         aws.String(g.Description),
			GroupName:           aws.String(g.Name),
			IpPermissions:       make([]types.IpPermission, 0, len(g.Ingress)),
			OwnerId:             aws.String(g.OwnerID),
			GroupId:             aws.String(g.ID),
			IpPermissionsEgress: []types.IpPermission{},
			VpcId:               aws.String(g.VPCID),
		}
		for _, p := range g.Ingress {
			ip := types.IpPermission{
				FromPort:         p.FromPort,
				IpProtocol:       aws.String(p.Protocol),
				IpRanges:         []types.IpRange{},
				Ipv6Ranges:       []types.Ipv6Range{},
				PrefixListIds:    []types.PrefixListId{},
				ToPort:           p.ToPort,
				UserIdGroupPairs: []types.UserIdGroupPair{},
			}
			for _, c := range p.CIDRs {
				if c.Addr().Is4() {
					ip.IpRanges = append(ip.IpRanges, types.IpRange{CidrIp: aws.String(c.String())})
				} else {
					ip.Ipv6Ranges = append(ip.Ipv6Ranges, types.Ipv6Range{CidrIpv6: aws.String(c.String())})
				}
			}
			for _, id := range p.PrefixListIDs {
				ip.PrefixListIds = append(ip.PrefixListIds, types.PrefixListId{PrefixListId: aws.String(id)})
			}
			for _, r := range p.Groups {
				ip.UserIdGroupPairs = append(ip.UserIdGroupPairs, types.UserIdGroupPair{
					GroupId: aws.String(r.GroupID), UserId: unlessEmpty(r.UserID), VpcId: unlessEmpty(r.VPCID), PeeringStatus: unlessEmpty(r.PeeringStatus), VpcPeeringConnectionId: unlessEmpty(r.PeeringConnectionID),
				})
			}
			sg.IpPermissions = append(sg.IpPermissions, ip)
		}
		out = append(out, sg)
	}
	return out
}

func networkInterfacesOut(enis []inventory.NetworkInterface) []types.NetworkInterface {
	out := make([]types.NetworkInterface, 0, len(enis))
	for _, n := range enis {
		ni := types.NetworkInterface{
			Description:        aws.String(n.Description),
			Groups:             make([]types.GroupIdentifier, 0, len(n.Groups)),
			InterfaceType:      types.NetworkInterfaceType(n.InterfaceType),
			Ipv6Addresses:      []types.NetworkInterfaceIpv6Address{},
			MacAddress:         unlessEmpty(n.MAC),
			NetworkInterfaceId: aws.String(n.ID),
			OwnerId:            aws.String(n.OwnerID),
			PrivateIpAddresses: []types.NetworkInterfacePrivateIpAddress{},
			VpcId:              aws.String(n.VPCID),
		}
		if n.InstanceID != "" {
			ni.Attachment = &types.NetworkInterfaceAttachment{InstanceId: aws.String(n.InstanceID), Status: types.AttachmentStatusAttached}
		}
		for _, g := range n.Groups {
			ni.Groups = append(ni.Groups, types.GroupIdentifier{GroupId: aws.String(g)})
		}
		for _, a := range n.Addresses {
			if a.Is4() {
				primary := ni.PrivateIpAddress == nil
				if primary {
					ni.PrivateIpAddress = aws.String(a.String())
				}
				ni.PrivateIpAddresses = append(ni.PrivateIpAddresses, types.NetworkInterfacePrivateIpAddress{Primary: aws.Bool(primary), PrivateIpAddress: aws.String(a.String())})
			} else {
				ni.Ipv6Addresses = append(ni.Ipv6Addresses, types.NetworkInterfaceIpv6Address{Ipv6Address: aws.String(a.String())})
			}
		}
		for _, p := range n.Prefixes {
			if p.Addr().Is4() {
				ni.Ipv4Prefixes = append(ni.Ipv4Prefixes, types.Ipv4PrefixSpecification{Ipv4Prefix: aws.String(p.String())})
			} else {
				ni.Ipv6Prefixes = append(ni.Ipv6Prefixes, types.Ipv6PrefixSpecification{Ipv6Prefix: aws.String(p.String())})
			}
		}
		out = append(out, ni)
	}
	return out
}

func vpcsOut(vpcs []inventory.VPC) []types.Vpc {
	out := make([]types.Vpc, 0, len(vpcs))
	associated := &types.VpcCidrBlockState{State: types.VpcCidrBlockStateCodeAssociated}
	for _, v := range vpcs {
		vpc := types.Vpc{
			OwnerId:                     aws.String(v.OwnerID),
			Ipv6CidrBlockAssociationSet: []types.VpcIpv6CidrBlockAssociation{},
			CidrBlockAssociationSet:     []types.VpcCidrBlockAssociation{},
			VpcId:                       aws.String(v.ID),
		}
		for _, c := range v.CIDRs {
			if c.Addr().Is4() {
				if vpc.CidrBlock == nil {
					vpc.CidrBlock = aws.String(c.String())
				}
				vpc.CidrBlockAssociationSet = append(vpc.CidrBlockAssociationSet, types.VpcCidrBlockAssociation{CidrBlock: aws.String(c.String()), CidrBlockState: associated})
			} else {
				vpc.Ipv6CidrBlockAssociationSet = append(vpc.Ipv6CidrBlockAssociationSet, types.VpcIpv6CidrBlockAssociation{Ipv6CidrBlock: aws.String(c.String()), Ipv6CidrBlockState: associated})
			}
		}
		out = append(out, vpc)
	}
	return out
}

func prefixListEntriesOut(entries []netip.Prefix) *ec2.GetManagedPrefixListEntriesOutput {
	out := &ec2.GetManagedPrefixListEntriesOutput{Entries: make([]types.PrefixListEntry, 0, len(entries))}
	for _, c := range entries {
		out.Entries = append(out.Entries, types.PrefixListEntry{Cidr: aws.String(c.String())})
	}
	return out
}

// unlessEmpty is nil for "", else a pointer to s.
func unlessEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// writeOptional writes the files of associations and transit gateways that
// the region says were read.
func writeOptional(rdir string, reg inventory.Region) error {
	if reg.AssociationsKnown {
		out := &ec2.DescribeSecurityGroupVpcAssociationsOutput{SecurityGroupVpcAssociations: []types.SecurityGroupVpcAssociation{}}
		for _, a := range reg.SecurityGroupVPCAssociations {
			out.SecurityGroupVpcAssociations = append(out.SecurityGroupVpcAssociations, types.SecurityGroupVpcAssociation{
				GroupId: aws.String(a.GroupID), GroupOwnerId: unlessEmpty(a.GroupOwnerID), VpcId: aws.String(a.VPCID),
				VpcOwnerId: unlessEmpty(a.VPCOwnerID), State: types.SecurityGroupVpcAssociationState(a.State),
			})
		}
		if err := writeJSON(filepath.Join(rdir, FileSecurityGroupVPCAssociations), out); err != nil {
			return err
		}
	}
	if !reg.TransitGatewaysKnown {
		return nil
	}
	enable := func(b bool) types.SecurityGroupReferencingSupportValue {
		if b {
			return types.SecurityGroupReferencingSupportValueEnable
		}
		return types.SecurityGroupReferencingSupportValueDisable
	}
	gws := &ec2.DescribeTransitGatewaysOutput{TransitGateways: []types.TransitGateway{}}
	for _, g := range reg.TransitGateways {
		gws.TransitGateways = append(gws.TransitGateways, types.TransitGateway{
			TransitGatewayId: aws.String(g.ID), OwnerId: unlessEmpty(g.OwnerID), State: types.TransitGatewayState(g.State),
			Options: &types.TransitGatewayOptions{SecurityGroupReferencingSupport: enable(g.SecurityGroupReferencing)},
		})
	}
	if err := writeJSON(filepath.Join(rdir, FileTransitGateways), gws); err != nil {
		return err
	}
	atts := &ec2.DescribeTransitGatewayVpcAttachmentsOutput{TransitGatewayVpcAttachments: []types.TransitGatewayVpcAttachment{}}
	for _, a := range reg.TransitGatewayAttachments {
		atts.TransitGatewayVpcAttachments = append(atts.TransitGatewayVpcAttachments, types.TransitGatewayVpcAttachment{
			TransitGatewayAttachmentId: aws.String(a.ID), TransitGatewayId: aws.String(a.TransitGatewayID),
			VpcId: aws.String(a.VPCID), VpcOwnerId: unlessEmpty(a.VPCOwnerID), State: types.TransitGatewayAttachmentState(a.State),
			Options: &types.TransitGatewayVpcAttachmentOptions{SecurityGroupReferencingSupport: enable(a.SecurityGroupReferencing)},
		})
	}
	return writeJSON(filepath.Join(rdir, FileTransitGatewayAttachments), atts)
}
