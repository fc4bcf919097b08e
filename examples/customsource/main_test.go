package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

var testArgs = []string{"-inventory", "../quickstart/inventory", "-csv", "estate.csv"}

func TestRun(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out bytes.Buffer
	if err := run(context.Background(), testArgs, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`published scope "merged" serial `,
		"9 security groups, 6 interfaces",
		"eu-west-1     sg-0d1e2f3a4b5c6d7e8  monitoring   3 rule(s), 2 member address(es)",
		"eu-west-1     sg-b238c182ba23a5210  api          5 rule(s), 4 member address(es)",
		"10.20.1.10 -> 10.40.0.7: allow (sg-0d1e2f3a4b5c6d7e8 (monitoring): tcp/9100 from sg-b238c182ba23a5210)",
		"10.20.1.50 -> 10.40.0.7: drop",
		"10.30.0.5 -> 10.40.0.7: allow",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("the example left %s behind", left[0].Name())
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

func TestRunMissingInput(t *testing.T) {
	err := run(context.Background(), []string{"-inventory", "../quickstart/inventory", "-csv", "missing.csv"}, &bytes.Buffer{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "repository root") {
		t.Fatalf("run: %v", err)
	}
}

// TestMergeResolvesReferences: the monitoring group of the CSV estate allows
// the api group of the other source. Built from the CSV alone, that
// reference allows nothing; built from the merge, it allows the api hosts.
func TestMergeResolvesReferences(t *testing.T) {
	api := render.Packet{Src: netip.MustParseAddr("10.20.1.10"), Dst: monitoringHost, Protocol: 6, Port: 9100}
	for _, tc := range []struct {
		name   string
		source sgsource.Source
		want   render.Outcome
	}{
		{"csv alone", CSV{Path: "estate.csv"}, render.Dropped},
		{"merged", Merge{sgsource.Dir{Path: "../quickstart/inventory"}, CSV{Path: "estate.csv"}}, render.Allowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			inv, err := tc.source.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			host, _, err := reyes.Identify(ctx, rs, reyes.IdentityOptions{
				Addrs: []netip.Addr{monitoringHost}, DisableIMDS: true, Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			plan, err := render.Render(rs, host, render.Options{})
			if err != nil {
				t.Fatal(err)
			}
			v, err := render.Decide(plan, api)
			if err != nil {
				t.Fatal(err)
			}
			if v.Action != tc.want {
				t.Errorf("api -> monitoring tcp/9100: %s (%s), want %s", v.Action, v.Comment, tc.want)
			}
		})
	}
}

// header is the start of a valid estate that error cases build on.
const header = "vpc,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,210987654321,10.40.0.0/16\n" +
	"group,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,sg-0d1e2f3a4b5c6d7e8,monitoring\n"

func TestParseCSVErrors(t *testing.T) {
	for _, tc := range []struct {
		name, csv, want string
	}{
		{"empty", "# nothing\n", "no records"},
		{"unknown kind", "subnet,ca-central-1\n", "line 1: subnet: unknown record kind"},
		{"field count", "vpc,ca-central-1,vpc-0c5e1a2b3c4d5e6f7\n", "line 1: vpc: 3 fields, want 5"},
		{"bad region", "vpc,Canada,vpc-0c5e1a2b3c4d5e6f7,210987654321,10.40.0.0/16\n", `"Canada" is not a region`},
		{"bad VPC ID", "vpc,ca-central-1,vpc-xyz,210987654321,10.40.0.0/16\n", `"vpc-xyz" is not a VPC ID`},
		{"host bits", "vpc,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,210987654321,10.40.0.1/16\n", "did you mean 10.40.0.0/16"},
		{"VPC twice", header + "vpc,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,210987654321,10.41.0.0/16\n", "line 3: vpc: VPC vpc-0c5e1a2b3c4d5e6f7 twice"},
		{"group before its VPC", "group,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,sg-0d1e2f3a4b5c6d7e8,m\n", "has no vpc record before it"},
		{"group in another region than its VPC", header + "group,eu-west-1,vpc-0c5e1a2b3c4d5e6f7,sg-0d1e2f3a4b5c6d7e9,m\n", "is in ca-central-1, not eu-west-1"},
		{"group twice", header + "group,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,sg-0d1e2f3a4b5c6d7e8,again\n", "line 3: group: group sg-0d1e2f3a4b5c6d7e8 twice"},
		{"bad group ID", header + "group,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,monitoring,m\n", `"monitoring" is not a security group ID`},
		{"allow before its group", "allow,sg-0d1e2f3a4b5c6d7e8,tcp,1,2,10.0.0.0/8\n", "has no group record before it"},
		{"bad protocol", header + "allow,sg-0d1e2f3a4b5c6d7e8,sctp,1,2,10.0.0.0/8\n", `"sctp" is not tcp`},
		{"protocol number too large", header + "allow,sg-0d1e2f3a4b5c6d7e8,256,1,2,10.0.0.0/8\n", `"256" is not tcp`},
		{"-1 with ports", header + "allow,sg-0d1e2f3a4b5c6d7e8,-1,1,2,10.0.0.0/8\n", "protocol -1 takes no ports"},
		{"bad port", header + "allow,sg-0d1e2f3a4b5c6d7e8,tcp,ssh,22,10.0.0.0/8\n", "are not numbers"},
		{"bad source", header + "allow,sg-0d1e2f3a4b5c6d7e8,tcp,22,22,office\n", `source "office" is neither`},
		{"bad address", header + "eni,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,eni-0a9b8c7d6e5f40312,10.40.0.300,sg-0d1e2f3a4b5c6d7e8\n", `"10.40.0.300" is not an address`},
		{"bad interface ID", header + "eni,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,eth0,10.40.0.7,sg-0d1e2f3a4b5c6d7e8\n", `"eth0" is not a network interface ID`},
		{"bad interface group", header + "eni,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,eni-0a9b8c7d6e5f40312,10.40.0.7,monitoring\n", `"monitoring" is not a security group ID`},
		{"csv syntax", "vpc,\"ca-central-1\n", "extraneous or missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := ParseCSV(context.Background(), strings.NewReader(tc.csv))
			if err == nil {
				t.Fatalf("ParseCSV succeeded: %+v", inv)
			}
			if !errors.Is(err, ErrCSV) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseCSV: %v, want ErrCSV mentioning %q", err, tc.want)
			}
		})
	}
}

// staticSource is a Source over a fixed inventory, or a fixed error.
type staticSource struct {
	inv *inventory.Inventory
	err error
}

func (s staticSource) Fetch(context.Context) (*inventory.Inventory, error) { return s.inv, s.err }

func region(name string, vpcs []string, pls ...inventory.PrefixList) inventory.Region {
	r := inventory.Region{Name: name, PrefixLists: pls}
	for _, v := range vpcs {
		r.VPCs = append(r.VPCs, inventory.VPC{ID: v})
	}
	return r
}

func estate(regions ...inventory.Region) staticSource {
	return staticSource{inv: &inventory.Inventory{Regions: regions}}
}

func TestMerge(t *testing.T) {
	const vpcA, vpcB = "vpc-0000000000000000a", "vpc-0000000000000000b"
	plA := inventory.PrefixList{ID: "pl-0000000000000000a", Entries: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	plA2 := inventory.PrefixList{ID: plA.ID, Entries: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	boom := errors.New("throttled")
	for _, tc := range []struct {
		name    string
		merge   Merge
		want    string // regions and their VPCs and prefix lists, or the error
		wantErr error
	}{
		{
			name:  "disjoint regions",
			merge: Merge{estate(region("us-west-2", []string{vpcB})), estate(region("eu-west-1", []string{vpcA}))},
			want:  "eu-west-1 [vpc-0000000000000000a] []; us-west-2 [vpc-0000000000000000b] []",
		},
		{
			name:  "one region from two sources",
			merge: Merge{estate(region("eu-west-1", []string{vpcA}, plA)), estate(region("eu-west-1", []string{vpcB}, plA))},
			want:  "eu-west-1 [vpc-0000000000000000a vpc-0000000000000000b] [pl-0000000000000000a]",
		},
		{
			name:  "an ID in two sources",
			merge: Merge{estate(region("eu-west-1", []string{vpcA})), estate(region("us-west-2", []string{vpcA}))},
			want:  "vpc-0000000000000000a is in source 1 and source 2",
		},
		{
			name:  "a prefix list that differs",
			merge: Merge{estate(region("eu-west-1", nil, plA)), estate(region("eu-west-1", nil, plA2))},
			want:  "prefix list pl-0000000000000000a in eu-west-1 differs between sources",
		},
		{
			name:    "a failing source fails the fetch",
			merge:   Merge{estate(region("eu-west-1", []string{vpcA})), staticSource{err: boom}},
			want:    "fetching source 2: throttled",
			wantErr: boom,
		},
		{name: "no sources", merge: Merge{}, want: "no sources"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := tc.merge.Fetch(context.Background())
			got := ""
			if err != nil {
				got = err.Error()
				if inv != nil {
					t.Errorf("Fetch returned an inventory with the error %v", err)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("Fetch: %v, want it to wrap %v", err, tc.wantErr)
				}
			} else {
				var parts []string
				for _, r := range inv.Regions {
					var vpcs, pls []string
					for _, v := range r.VPCs {
						vpcs = append(vpcs, v.ID)
					}
					for _, p := range r.PrefixLists {
						pls = append(pls, p.ID)
					}
					parts = append(parts, fmt.Sprintf("%s %v %v", r.Name, vpcs, pls))
				}
				got = strings.Join(parts, "; ")
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("Fetch: %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzParseCSV: ParseCSV never panics, and what it accepts either builds
// into a valid ruleset or fails Build with an error.
func FuzzParseCSV(f *testing.F) {
	seed, err := os.ReadFile("estate.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	f.Add(header)
	f.Add(header + "allow,sg-0d1e2f3a4b5c6d7e8,icmpv6,-1,-1,::/0\n")
	f.Add(header + "eni,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,eni-0a9b8c7d6e5f40312,fd00::1;10.40.0.7,sg-0d1e2f3a4b5c6d7e8\n")
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseCSV(context.Background(), strings.NewReader(s))
		if err != nil {
			if !errors.Is(err, ErrCSV) {
				t.Fatalf("error without ErrCSV: %v", err)
			}
			return
		}
		rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: time.Unix(1e9, 0)})
		if err != nil {
			return
		}
		if err := rs.Validate(); err != nil {
			t.Fatalf("Build made an invalid ruleset: %v", err)
		}
	})
}

func ExampleParseCSV() {
	const estate = `
vpc,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,210987654321,10.40.0.0/16
group,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,sg-0d1e2f3a4b5c6d7e8,monitoring
allow,sg-0d1e2f3a4b5c6d7e8,tcp,9100,9100,10.0.0.0/8
eni,ca-central-1,vpc-0c5e1a2b3c4d5e6f7,eni-0a9b8c7d6e5f40312,10.40.0.7,sg-0d1e2f3a4b5c6d7e8
`
	inv, err := ParseCSV(context.Background(), strings.NewReader(estate))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range inv.Regions {
		for _, g := range r.SecurityGroups {
			fmt.Println(r.Name, g.ID, g.Name, g.Ingress[0].Protocol, *g.Ingress[0].FromPort, g.Ingress[0].CIDRs)
		}
		for _, n := range r.NetworkInterfaces {
			fmt.Println(r.Name, n.ID, n.Addresses, n.Groups)
		}
	}
	// Output:
	// ca-central-1 sg-0d1e2f3a4b5c6d7e8 monitoring tcp 9100 [10.0.0.0/8]
	// ca-central-1 eni-0a9b8c7d6e5f40312 [10.40.0.7] [sg-0d1e2f3a4b5c6d7e8]
}
