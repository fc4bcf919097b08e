package sgsource

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/reyes-fw/reyes/inventory"
)

// fakeEC2 is an EC2 Query API endpoint that serves an Inventory as the
// real API would: XML pages, NextToken, MaxResults and the vpc-id filter,
// per region (taken from the SigV4 credential scope). It counts calls and
// can fail any request on demand.
type fakeEC2 struct {
	inv *inventory.Inventory
	// accounts, if set, serve another inventory to requests signed with
	// an access key ID that is a key of the map (tests give each account
	// static credentials whose key is its account ID).
	accounts map[string]*inventory.Inventory
	// fault, if not nil, is asked before every request; n counts the
	// requests of that region and action from 1. A non-nil result is
	// served instead of the answer.
	fault func(region, action string, n int) *fakeReply

	mu    sync.Mutex
	calls map[string]int // "region action" -> requests
	// pages holds each distinct request ("region action" and its
	// arguments): a retried request is one page, however often it is sent.
	pages map[string]map[string]bool
}

// fakeReply is a canned HTTP answer.
type fakeReply struct {
	status int
	body   string
}

// ec2Error is the reply AWS gives for an error code.
func ec2Error(status int, code, msg string) *fakeReply {
	return &fakeReply{status: status, body: `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>` + code + `</Code><Message>` + msg + `</Message></Error></Errors><RequestID>fake</RequestID></Response>`}
}

// faultOn is a fault that replies r to the calls of action in region
// whose number n (from 1) calls accepts.
func faultOn(region, action string, calls func(n int) bool, r *fakeReply) func(region, action string, n int) *fakeReply {
	return func(reg, act string, n int) *fakeReply {
		if reg == region && act == action && calls(n) {
			return r
		}
		return nil
	}
}

// anyCall accepts every call.
func anyCall(int) bool { return true }

func newFakeEC2(t testing.TB, inv *inventory.Inventory) (*fakeEC2, *httptest.Server) {
	f := &fakeEC2{inv: inv, calls: make(map[string]int), pages: make(map[string]map[string]bool)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// distinct returns the number of distinct requests (pages) of one action
// in one region: retries of a request under load do not count.
func (f *fakeEC2) distinct(region, action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pages[region+" "+action])
}

// count returns the number of requests of one action in one region, or of
// every action in every region with empty arguments.
func (f *fakeEC2) count(region, action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, v := range f.calls {
		r, a, _ := strings.Cut(k, " ")
		if (region == "" || r == region) && (action == "" || a == action) {
			n += v
		}
	}
	return n
}

func (f *fakeEC2) region(name, key string) *inventory.Region {
	inv := f.inv
	if a, ok := f.accounts[key]; ok {
		inv = a
	}
	for i := range inv.Regions {
		if inv.Regions[i].Name == name {
			return &inv.Regions[i]
		}
	}
	return nil
}

func (f *fakeEC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	action := r.PostForm.Get("Action")
	region := credentialRegion(r.Header.Get("Authorization"))
	f.mu.Lock()
	key := region + " " + action
	f.calls[key]++
	n := f.calls[key]
	if f.pages[key] == nil {
		f.pages[key] = map[string]bool{}
	}
	f.pages[key][r.PostForm.Encode()] = true
	f.mu.Unlock()
	if f.fault != nil {
		if rep := f.fault(region, action, n); rep != nil {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(rep.status)
			fmt.Fprint(w, rep.body)
			return
		}
	}
	reg := f.region(region, credentialKey(r.Header.Get("Authorization")))
	if reg == nil {
		reg = &inventory.Region{Name: region}
	}
	var vpcs []string
	for i := 1; ; i++ {
		name := r.PostForm.Get(fmt.Sprintf("Filter.%d.Name", i))
		if name == "" {
			break
		}
		if name != "vpc-id" {
			writeReply(w, ec2Error(400, "InvalidParameterValue", "unknown filter "+name))
			return
		}
		for j := 1; ; j++ {
			v := r.PostForm.Get(fmt.Sprintf("Filter.%d.Value.%d", i, j))
			if v == "" {
				break
			}
			vpcs = append(vpcs, v)
		}
	}
	keep := func(vpc string) bool { return len(vpcs) == 0 || slices.Contains(vpcs, vpc) }
	start, size := 0, -1
	if tok := r.PostForm.Get("NextToken"); tok != "" {
		var err error
		if start, err = strconv.Atoi(tok); err != nil {
			writeReply(w, ec2Error(400, "InvalidNextToken", "bad token"))
			return
		}
	}
	if mr := r.PostForm.Get("MaxResults"); mr != "" {
		size, _ = strconv.Atoi(mr)
	}

	var b strings.Builder
	b.Grow(64 << 10)
	switch action {
	case CallDescribeVpcs:
		writePage(&b, action, "vpcSet", reg.VPCs, func(v inventory.VPC) bool { return keep(v.ID) }, start, size, writeVpc)
	case CallDescribeSecurityGroups:
		writePage(&b, action, "securityGroupInfo", reg.SecurityGroups, func(g inventory.SecurityGroup) bool { return keep(g.VPCID) }, start, size, writeGroup)
	case CallDescribeNetworkInterfaces:
		writePage(&b, action, "networkInterfaceSet", reg.NetworkInterfaces, func(n inventory.NetworkInterface) bool { return keep(n.VPCID) }, start, size, writeENI)
	case CallGetManagedPrefixListEntries:
		id := r.PostForm.Get("PrefixListId")
		var entries []netip.Prefix
		found := false
		for _, pl := range reg.PrefixLists {
			if pl.ID == id {
				entries, found = pl.Entries, true
			}
		}
		if !found {
			writeReply(w, ec2Error(400, "InvalidPrefixListID.NotFound", "no prefix list "+id))
			return
		}
		page, next := window(entries, start, size)
		b.WriteString(`<GetManagedPrefixListEntriesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><entrySet>`)
		for _, e := range page {
			b.WriteString(`<item><cidr>` + e.String() + `</cidr><description>entry</description></item>`)
		}
		b.WriteString(`</entrySet>`)
		writeNext(&b, next)
		b.WriteString(`</GetManagedPrefixListEntriesResponse>`)
	case CallDescribeSecurityGroupVpcAssociations:
		writePage(&b, action, "securityGroupVpcAssociationSet", reg.SecurityGroupVPCAssociations, func(inventory.SecurityGroupVPCAssociation) bool { return true }, start, size,
			func(b *strings.Builder, a inventory.SecurityGroupVPCAssociation) {
				b.WriteString(`<item><groupId>` + a.GroupID + `</groupId><vpcId>` + a.VPCID + `</vpcId><vpcOwnerId>` + a.VPCOwnerID +
					`</vpcOwnerId><groupOwnerId>` + a.GroupOwnerID + `</groupOwnerId><state>` + a.State + `</state></item>`)
			})
	case CallDescribeTransitGateways:
		writePage(&b, action, "transitGatewaySet", reg.TransitGateways, func(inventory.TransitGateway) bool { return true }, start, size,
			func(b *strings.Builder, g inventory.TransitGateway) {
				b.WriteString(`<item><transitGatewayId>` + g.ID + `</transitGatewayId><ownerId>` + g.OwnerID + `</ownerId><state>` + g.State +
					`</state><options><securityGroupReferencingSupport>` + enableWord(g.SecurityGroupReferencing) + `</securityGroupReferencingSupport></options></item>`)
			})
	case CallDescribeTransitGatewayVpcAttachments:
		writePage(&b, action, "transitGatewayVpcAttachments", reg.TransitGatewayAttachments, func(inventory.TransitGatewayVPCAttachment) bool { return true }, start, size,
			func(b *strings.Builder, a inventory.TransitGatewayVPCAttachment) {
				b.WriteString(`<item><transitGatewayAttachmentId>` + a.ID + `</transitGatewayAttachmentId><transitGatewayId>` + a.TransitGatewayID +
					`</transitGatewayId><vpcId>` + a.VPCID + `</vpcId><vpcOwnerId>` + a.VPCOwnerID + `</vpcOwnerId><state>` + a.State +
					`</state><options><securityGroupReferencingSupport>` + enableWord(a.SecurityGroupReferencing) + `</securityGroupReferencingSupport></options></item>`)
			})
	default:
		writeReply(w, ec2Error(400, "InvalidAction", "unknown action "+action))
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(b.String()))
}

func writeReply(w http.ResponseWriter, rep *fakeReply) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(rep.status)
	fmt.Fprint(w, rep.body)
}

func enableWord(b bool) string {
	if b {
		return "enable"
	}
	return "disable"
}

// credentialKey returns the access key ID of a SigV4 Authorization header.
func credentialKey(auth string) string {
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	key, _, _ := strings.Cut(cred, "/")
	return key
}

// credentialRegion returns the region of a SigV4 Authorization header:
// "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/ec2/aws4_request, ...".
func credentialRegion(auth string) string {
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	parts := strings.Split(cred, "/")
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// window returns items[start:start+size] and the token of the next page
// ("" at the end). size < 0 means everything.
func window[T any](items []T, start, size int) ([]T, string) {
	if start > len(items) {
		start = len(items)
	}
	if size < 0 || start+size >= len(items) {
		return items[start:], ""
	}
	return items[start : start+size], strconv.Itoa(start + size)
}

func writeNext(b *strings.Builder, next string) {
	if next != "" {
		b.WriteString(`<nextToken>` + next + `</nextToken>`)
	}
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func writeVpc(b *strings.Builder, v inventory.VPC) {
	b.WriteString(`<item><vpcId>` + v.ID + `</vpcId><ownerId>` + v.OwnerID + `</ownerId><state>available</state>`)
	b.WriteString(`<cidrBlockAssociationSet>`)
	for _, c := range v.CIDRs {
		if c.Addr().Is4() {
			b.WriteString(`<item><associationId>vpc-cidr-assoc-1</associationId><cidrBlock>` + c.String() + `</cidrBlock><cidrBlockState><state>associated</state></cidrBlockState></item>`)
		}
	}
	// A block that was disassociated is not a CIDR of the VPC.
	b.WriteString(`<item><associationId>vpc-cidr-assoc-2</associationId><cidrBlock>100.64.0.0/16</cidrBlock><cidrBlockState><state>disassociated</state></cidrBlockState></item>`)
	b.WriteString(`</cidrBlockAssociationSet><ipv6CidrBlockAssociationSet>`)
	for _, c := range v.CIDRs {
		if c.Addr().Is6() {
			b.WriteString(`<item><associationId>vpc-cidr-assoc-3</associationId><ipv6CidrBlock>` + c.String() + `</ipv6CidrBlock><ipv6CidrBlockState><state>associated</state></ipv6CidrBlockState></item>`)
		}
	}
	b.WriteString(`</ipv6CidrBlockAssociationSet></item>`)
}

func writeGroup(b *strings.Builder, g inventory.SecurityGroup) {
	b.WriteString(`<item><ownerId>` + g.OwnerID + `</ownerId><groupId>` + g.ID + `</groupId><groupName>` + esc(g.Name) +
		`</groupName><groupDescription>` + esc(g.Description) + `</groupDescription><vpcId>` + g.VPCID + `</vpcId><ipPermissions>`)
	for _, p := range g.Ingress {
		b.WriteString(`<item><ipProtocol>` + p.Protocol + `</ipProtocol>`)
		if p.FromPort != nil {
			b.WriteString(`<fromPort>` + strconv.Itoa(int(*p.FromPort)) + `</fromPort>`)
		}
		if p.ToPort != nil {
			b.WriteString(`<toPort>` + strconv.Itoa(int(*p.ToPort)) + `</toPort>`)
		}
		b.WriteString(`<groups>`)
		for _, r := range p.Groups {
			b.WriteString(`<item><userId>` + r.UserID + `</userId><groupId>` + r.GroupID + `</groupId>`)
			if r.VPCID != "" {
				b.WriteString(`<vpcId>` + r.VPCID + `</vpcId>`)
			}
			if r.PeeringStatus != "" {
				b.WriteString(`<peeringStatus>` + r.PeeringStatus + `</peeringStatus>`)
			}
			if r.PeeringConnectionID != "" {
				b.WriteString(`<vpcPeeringConnectionId>` + r.PeeringConnectionID + `</vpcPeeringConnectionId>`)
			}
			b.WriteString(`</item>`)
		}
		b.WriteString(`</groups><ipRanges>`)
		writeItems(b, "cidrIp", p.CIDRs, is4)
		b.WriteString(`</ipRanges><ipv6Ranges>`)
		writeItems(b, "cidrIpv6", p.CIDRs, is6)
		b.WriteString(`</ipv6Ranges><prefixListIds>`)
		for _, id := range p.PrefixListIDs {
			b.WriteString(`<item><prefixListId>` + id + `</prefixListId></item>`)
		}
		b.WriteString(`</prefixListIds></item>`)
	}
	// Egress is described too, and must be ignored.
	b.WriteString(`</ipPermissions><ipPermissionsEgress><item><ipProtocol>-1</ipProtocol><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item></ipPermissionsEgress></item>`)
}

// writeItems writes <item><tag>v</tag></item> for each v of vs that keep
// keeps.
func writeItems[T interface{ String() string }](b *strings.Builder, tag string, vs []T, keep func(T) bool) {
	for _, v := range vs {
		if keep(v) {
			b.WriteString(`<item><` + tag + `>` + v.String() + `</` + tag + `></item>`)
		}
	}
}

// is4 and is6 tell a prefix's family.
func is4(p netip.Prefix) bool { return p.Addr().Is4() }
func is6(p netip.Prefix) bool { return p.Addr().Is6() }

func writeENI(b *strings.Builder, n inventory.NetworkInterface) {
	b.WriteString(`<item><networkInterfaceId>` + n.ID + `</networkInterfaceId><vpcId>` + n.VPCID + `</vpcId><ownerId>` + n.OwnerID +
		`</ownerId><description>` + esc(n.Description) + `</description><interfaceType>` + n.InterfaceType +
		`</interfaceType><macAddress>` + n.MAC + `</macAddress><status>in-use</status>`)
	if n.InstanceID != "" {
		b.WriteString(`<attachment><attachmentId>eni-attach-1</attachmentId><instanceId>` + n.InstanceID + `</instanceId><deviceIndex>0</deviceIndex><status>attached</status></attachment>`)
	}
	b.WriteString(`<groupSet>`)
	for _, g := range n.Groups {
		b.WriteString(`<item><groupId>` + g + `</groupId><groupName>x</groupName></item>`)
	}
	b.WriteString(`</groupSet>`)
	first := true
	for _, a := range n.Addresses {
		if a.Is4() {
			// The primary address is repeated at the top, as AWS does.
			b.WriteString(`<privateIpAddress>` + a.String() + `</privateIpAddress>`)
			break
		}
	}
	b.WriteString(`<privateIpAddressesSet>`)
	for _, a := range n.Addresses {
		if a.Is4() {
			b.WriteString(`<item><privateIpAddress>` + a.String() + `</privateIpAddress><primary>` + strconv.FormatBool(first) + `</primary></item>`)
			first = false
		}
	}
	b.WriteString(`</privateIpAddressesSet><ipv6AddressesSet>`)
	writeItems(b, "ipv6Address", n.Addresses, netip.Addr.Is6)
	b.WriteString(`</ipv6AddressesSet><ipv4PrefixSet>`)
	writeItems(b, "ipv4Prefix", n.Prefixes, is4)
	b.WriteString(`</ipv4PrefixSet><ipv6PrefixSet>`)
	writeItems(b, "ipv6Prefix", n.Prefixes, is6)
	// A public IP is not a member.
	b.WriteString(`</ipv6PrefixSet><association><publicIp>203.0.113.99</publicIp></association></item>`)
}

// testEC2 returns an EC2 source pointed at srv with explicit test
// credentials and fast retries.
func testEC2(srv *httptest.Server, regions ...string) *EC2 {
	return &EC2{
		Regions: regions,
		Config: &aws.Config{
			Region:       "us-east-1",
			BaseEndpoint: aws.String(srv.URL),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing", Source: "test"}, nil
			}),
		},
		MaxAttempts: 4,
		MaxBackoff:  5 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
	}
}

// genInventory makes a deterministic estate of about groups security
// groups and enis interfaces in each region, in the canonical form ReadDir
// returns: groups referring to groups of other VPCs, to themselves and to
// prefix lists, interfaces with secondary and IPv6 addresses, interfaces
// without an instance.
func genInventory(regions []string, groups, enis int) *inventory.Inventory {
	inv := &inventory.Inventory{}
	for ri, name := range slices.Sorted(slices.Values(regions)) {
		reg := inventory.Region{Name: name}
		nv := max(2, groups/200)
		for v := range nv {
			vpc := inventory.VPC{
				ID:      fmt.Sprintf("vpc-%017x", ri<<32|v),
				OwnerID: "123456789012",
				CIDRs:   []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(ri*64 + v/256), byte(v), 0}), 24)},
			}
			if v%2 == 0 {
				vpc.CIDRs = append(vpc.CIDRs, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(ri), byte(v >> 8), byte(v)}), 56))
			}
			reg.VPCs = append(reg.VPCs, vpc)
		}
		npl := 3
		var pls []inventory.PrefixList
		for p := range npl {
			pl := inventory.PrefixList{ID: fmt.Sprintf("pl-%017x", ri<<32|p)}
			for e := range 3 + p*60 { // one list longer than a page of 100
				pl.Entries = append(pl.Entries, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(p), byte(e)}), 32))
			}
			pls = append(pls, pl)
		}
		gid := func(i int) string { return fmt.Sprintf("sg-%017x", ri<<32|i) }
		usedPL := map[string]bool{}
		for i := range groups {
			vpc := reg.VPCs[i%nv]
			g := inventory.SecurityGroup{ID: gid(i), Name: fmt.Sprintf("group-%d", i), Description: "group <" + strconv.Itoa(i) + "> & co",
				OwnerID: "123456789012", VPCID: vpc.ID}
			port := int32(1000 + i%5000)
			g.Ingress = append(g.Ingress, inventory.Permission{Protocol: "tcp", FromPort: &port, ToPort: &port,
				Groups: []inventory.GroupRef{{GroupID: gid((i + 1) % groups), UserID: "123456789012"}, {GroupID: gid(i), UserID: "123456789012", VPCID: vpc.ID}}})
			if i%3 == 0 {
				typ, code := int32(8), int32(-1)
				g.Ingress = append(g.Ingress, inventory.Permission{Protocol: "icmp", FromPort: &typ, ToPort: &code,
					CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}})
			}
			if i%7 == 0 && i/7 < npl {
				pl := pls[i/7].ID
				usedPL[pl] = true
				g.Ingress = append(g.Ingress, inventory.Permission{Protocol: "-1", PrefixListIDs: []string{pl}})
			}
			reg.SecurityGroups = append(reg.SecurityGroups, g)
		}
		for _, pl := range pls {
			if usedPL[pl.ID] {
				reg.PrefixLists = append(reg.PrefixLists, pl)
			}
		}
		for i := range enis {
			vi := i % nv
			vpc := reg.VPCs[vi]
			base := vpc.CIDRs[0].Addr().As4()
			n := inventory.NetworkInterface{
				ID: fmt.Sprintf("eni-%017x", ri<<32|i), VPCID: vpc.ID, OwnerID: "123456789012",
				Description: "interface " + strconv.Itoa(i), InterfaceType: "interface",
				MAC: fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", ri, byte(i>>16), byte(i>>8), byte(i)),
			}
			if i%4 != 3 {
				n.InstanceID = fmt.Sprintf("i-%017x", ri<<32|i/2)
			}
			host := i / nv
			n.Addresses = append(n.Addresses, netip.AddrFrom4([4]byte{base[0], base[1] + byte(host>>8), base[2], byte(host)}))
			if i%5 == 0 {
				n.Addresses = append(n.Addresses, netip.AddrFrom4([4]byte{base[0], base[1] + byte(host>>8) + 100, base[2], byte(host)}))
			}
			if len(vpc.CIDRs) > 1 && i%2 == 0 {
				a := vpc.CIDRs[1].Addr().As16()
				a[14], a[15] = byte(i>>8), byte(i)
				n.Addresses = append(n.Addresses, netip.AddrFrom16(a))
			}
			for k := range 1 + i%3 {
				n.Groups = append(n.Groups, gid((i+k*17)%groups))
			}
			if i%6 == 1 { // EKS prefix delegation
				n.InterfaceType = "trunk"
				n.Prefixes = append(n.Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1] + 50, base[2], byte(host << 4)}), 28))
				if len(vpc.CIDRs) > 1 {
					a := vpc.CIDRs[1].Addr().As16()
					a[8], a[9] = byte(i>>8), byte(i)
					n.Prefixes = append(n.Prefixes, netip.PrefixFrom(netip.AddrFrom16(a), 80))
				}
			}
			reg.NetworkInterfaces = append(reg.NetworkInterfaces, n)
		}
		// Peered references, transit gateways and associations.
		reg.SecurityGroups[0].Ingress[0].Groups = append(reg.SecurityGroups[0].Ingress[0].Groups,
			inventory.GroupRef{GroupID: gid(2), UserID: "210987654321", VPCID: reg.VPCs[1].ID, PeeringStatus: "active", PeeringConnectionID: fmt.Sprintf("pcx-%017x", ri)})
		tgw := fmt.Sprintf("tgw-%017x", ri)
		reg.TransitGateways = []inventory.TransitGateway{{ID: tgw, OwnerID: "123456789012", State: "available", SecurityGroupReferencing: true}}
		for v, vpc := range reg.VPCs {
			reg.TransitGatewayAttachments = append(reg.TransitGatewayAttachments, inventory.TransitGatewayVPCAttachment{
				ID: fmt.Sprintf("tgw-attach-%017x", ri<<32|v), TransitGatewayID: tgw, VPCID: vpc.ID, VPCOwnerID: "123456789012",
				State: "available", SecurityGroupReferencing: v%2 == 0})
		}
		reg.SecurityGroupVPCAssociations = []inventory.SecurityGroupVPCAssociation{
			{GroupID: gid(1), GroupOwnerID: "123456789012", VPCID: reg.VPCs[0].ID, VPCOwnerID: "123456789012", State: "associated"},
			{GroupID: gid(3), GroupOwnerID: "123456789012", VPCID: reg.VPCs[0].ID, VPCOwnerID: "123456789012", State: "disassociated"},
		}
		reg.AssociationsKnown, reg.TransitGatewaysKnown = true, true
		inv.Regions = append(inv.Regions, reg)
	}
	return inv
}

// writePage writes the response of a Describe action: the page of the kept
// items that starts at start, in the element set, and the next token.
func writePage[T any](b *strings.Builder, action, set string, all []T, keep func(T) bool, start, size int, write func(*strings.Builder, T)) {
	var items []T
	for _, v := range all {
		if keep(v) {
			items = append(items, v)
		}
	}
	page, next := window(items, start, size)
	b.WriteString(`<` + action + `Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><` + set + `>`)
	for _, v := range page {
		write(b, v)
	}
	b.WriteString(`</` + set + `>`)
	writeNext(b, next)
	b.WriteString(`</` + action + `Response>`)
}
