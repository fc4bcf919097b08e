package sgsource_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/sgsource"
)

// TestReadDirRefusesTruncatedDump: the AWS CLI marks a partial answer with
// a NextToken; reading it as the whole estate would publish a partial one.
func TestReadDirRefusesTruncatedDump(t *testing.T) {
	dir, reg := writeRegion(t, map[string]string{
		"security-groups.json":    `{"SecurityGroups": [], "NextToken": "eyJ0b2tlbiI6ICIxIn0="}`,
		"network-interfaces.json": `{"NetworkInterfaces": []}`,
		"vpcs.json":               `{"Vpcs": []}`,
	})
	_, err := sgsource.ReadDir(context.Background(), dir)
	if !errors.Is(err, sgsource.ErrInvalid) || !strings.Contains(err.Error(), "security-groups.json") || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("ReadDir: %v", err)
	}
	// An empty NextToken (some tools write one) is the end of the answer.
	if err := os.WriteFile(filepath.Join(reg, "security-groups.json"), []byte(`{"SecurityGroups": [], "NextToken": ""}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sgsource.ReadDir(context.Background(), dir); err != nil {
		t.Fatalf("ReadDir with an empty NextToken: %v", err)
	}
}

func TestReadDirPeeringStatus(t *testing.T) {
	dir, _ := writeRegion(t, map[string]string{
		"security-groups.json": `{"SecurityGroups": [{"GroupId": "sg-0000000a", "GroupName": "db", "OwnerId": "123456789012", "VpcId": "vpc-0000000a",
			"IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-0000000c", "VpcId": "vpc-0000000c", "PeeringStatus": "deleted", "VpcPeeringConnectionId": "pcx-0000000c"}]}]}]}`,
		"network-interfaces.json": `{"NetworkInterfaces": []}`,
		"vpcs.json":               `{"Vpcs": []}`,
	})
	inv, err := sgsource.ReadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.Regions[0].SecurityGroups[0].Ingress[0].Groups[0].PeeringStatus; got != "deleted" {
		t.Fatalf("PeeringStatus %q", got)
	}
	out := t.TempDir()
	if err := sgsource.WriteDir(out, inv); err != nil {
		t.Fatal(err)
	}
	again, err := sgsource.ReadDir(context.Background(), out)
	if err != nil || again.Regions[0].SecurityGroups[0].Ingress[0].Groups[0].PeeringStatus != "deleted" {
		t.Fatalf("round trip: %v", err)
	}
}

// writeRegion writes files into the region directory us-east-1 of a new
// inventory directory and returns both.
func writeRegion(t *testing.T, files map[string]string) (dir, reg string) {
	t.Helper()
	dir = t.TempDir()
	reg = filepath.Join(dir, "us-east-1")
	if err := os.MkdirAll(reg, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(reg, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, reg
}
