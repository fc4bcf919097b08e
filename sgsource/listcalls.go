package sgsource

import (
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/reyes-fw/reyes/inventory"
)

// listCall is one EC2 list call as both readers see it, the directory
// reader (the AWS CLI's JSON of the call) and the EC2 source (the SDK's
// answer): the member holding the list (the CLI's and the SDK's name), the
// field that identifies an item in errors, the items and NextToken of the
// SDK's output, the conversion of one item and the ID of a converted one
// (two items with one ID are refused).
type listCall[O, S, T any] struct {
	list, idField string
	items         func(*O) ([]S, *string)
	conv          func(S, where, where) (T, error)
	id            func(T) string
}

// The list calls reyes makes.
var (
	vpcsCall = listCall[ec2.DescribeVpcsOutput, types.Vpc, inventory.VPC]{"Vpcs", "VpcId",
		func(o *ec2.DescribeVpcsOutput) ([]types.Vpc, *string) { return o.Vpcs, o.NextToken },
		convertVpc, vpcID}
	securityGroupsCall = listCall[ec2.DescribeSecurityGroupsOutput, types.SecurityGroup, inventory.SecurityGroup]{"SecurityGroups", "GroupId",
		func(o *ec2.DescribeSecurityGroupsOutput) ([]types.SecurityGroup, *string) {
			return o.SecurityGroups, o.NextToken
		},
		convertSecurityGroup, groupID}
	networkInterfacesCall = listCall[ec2.DescribeNetworkInterfacesOutput, types.NetworkInterface, inventory.NetworkInterface]{"NetworkInterfaces", "NetworkInterfaceId",
		func(o *ec2.DescribeNetworkInterfacesOutput) ([]types.NetworkInterface, *string) {
			return o.NetworkInterfaces, o.NextToken
		},
		convertNetworkInterface, eniID}
	associationsCall = listCall[ec2.DescribeSecurityGroupVpcAssociationsOutput, types.SecurityGroupVpcAssociation, inventory.SecurityGroupVPCAssociation]{
		"SecurityGroupVpcAssociations", "GroupId and VpcId",
		func(o *ec2.DescribeSecurityGroupVpcAssociationsOutput) ([]types.SecurityGroupVpcAssociation, *string) {
			return o.SecurityGroupVpcAssociations, o.NextToken
		},
		convertSecurityGroupVPCAssociation, func(a inventory.SecurityGroupVPCAssociation) string { return a.GroupID + " " + a.VPCID }}
	transitGatewaysCall = listCall[ec2.DescribeTransitGatewaysOutput, types.TransitGateway, inventory.TransitGateway]{"TransitGateways", "TransitGatewayId",
		func(o *ec2.DescribeTransitGatewaysOutput) ([]types.TransitGateway, *string) {
			return o.TransitGateways, o.NextToken
		},
		convertTransitGateway, func(g inventory.TransitGateway) string { return g.ID }}
	attachmentsCall = listCall[ec2.DescribeTransitGatewayVpcAttachmentsOutput, types.TransitGatewayVpcAttachment, inventory.TransitGatewayVPCAttachment]{
		"TransitGatewayVpcAttachments", "TransitGatewayAttachmentId",
		func(o *ec2.DescribeTransitGatewayVpcAttachmentsOutput) ([]types.TransitGatewayVpcAttachment, *string) {
			return o.TransitGatewayVpcAttachments, o.NextToken
		},
		convertTransitGatewayAttachment, func(a inventory.TransitGatewayVPCAttachment) string { return a.ID }}
)

func vpcID(v inventory.VPC) string              { return v.ID }
func groupID(g inventory.SecurityGroup) string  { return g.ID }
func eniID(n inventory.NetworkInterface) string { return n.ID }
