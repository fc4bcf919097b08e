package sgsource

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/reyes-fw/reyes/internal/mototest"
	"github.com/reyes-fw/reyes/inventory"
)

// awsCLI runs the AWS CLI against one endpoint with fake credentials, in
// an environment of its own: nothing of the caller's AWS configuration
// leaks in.
type awsCLI struct {
	t        *testing.T
	endpoint string
	env      []string
}

func newAWSCLI(t *testing.T, endpoint string) *awsCLI {
	dir := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_SESSION_TOKEN=testing",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	return &awsCLI{t: t, endpoint: endpoint, env: env}
}

// fatalf fails the test and ends the calling goroutine, which may be one
// of the seeding chains (t.Fatalf belongs to the test's goroutine).
func (c *awsCLI) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Errorf(format, args...)
	runtime.Goexit()
}

// json runs "aws ec2 <args> --output json" in region and returns stdout.
func (c *awsCLI) json(region string, args ...string) []byte {
	c.t.Helper()
	return c.run(append([]string{"--region", region, "--output", "json", "ec2"}, args...))
}

// text runs "aws ec2 <args> --query query --output text" and returns the
// fields of its output.
func (c *awsCLI) text(region, query string, args ...string) []string {
	c.t.Helper()
	return strings.Fields(string(c.run(append([]string{"--region", region, "--output", "text", "--query", query, "ec2"}, args...))))
}

// run runs aws with args against the endpoint and returns stdout.
func (c *awsCLI) run(args []string) []byte {
	c.t.Helper()
	args = append([]string{"--endpoint-url", c.endpoint}, args...)
	cmd := exec.Command("aws", args...)
	cmd.Env = c.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// one is text for a query with exactly one result.
func (c *awsCLI) one(region, query string, args ...string) string {
	c.t.Helper()
	f := c.text(region, query, args...)
	if len(f) != 1 {
		c.fatalf("aws ec2 %s --query %s: got %q, want one value", args[0], query, f)
	}
	return f[0]
}

// dump writes what the AWS CLI prints for region into dir/<region>/, in
// the offline layout ReadDir reads: the three describe outputs and every
// prefix list an ingress rule refers to, AWS-managed ones included.
func (c *awsCLI) dump(dir, region string) {
	c.t.Helper()
	d := filepath.Join(dir, region)
	if err := os.MkdirAll(filepath.Join(d, DirPrefixLists), 0o755); err != nil {
		c.fatalf("%v", err)
	}
	sgs := c.json(region, "describe-security-groups")
	for name, out := range map[string][]byte{
		FileSecurityGroups:    sgs,
		FileNetworkInterfaces: c.json(region, "describe-network-interfaces"),
		FileVPCs:              c.json(region, "describe-vpcs"),
	} {
		if err := os.WriteFile(filepath.Join(d, name), out, 0o644); err != nil {
			c.fatalf("%v", err)
		}
	}
	var doc struct {
		SecurityGroups []struct {
			IpPermissions []struct {
				PrefixListIds []struct{ PrefixListId string }
			}
		}
	}
	if err := json.Unmarshal(sgs, &doc); err != nil {
		c.fatalf("reading describe-security-groups output: %v", err)
	}
	var ids []string
	for _, g := range doc.SecurityGroups {
		for _, p := range g.IpPermissions {
			for _, pl := range p.PrefixListIds {
				ids = append(ids, pl.PrefixListId)
			}
		}
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		out := c.json(region, "get-managed-prefix-list-entries", "--prefix-list-id", id)
		if err := os.WriteFile(filepath.Join(d, DirPrefixLists, id+".json"), out, 0o644); err != nil {
			c.fatalf("%v", err)
		}
	}
}

// seedMoto builds a two-region estate with the AWS CLI: the fixture's
// sample (shared/fixtures/seed-sample.sh) plus a second VPC in eu-west-1
// with a secondary and a disassociated CIDR block, groups referring to
// groups of the other VPC and to an AWS-managed prefix list, interfaces
// with several secondary addresses and without an instance, and more
// groups and interfaces than one page of 5. Independent chains of calls run
// concurrently: each aws process takes most of a second to start.
func seedMoto(t *testing.T, cli *awsCLI) {
	const eu, us = "eu-west-1", "us-west-2"
	apiGroup := make(chan string, 1)
	var wg sync.WaitGroup

	// Chain 1: the sample's eu-west-1 estate.
	wg.Go(func() {
		sent := false
		defer func() {
			if !sent {
				close(apiGroup)
			}
		}()
		f := cli.text(eu, "Vpc.[VpcId,Ipv6CidrBlockAssociationSet[0].Ipv6CidrBlock]",
			"create-vpc", "--cidr-block", "10.20.0.0/16", "--amazon-provided-ipv6-cidr-block")
		if len(f) != 2 {
			cli.fatalf("create-vpc printed %q", f)
		}
		vpc, v6 := f[0], strings.TrimSuffix(f[1], "::/56")
		sub := cli.one(eu, "Subnet.SubnetId", "create-subnet", "--vpc-id", vpc, "--cidr-block", "10.20.1.0/24", "--ipv6-cidr-block", v6+"::/64")
		office := cli.one(eu, "PrefixList.PrefixListId", "create-managed-prefix-list", "--prefix-list-name", "office", "--max-entries", "5",
			"--address-family", "IPv4", "--entries", "Cidr=192.0.2.0/24,Description=office", "Cidr=198.51.100.0/24")
		sg := func(name, desc string) string {
			return cli.one(eu, "GroupId", "create-security-group", "--vpc-id", vpc, "--group-name", name, "--description", desc)
		}
		api, lb, db := sg("api", "api servers"), sg("lb", "load balancers"), sg("db", "databases")
		apiGroup <- api
		sent = true
		cli.json(eu, "authorize-security-group-ingress", "--group-id", api, "--ip-permissions",
			`[{"IpProtocol":"tcp","FromPort":8443,"ToPort":8443,"UserIdGroupPairs":[{"GroupId":"`+lb+`"}]},`+
				`{"IpProtocol":"icmp","FromPort":8,"ToPort":-1,"IpRanges":[{"CidrIp":"10.0.0.0/8","Description":"ping from the estate"}]},`+
				`{"IpProtocol":"tcp","FromPort":22,"ToPort":22,"PrefixListIds":[{"PrefixListId":"`+office+`"}]},`+
				`{"IpProtocol":"tcp","FromPort":443,"ToPort":443,"IpRanges":[{"CidrIp":"0.0.0.0/0"}],"Ipv6Ranges":[{"CidrIpv6":"::/0"}]},`+
				`{"IpProtocol":"50","FromPort":-1,"ToPort":-1,"IpRanges":[{"CidrIp":"10.30.0.0/16","Description":"ESP from ops"}]}]`)
		cli.json(eu, "authorize-security-group-ingress", "--group-id", db, "--ip-permissions",
			`[{"IpProtocol":"tcp","FromPort":5432,"ToPort":5432,"UserIdGroupPairs":[{"GroupId":"`+api+`"}]},`+
				`{"IpProtocol":"-1","UserIdGroupPairs":[{"GroupId":"`+db+`","Description":"replication"}]}]`)
		inst := cli.one(eu, "Instances[0].InstanceId", "run-instances", "--image-id", "ami-12c6146b", "--count", "1", "--instance-type", "t3.micro",
			"--subnet-id", sub, "--security-group-ids", api, "--private-ip-address", "10.20.1.10")
		eni2 := cli.one(eu, "NetworkInterface.NetworkInterfaceId", "create-network-interface", "--subnet-id", sub, "--groups", db,
			"--private-ip-addresses", "PrivateIpAddress=10.20.1.11,Primary=true", "PrivateIpAddress=10.20.1.12,Primary=false",
			"--ipv6-addresses", "Ipv6Address="+v6+"::11", "--description", "second interface of the api host")
		cli.json(eu, "attach-network-interface", "--network-interface-id", eni2, "--instance-id", inst, "--device-index", "1")
		cli.json(eu, "create-network-interface", "--subnet-id", sub, "--groups", lb, "--private-ip-addresses",
			"PrivateIpAddress=10.20.1.50,Primary=true", "--description", "ELB app/web/0123456789abcdef")
		cli.json(eu, "create-network-interface", "--subnet-id", sub, "--groups", db, "--private-ip-addresses",
			"PrivateIpAddress=10.20.1.60,Primary=true", "--description", "RDSNetworkInterface")
	})

	// Chain 2: a second eu-west-1 VPC whose groups refer to the first's.
	wg.Go(func() {
		vpc := cli.one(eu, "Vpc.VpcId", "create-vpc", "--cidr-block", "10.21.0.0/16")
		cli.json(eu, "associate-vpc-cidr-block", "--vpc-id", vpc, "--cidr-block", "10.22.0.0/16")
		gone := cli.one(eu, "CidrBlockAssociation.AssociationId", "associate-vpc-cidr-block", "--vpc-id", vpc, "--cidr-block", "10.23.0.0/16")
		cli.json(eu, "disassociate-vpc-cidr-block", "--association-id", gone)
		sub := cli.one(eu, "Subnet.SubnetId", "create-subnet", "--vpc-id", vpc, "--cidr-block", "10.22.1.0/24")
		s3 := cli.one(eu, "PrefixLists[?PrefixListName=='com.amazonaws.eu-west-1.s3'].PrefixListId", "describe-managed-prefix-lists")
		sg := func(name, desc string) string {
			return cli.one(eu, "GroupId", "create-security-group", "--vpc-id", vpc, "--group-name", name, "--description", desc)
		}
		web, cache, batch := sg("web", "web servers"), sg("cache", "cache <&> \"quoted\""), sg("batch", "batch jobs")
		api, ok := <-apiGroup
		if !ok {
			return
		}
		cli.json(eu, "authorize-security-group-ingress", "--group-id", cache, "--ip-permissions",
			`[{"IpProtocol":"tcp","FromPort":6379,"ToPort":6380,"UserIdGroupPairs":[{"GroupId":"`+web+`"},{"GroupId":"`+api+`","Description":"api, other VPC"}]},`+
				`{"IpProtocol":"udp","FromPort":0,"ToPort":65535,"Ipv6Ranges":[{"CidrIpv6":"2001:db8::/32"}],"IpRanges":[{"CidrIp":"10.20.0.0/16"},{"CidrIp":"192.168.0.0/24"}]}]`)
		cli.json(eu, "authorize-security-group-ingress", "--group-id", batch, "--ip-permissions",
			`[{"IpProtocol":"tcp","FromPort":443,"ToPort":443,"PrefixListIds":[{"PrefixListId":"`+s3+`"}]},`+
				`{"IpProtocol":"icmpv6","FromPort":-1,"ToPort":-1,"Ipv6Ranges":[{"CidrIpv6":"::/0"}]}]`)
		cli.json(eu, "create-network-interface", "--subnet-id", sub, "--groups", web, cache, "--secondary-private-ip-address-count", "3",
			"--description", "AWS Lambda VPC ENI-batch")
		cli.json(eu, "create-network-interface", "--subnet-id", sub, "--groups", batch, "--private-ip-addresses",
			"PrivateIpAddress=10.22.1.20,Primary=true", "PrivateIpAddress=10.22.1.21,Primary=false", "--description", "batch worker")
	})

	// Chain 3: the sample's us-west-2 estate.
	wg.Go(func() {
		vpc := cli.one(us, "Vpc.VpcId", "create-vpc", "--cidr-block", "10.30.0.0/16")
		sub := cli.one(us, "Subnet.SubnetId", "create-subnet", "--vpc-id", vpc, "--cidr-block", "10.30.0.0/24")
		bas := cli.one(us, "GroupId", "create-security-group", "--vpc-id", vpc, "--group-name", "bastion", "--description", "bastions")
		cli.json(us, "authorize-security-group-ingress", "--group-id", bas, "--ip-permissions",
			`[{"IpProtocol":"tcp","FromPort":22,"ToPort":22,"IpRanges":[{"CidrIp":"203.0.113.0/24","Description":"admins"}]},`+
				`{"IpProtocol":"udp","FromPort":500,"ToPort":500,"IpRanges":[{"CidrIp":"10.20.0.0/16"}]}]`)
		cli.json(us, "create-network-interface", "--subnet-id", sub, "--groups", bas, "--private-ip-addresses",
			"PrivateIpAddress=10.30.0.5,Primary=true", "--description", "bastion")
	})
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// TestEC2AgainstMoto seeds a real EC2 endpoint (moto_server) with the AWS
// CLI, dumps it with the AWS CLI into the offline layout, and checks that
// the live source and ReadDir of the dump give the same Inventory.
func TestEC2AgainstMoto(t *testing.T) {
	t.Parallel()
	start := time.Now()
	url := mototest.Start(t, mototest.Options{NeedCLI: true, Why: "the test against a real EC2 endpoint"})
	cli := newAWSCLI(t, url)
	seedMoto(t, cli)
	t.Logf("moto started and seeded in %v", time.Since(start))

	dir := t.TempDir()
	var wg sync.WaitGroup
	for _, r := range []string{"eu-west-1", "us-west-2"} {
		wg.Go(func() { cli.dump(dir, r) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	want, err := ReadDir(t.Context(), dir)
	if err != nil {
		t.Fatalf("ReadDir of the AWS CLI dump: %v", err)
	}

	src := &EC2{
		Regions:  []string{"us-west-2", "eu-west-1"},
		PageSize: 5,
		Config: &aws.Config{
			BaseEndpoint: aws.String(url),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing", Source: "test"}, nil
			}),
		},
		MaxBackoff:     10 * time.Millisecond,
		NoAssociations: true, // moto answers HTTP 500
	}
	// moto describes transit gateways (none here); the dump has no such
	// files.
	for i := range want.Regions {
		want.Regions[i].TransitGatewaysKnown = true
	}
	got, err := src.Fetch(t.Context())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	diffInventories(t, got, want)

	// The estate has what the test claims to cover.
	eu := got.Regions[0]
	if eu.Name != "eu-west-1" || len(eu.SecurityGroups) <= 5 || len(eu.NetworkInterfaces) <= 5 || len(eu.VPCs) < 3 || len(eu.PrefixLists) != 2 {
		t.Errorf("eu-west-1 has %d groups, %d interfaces, %d VPCs, %d prefix lists; want more than a page of 5 of each and 2 lists",
			len(eu.SecurityGroups), len(eu.NetworkInterfaces), len(eu.VPCs), len(eu.PrefixLists))
	}
	var secondaries, noInstance int
	for _, n := range eu.NetworkInterfaces {
		if len(n.Addresses) > 2 {
			secondaries++
		}
		if n.InstanceID == "" {
			noInstance++
		}
	}
	if secondaries < 2 || noInstance < 3 {
		t.Errorf("eu-west-1 has %d interfaces with secondary addresses and %d without instance", secondaries, noInstance)
	}

	// The live source with a VPC filter sees the same as the dump
	// filtered.
	vpc := eu.SecurityGroups[slices.IndexFunc(eu.SecurityGroups, func(g inventory.SecurityGroup) bool { return g.Name == "cache" })].VPCID
	src.VPCIDs = []string{vpc}
	got, err = src.Fetch(t.Context())
	if err != nil {
		t.Fatalf("Fetch with a VPC filter: %v", err)
	}
	diffInventories(t, got, filterVPCs(want, vpc))
}
