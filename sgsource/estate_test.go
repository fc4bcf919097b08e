package sgsource

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/inventory"
)

const (
	assocFile = "eu-west-1/" + FileSecurityGroupVPCAssociations
	tgwFile   = "eu-west-1/" + FileTransitGateways
	attFile   = "eu-west-1/" + FileTransitGatewayAttachments

	baseAssociations = `{"SecurityGroupVpcAssociations": [
    {"GroupId": "sg-0123456789abcdef0", "VpcId": "vpc-0123456789abcdef1", "VpcOwnerId": "123456789012", "GroupOwnerId": "123456789012", "State": "associated", "StateReason": "ok"},
    {"GroupId": "sg-0123456789abcdef1", "VpcId": "vpc-0123456789abcdef0", "State": "disassociated"}
]}`
	baseTransitGateways = `{"TransitGateways": [
    {"TransitGatewayId": "tgw-0123456789abcdef0", "OwnerId": "123456789012", "State": "available", "CreationTime": "2025-01-10T12:00:00.000Z",
     "Options": {"SecurityGroupReferencingSupport": "enable", "DnsSupport": "enable", "AmazonSideAsn": 64512}},
    {"TransitGatewayId": "tgw-0123456789abcdef1", "State": "pending"}
]}`
	baseAttachments = `{"TransitGatewayVpcAttachments": [
    {"TransitGatewayAttachmentId": "tgw-attach-0123456789abcdef0", "TransitGatewayId": "tgw-0123456789abcdef0", "VpcId": "vpc-0123456789abcdef0",
     "VpcOwnerId": "123456789012", "State": "available", "SubnetIds": ["subnet-1"], "Options": {"SecurityGroupReferencingSupport": "disable"}},
    {"TransitGatewayAttachmentId": "tgw-attach-0123456789abcdef1", "TransitGatewayId": "tgw-0123456789abcdef0", "VpcId": "vpc-0123456789abcdef1", "State": "pendingAcceptance"}
]}`
)

// estateFiles is baseFiles with the optional files of a region.
func estateFiles() map[string]string {
	f := baseFiles()
	f[assocFile], f[tgwFile], f[attFile] = baseAssociations, baseTransitGateways, baseAttachments
	return f
}

func TestReadDirOptionalFiles(t *testing.T) {
	inv, err := ReadDir(context.Background(), writeFiles(t, estateFiles()))
	if err != nil {
		t.Fatal(err)
	}
	r := inv.Regions[0]
	wantAssoc := []inventory.SecurityGroupVPCAssociation{
		{GroupID: "sg-0123456789abcdef0", GroupOwnerID: "123456789012", VPCID: "vpc-0123456789abcdef1", VPCOwnerID: "123456789012", State: "associated"},
		{GroupID: "sg-0123456789abcdef1", VPCID: "vpc-0123456789abcdef0", State: "disassociated"},
	}
	wantTGW := []inventory.TransitGateway{
		{ID: "tgw-0123456789abcdef0", OwnerID: "123456789012", State: "available", SecurityGroupReferencing: true},
		{ID: "tgw-0123456789abcdef1", State: "pending"}, // AWS' default: disabled
	}
	wantAtt := []inventory.TransitGatewayVPCAttachment{
		{ID: "tgw-attach-0123456789abcdef0", TransitGatewayID: "tgw-0123456789abcdef0", VPCID: "vpc-0123456789abcdef0", VPCOwnerID: "123456789012", State: "available"},
		{ID: "tgw-attach-0123456789abcdef1", TransitGatewayID: "tgw-0123456789abcdef0", VPCID: "vpc-0123456789abcdef1", State: "pendingAcceptance"}, // absent: taken as disabled (fails closed)
	}
	if !r.AssociationsKnown || !r.TransitGatewaysKnown {
		t.Errorf("known: associations %v, transit gateways %v", r.AssociationsKnown, r.TransitGatewaysKnown)
	}
	if !reflect.DeepEqual(r.SecurityGroupVPCAssociations, wantAssoc) || !reflect.DeepEqual(r.TransitGateways, wantTGW) || !reflect.DeepEqual(r.TransitGatewayAttachments, wantAtt) {
		t.Errorf("got\n%+v\n%+v\n%+v", r.SecurityGroupVPCAssociations, r.TransitGateways, r.TransitGatewayAttachments)
	}

	// Without the files the region says it does not know.
	inv, err = ReadDir(context.Background(), writeFiles(t, baseFiles()))
	if err != nil {
		t.Fatal(err)
	}
	if r := inv.Regions[0]; r.AssociationsKnown || r.TransitGatewaysKnown {
		t.Errorf("a dump without the files: known %v %v", r.AssociationsKnown, r.TransitGatewaysKnown)
	}
}

func TestReadDirAccounts(t *testing.T) {
	under := func(acct string, files map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range files {
			out[acct+"/"+k] = v
		}
		return out
	}
	t.Run("one directory per account", func(t *testing.T) {
		files := under("111111111111", baseFiles())
		maps.Copy(files, under("222222222222", estateFiles()))
		files["222222222222/us-east-1/vpcs.json"] = `{"Vpcs": []}`
		files["222222222222/us-east-1/security-groups.json"] = `{"SecurityGroups": []}`
		files["222222222222/us-east-1/network-interfaces.json"] = `{"NetworkInterfaces": []}`
		files["README.txt"] = "top-level files are ignored"
		inv, err := ReadDir(context.Background(), writeFiles(t, files))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range inv.Regions {
			got = append(got, r.Account+"/"+r.Name)
		}
		if want := []string{"111111111111/eu-west-1", "222222222222/eu-west-1", "222222222222/us-east-1"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("regions %v, want %v", got, want)
		}
		base := baseInventory().Regions[0]
		base.Account = "111111111111"
		if !reflect.DeepEqual(inv.Regions[0], base) {
			t.Errorf("account 111111111111 read as\n%+v\nwant\n%+v", inv.Regions[0], base)
		}
	})
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"accounts and regions mixed", func() map[string]string {
			f := under("111111111111", baseFiles())
			maps.Copy(f, baseFiles())
			return f
		}(), `eu-west-1/: a directory of account directories (111111111111/ ...) cannot also hold a region or other directory`},
		{"an account without regions", func() map[string]string {
			f := under("111111111111", baseFiles())
			f["222222222222/notes.txt"] = "x"
			return f
		}(), `222222222222/: no region directories`},
		{"a region of an account misnamed", under("111111111111", map[string]string{"eu-west-1x/vpcs.json": "{}"}), `111111111111/eu-west-1x/: "eu-west-1x" does not look like an AWS region`},
		{"an account ID of 11 digits", under("11111111111", baseFiles()), `11111111111/: "11111111111" does not look like an AWS region`},
		{"a file of an account's region broken", func() map[string]string {
			f := under("111111111111", baseFiles())
			f["111111111111/"+vpcFile] = strings.Replace(baseVPCs, `"vpc-cidr-assoc-1", "CidrBlock": "10.1.0.0/16"`, `"vpc-cidr-assoc-1", "CidrBlock": "10.1.0.1/16"`, 1)
			return f
		}(), `111111111111/eu-west-1/vpcs.json: Vpcs[0].CidrBlockAssociationSet[0].CidrBlock: "10.1.0.1/16" has host bits set`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadDir(context.Background(), writeFiles(t, tt.files))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestReadDirRejectsEstateFiles: each field of the optional files is
// checked, and the error names the file, the field and its JSON pointer.
func TestReadDirRejectsEstateFiles(t *testing.T) {
	tests := []struct {
		name  string
		edits []edit
		files map[string]string
		want  string
	}{
		{name: "association GroupId", edits: []edit{{assocFile, `"GroupId": "sg-0123456789abcdef0"`, `"GroupId": "sg-XYZ"`}},
			want: assocFile + `: SecurityGroupVpcAssociations[0].GroupId: "sg-XYZ" is not a valid ID (want sg- followed by 8 to 17 lowercase hex digits) (JSON pointer /SecurityGroupVpcAssociations/0/GroupId)`},
		{name: "association VpcId missing", edits: []edit{{assocFile, `"VpcId": "vpc-0123456789abcdef0", `, ``}},
			want: assocFile + `: SecurityGroupVpcAssociations[1].VpcId: missing`},
		{name: "association VpcOwnerId", edits: []edit{{assocFile, `"VpcOwnerId": "123456789012"`, `"VpcOwnerId": "1234"`}},
			want: assocFile + `: SecurityGroupVpcAssociations[0].VpcOwnerId: "1234" is not a valid account ID`},
		{name: "association State missing", edits: []edit{{assocFile, `, "State": "disassociated"`, ``}},
			want: assocFile + `: SecurityGroupVpcAssociations[1].State: missing`},
		{name: "association State not a word", edits: []edit{{assocFile, `"State": "associated"`, `"State": "associated!"`}},
			want: assocFile + `: SecurityGroupVpcAssociations[0].State: "associated!" is not a state`},
		{name: "association listed twice", edits: []edit{{assocFile, `"sg-0123456789abcdef1", "VpcId": "vpc-0123456789abcdef0"`, `"sg-0123456789abcdef0", "VpcId": "vpc-0123456789abcdef1"`}},
			want: assocFile + `: SecurityGroupVpcAssociations[1]: GroupId and VpcId sg-0123456789abcdef0 vpc-0123456789abcdef1 is also SecurityGroupVpcAssociations[0]`},
		{name: "association State a number", edits: []edit{{assocFile, `"State": "associated"`, `"State": 1`}},
			want: assocFile + `: SecurityGroupVpcAssociations[0].State`},
		{name: "transit gateway ID", edits: []edit{{tgwFile, `"tgw-0123456789abcdef1"`, `"tgw-1"`}},
			want: tgwFile + `: TransitGateways[1].TransitGatewayId: "tgw-1" is not a valid ID`},
		{name: "transit gateway State missing", edits: []edit{{tgwFile, `, "State": "pending"`, ``}},
			want: tgwFile + `: TransitGateways[1].State: missing`},
		{name: "transit gateway referencing neither enable nor disable", edits: []edit{{tgwFile, `"SecurityGroupReferencingSupport": "enable"`, `"SecurityGroupReferencingSupport": "on"`}},
			want: tgwFile + `: TransitGateways[0].Options.SecurityGroupReferencingSupport: "on" is neither enable nor disable (JSON pointer /TransitGateways/0/Options/SecurityGroupReferencingSupport)`},
		{name: "transit gateway Options not an object", edits: []edit{{tgwFile, `"Options": {"SecurityGroupReferencingSupport": "enable", "DnsSupport": "enable", "AmazonSideAsn": 64512}`, `"Options": "enable"`}},
			want: tgwFile + `: TransitGateways[0].Options`},
		{name: "transit gateway OwnerId", edits: []edit{{tgwFile, `"OwnerId": "123456789012"`, `"OwnerId": "me"`}},
			want: tgwFile + `: TransitGateways[0].OwnerId: "me" is not a valid account ID`},
		{name: "transit gateway truncated dump", edits: []edit{{tgwFile, `{"TransitGateways": [`, `{"NextToken": "abc", "TransitGateways": [`}},
			want: tgwFile + `: NextToken: the dump is truncated`},
		{name: "attachment ID", edits: []edit{{attFile, `"tgw-attach-0123456789abcdef1"`, `"tgw-0123456789abcdef1"`}},
			want: attFile + `: TransitGatewayVpcAttachments[1].TransitGatewayAttachmentId: "tgw-0123456789abcdef1" is not a valid ID (want tgw-attach- followed by`},
		{name: "attachment gateway missing", edits: []edit{{attFile, `"TransitGatewayId": "tgw-0123456789abcdef0", "VpcId": "vpc-0123456789abcdef1"`, `"VpcId": "vpc-0123456789abcdef1"`}},
			want: attFile + `: TransitGatewayVpcAttachments[1].TransitGatewayId: missing`},
		{name: "attachment VpcId", edits: []edit{{attFile, `"VpcId": "vpc-0123456789abcdef0"`, `"VpcId": "subnet-1"`}},
			want: attFile + `: TransitGatewayVpcAttachments[0].VpcId: "subnet-1" is not a valid ID`},
		{name: "attachment referencing", edits: []edit{{attFile, `"SecurityGroupReferencingSupport": "disable"`, `"SecurityGroupReferencingSupport": "Disable"`}},
			want: attFile + `: TransitGatewayVpcAttachments[0].Options.SecurityGroupReferencingSupport: "Disable" is neither enable nor disable`},
		{name: "attachment unknown field in another case", edits: []edit{{attFile, `"State": "available"`, `"state": "available"`}},
			want: attFile + `: TransitGatewayVpcAttachments[0]`},
		{name: "peering connection ID", edits: []edit{{sgFile, `"VpcId": "vpc-0123456789abcdef1"}]`, `"VpcId": "vpc-0123456789abcdef1", "VpcPeeringConnectionId": "pcx-1", "PeeringStatus": "active"}]`}},
			want: sgFile + `: SecurityGroups[0].IpPermissions[0].UserIdGroupPairs[0].VpcPeeringConnectionId: "pcx-1" is not a valid ID`},
		{name: "transit gateways without attachments", files: map[string]string{attFile: deleted},
			want: attFile + `: missing: ` + FileTransitGateways + ` is present`},
		{name: "attachments without transit gateways", files: map[string]string{tgwFile: deleted},
			want: tgwFile + `: missing: ` + FileTransitGatewayAttachments + ` is present`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readEdited(t, estateFiles(), tt.edits, tt.files, tt.want)
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrMissingFile) {
				t.Errorf("error %v wraps neither ErrInvalid nor ErrMissingFile", err)
			}
			checkFieldError(t, err)
		})
	}
}

func TestWriteDirAccountsRoundTrip(t *testing.T) {
	inv := genInventory([]string{"eu-west-1", "us-east-1"}, 12, 30)
	for i := range inv.Regions {
		inv.Regions[i].Account = "111111111111"
	}
	other := genInventory([]string{"eu-west-1"}, 5, 7)
	other.Regions[0].Account = "222222222222"
	other.Regions[0].TransitGatewaysKnown = false
	other.Regions[0].TransitGateways, other.Regions[0].TransitGatewayAttachments = nil, nil
	inv.Regions = append(inv.Regions, other.Regions...)
	dir := t.TempDir()
	if err := WriteDir(dir, inv); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	diffInventories(t, got, inv)
}
