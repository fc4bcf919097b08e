package ruleset

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/inventory"
)

// Accounts, VPCs and groups of the estate tests: account own holds the
// protected group db (in VPC vDB) and the TGW; peer is another account.
const (
	own, peer, unread = "111111111111", "222222222222", "999999999999"
	vDB, vApp, vFar   = "vpc-0000000d", "vpc-0000000a", "vpc-0000000f"
	sgDB, sgApp       = "sg-0000000d", "sg-0000000a"
)

// estateInv is a region of account own with db in vDB allowing tcp/5432 from
// ref, and app in vApp with one member; mod changes it.
func estateInv(ref inventory.GroupRef, mod func(r *inventory.Region)) *inventory.Inventory {
	port := int32(5432)
	r := inventory.Region{
		Account: own, Name: "us-east-1",
		VPCs: []inventory.VPC{
			{ID: vDB, OwnerID: own, CIDRs: []netip.Prefix{pfx("10.1.0.0/16")}},
			{ID: vApp, OwnerID: own, CIDRs: []netip.Prefix{pfx("10.2.0.0/16")}},
			{ID: vFar, OwnerID: own, CIDRs: []netip.Prefix{pfx("10.3.0.0/16")}},
		},
		SecurityGroups: []inventory.SecurityGroup{
			{ID: sgDB, Name: "db", OwnerID: own, VPCID: vDB, Ingress: []inventory.Permission{{Protocol: "tcp", FromPort: &port, ToPort: &port, Groups: []inventory.GroupRef{ref}}}},
			{ID: sgApp, Name: "app", OwnerID: own, VPCID: vApp},
		},
		NetworkInterfaces: []inventory.NetworkInterface{
			{ID: "eni-0000000d", OwnerID: own, VPCID: vDB, InterfaceType: "interface", Addresses: []netip.Addr{addr("10.1.0.5")}, Groups: []string{sgDB}},
			{ID: "eni-0000000a", OwnerID: own, VPCID: vApp, InterfaceType: "interface", Addresses: []netip.Addr{addr("10.2.0.5")}, Groups: []string{sgApp}},
		},
		AssociationsKnown: true, TransitGatewaysKnown: true,
		TransitGateways: []inventory.TransitGateway{{ID: "tgw-00000001", OwnerID: own, State: "available", SecurityGroupReferencing: true}},
		TransitGatewayAttachments: []inventory.TransitGatewayVPCAttachment{
			{ID: "tgw-attach-0000000d", TransitGatewayID: "tgw-00000001", VPCID: vDB, State: "available", SecurityGroupReferencing: true},
			{ID: "tgw-attach-0000000a", TransitGatewayID: "tgw-00000001", VPCID: vApp, State: "available", SecurityGroupReferencing: true},
		},
	}
	if mod != nil {
		mod(&r)
	}
	return &inventory.Inventory{Regions: []inventory.Region{r}}
}

func appRef() inventory.GroupRef { return inventory.GroupRef{GroupID: sgApp, UserID: own} }

// sources returns the group sources of db's one rule: full references and
// scoped ones as "group@vpc<-from,from".
func sources(t *testing.T, rs *Ruleset) (full []string, scoped []string) {
	t.Helper()
	g := NewIndex(rs).Group(sgDB)
	if g == nil {
		t.Fatal("db missing")
	}
	for _, r := range g.Rules {
		full = append(full, r.Groups...)
		for _, s := range r.Scoped {
			scoped = append(scoped, s.Group+"@"+s.VPC+"<-"+strings.Join(s.From, ","))
		}
	}
	return full, scoped
}

func TestBuildReferences(t *testing.T) {
	tests := []struct {
		name    string
		inv     *inventory.Inventory
		full    []string
		scoped  []string
		finding string // kind: detail part, of the one finding
	}{
		{name: "transit gateway with referencing on the gateway and both attachments", inv: estateInv(appRef(), nil), full: []string{sgApp}},
		{name: "referencing disabled on the gateway", inv: estateInv(appRef(), func(r *inventory.Region) { r.TransitGateways[0].SecurityGroupReferencing = false }),
			finding: "stale-reference: AWS honours the reference nowhere: from vpc-0000000a to vpc-0000000d: no active peering, and security group referencing is disabled on transit gateway tgw-00000001"},
		{name: "referencing disabled on the source's attachment", inv: estateInv(appRef(), func(r *inventory.Region) { r.TransitGatewayAttachments[1].SecurityGroupReferencing = false }),
			finding: "stale-reference: AWS honours the reference nowhere: from vpc-0000000a to vpc-0000000d: no active peering, and security group referencing is disabled on an attachment to tgw-00000001"},
		{name: "referencing disabled on the destination's attachment", inv: estateInv(appRef(), func(r *inventory.Region) { r.TransitGatewayAttachments[0].SecurityGroupReferencing = false }),
			finding: "stale-reference: AWS honours the reference nowhere"},
		{name: "attachment not available", inv: estateInv(appRef(), func(r *inventory.Region) { r.TransitGatewayAttachments[1].State = "pendingAcceptance" }),
			finding: "stale-reference: AWS honours the reference nowhere: from vpc-0000000a to vpc-0000000d: no active peering, and an attachment to tgw-00000001 is not available (pendingAcceptance, available)"},
		{name: "gateway not available", inv: estateInv(appRef(), func(r *inventory.Region) { r.TransitGateways[0].State = "deleted" }),
			finding: "stale-reference: AWS honours the reference nowhere: from vpc-0000000a to vpc-0000000d: no active peering, and transit gateway tgw-00000001 is deleted"},
		{name: "attached to two different gateways", inv: estateInv(appRef(), func(r *inventory.Region) {
			r.TransitGateways = append(r.TransitGateways, inventory.TransitGateway{ID: "tgw-00000002", State: "available", SecurityGroupReferencing: true})
			r.TransitGatewayAttachments[1].TransitGatewayID = "tgw-00000002"
		}), finding: "stale-reference: AWS honours the reference nowhere: from vpc-0000000a to vpc-0000000d: no active peering, and vpc-0000000a and vpc-0000000d share no transit gateway"},
		{name: "transit gateways not read", inv: estateInv(appRef(), func(r *inventory.Region) {
			r.TransitGatewaysKnown, r.TransitGateways, r.TransitGatewayAttachments = false, nil, nil
		}), finding: "stale-reference: AWS honours the reference nowhere: from vpc-0000000a to vpc-0000000d: no active peering, and transit gateways of us-east-1 were not read"},
		{name: "active peering to the group's VPC", inv: estateInv(inventory.GroupRef{GroupID: sgApp, UserID: own, VPCID: vApp, PeeringStatus: "active", PeeringConnectionID: "pcx-00000001"},
			func(r *inventory.Region) {
				r.TransitGatewaysKnown, r.TransitGateways, r.TransitGatewayAttachments = false, nil, nil
			}), full: []string{sgApp}},
		{name: "active peering across regions", inv: func() *inventory.Inventory {
			inv := estateInv(inventory.GroupRef{GroupID: sgApp, UserID: own, VPCID: vApp, PeeringStatus: "active", PeeringConnectionID: "pcx-00000001"}, nil)
			r := &inv.Regions[0]
			west := inventory.Region{Account: own, Name: "us-west-2", VPCs: r.VPCs[1:2], SecurityGroups: r.SecurityGroups[1:], NetworkInterfaces: r.NetworkInterfaces[1:]}
			r.VPCs = []inventory.VPC{r.VPCs[0], r.VPCs[2]}
			r.SecurityGroups, r.NetworkInterfaces = r.SecurityGroups[:1], r.NetworkInterfaces[:1]
			inv.Regions = append(inv.Regions, west)
			return inv
		}(), finding: "stale-reference: AWS honours the reference nowhere: from vpc-0000000a to vpc-0000000d: the peering between vpc-0000000a and vpc-0000000d crosses regions"},
		{name: "deleted peering", inv: estateInv(inventory.GroupRef{GroupID: sgApp, UserID: own, VPCID: vApp, PeeringStatus: "deleted", PeeringConnectionID: "pcx-00000001"}, nil),
			finding: "stale-reference: the peering pcx-00000001 of the reference is deleted"},
		{name: "same VPC", inv: estateInv(appRef(), func(r *inventory.Region) {
			r.SecurityGroups[1].VPCID, r.NetworkInterfaces[1].VPCID = vDB, vDB
			r.TransitGatewaysKnown = false
		}), full: []string{sgApp}},
		{name: "a group of an account not read", inv: estateInv(inventory.GroupRef{GroupID: "sg-000000ff", UserID: unread}, nil), full: []string{"sg-000000ff"},
			finding: "unread-account: the group belongs to account 999999999999, which was not read"},
		{name: "a deleted group of an account read", inv: estateInv(inventory.GroupRef{GroupID: "sg-000000ff", UserID: own}, nil), full: []string{"sg-000000ff"},
			finding: "stale-reference: the group is not in the inventory of 111111111111 (deleted?)"},
		{name: "a group used in an associated VPC: only the members AWS honours", inv: estateInv(appRef(), func(r *inventory.Region) {
			r.NetworkInterfaces = append(r.NetworkInterfaces, inventory.NetworkInterface{ID: "eni-0000000f", OwnerID: own, VPCID: vFar, Addresses: []netip.Addr{addr("10.3.0.5")}, Groups: []string{sgApp}})
			r.SecurityGroupVPCAssociations = []inventory.SecurityGroupVPCAssociation{{GroupID: sgApp, VPCID: vFar, State: "associated"}}
		}), scoped: []string{sgApp + "@" + vDB + "<-" + vApp},
			finding: "stale-reference: AWS honours the reference only in part: from vpc-0000000f to vpc-0000000d: no active peering, and vpc-0000000f and vpc-0000000d share no transit gateway"},
		{name: "members in a VPC whose association is gone are not members", inv: estateInv(appRef(), func(r *inventory.Region) {
			r.NetworkInterfaces = append(r.NetworkInterfaces, inventory.NetworkInterface{ID: "eni-0000000f", OwnerID: own, VPCID: vDB, Addresses: []netip.Addr{addr("10.1.0.9")}, Groups: []string{sgApp}})
			r.SecurityGroupVPCAssociations = []inventory.SecurityGroupVPCAssociation{{GroupID: sgApp, VPCID: vDB, State: "disassociated"}}
		}), scoped: []string{sgApp + "@" + vDB + "<-" + vApp},
			finding: "stale-reference: not members: its interfaces in vpc-0000000d: the association with vpc-0000000d is disassociated"},
		{name: "associations not read", inv: estateInv(appRef(), func(r *inventory.Region) {
			r.NetworkInterfaces = append(r.NetworkInterfaces, inventory.NetworkInterface{ID: "eni-0000000f", OwnerID: own, VPCID: vDB, Addresses: []netip.Addr{addr("10.1.0.9")}, Groups: []string{sgApp}})
			r.AssociationsKnown = false
		}), scoped: []string{sgApp + "@" + vDB + "<-" + vApp},
			finding: "stale-reference: not members: its interfaces in vpc-0000000d: security group VPC associations of us-east-1 were not read"},
		{name: "members that are network load balancers", inv: estateInv(appRef(), func(r *inventory.Region) {
			r.NetworkInterfaces[1].InterfaceType = "network_load_balancer"
		}), full: []string{sgApp}, finding: "client-ip: members eni-0000000a are load balancers that may preserve client IP addresses"},
		{name: "an ALB member is not reported", inv: estateInv(appRef(), func(r *inventory.Region) {
			r.NetworkInterfaces[1].Description = "ELB app/web/0123456789abcdef"
		}), full: []string{sgApp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustBuild(t, tt.inv, BuildOptions{})
			full, scoped := sources(t, rs)
			if !slices.Equal(full, tt.full) || !slices.Equal(scoped, tt.scoped) {
				t.Errorf("sources: full %v scoped %v, want %v %v", full, scoped, tt.full, tt.scoped)
			}
			var got []string
			for _, f := range rs.Findings {
				got = append(got, f.Kind+": "+f.Detail)
				if f.Group != sgDB {
					t.Errorf("finding %+v is not about db's rule", f)
				}
			}
			switch {
			case tt.finding == "" && len(got) > 0:
				t.Errorf("findings %q, want none", got)
			case tt.finding != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tt.finding)):
				t.Errorf("findings %q, want one starting %q", got, tt.finding)
			}
			if _, err := Encode(rs); err != nil {
				t.Errorf("Encode: %v", err)
			}
		})
	}
}

// TestBuildSharedVPC: a participant's interfaces in the owner's subnets are
// members of the participant's groups, the VPC's CIDRs are the owner's
// view, objects both describe are merged whatever the order of accounts.
func TestBuildSharedVPC(t *testing.T) {
	port := int32(443)
	owner := inventory.Region{Account: own, Name: "eu-west-1",
		VPCs: []inventory.VPC{{ID: vDB, OwnerID: own, CIDRs: []netip.Prefix{pfx("10.1.0.0/16"), pfx("10.9.0.0/16")}}},
		SecurityGroups: []inventory.SecurityGroup{{ID: sgDB, Name: "db", OwnerID: own, VPCID: vDB, Ingress: []inventory.Permission{
			{Protocol: "tcp", FromPort: &port, ToPort: &port, Groups: []inventory.GroupRef{{GroupID: sgApp, UserID: peer}}}}}},
		NetworkInterfaces: []inventory.NetworkInterface{
			{ID: "eni-0000000d", OwnerID: own, VPCID: vDB, Addresses: []netip.Addr{addr("10.1.0.5")}, Groups: []string{sgDB}},
			{ID: "eni-0000000a", OwnerID: peer, VPCID: vDB, Addresses: []netip.Addr{addr("10.1.0.6")}, Groups: []string{sgApp}},
		},
	}
	participant := inventory.Region{Account: peer, Name: "eu-west-1",
		VPCs:              []inventory.VPC{{ID: vDB, OwnerID: own, CIDRs: []netip.Prefix{pfx("10.1.0.0/16")}}},
		SecurityGroups:    []inventory.SecurityGroup{{ID: sgApp, Name: "app", OwnerID: peer, VPCID: vDB}},
		NetworkInterfaces: []inventory.NetworkInterface{{ID: "eni-0000000a", OwnerID: peer, VPCID: vDB, Addresses: []netip.Addr{addr("10.1.0.6"), addr("10.1.0.7")}, Groups: []string{sgApp}}},
	}
	var encodings [][]byte
	for _, regions := range [][]inventory.Region{{owner, participant}, {participant, owner}} {
		rs := mustBuild(t, &inventory.Inventory{Regions: regions}, BuildOptions{})
		x := NewIndex(rs)
		if got := x.VPC(vDB).CIDRs; !reflect.DeepEqual(got, []netip.Prefix{pfx("10.1.0.0/16"), pfx("10.9.0.0/16")}) {
			t.Errorf("shared VPC CIDRs %v: want the owner's view", got)
		}
		if got := x.Members(sgApp); !slices.Equal(got, []netip.Addr{addr("10.1.0.6"), addr("10.1.0.7")}) {
			t.Errorf("members of the participant's group %v: want the participant's view of its interface", got)
		}
		if full, _ := sources(t, rs); !slices.Equal(full, []string{sgApp}) || len(rs.Findings) != 0 {
			t.Errorf("db's sources %v, findings %+v: want the participant's group, no finding", full, rs.Findings)
		}
		b, err := Encode(rs)
		if err != nil {
			t.Fatal(err)
		}
		encodings = append(encodings, b)
	}
	if !bytes.Equal(encodings[0], encodings[1]) {
		t.Error("the order of the accounts changes the encoding")
	}
}

func TestBuildEstateErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		inv  *inventory.Inventory
		want string
	}{
		{"named and unnamed accounts mixed", &inventory.Inventory{Regions: []inventory.Region{{Account: own, Name: "eu-west-1"}, {Name: "us-east-1"}}},
			"mixes regions of named accounts with regions of no account"},
		{"a group listed twice in one view", &inventory.Inventory{Regions: []inventory.Region{{Name: "eu-west-1", SecurityGroups: []inventory.SecurityGroup{{ID: sgDB}, {ID: sgDB}}}}},
			"groups(sg-0000000d): listed twice in eu-west-1"},
		{"a VPC in two regions", &inventory.Inventory{Regions: []inventory.Region{
			{Account: own, Name: "eu-west-1", VPCs: []inventory.VPC{{ID: vDB, OwnerID: own}}},
			{Account: peer, Name: "us-east-1", VPCs: []inventory.VPC{{ID: vDB, OwnerID: own}}}}},
			"vpcs(vpc-0000000d): in eu-west-1 and in 222222222222/us-east-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.inv, BuildOptions{GeneratedAt: t0})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestFindingsCodec: findings and scoped references round-trip, are
// optional (absent when empty) and strictly checked.
func TestFindingsCodec(t *testing.T) {
	rs := validRuleset()
	rs.Groups[1].Rules[0].Scoped = []ScopedRef{{Group: "sg-0000000e", VPC: "vpc-00000001", From: []string{"vpc-00000001", "vpc-00000003"}}}
	rs.Findings = []Finding{
		{Kind: FindingClientIP, Group: "sg-0000000a", Ref: "sg-0000000b", Detail: "members are load balancers"},
		{Kind: FindingUnreadAccount, Group: "sg-0000000b", Ref: "sg-0000000c", Account: "999999999999", Detail: "not read"},
	}
	b, err := Encode(rs)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rs) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, rs)
	}
	plain, err := Encode(validRuleset())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain, []byte(`"findings"`)) || bytes.Contains(plain, []byte(`"scoped"`)) || bytes.Contains(plain, []byte(`"prefixes"`)) {
		t.Errorf("a ruleset without findings, scoped references or prefixes mentions them: %s", plain)
	}
	for _, tt := range []struct {
		name, old, new, want string
	}{
		{"unknown kind", `"kind":"client-ip"`, `"kind":"other"`, `findings[0].kind: "other" is not a kind of finding`},
		{"unknown field", `"kind":"client-ip",`, `"kind":"client-ip","severity":1,`, `/findings/0/severity: unknown field "severity"`},
		{"bad account", `"account":"999999999999"`, `"account":"9"`, `findings[1].account`},
		{"control character", `"detail":"not read"`, `"detail":"not\nread"`, `findings[1].detail`},
		{"empty detail", `"detail":"not read"`, `"detail":""`, `findings[1].detail`},
		{"out of order", `{"kind":"client-ip"`, `{"kind":"zzz"`, `findings[0].kind`},
		{"scoped without VPCs", `"from":["vpc-00000001","vpc-00000003"]`, `"from":[]`, `.scoped[0].from: no VPCs`},
		{"scoped bad VPC", `"vpc":"vpc-00000001","from"`, `"vpc":"vpc-X","from"`, `.scoped[0].vpc`},
		{"scoped unknown field", `"group":"sg-0000000e",`, `"group":"sg-0000000e","to":"x",`, `unknown field "to"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Contains(b, []byte(tt.old)) {
				t.Fatalf("test bug: %q not in %s", tt.old, b)
			}
			_, err := Decode(bytes.Replace(b, []byte(tt.old), []byte(tt.new), 1))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is neither ErrInvalid nor ErrMalformed", err)
			}
		})
	}
}
