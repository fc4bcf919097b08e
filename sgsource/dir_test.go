package sgsource

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/reyes-fw/reyes/inventory"
)

const sampleDir = "../examples/quickstart/inventory"

// A small region written for the tests: every field reyes reads appears,
// with placeholders (the values) that the bad cases replace one at a time.
const (
	baseSecurityGroups = `{
    "SecurityGroups": [
        {
            "Description": "web servers",
            "GroupName": "web",
            "IpPermissions": [
                {
                    "FromPort": 443,
                    "IpProtocol": "tcp",
                    "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "estate"}],
                    "Ipv6Ranges": [{"CidrIpv6": "fd00::/8"}],
                    "PrefixListIds": [{"PrefixListId": "pl-0123456789abcdef0"}],
                    "ToPort": 443,
                    "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef1", "UserId": "123456789012", "VpcId": "vpc-0123456789abcdef1"}]
                },
                {
                    "IpProtocol": "-1",
                    "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0", "UserId": "amazon-elb"}]
                }
            ],
            "OwnerId": "123456789012",
            "GroupId": "sg-0123456789abcdef0",
            "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "not used"}]}],
            "Tags": [{"Key": "Name", "Value": "web"}],
            "VpcId": "vpc-0123456789abcdef0"
        },
        {
            "GroupId": "sg-0123456789abcdef1",
            "GroupName": "lb",
            "OwnerId": "123456789012",
            "VpcId": "vpc-0123456789abcdef1",
            "IpPermissions": [{"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "192.0.2.7/32"}]}]
        }
    ]
}`
	baseNetworkInterfaces = `{
    "NetworkInterfaces": [
        {
            "Attachment": {"AttachmentId": "eni-attach-0123456789abcdef0", "InstanceId": "i-0123456789abcdef0", "Status": "attached"},
            "Association": {"PublicIp": "203.0.113.9"},
            "Description": "Primary network interface",
            "Groups": [{"GroupId": "sg-0123456789abcdef0", "GroupName": "web"}],
            "InterfaceType": "interface",
            "Ipv6Addresses": [{"Ipv6Address": "fd00::10"}],
            "MacAddress": "02:00:00:aa:bb:cc",
            "NetworkInterfaceId": "eni-0123456789abcdef0",
            "OwnerId": "123456789012",
            "PrivateIpAddress": "10.1.0.10",
            "PrivateIpAddresses": [
                {"Association": {"PublicIp": "203.0.113.9"}, "Primary": true, "PrivateIpAddress": "10.1.0.10"},
                {"Primary": false, "PrivateIpAddress": "10.1.0.11"}
            ],
            "VpcId": "vpc-0123456789abcdef0"
        },
        {
            "Description": "RDSNetworkInterface",
            "Groups": [],
            "NetworkInterfaceId": "eni-0123456789abcdef1",
            "OwnerId": "123456789012",
            "PrivateIpAddresses": [{"PrivateIpAddress": "10.2.0.5"}],
            "VpcId": "vpc-0123456789abcdef1"
        }
    ]
}`
	baseVPCs = `{
    "Vpcs": [
        {
            "CidrBlock": "10.1.0.0/16",
            "CidrBlockAssociationSet": [
                {"AssociationId": "vpc-cidr-assoc-1", "CidrBlock": "10.1.0.0/16", "CidrBlockState": {"State": "associated"}},
                {"CidrBlock": "10.9.0.0/16", "CidrBlockState": {"State": "disassociated"}}
            ],
            "Ipv6CidrBlockAssociationSet": [{"Ipv6CidrBlock": "fd00:1::/56", "Ipv6CidrBlockState": {"State": "associated"}}],
            "OwnerId": "123456789012",
            "VpcId": "vpc-0123456789abcdef0"
        },
        {
            "CidrBlockAssociationSet": [{"CidrBlock": "10.2.0.0/16", "CidrBlockState": {"State": "associated"}}],
            "OwnerId": "123456789012",
            "VpcId": "vpc-0123456789abcdef1"
        }
    ]
}`
	basePrefixList = `{"Entries": [{"Cidr": "192.0.2.0/24", "Description": "office"}, {"Cidr": "2001:db8::/32"}]}`
)

const (
	sgFile  = "eu-west-1/security-groups.json"
	eniFile = "eu-west-1/network-interfaces.json"
	vpcFile = "eu-west-1/vpcs.json"
	plFile  = "eu-west-1/prefix-lists/pl-0123456789abcdef0.json"
)

// deleted in a test's files deletes the file.
const deleted = "\x00deleted"

// edit replaces the first old in file with new.
type edit struct{ file, old, new string }

// readEdited applies edits, then set (whole files, or deleted), to files,
// and reads them as an inventory directory. It fails the test unless the
// read fails with an error containing want, and returns that error.
func readEdited(t *testing.T, files map[string]string, edits []edit, set map[string]string, want string) error {
	t.Helper()
	for _, e := range edits {
		if !strings.Contains(files[e.file], e.old) {
			t.Fatalf("test bug: %s does not contain %q", e.file, e.old)
		}
		files[e.file] = strings.Replace(files[e.file], e.old, e.new, 1)
	}
	for name, content := range set {
		if content == deleted {
			delete(files, name)
		} else {
			files[name] = content
		}
	}
	inv, err := ReadDir(context.Background(), writeFiles(t, files))
	if err == nil {
		t.Fatalf("ReadDir accepted it: %+v", inv)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error\n  %v\ndoes not contain\n  %s", err, want)
	}
	return err
}

// checkFieldError fails the test unless err is a *FieldError naming a
// file, and its field (when it names one) and JSON pointer the same place.
func checkFieldError(t *testing.T, err error) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.File == "" {
		t.Fatalf("error %v is not a *FieldError naming a file", err)
	}
	if fe.Field != "" && (fe.Pointer == "" || fieldOfPointer(jsontext.Pointer(fe.Pointer)) != fe.Field) {
		t.Errorf("field %q and pointer %q do not name the same place", fe.Field, fe.Pointer)
	}
}

func baseFiles() map[string]string {
	return map[string]string{
		sgFile:  baseSecurityGroups,
		eniFile: baseNetworkInterfaces,
		vpcFile: baseVPCs,
		plFile:  basePrefixList,
	}
}

func p32(n int32) *int32 { return &n }

// baseInventory is what ReadDir must make of baseFiles.
func baseInventory() *inventory.Inventory {
	return &inventory.Inventory{Regions: []inventory.Region{{
		Name: "eu-west-1",
		VPCs: []inventory.VPC{
			{ID: "vpc-0123456789abcdef0", OwnerID: "123456789012", CIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/56")}},
			{ID: "vpc-0123456789abcdef1", OwnerID: "123456789012", CIDRs: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}},
		},
		SecurityGroups: []inventory.SecurityGroup{
			{
				ID: "sg-0123456789abcdef0", Name: "web", Description: "web servers", OwnerID: "123456789012", VPCID: "vpc-0123456789abcdef0",
				Ingress: []inventory.Permission{
					{
						Protocol: "tcp", FromPort: p32(443), ToPort: p32(443),
						CIDRs:         []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
						Groups:        []inventory.GroupRef{{GroupID: "sg-0123456789abcdef1", UserID: "123456789012", VPCID: "vpc-0123456789abcdef1"}},
						PrefixListIDs: []string{"pl-0123456789abcdef0"},
					},
					{Protocol: "-1", Groups: []inventory.GroupRef{{GroupID: "sg-0123456789abcdef0", UserID: "amazon-elb"}}},
				},
			},
			{
				ID: "sg-0123456789abcdef1", Name: "lb", OwnerID: "123456789012", VPCID: "vpc-0123456789abcdef1",
				Ingress: []inventory.Permission{{Protocol: "icmp", FromPort: p32(8), ToPort: p32(-1), CIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")}}},
			},
		},
		NetworkInterfaces: []inventory.NetworkInterface{
			{
				ID: "eni-0123456789abcdef0", VPCID: "vpc-0123456789abcdef0", OwnerID: "123456789012",
				Description: "Primary network interface", InterfaceType: "interface", InstanceID: "i-0123456789abcdef0", MAC: "02:00:00:aa:bb:cc",
				Addresses: []netip.Addr{netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.1.0.11"), netip.MustParseAddr("fd00::10")},
				Groups:    []string{"sg-0123456789abcdef0"},
			},
			{
				ID: "eni-0123456789abcdef1", VPCID: "vpc-0123456789abcdef1", OwnerID: "123456789012", Description: "RDSNetworkInterface",
				Addresses: []netip.Addr{netip.MustParseAddr("10.2.0.5")},
			},
		},
		PrefixLists: []inventory.PrefixList{{ID: "pl-0123456789abcdef0", Entries: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}}},
	}}}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadDirBase(t *testing.T) {
	dir := writeFiles(t, baseFiles())
	// Things that are not regions are ignored.
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := baseInventory(); !reflect.DeepEqual(got, want) {
		t.Errorf("ReadDir:\n got %+v\nwant %+v", got, want)
	}
}

func TestReadDirRejects(t *testing.T) {
	tests := []struct {
		name  string
		edits []edit
		files map[string]string // replaces whole files, or deletes them
		want  string            // substring of the error
	}{
		{
			name:  "host bits in CidrIp",
			edits: []edit{{sgFile, `"10.0.0.0/8"`, `"10.0.0.1/8"`}},
			want:  sgFile + `: SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp: "10.0.0.1/8" has host bits set`,
		},
		{
			name:  "IPv6 in CidrIp",
			edits: []edit{{sgFile, `"192.0.2.7/32"`, `"2001:db8::7/128"`}},
			want:  sgFile + `: SecurityGroups[1].IpPermissions[0].IpRanges[0].CidrIp: "2001:db8::7/128" is not an IPv4 CIDR block`,
		},
		{
			name:  "IPv4 in CidrIpv6",
			edits: []edit{{sgFile, `"fd00::/8"`, `"10.0.0.0/8"`}},
			want:  sgFile + `: SecurityGroups[0].IpPermissions[0].Ipv6Ranges[0].CidrIpv6: "10.0.0.0/8" is not an IPv6 CIDR block`,
		},
		{
			name:  "host bits in CidrIpv6",
			edits: []edit{{sgFile, `"fd00::/8"`, `"fd00::1/8"`}},
			want:  `Ipv6Ranges[0].CidrIpv6: "fd00::1/8" has host bits set`,
		},
		{
			name:  "IPv4-mapped CidrIpv6",
			edits: []edit{{sgFile, `"fd00::/8"`, `"::ffff:10.0.0.0/104"`}},
			want:  `Ipv6Ranges[0].CidrIpv6: "::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 block`,
		},
		{
			name:  "CIDR without length",
			edits: []edit{{sgFile, `"10.0.0.0/8"`, `"10.0.0.0"`}},
			want:  `IpRanges[0].CidrIp: "10.0.0.0" is not a CIDR block`,
		},
		{
			name:  "CidrIp is a number",
			edits: []edit{{sgFile, `"10.0.0.0/8"`, `10`}},
			want:  `IpRanges[0].CidrIp: want a string, got a number`,
		},
		{
			name:  "missing CidrIp",
			edits: []edit{{sgFile, `"CidrIp": "10.0.0.0/8", `, ``}},
			want:  `SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp: missing`,
		},
		{
			name:  "bad group ID",
			edits: []edit{{sgFile, `"GroupId": "sg-0123456789abcdef1",` + "\n", `"GroupId": "sg-0123456789ABCDEF1",` + "\n"}},
			want:  sgFile + `: SecurityGroups[1].GroupId: "sg-0123456789ABCDEF1" is not a valid ID`,
		},
		{
			name:  "short group ID",
			edits: []edit{{sgFile, `"GroupId": "sg-0123456789abcdef1",` + "\n", `"GroupId": "sg-0123",` + "\n"}},
			want:  `SecurityGroups[1].GroupId: "sg-0123" is not a valid ID`,
		},
		{
			name:  "bad referenced group ID",
			edits: []edit{{sgFile, `{"GroupId": "sg-0123456789abcdef1", "UserId"`, `{"GroupId": "eni-0123456789abcdef1", "UserId"`}},
			want:  `SecurityGroups[0].IpPermissions[0].UserIdGroupPairs[0].GroupId: "eni-0123456789abcdef1" is not a valid ID`,
		},
		{
			name:  "bad user ID",
			edits: []edit{{sgFile, `"UserId": "amazon-elb"`, `"UserId": "1234"`}},
			want:  `SecurityGroups[0].IpPermissions[1].UserIdGroupPairs[0].UserId: "1234" is not a valid user ID`,
		},
		{
			name:  "bad VPC ID in pair",
			edits: []edit{{sgFile, `"VpcId": "vpc-0123456789abcdef1"}]`, `"VpcId": "vpc-xyz"}]`}},
			want:  `UserIdGroupPairs[0].VpcId: "vpc-xyz" is not a valid ID`,
		},
		{
			name:  "bad prefix list ID",
			edits: []edit{{sgFile, `"PrefixListId": "pl-0123456789abcdef0"`, `"PrefixListId": "pl-01234567-9"`}},
			want:  `SecurityGroups[0].IpPermissions[0].PrefixListIds[0].PrefixListId: "pl-01234567-9" is not a valid ID`,
		},
		{
			name:  "missing GroupId",
			edits: []edit{{sgFile, `"GroupId": "sg-0123456789abcdef1",` + "\n", ``}},
			want:  sgFile + `: SecurityGroups[1].GroupId: missing`,
		},
		{
			name:  "missing VpcId",
			edits: []edit{{sgFile, `"VpcId": "vpc-0123456789abcdef0"` + "\n", `"X": 1` + "\n"}},
			want:  `SecurityGroups[0].VpcId: missing`,
		},
		{
			name:  "bad owner",
			edits: []edit{{sgFile, `"OwnerId": "123456789012",` + "\n            \"GroupId\": \"sg-0123456789abcdef0\"", `"OwnerId": "12345678901x",` + "\n            \"GroupId\": \"sg-0123456789abcdef0\""}},
			want:  `SecurityGroups[0].OwnerId: "12345678901x" is not a valid account ID`,
		},
		{
			name:  "unknown protocol",
			edits: []edit{{sgFile, `"IpProtocol": "icmp"`, `"IpProtocol": "ICMP"`}},
			want:  `SecurityGroups[1].IpPermissions[0].IpProtocol: "ICMP" is not a protocol`,
		},
		{
			name:  "protocol number too large",
			edits: []edit{{sgFile, `"IpProtocol": "icmp"`, `"IpProtocol": "256"`}},
			want:  `IpProtocol: "256" is not a protocol`,
		},
		{
			name:  "missing protocol",
			edits: []edit{{sgFile, `"IpProtocol": "icmp", `, ``}},
			want:  `SecurityGroups[1].IpPermissions[0].IpProtocol: missing`,
		},
		{
			name:  "port out of range",
			edits: []edit{{sgFile, `"FromPort": 443`, `"FromPort": 65536`}},
			want:  `SecurityGroups[0].IpPermissions[0].FromPort: 65536 is not a port`,
		},
		{
			name:  "port below -1",
			edits: []edit{{sgFile, `"ToPort": -1`, `"ToPort": -2`}},
			want:  `SecurityGroups[1].IpPermissions[0].ToPort: -2 is not a port`,
		},
		{
			name:  "fractional port",
			edits: []edit{{sgFile, `"FromPort": 443`, `"FromPort": 44.3`}},
			want:  `SecurityGroups[0].IpPermissions[0].FromPort: want an integer, got a number 44.3`,
		},
		{
			name:  "port as string",
			edits: []edit{{sgFile, `"FromPort": 443`, `"FromPort": "443"`}},
			want:  `SecurityGroups[0].IpPermissions[0].FromPort: want an integer, got a string`,
		},
		{
			name:  "FromPort without ToPort",
			edits: []edit{{sgFile, `"ToPort": -1, `, ``}},
			want:  `SecurityGroups[1].IpPermissions[0].ToPort: missing`,
		},
		{
			name:  "IpPermissions not an array",
			edits: []edit{{sgFile, `"IpPermissions": [{"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "192.0.2.7/32"}]}]`, `"IpPermissions": {}`}},
			want:  `SecurityGroups[1].IpPermissions: want an array, got an object`,
		},
		{
			name:  "null group name",
			edits: []edit{{sgFile, `"GroupName": "lb"`, `"GroupName": null`}},
			want:  `SecurityGroups[1].GroupName: want a string, got null`,
		},
		{
			name:  "duplicate group",
			edits: []edit{{sgFile, `"GroupId": "sg-0123456789abcdef1",` + "\n", `"GroupId": "sg-0123456789abcdef0",` + "\n"}},
			want:  `SecurityGroups[1]: GroupId sg-0123456789abcdef0 is also SecurityGroups[0]`,
		},
		{
			name:  "duplicate key",
			edits: []edit{{sgFile, `"GroupName": "lb",`, `"GroupName": "lb", "GroupName": "lb2",`}},
			want:  sgFile + `: SecurityGroups[1].GroupName: duplicate key "GroupName" (JSON pointer /SecurityGroups/1/GroupName)`,
		},
		{
			name:  "missing top key",
			files: map[string]string{sgFile: `{"Groups": []}`},
			want:  sgFile + `: SecurityGroups: missing`,
		},
		{
			name:  "top is an array",
			files: map[string]string{sgFile: `[]`},
			want:  sgFile + `: want an object, got an array`,
		},
		{
			name:  "syntax error",
			files: map[string]string{sgFile: `{"SecurityGroups": [}`},
			want:  sgFile + `: SecurityGroups[0]: invalid JSON at byte 20: invalid character '}' at start of value (JSON pointer /SecurityGroups/0)`,
		},
		{
			name:  "truncated",
			files: map[string]string{sgFile: `{"SecurityGroups": [`},
			want:  sgFile + `: SecurityGroups: invalid JSON at byte 20: unexpected end of input (JSON pointer /SecurityGroups)`,
		},
		{
			name:  "empty file",
			files: map[string]string{sgFile: ``},
			want:  sgFile + `: invalid JSON: unexpected end of input`,
		},
		{
			name:  "trailing data",
			files: map[string]string{sgFile: `{"SecurityGroups": []} {}`},
			want:  sgFile + `: invalid JSON at byte 23: invalid character '{' after top-level value`,
		},
		{
			name:  "nesting bomb in an unknown field",
			files: map[string]string{sgFile: `{"Junk": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `, "SecurityGroups": []}`},
			want:  sgFile + `: Junk[0][0][0]`, // ... to the 32nd level: nested deeper than 32 levels
		},
		{
			name:  "string too long",
			edits: []edit{{sgFile, `"GroupName": "lb"`, `"GroupName": "` + strings.Repeat("x", 5000) + `"`}},
			want:  `SecurityGroups[1].GroupName: string longer than 4096 bytes`,
		},
		{
			name:  "bad private address",
			edits: []edit{{eniFile, `"PrivateIpAddress": "10.1.0.11"`, `"PrivateIpAddress": "10.1.0.300"`}},
			want:  eniFile + `: NetworkInterfaces[0].PrivateIpAddresses[1].PrivateIpAddress: "10.1.0.300" is not an IP address`,
		},
		{
			name:  "IPv6 in PrivateIpAddress",
			edits: []edit{{eniFile, `"PrivateIpAddress": "10.2.0.5"`, `"PrivateIpAddress": "fd00::5"`}},
			want:  eniFile + `: NetworkInterfaces[1].PrivateIpAddresses[0].PrivateIpAddress: "fd00::5" is not an IPv4 address`,
		},
		{
			name:  "IPv4 in Ipv6Address",
			edits: []edit{{eniFile, `"Ipv6Address": "fd00::10"`, `"Ipv6Address": "10.1.0.12"`}},
			want:  `NetworkInterfaces[0].Ipv6Addresses[0].Ipv6Address: "10.1.0.12" is not an IPv6 address`,
		},
		{
			name:  "address with zone",
			edits: []edit{{eniFile, `"Ipv6Address": "fd00::10"`, `"Ipv6Address": "fe80::1%eth0"`}},
			want:  `Ipv6Addresses[0].Ipv6Address: "fe80::1%eth0" has a zone`,
		},
		{
			name:  "missing PrivateIpAddress",
			edits: []edit{{eniFile, `{"PrivateIpAddress": "10.2.0.5"}`, `{"Primary": true}`}},
			want:  `NetworkInterfaces[1].PrivateIpAddresses[0].PrivateIpAddress: missing`,
		},
		{
			name:  "bad ENI ID",
			edits: []edit{{eniFile, `"NetworkInterfaceId": "eni-0123456789abcdef1"`, `"NetworkInterfaceId": "eni-0123456789abcdef12"`}},
			want:  eniFile + `: NetworkInterfaces[1].NetworkInterfaceId: "eni-0123456789abcdef12" is not a valid ID`,
		},
		{
			name:  "missing ENI ID",
			edits: []edit{{eniFile, `"NetworkInterfaceId": "eni-0123456789abcdef1",`, ``}},
			want:  eniFile + `: NetworkInterfaces[1].NetworkInterfaceId: missing`,
		},
		{
			name:  "duplicate ENI",
			edits: []edit{{eniFile, `"NetworkInterfaceId": "eni-0123456789abcdef1"`, `"NetworkInterfaceId": "eni-0123456789abcdef0"`}},
			want:  `NetworkInterfaces[1]: NetworkInterfaceId eni-0123456789abcdef0 is also NetworkInterfaces[0]`,
		},
		{
			name:  "bad instance ID",
			edits: []edit{{eniFile, `"InstanceId": "i-0123456789abcdef0"`, `"InstanceId": "i-nope"`}},
			want:  `NetworkInterfaces[0].Attachment.InstanceId: "i-nope" is not a valid ID`,
		},
		{
			name:  "bad MAC",
			edits: []edit{{eniFile, `"02:00:00:aa:bb:cc"`, `"02:00:00:aa:bb"`}},
			want:  `NetworkInterfaces[0].MacAddress: "02:00:00:aa:bb" is not a valid MAC address`,
		},
		{
			name:  "bad ENI group",
			edits: []edit{{eniFile, `{"GroupId": "sg-0123456789abcdef0", "GroupName": "web"}`, `{"GroupId": "web"}`}},
			want:  `NetworkInterfaces[0].Groups[0].GroupId: "web" is not a valid ID`,
		},
		{
			name:  "Groups is an object",
			edits: []edit{{eniFile, `"Groups": [],`, `"Groups": {},`}},
			want:  `NetworkInterfaces[1].Groups: want an array, got an object`,
		},
		{
			name:  "Attachment is a string",
			edits: []edit{{eniFile, `"Attachment": {"AttachmentId": "eni-attach-0123456789abcdef0", "InstanceId": "i-0123456789abcdef0", "Status": "attached"}`, `"Attachment": "i-0123456789abcdef0"`}},
			want:  `NetworkInterfaces[0].Attachment: want an object, got a string`,
		},
		{
			name:  "bad VPC CIDR",
			edits: []edit{{vpcFile, `"CidrBlock": "10.2.0.0/16"`, `"CidrBlock": "10.2.0.0/33"`}},
			want:  vpcFile + `: Vpcs[1].CidrBlockAssociationSet[0].CidrBlock: "10.2.0.0/33" is not a CIDR block`,
		},
		{
			name:  "bad disassociated VPC CIDR",
			edits: []edit{{vpcFile, `"10.9.0.0/16"`, `"10.9.0.1/16"`}},
			want:  vpcFile + `: Vpcs[0].CidrBlockAssociationSet[1].CidrBlock: "10.9.0.1/16" has host bits set`,
		},
		{
			name:  "IPv4 block in the IPv6 set",
			edits: []edit{{vpcFile, `"fd00:1::/56"`, `"10.3.0.0/16"`}},
			want:  `Vpcs[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock: "10.3.0.0/16" is not an IPv6 CIDR block`,
		},
		{
			name:  "missing association state",
			edits: []edit{{vpcFile, `, "Ipv6CidrBlockState": {"State": "associated"}`, ``}},
			want:  `Vpcs[0].Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlockState: missing`,
		},
		{
			name:  "missing block of an associated association",
			edits: []edit{{vpcFile, `{"CidrBlock": "10.2.0.0/16", `, `{`}},
			want:  `Vpcs[1].CidrBlockAssociationSet[0].CidrBlock: missing`,
		},
		{
			name:  "bad VPC ID",
			edits: []edit{{vpcFile, `"VpcId": "vpc-0123456789abcdef1"`, `"VpcId": "vpc-0123456789abcdeg1"`}},
			want:  vpcFile + `: Vpcs[1].VpcId: "vpc-0123456789abcdeg1" is not a valid ID`,
		},
		{
			name:  "duplicate VPC",
			edits: []edit{{vpcFile, `"VpcId": "vpc-0123456789abcdef1"`, `"VpcId": "vpc-0123456789abcdef0"`}},
			want:  `Vpcs[1]: VpcId vpc-0123456789abcdef0 is also Vpcs[0]`,
		},
		{
			name:  "prefix list entry with host bits",
			edits: []edit{{plFile, `"192.0.2.0/24"`, `"192.0.2.1/24"`}},
			want:  plFile + `: Entries[0].Cidr: "192.0.2.1/24" has host bits set`,
		},
		{
			name:  "prefix list without Entries",
			files: map[string]string{plFile: `{"Other": "x"}`},
			want:  plFile + `: Entries: missing`,
		},
		{
			name:  "truncated prefix list",
			files: map[string]string{plFile: `{"Entries": [], "NextToken": "x"}`},
			want:  plFile + `: NextToken: the dump is truncated`,
		},
		{
			name:  "missing prefix list",
			files: map[string]string{plFile: deleted},
			want:  sgFile + `: SecurityGroups[0].IpPermissions[0].PrefixListIds[0].PrefixListId: rule 0 of sg-0123456789abcdef0 refers to pl-0123456789abcdef0, but ` + plFile + ` is missing`,
		},
		{
			name:  "missing vpcs.json",
			files: map[string]string{vpcFile: deleted},
			want:  vpcFile + `: missing`,
		},
		{
			name:  "missing network-interfaces.json",
			files: map[string]string{eniFile: deleted},
			want:  eniFile + `: missing`,
		},
		{
			name:  "key in another case",
			edits: []edit{{sgFile, `"GroupName": "lb"`, `"Groupname": "lb"`}},
			want:  sgFile + `: SecurityGroups[1].Groupname: the key is "GroupName", not "Groupname" (keys are case-sensitive) (JSON pointer /SecurityGroups/1/Groupname)`,
		},
		{
			name:  "nested key in another case",
			edits: []edit{{eniFile, `{"Primary": false, "PrivateIpAddress": "10.1.0.11"}`, `{"Primary": false, "privateIpAddress": "10.1.0.11"}`}},
			want:  eniFile + `: NetworkInterfaces[0].PrivateIpAddresses[1].privateIpAddress: the key is "PrivateIpAddress", not "privateIpAddress"`,
		},
		{
			name:  "top key in another case",
			files: map[string]string{vpcFile: `{"VPCs": []}`},
			want:  vpcFile + `: VPCs: the key is "Vpcs", not "VPCs" (keys are case-sensitive) (JSON pointer /VPCs)`,
		},
		{
			name:  "duplicate key in a nested object",
			edits: []edit{{eniFile, `"InstanceId": "i-0123456789abcdef0",`, `"InstanceId": "i-0123456789abcdef0", "InstanceId": "i-0123456789abcdef1",`}},
			want:  eniFile + `: NetworkInterfaces[0].Attachment.InstanceId: duplicate key "InstanceId" (JSON pointer /NetworkInterfaces/0/Attachment/InstanceId)`,
		},
		{
			name:  "duplicate top key",
			files: map[string]string{plFile: `{"Entries": [], "Entries": [{"Cidr": "192.0.2.0/24"}]}`},
			want:  plFile + `: Entries: duplicate key "Entries" (JSON pointer /Entries)`,
		},
		{
			name:  "null list",
			edits: []edit{{sgFile, `"UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0", "UserId": "amazon-elb"}]`, `"UserIdGroupPairs": null`}},
			want:  sgFile + `: SecurityGroups[0].IpPermissions[1].UserIdGroupPairs: want an array, got null (JSON pointer /SecurityGroups/0/IpPermissions/1/UserIdGroupPairs)`,
		},
		{
			name:  "port as string, with the pointer",
			edits: []edit{{sgFile, `"ToPort": -1`, `"ToPort": "-1"`}},
			want:  sgFile + `: SecurityGroups[1].IpPermissions[0].ToPort: want an integer, got a string (JSON pointer /SecurityGroups/1/IpPermissions/0/ToPort)`,
		},
		{
			name:  "port beyond int32",
			edits: []edit{{sgFile, `"FromPort": 443`, `"FromPort": 4294967296`}},
			want:  sgFile + `: SecurityGroups[0].IpPermissions[0].FromPort: want an integer, got a number 4294967296`,
		},
		{
			name:  "missing field, with the pointer",
			edits: []edit{{eniFile, `"OwnerId": "123456789012",` + "\n            \"PrivateIpAddresses\": [{", `"PrivateIpAddresses": [{`}},
			want:  eniFile + `: NetworkInterfaces[1].OwnerId: missing (JSON pointer /NetworkInterfaces/1/OwnerId)`,
		},
		{
			name:  "bad value, with the pointer",
			edits: []edit{{vpcFile, `"OwnerId": "123456789012",` + "\n            \"VpcId\": \"vpc-0123456789abcdef1\"", `"OwnerId": "12345678901",` + "\n            \"VpcId\": \"vpc-0123456789abcdef1\""}},
			want:  vpcFile + `: Vpcs[1].OwnerId: "12345678901" is not a valid account ID (want 12 digits) (JSON pointer /Vpcs/1/OwnerId)`,
		},
		{
			name:  "invalid UTF-8",
			edits: []edit{{sgFile, `"GroupName": "lb"`, "\"GroupName\": \"l\xffb\""}},
			want:  sgFile + `: SecurityGroups[1].GroupName: invalid JSON at byte`,
		},
		{
			name:  "hostile key in a path",
			edits: []edit{{sgFile, `"Tags": [{"Key": "Name", "Value": "web"}]`, `"x.y[0]": [[[` + strings.Repeat("[", 40) + strings.Repeat("]", 43)}},
			want:  sgFile + `: SecurityGroups[0]["x.y[0]"][0][0]`,
		},
		{
			name:  "truncated dump, with the pointer",
			files: map[string]string{eniFile: `{"NetworkInterfaces": [], "NextToken": "abc"}`},
			want:  eniFile + `: NextToken: the dump is truncated (a NextToken is present): dump again without --max-items or --no-paginate (JSON pointer /NextToken)`,
		},
		{
			name:  "duplicate ID, with the pointer",
			edits: []edit{{eniFile, `"NetworkInterfaceId": "eni-0123456789abcdef1"`, `"NetworkInterfaceId": "eni-0123456789abcdef0"`}},
			want:  eniFile + `: NetworkInterfaces[1]: NetworkInterfaceId eni-0123456789abcdef0 is also NetworkInterfaces[0] (JSON pointer /NetworkInterfaces/1)`,
		},
		{
			name:  "missing prefix list, with the pointer",
			files: map[string]string{plFile: deleted},
			want:  `is missing (JSON pointer /SecurityGroups/0/IpPermissions/0/PrefixListIds/0/PrefixListId)`,
		},
		{
			name:  "delegated IPv4 prefix of the wrong length",
			edits: []edit{{eniFile, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}],`, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}], "Ipv4Prefixes": [{"Ipv4Prefix": "10.1.0.16/28"}, {"Ipv4Prefix": "10.1.0.0/27"}],`}},
			want:  eniFile + `: NetworkInterfaces[0].Ipv4Prefixes[1].Ipv4Prefix: "10.1.0.0/27" is not a delegated prefix: AWS delegates /28 blocks (JSON pointer /NetworkInterfaces/0/Ipv4Prefixes/1/Ipv4Prefix)`,
		},
		{
			name:  "delegated IPv4 prefix /0",
			edits: []edit{{eniFile, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}],`, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}], "Ipv4Prefixes": [{"Ipv4Prefix": "0.0.0.0/0"}],`}},
			want:  eniFile + `: NetworkInterfaces[0].Ipv4Prefixes[0].Ipv4Prefix: "0.0.0.0/0" is not a delegated prefix`,
		},
		{
			name:  "delegated IPv4 prefix with host bits",
			edits: []edit{{eniFile, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}],`, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}], "Ipv4Prefixes": [{"Ipv4Prefix": "10.1.0.17/28"}],`}},
			want:  eniFile + `: NetworkInterfaces[0].Ipv4Prefixes[0].Ipv4Prefix: "10.1.0.17/28" has host bits set`,
		},
		{
			name:  "IPv6 in Ipv4Prefix",
			edits: []edit{{eniFile, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}],`, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}], "Ipv4Prefixes": [{"Ipv4Prefix": "fd00:0:0:1:2::/80"}],`}},
			want:  eniFile + `: NetworkInterfaces[0].Ipv4Prefixes[0].Ipv4Prefix: "fd00:0:0:1:2::/80" is not an IPv4 CIDR block`,
		},
		{
			name:  "delegated IPv6 prefix of the wrong length",
			edits: []edit{{eniFile, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}],`, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}], "Ipv6Prefixes": [{"Ipv6Prefix": "fd00::/64"}],`}},
			want:  eniFile + `: NetworkInterfaces[0].Ipv6Prefixes[0].Ipv6Prefix: "fd00::/64" is not a delegated prefix: AWS delegates /80 blocks`,
		},
		{
			name:  "missing Ipv6Prefix",
			edits: []edit{{eniFile, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}],`, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}], "Ipv6Prefixes": [{}],`}},
			want:  eniFile + `: NetworkInterfaces[0].Ipv6Prefixes[0].Ipv6Prefix: missing`,
		},
		{
			name:  "Ipv4Prefixes not a list",
			edits: []edit{{eniFile, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}],`, `"Ipv6Addresses": [{"Ipv6Address": "fd00::10"}], "Ipv4Prefixes": {"Ipv4Prefix": "10.1.0.16/28"},`}},
			want:  eniFile + `: NetworkInterfaces[0].Ipv4Prefixes`,
		},
		{
			name:  "region directory not named like a region",
			files: map[string]string{"inventory/x.json": "{}"},
			want:  `inventory/: "inventory" does not look like an AWS region`,
		},
		{
			name:  "region directory with a capital",
			files: map[string]string{"EU-west-1/x.json": "{}"},
			want:  `"EU-west-1" does not look like an AWS region`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readEdited(t, baseFiles(), tt.edits, tt.files, tt.want)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			// Every rejection names the file; one about a value in it
			// also the field and the JSON pointer, which name the same
			// place.
			checkFieldError(t, err)
		})
	}
}

func TestReadDirMissingFileSentinel(t *testing.T) {
	files := baseFiles()
	delete(files, plFile)
	_, err := ReadDir(context.Background(), writeFiles(t, files))
	var fe *FieldError
	if !errors.Is(err, ErrMissingFile) || !errors.As(err, &fe) {
		t.Fatalf("got %v, want a *FieldError wrapping ErrMissingFile", err)
	}
	if fe.File != sgFile || fe.Field != "SecurityGroups[0].IpPermissions[0].PrefixListIds[0].PrefixListId" {
		t.Errorf("FieldError names %q %q", fe.File, fe.Field)
	}
}

func TestReadDirBounds(t *testing.T) {
	t.Run("file larger than MaxFileSize", func(t *testing.T) {
		dir := writeFiles(t, baseFiles())
		// A sparse file: nothing is written, Stat reports the size.
		if err := os.Truncate(filepath.Join(dir, filepath.FromSlash(eniFile)), MaxFileSize+1); err != nil {
			t.Fatal(err)
		}
		_, err := ReadDir(context.Background(), dir)
		if err == nil || !strings.Contains(err.Error(), eniFile+": larger than") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not a regular file", func(t *testing.T) {
		files := baseFiles()
		delete(files, vpcFile)
		dir := writeFiles(t, files)
		if err := os.Mkdir(filepath.Join(dir, filepath.FromSlash(vpcFile)), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := ReadDir(context.Background(), dir)
		if err == nil || !strings.Contains(err.Error(), vpcFile+": not a regular file") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("too many regions", func(t *testing.T) {
		dir := t.TempDir()
		for i := range MaxRegions + 1 {
			if err := os.Mkdir(filepath.Join(dir, "zz-test-"+string(rune('a'+i/26))+string(rune('a'+i%26))+"-1"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// The directories are empty: the count is checked before any is read.
		_, err := ReadDir(context.Background(), dir)
		if err == nil || !strings.Contains(err.Error(), "more than 64 region directories") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no regions", func(t *testing.T) {
		_, err := ReadDir(context.Background(), t.TempDir())
		if !errors.Is(err, ErrNoRegions) {
			t.Fatalf("got %v, want ErrNoRegions", err)
		}
	})
	t.Run("no directory", func(t *testing.T) {
		_, err := ReadDir(context.Background(), filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v, want ErrNotExist", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := ReadDir(ctx, writeFiles(t, baseFiles()))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}

func TestRegionNames(t *testing.T) {
	for _, name := range []string{"us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "us-isob-east-1", "eu-central-2", "il-central-1", "ap-southeast-7", "eusc-de-east-1", "us-isof-south-1"} {
		if err := checkRegion(name); err != nil {
			t.Errorf("checkRegion(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "us", "us-east", "us-1", "useast-1", "us-east-", "us--east-1", "us-east-100", "US-east-1", "us-east-1a", "u-east-1", "us-a-b-c-d-1", "../us-east-1"} {
		if err := checkRegion(name); err == nil {
			t.Errorf("checkRegion(%q) accepted it", name)
		}
	}
}

// TestSample reads the bundled sample estate (see
// /work/shared/fixtures/README.md for what it holds).
func TestSample(t *testing.T) {
	inv, err := Dir{Path: sampleDir}.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Regions) != 2 || inv.Regions[0].Name != "eu-west-1" || inv.Regions[1].Name != "us-west-2" {
		t.Fatalf("regions: %+v", inv.Regions)
	}
	counts := func(r inventory.Region) [4]int {
		return [4]int{len(r.VPCs), len(r.SecurityGroups), len(r.NetworkInterfaces), len(r.PrefixLists)}
	}
	eu, us := inv.Regions[0], inv.Regions[1]
	if got, want := counts(eu), [4]int{2, 5, 4, 1}; got != want {
		t.Errorf("eu-west-1 VPCs, groups, ENIs, prefix lists = %v, want %v", got, want)
	}
	if got, want := counts(us), [4]int{2, 3, 1, 0}; got != want {
		t.Errorf("us-west-2 VPCs, groups, ENIs, prefix lists = %v, want %v", got, want)
	}

	groups := map[string]inventory.SecurityGroup{}
	for _, r := range inv.Regions {
		for _, g := range r.SecurityGroups {
			groups[r.Name+"/"+g.Name+"/"+g.VPCID] = g
		}
	}
	api := groups["eu-west-1/api/vpc-f7fb0634aa419bc31"]
	if len(api.Ingress) != 5 {
		t.Fatalf("api group: %+v", api)
	}
	icmp := api.Ingress[1]
	if icmp.Protocol != "icmp" || *icmp.FromPort != 8 || *icmp.ToPort != -1 || icmp.CIDRs[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("ICMP rule: %+v", icmp)
	}
	if pl := api.Ingress[2].PrefixListIDs; len(pl) != 1 || pl[0] != eu.PrefixLists[0].ID {
		t.Errorf("prefix list rule: %+v", api.Ingress[2])
	}
	if got := api.Ingress[3].CIDRs; !reflect.DeepEqual(got, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}) {
		t.Errorf("/0 rule: %v", got)
	}
	if esp := api.Ingress[4]; esp.Protocol != "50" {
		t.Errorf("ESP rule: %+v", esp)
	}
	db := groups["eu-west-1/db/vpc-f7fb0634aa419bc31"]
	if self := db.Ingress[1]; self.Protocol != "-1" || self.FromPort != nil || self.Groups[0].GroupID != db.ID {
		t.Errorf("self-reference: %+v", self)
	}
	if got := eu.PrefixLists[0].Entries; !reflect.DeepEqual(got, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}) {
		t.Errorf("prefix list entries: %v", got)
	}

	enis := map[string]inventory.NetworkInterface{}
	for _, n := range eu.NetworkInterfaces {
		enis[n.Description] = n
	}
	second := enis["second interface of the api host"]
	wantAddrs := []netip.Addr{netip.MustParseAddr("10.20.1.11"), netip.MustParseAddr("10.20.1.12"), netip.MustParseAddr("2400:6500:60ec:9c00::11")}
	if !reflect.DeepEqual(second.Addresses, wantAddrs) || len(second.Groups) != 2 {
		t.Errorf("second interface: %+v", second)
	}
	if primary := enis["Primary network interface"]; primary.InstanceID == "" || primary.InstanceID != second.InstanceID {
		t.Errorf("the two interfaces of the api host: %q %q", primary.InstanceID, second.InstanceID)
	}
	for _, d := range []string{"ELB app/web/0123456789abcdef", "RDSNetworkInterface"} {
		if n, ok := enis[d]; !ok || n.InstanceID != "" || len(n.Addresses) != 1 {
			t.Errorf("%s: %+v", d, n)
		}
	}
	if got := eu.VPCs[1].CIDRs; !reflect.DeepEqual(got, []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("2400:6500:60ec:9c00::/56")}) {
		t.Errorf("VPC CIDRs: %v", got)
	}
}

func TestRoundTrip(t *testing.T) {
	sample, err := ReadDir(context.Background(), sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		inv  *inventory.Inventory
	}{
		{"sample", sample},
		{"base", baseInventory()},
		{"bare", &inventory.Inventory{Regions: []inventory.Region{{Name: "us-east-1"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteDir(dir, tt.inv); err != nil {
				t.Fatal(err)
			}
			got, err := ReadDir(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.inv) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.inv)
			}
		})
	}
	t.Run("bad region name", func(t *testing.T) {
		err := WriteDir(t.TempDir(), &inventory.Inventory{Regions: []inventory.Region{{Name: "../etc"}}})
		if err == nil {
			t.Fatal("WriteDir accepted a region named ../etc")
		}
	})
}

// decoders are the per-file decoders, by the name of their file.
var decoders = []struct {
	file   string
	decode func([]byte) (any, error)
	encode func(any) any
}{
	{FileSecurityGroups,
		func(b []byte) (any, error) {
			return decodeList(context.Background(), b, "f", securityGroupsCall)
		},
		func(v any) any {
			return &ec2.DescribeSecurityGroupsOutput{SecurityGroups: securityGroupsOut(v.([]inventory.SecurityGroup))}
		}},
	{FileNetworkInterfaces,
		func(b []byte) (any, error) {
			return decodeList(context.Background(), b, "f", networkInterfacesCall)
		},
		func(v any) any {
			return &ec2.DescribeNetworkInterfacesOutput{NetworkInterfaces: networkInterfacesOut(v.([]inventory.NetworkInterface))}
		}},
	{FileVPCs,
		func(b []byte) (any, error) { return decodeList(context.Background(), b, "f", vpcsCall) },
		func(v any) any { return &ec2.DescribeVpcsOutput{Vpcs: vpcsOut(v.([]inventory.VPC))} }},
	{"prefix-list.json",
		func(b []byte) (any, error) {
			return decodePrefixListEntries(context.Background(), b, "f")
		},
		func(v any) any { return prefixListEntriesOut(v.([]netip.Prefix)) }},
}

// FuzzDecode feeds any bytes to each per-file decoder. Properties: no
// panic; every rejection is a *FieldError; whatever is accepted, written
// back as AWS JSON, decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{baseSecurityGroups, baseNetworkInterfaces, baseVPCs, basePrefixList} {
		f.Add([]byte(s))
	}
	for _, name := range []string{"eu-west-1/security-groups.json", "eu-west-1/network-interfaces.json", "us-west-2/vpcs.json"} {
		b, err := os.ReadFile(filepath.Join(sampleDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"SecurityGroups":[{"GroupId":"sg-01234567","GroupName":"","OwnerId":"000000000000","VpcId":"vpc-01234567","IpPermissions":[{"IpProtocol":"17","FromPort":-1,"ToPort":65535}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range decoders {
			v, err := d.decode(data)
			if err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("%s: error %v is not a *FieldError", d.file, err)
				}
				continue
			}
			b, err := encodeDocument(d.encode(v))
			if err != nil {
				t.Fatalf("%s: encoding: %v", d.file, err)
			}
			again, err := d.decode(b)
			if err != nil {
				t.Fatalf("%s: decoding what was written: %v\n%s", d.file, err, b)
			}
			if !reflect.DeepEqual(again, v) {
				t.Fatalf("%s: round trip:\n got %+v\nwant %+v", d.file, again, v)
			}
		}
	})
}

// TestReadDirAcceptsWhatItDoesNotUse: members the SDK does not model (a
// newer CLI's), members reyes does not use, in any JSON type, and times in
// any format do not stop a dump from being read.
func TestReadDirAcceptsWhatItDoesNotUse(t *testing.T) {
	tests := []struct {
		name string
		file string
		old  string
		new  string
	}{
		{"unmodelled member", sgFile, `"Tags": [{"Key": "Name", "Value": "web"}]`, `"Tags": [], "FutureField": {"Nested": [1, 2, {"x": null}]}`},
		{"unmodelled member set to null", sgFile, `"Tags": [{"Key": "Name", "Value": "web"}]`, `"FutureField": null`},
		{"attach time as the CLI prints it", eniFile, `"Status": "attached"}`, `"Status": "attached", "AttachTime": "2024-01-15T10:30:00+00:00"}`},
		{"attach time in the wire format", eniFile, `"Status": "attached"}`, `"Status": "attached", "AttachTime": "2024-01-15T10:30:00.000Z"}`},
		{"attach time as a number", eniFile, `"Status": "attached"}`, `"Status": "attached", "AttachTime": 1705314600}`},
		{"unknown interface type", eniFile, `"InterfaceType": "interface"`, `"InterfaceType": "some_future_type"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := baseFiles()
			if !strings.Contains(files[tt.file], tt.old) {
				t.Fatalf("test bug: %s does not contain %q", tt.file, tt.old)
			}
			files[tt.file] = strings.Replace(files[tt.file], tt.old, tt.new, 1)
			got, err := ReadDir(context.Background(), writeFiles(t, files))
			if err != nil {
				t.Fatal(err)
			}
			want := baseInventory()
			if tt.old == `"InterfaceType": "interface"` {
				want.Regions[0].NetworkInterfaces[0].InterfaceType = "some_future_type"
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ReadDir:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestDecodeStopsWhenCancelled: a large file is not read to its end after
// the context ends.
func TestDecodeStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	big := `{"SecurityGroups": [], "Junk": [` + strings.Repeat(`1,`, 10_000) + `1]}`
	if _, err := decodeList(ctx, []byte(big), "f", securityGroupsCall); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if _, err := decodeList(context.Background(), []byte(big), "f", securityGroupsCall); err != nil {
		t.Fatalf("the same file, not cancelled: %v", err)
	}
}

// TestFieldErrorQuotesOddPointers: a hostile key cannot put a line break
// or a terminal escape into an error message through the pointer.
func TestFieldErrorQuotesOddPointers(t *testing.T) {
	files := baseFiles()
	files[sgFile] = strings.Replace(files[sgFile], `"Tags": [{"Key": "Name", "Value": "web"}]`, `"a\nb\u001b[31m": `+strings.Repeat("[", 40)+strings.Repeat("]", 40), 1)
	_, err := ReadDir(context.Background(), writeFiles(t, files))
	if err == nil {
		t.Fatal("ReadDir accepted it")
	}
	if msg := err.Error(); strings.ContainsAny(msg, "\n\x1b") {
		t.Errorf("error holds a raw control character: %q", msg)
	}
	if !strings.Contains(err.Error(), `(JSON pointer "/SecurityGroups/0/a\nb\x1b[31m/0/0`) {
		t.Errorf("error does not quote the pointer: %v", err)
	}
}
