package reyes_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/sgsource"
)

// TestIAMListsAreRight: the README's leader IAM list omitted s3:GetObject,
// although the leader reads its own object on every run. Every list names
// every EC2 call sgsource makes and both S3 actions.
func TestIAMListsAreRight(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("../examples/systemd/reyes-leader.service")
	if err != nil {
		t.Fatal(err)
	}
	r := string(readme)
	start, end := strings.Index(r, "# 2. The leader"), strings.Index(r, "reyes-leader --source ec2")
	if start < 0 || end < start {
		t.Fatal("README: no leader step")
	}
	leaderREADME := strings.Join(strings.Fields(r[start:end]), " ")
	leaderUnit := strings.Join(strings.Fields(strings.ReplaceAll(string(unit), "#", "")), " ")
	for _, want := range []string{
		"ec2:" + sgsource.CallDescribeVpcs, "ec2:" + sgsource.CallDescribeSecurityGroups,
		"ec2:" + sgsource.CallDescribeNetworkInterfaces, "ec2:" + sgsource.CallGetManagedPrefixListEntries,
		"ec2:" + sgsource.CallDescribeSecurityGroupVpcAssociations, "ec2:" + sgsource.CallDescribeTransitGateways,
		"ec2:" + sgsource.CallDescribeTransitGatewayVpcAttachments,
		"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", ".parts/", ".roots/",
	} {
		if !strings.Contains(leaderREADME, want) {
			t.Errorf("README's leader IAM list lacks %s", want)
		}
		if !strings.Contains(leaderUnit, want) {
			t.Errorf("reyes-leader.service's IAM list lacks %s", want)
		}
	}
	if !regexp.MustCompile(`# 3\. On each host.*IAM: s3:GetObject`).MatchString(r) {
		t.Error("README's follower IAM list does not say s3:GetObject")
	}
}

// TestTimeoutsInsideUnits: the binaries' default --timeout is well inside
// the shipped units' TimeoutStartSec, so that a hung endpoint ends in
// reyes' error naming the call, not in systemd's kill.
func TestTimeoutsInsideUnits(t *testing.T) {
	for _, tc := range []struct {
		unit    string
		timeout time.Duration
	}{
		{"reyes-leader.service", cli.DefaultLeaderTimeout},
		{"reyes-follower.service", cli.DefaultFollowerTimeout},
	} {
		b, err := os.ReadFile("../examples/systemd/" + tc.unit)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^TimeoutStartSec=(\S+)$`).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("%s has no TimeoutStartSec", tc.unit)
		}
		limit, err := time.ParseDuration(strings.Replace(strings.Replace(m[1], "min", "m", 1), "sec", "s", 1))
		if err != nil {
			t.Fatalf("%s: TimeoutStartSec=%s: %v", tc.unit, m[1], err)
		}
		if tc.timeout > limit*4/5 {
			t.Errorf("%s: default --timeout %s is not well inside TimeoutStartSec %s", tc.unit, tc.timeout, limit)
		}
	}
}

// TestReaderRolePolicy: the README's policy for the reader role of "Many
// accounts" is valid JSON and allows every EC2 call the source makes.
func TestReaderRolePolicy(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	r := string(readme)
	i := strings.Index(r, "### Many accounts")
	if i < 0 {
		t.Fatal("README: no Many accounts section")
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(r[i:], 2)
	if len(blocks) != 2 {
		t.Fatal("README: want the reader policy and its trust policy as json blocks")
	}
	var policy struct {
		Statement []struct {
			Effect string
			Action []string
		}
	}
	if err := json.Unmarshal([]byte(blocks[0][1]), &policy); err != nil {
		t.Fatalf("reader policy: %v", err)
	}
	var trust map[string]any
	if err := json.Unmarshal([]byte(blocks[1][1]), &trust); err != nil || !strings.Contains(blocks[1][1], `"sts:AssumeRole"`) {
		t.Fatalf("trust policy: %v", err)
	}
	for _, call := range []string{sgsource.CallDescribeVpcs, sgsource.CallDescribeSecurityGroups, sgsource.CallDescribeNetworkInterfaces,
		sgsource.CallGetManagedPrefixListEntries, sgsource.CallDescribeSecurityGroupVpcAssociations,
		sgsource.CallDescribeTransitGateways, sgsource.CallDescribeTransitGatewayVpcAttachments} {
		if len(policy.Statement) != 1 || !slices.Contains(policy.Statement[0].Action, "ec2:"+call) {
			t.Errorf("the reader policy does not allow ec2:%s", call)
		}
	}
}
