package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/reyes-fw/reyes/internal/mototest"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

func TestLeaderAccountFlags(t *testing.T) {
	base := []string{"--store", "x", "--signing-key", "k", "--source", "ec2", "--region", "eu-west-1"}
	for _, tt := range []struct {
		args []string
		want string // in the error; empty: valid
	}{
		{args: []string{"--role-arn", "arn:aws:iam::111122223333:role/reyes-reader", "--role-arn", "arn:aws:iam::444455556666:role/path/reader"}},
		{args: []string{"--organization-role", "reyes-reader"}},
		{args: []string{"--organization-role", "org/reyes-reader", "--role-arn", "arn:aws:iam::111122223333:role/x"}},
		{args: []string{"--role-arn", "arn:aws:iam::111122223333:user/bob"}, want: "role_arn: role ARN"},
		{args: []string{"--role-arn", "111122223333"}, want: "role_arn: role ARN"},
		{args: []string{"--organization-role", "arn:aws:iam::111122223333:role/x"}, want: "organization_role"},
		{args: []string{"--organization-role", "a b"}, want: "organization_role"},
	} {
		c := loadLeader(t, append(append([]string{}, base...), tt.args...), nil)
		err := c.validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.want != "" && (err == nil || !errors.Is(err, reyes.ErrConfig) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: error %v, want a configuration error about %s", tt.args, err, tt.want)
		}
	}
	dir := []string{"--store", "x", "--signing-key", "k", "--source", "some/dir", "--role-arn", "arn:aws:iam::111122223333:role/r"}
	if err := func() error { c := loadLeader(t, dir, nil); return c.validate() }(); err == nil || !strings.Contains(err.Error(), "source ec2 only") {
		t.Errorf("--role-arn with a directory source: %v", err)
	}
	env := loadLeader(t, base, []string{"REYES_ROLE_ARN=arn:aws:iam::111122223333:role/a,arn:aws:iam::444455556666:role/b", "REYES_ORGANIZATION_ROLE=r"})
	if len(env.RoleARN) != 2 || env.OrganizationRole != "r" {
		t.Errorf("from the environment: %+v", env.accountConfig)
	}
}

// TestLeaderReadsRolesAgainstMoto: reyes-leader --role-arn publishes a
// ruleset of its own account and of the role's (moto keeps EC2 state per
// account), the regions naming their accounts.
func TestLeaderReadsRolesAgainstMoto(t *testing.T) {
	url := mototest.Start(t, mototest.Options{Why: "reyes-leader --role-arn against moto"})
	t.Setenv("AWS_ENDPOINT_URL", url)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	ctx := context.Background()
	cfg := aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String(url), Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")}
	const role = "arn:aws:iam::111122223333:role/reyes-reader"
	other, err := sgsource.AssumeRole(cfg, role)
	if err != nil {
		t.Fatal(err)
	}
	for i, acct := range []sgsource.Account{{}, other} {
		c := cfg.Copy()
		if acct.Credentials != nil {
			c.Credentials = acct.Credentials
		}
		cl := ec2.NewFromConfig(c)
		cidr := []string{"10.61.0.0/16", "10.62.0.0/16"}[i]
		vpc, err := cl.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String(cidr)})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := cl.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String(strings.Replace(cidr, "0.0/16", "1.0/24", 1))})
		if err != nil {
			t.Fatal(err)
		}
		sg, err := cl.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{VpcId: vpc.Vpc.VpcId, GroupName: aws.String("app"), Description: aws.String("app")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sub.Subnet.SubnetId, Groups: []string{*sg.GroupId},
			PrivateIpAddresses: []types.PrivateIpAddressSpecification{{PrivateIpAddress: aws.String(strings.Replace(cidr, "0.0/16", "1.10", 1)), Primary: aws.Bool(true)}}}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	key, pub := writeLeaderKey(t, dir)
	store := filepath.Join(dir, "ruleset.signed")
	var stdout, stderr bytes.Buffer
	err = RunLeader(ctx, []string{"--source", "ec2", "--region", "eu-west-1", "--role-arn", role, "--store", store, "--signing-key", key, "--timeout", "2m"},
		nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("RunLeader: %v\n%s", err, stderr.String())
	}
	kr, err := sign.ParseKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := sign.OpenBytes(body, kr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	root, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Join(ctx, root, func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
		return reyes.NewFileStore(store, reyes.StoreOptions{}).Parts().Get(ctx, ref.Name, ref.Size)
	})
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]bool{}
	for _, v := range rs.VPCs {
		owners[v.Owner] = true
	}
	if !owners["111122223333"] || len(owners) != 2 {
		t.Errorf("VPC owners %v: want the leader's account and 111122223333", owners)
	}
	if !strings.Contains(stderr.String(), "account=111122223333") {
		t.Errorf("the log does not name the role's account:\n%s", stderr.String())
	}
}
