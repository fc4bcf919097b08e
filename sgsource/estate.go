package sgsource

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/reyes-fw/reyes/internal/errtext"
	"github.com/reyes-fw/reyes/inventory"
)

// Names of the optional files of a region directory: security group VPC
// associations and transit gateways with their VPC attachments. Without
// them a reference that needs them is stale (see ruleset.Build).
const (
	FileSecurityGroupVPCAssociations = "security-group-vpc-associations.json"
	FileTransitGateways              = "transit-gateways.json"
	FileTransitGatewayAttachments    = "transit-gateway-vpc-attachments.json"
)

// Prefixes of the IDs of transit gateways, their attachments and peering
// connections.
const (
	prefixTransitGateway = "tgw-"
	prefixTGWAttachment  = "tgw-attach-"
	prefixPeering        = "pcx-"
)

func checkTransitGatewayID(id string) error { return checkID(id, prefixTransitGateway) }
func checkTGWAttachmentID(id string) error  { return checkID(id, prefixTGWAttachment) }
func checkPeeringID(id string) error        { return checkID(id, prefixPeering) }

// checkState accepts a state word as AWS writes it: letters (camelCase
// like "pendingAcceptance" included) and hyphens, at most 32 bytes.
func checkState(s string) error {
	ok := s != "" && len(s) <= 32
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%q is not a state", errtext.Clip(s))
	}
	return nil
}

// checkEnable accepts AWS' "enable" and "disable".
func checkEnable(s string) error {
	if s != "enable" && s != "disable" {
		return fmt.Errorf("%q is neither enable nor disable", errtext.Clip(s))
	}
	return nil
}

// convertSecurityGroupVPCAssociation keeps one association of
// DescribeSecurityGroupVpcAssociations, in whatever state.
func convertSecurityGroupVPCAssociation(a types.SecurityGroupVpcAssociation, w, list where) (inventory.SecurityGroupVPCAssociation, error) {
	var out inventory.SecurityGroupVPCAssociation
	state := string(a.State)
	if a.State == "" {
		return out, w.key("State").fail(errMissing)
	}
	err := copyTexts(w,
		text{field: "GroupId", v: a.GroupId, dst: &out.GroupID, check: checkGroupID},
		text{field: "VpcId", v: a.VpcId, dst: &out.VPCID, check: checkVPCID},
		text{field: "GroupOwnerId", v: a.GroupOwnerId, dst: &out.GroupOwnerID, check: checkAccountID, optional: true},
		text{field: "VpcOwnerId", v: a.VpcOwnerId, dst: &out.VPCOwnerID, check: checkAccountID, optional: true},
		text{field: "State", v: &state, dst: &out.State, check: checkState},
	)
	return out, err
}

// convertTransitGateway keeps one transit gateway and whether it supports
// security group referencing; a gateway without Options has it disabled,
// AWS' default.
func convertTransitGateway(g types.TransitGateway, w, list where) (inventory.TransitGateway, error) {
	var out inventory.TransitGateway
	id, err := required(w, "TransitGatewayId", g.TransitGatewayId, checkTransitGatewayID)
	if err != nil {
		return out, err
	}
	w = w.named(list, id)
	out.ID = id
	state := string(g.State)
	if g.State == "" {
		return out, w.key("State").fail(errMissing)
	}
	if err := copyTexts(w,
		text{field: "OwnerId", v: g.OwnerId, dst: &out.OwnerID, check: checkAccountID, optional: true},
		text{field: "State", v: &state, dst: &out.State, check: checkState},
	); err != nil {
		return out, err
	}
	if g.Options != nil && g.Options.SecurityGroupReferencingSupport != "" {
		v := string(g.Options.SecurityGroupReferencingSupport)
		if err := checkEnable(v); err != nil {
			return out, w.key("Options").key("SecurityGroupReferencingSupport").fail(err)
		}
		out.SecurityGroupReferencing = v == "enable"
	}
	return out, nil
}

// convertTransitGatewayAttachment keeps one VPC attachment and whether it
// supports security group referencing; an attachment without the option
// has it disabled: AWS documents both defaults, and a firewall must not
// guess towards allowing.
func convertTransitGatewayAttachment(a types.TransitGatewayVpcAttachment, w, list where) (inventory.TransitGatewayVPCAttachment, error) {
	var out inventory.TransitGatewayVPCAttachment
	id, err := required(w, "TransitGatewayAttachmentId", a.TransitGatewayAttachmentId, checkTGWAttachmentID)
	if err != nil {
		return out, err
	}
	w = w.named(list, id)
	out.ID = id
	state := string(a.State)
	if a.State == "" {
		return out, w.key("State").fail(errMissing)
	}
	if err := copyTexts(w,
		text{field: "TransitGatewayId", v: a.TransitGatewayId, dst: &out.TransitGatewayID, check: checkTransitGatewayID},
		text{field: "VpcId", v: a.VpcId, dst: &out.VPCID, check: checkVPCID},
		text{field: "VpcOwnerId", v: a.VpcOwnerId, dst: &out.VPCOwnerID, check: checkAccountID, optional: true},
		text{field: "State", v: &state, dst: &out.State, check: checkState},
	); err != nil {
		return out, err
	}
	// An attachment that does not say is taken as not referencing: AWS's
	// API reference has the option "disabled by default" in the describe
	// output (and "enable" by default only in the create request); a dump
	// without it fails closed, and the reference is reported stale.
	out.SecurityGroupReferencing = false
	if a.Options != nil && a.Options.SecurityGroupReferencingSupport != "" {
		v := string(a.Options.SecurityGroupReferencingSupport)
		if err := checkEnable(v); err != nil {
			return out, w.key("Options").key("SecurityGroupReferencingSupport").fail(err)
		}
		out.SecurityGroupReferencing = v == "enable"
	}
	return out, nil
}
