package sgsource

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/reyes-fw/reyes/inventory"
)

// pages is how many pages of size a paginated sequence over n items takes.
func pages(n int, size int32) int {
	if size <= 0 || n == 0 {
		return 1
	}
	return (n + int(size) - 1) / int(size)
}

// filterVPCs returns what the estate looks like through a vpc-id filter.
func filterVPCs(inv *inventory.Inventory, ids ...string) *inventory.Inventory {
	out := &inventory.Inventory{}
	for _, r := range inv.Regions {
		// Transit gateways and associations are not filtered by VPC.
		f := inventory.Region{Name: r.Name, Account: r.Account,
			SecurityGroupVPCAssociations: r.SecurityGroupVPCAssociations, AssociationsKnown: r.AssociationsKnown,
			TransitGateways: r.TransitGateways, TransitGatewayAttachments: r.TransitGatewayAttachments, TransitGatewaysKnown: r.TransitGatewaysKnown}
		for _, v := range r.VPCs {
			if slices.Contains(ids, v.ID) {
				f.VPCs = append(f.VPCs, v)
			}
		}
		for _, g := range r.SecurityGroups {
			if slices.Contains(ids, g.VPCID) {
				f.SecurityGroups = append(f.SecurityGroups, g)
			}
		}
		for _, n := range r.NetworkInterfaces {
			if slices.Contains(ids, n.VPCID) {
				f.NetworkInterfaces = append(f.NetworkInterfaces, n)
			}
		}
		refs := referencedPrefixLists(f.SecurityGroups)
		for _, pl := range r.PrefixLists {
			if slices.Contains(refs, pl.ID) {
				f.PrefixLists = append(f.PrefixLists, pl)
			}
		}
		out.Regions = append(out.Regions, f)
	}
	return out
}

func TestEC2Fetch(t *testing.T) {
	t.Parallel()
	regions := []string{"us-west-2", "eu-west-1"}
	inv := genInventory(regions, 40, 120)
	tests := []struct {
		name     string
		pageSize int32
		vpcs     []string
	}{
		{name: "API default page", pageSize: 0},
		{name: "pages of 5", pageSize: 5},
		{name: "pages of 7", pageSize: 7},
		{name: "pages of 1000", pageSize: 1000},
		{name: "VPC filter", pageSize: 5, vpcs: []string{inv.Regions[0].VPCs[1].ID, inv.Regions[1].VPCs[0].ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, srv := newFakeEC2(t, inv)
			src := testEC2(srv, regions...)
			src.PageSize = tt.pageSize
			src.VPCIDs = tt.vpcs
			got, err := src.Fetch(t.Context())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := inv
			if tt.vpcs != nil {
				want = filterVPCs(inv, tt.vpcs...)
			}
			diffInventories(t, got, want)

			// One paginated sequence per resource type and per
			// referenced prefix list; nothing per group or instance.
			for _, r := range want.Regions {
				plPages := 0
				for _, pl := range r.PrefixLists {
					plPages += pages(len(pl.Entries), min(tt.pageSize, 100))
				}
				for _, c := range []struct {
					call string
					want int
				}{
					{CallDescribeVpcs, pages(len(r.VPCs), tt.pageSize)},
					{CallDescribeSecurityGroups, pages(len(r.SecurityGroups), tt.pageSize)},
					{CallDescribeNetworkInterfaces, pages(len(r.NetworkInterfaces), tt.pageSize)},
					{CallGetManagedPrefixListEntries, plPages},
				} {
					// Distinct requests: on a loaded machine the SDK may
					// retry one, which is not an extra call of reyes'.
					if n := fake.distinct(r.Name, c.call); n != c.want {
						t.Errorf("%s %s: %d distinct calls, want %d", r.Name, c.call, n, c.want)
					}
				}
			}
		})
	}
}

// diffInventories fails t with the first difference between got and want.
func diffInventories(t testing.TB, got, want *inventory.Inventory) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	if len(got.Regions) != len(want.Regions) {
		t.Fatalf("got %d regions, want %d", len(got.Regions), len(want.Regions))
	}
	for i := range want.Regions {
		g, w := got.Regions[i], want.Regions[i]
		if g.Name != w.Name {
			t.Fatalf("region %d is %s, want %s", i, g.Name, w.Name)
		}
		diffSlice(t, w.Name+" VPCs", g.VPCs, w.VPCs)
		diffSlice(t, w.Name+" SecurityGroups", g.SecurityGroups, w.SecurityGroups)
		diffSlice(t, w.Name+" NetworkInterfaces", g.NetworkInterfaces, w.NetworkInterfaces)
		diffSlice(t, w.Name+" PrefixLists", g.PrefixLists, w.PrefixLists)
	}
	t.Fatal("inventories differ")
}

func diffSlice[T any](t testing.TB, what string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("%s[%d]:\n got %+v\nwant %+v", what, i, got[i], want[i])
			return
		}
	}
}

func TestEC2Faults(t *testing.T) {
	t.Parallel()
	regions := []string{"eu-west-1", "us-west-2"}
	inv := genInventory(regions, 20, 30)
	tests := []struct {
		name  string
		fault func(region, action string, n int) *fakeReply
		// wantErr is empty when Fetch must succeed, else what its error
		// must say.
		wantErr    string
		wantRegion string
		wantCall   string
		// wantCalls is the number of requests of wantCall in wantRegion.
		wantCalls int
		// standard uses the standard retry mode instead of the adaptive
		// one, whose client-side rate limit makes a cold client that
		// was throttled slow for seconds.
		standard bool
	}{
		{
			name:       "throttled mid-pagination then success",
			fault:      faultOn("eu-west-1", CallDescribeSecurityGroups, func(n int) bool { return n == 2 }, ec2Error(http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")),
			wantRegion: "eu-west-1", wantCall: CallDescribeSecurityGroups, wantCalls: 1 + pages(20, 5),
		},
		{
			name:     "throttled on every call",
			standard: true,
			fault: func(region, action string, n int) *fakeReply {
				if n <= 1 {
					return ec2Error(http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
				}
				return nil
			},
			wantRegion: "us-west-2", wantCall: CallDescribeNetworkInterfaces, wantCalls: 1 + pages(30, 5),
		},
		{
			name:       "500 mid-pagination",
			fault:      faultOn("us-west-2", CallDescribeNetworkInterfaces, func(n int) bool { return n >= 3 }, ec2Error(http.StatusInternalServerError, "InternalError", "An internal error has occurred.")),
			wantErr:    "us-west-2: DescribeNetworkInterfaces: ",
			wantRegion: "us-west-2", wantCall: CallDescribeNetworkInterfaces, wantCalls: 2 + 4, // 2 pages, then 4 attempts
		},
		{
			name:       "malformed XML",
			fault:      faultOn("eu-west-1", CallDescribeVpcs, anyCall, &fakeReply{status: http.StatusOK, body: `<DescribeVpcsResponse><vpcSet><item><vpcId>vpc-0123`}),
			wantErr:    "eu-west-1: DescribeVpcs: ",
			wantRegion: "eu-west-1", wantCall: CallDescribeVpcs,
		},
		{
			name:       "not XML at all",
			fault:      faultOn("us-west-2", CallDescribeSecurityGroups, func(n int) bool { return n == 2 }, &fakeReply{status: http.StatusOK, body: `{"SecurityGroups": []}`}),
			wantErr:    "us-west-2: DescribeSecurityGroups: ",
			wantRegion: "us-west-2", wantCall: CallDescribeSecurityGroups,
		},
		{
			name:       "access denied is not retried",
			fault:      faultOn("eu-west-1", CallGetManagedPrefixListEntries, anyCall, ec2Error(http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation.")),
			wantErr:    "eu-west-1: GetManagedPrefixListEntries: pl-",
			wantRegion: "eu-west-1", wantCall: CallGetManagedPrefixListEntries,
		},
		{
			name: "a bad CIDR fails the whole fetch",
			fault: faultOn("us-west-2", CallDescribeVpcs, anyCall, &fakeReply{status: http.StatusOK, body: `<DescribeVpcsResponse><vpcSet><item><vpcId>vpc-0123456789abcdef0</vpcId><ownerId>123456789012</ownerId>` +
				`<cidrBlockAssociationSet><item><cidrBlock>10.1.2.3/16</cidrBlock><cidrBlockState><state>associated</state></cidrBlockState></item></cidrBlockAssociationSet>` +
				`</item></vpcSet></DescribeVpcsResponse>`}),
			wantErr:    "us-west-2: DescribeVpcs: Vpcs[vpc-0123456789abcdef0].CidrBlockAssociationSet[0].CidrBlock: \"10.1.2.3/16\" has host bits set",
			wantRegion: "us-west-2", wantCall: CallDescribeVpcs, wantCalls: 1,
		},
		{
			name:       "a repeated NextToken is an error, not the end",
			fault:      faultOn("eu-west-1", CallDescribeNetworkInterfaces, anyCall, &fakeReply{status: http.StatusOK, body: `<DescribeNetworkInterfacesResponse><networkInterfaceSet/><nextToken>again</nextToken></DescribeNetworkInterfacesResponse>`}),
			wantErr:    `eu-west-1: DescribeNetworkInterfaces: paginating: NextToken "again" returned twice`,
			wantRegion: "eu-west-1", wantCall: CallDescribeNetworkInterfaces, wantCalls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, srv := newFakeEC2(t, inv)
			fake.fault = tt.fault
			src := testEC2(srv, regions...)
			src.PageSize = 5
			if tt.standard {
				src.NewRetryer = func() aws.Retryer {
					return retry.NewStandard(func(o *retry.StandardOptions) {
						o.MaxAttempts = src.MaxAttempts
						o.MaxBackoff = src.MaxBackoff
					})
				}
			}
			start := time.Now()
			got, err := src.Fetch(t.Context())
			t.Logf("Fetch took %v, %d requests", time.Since(start), fake.count("", ""))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				diffInventories(t, got, inv)
			} else {
				if err == nil {
					t.Fatal("Fetch succeeded, want an error")
				}
				if got != nil {
					t.Errorf("Fetch returned an inventory with its error")
				}
				if !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not start with %q", err, tt.wantErr)
				}
				var fe *FetchError
				if !errors.As(err, &fe) || fe.Region != tt.wantRegion || fe.Call != tt.wantCall {
					t.Errorf("error %#v is not a FetchError for %s %s", err, tt.wantRegion, tt.wantCall)
				}
			}
			if tt.wantCalls != 0 {
				if n := fake.count(tt.wantRegion, tt.wantCall); n != tt.wantCalls {
					t.Errorf("%s %s: %d requests, want %d", tt.wantRegion, tt.wantCall, n, tt.wantCalls)
				}
			}
		})
	}
}

func TestEC2Options(t *testing.T) {
	t.Parallel()
	inv := genInventory([]string{"eu-west-1"}, 3, 3)
	tests := []struct {
		name    string
		edit    func(*EC2)
		wantErr string
	}{
		{name: "page size below 5", edit: func(s *EC2) { s.PageSize = 4 }, wantErr: "page size"},
		{name: "page size above 1000", edit: func(s *EC2) { s.PageSize = 1001 }, wantErr: "page size"},
		{name: "bad VPC ID", edit: func(s *EC2) { s.VPCIDs = []string{"vpc-XYZ"} }, wantErr: "VPC filter"},
		{name: "no region", edit: func(s *EC2) { s.Regions = nil; s.Config.Region = "" }, wantErr: ErrNoRegion.Error()},
		{name: "region of the config", edit: func(s *EC2) { s.Regions = nil; s.Config.Region = "eu-west-1" }},
		{name: "regions listed twice", edit: func(s *EC2) { s.Regions = []string{"eu-west-1", "", "eu-west-1"} }},
		{name: "LoadConfig error", edit: func(s *EC2) {
			s.LoadConfig = func(context.Context, string) (aws.Config, error) { return aws.Config{}, errors.New("no profile") }
		}, wantErr: "loading AWS configuration for eu-west-1: no profile"},
		{name: "LoadConfig", edit: func(s *EC2) {
			base := *s.Config
			s.Config = nil
			s.LoadConfig = func(_ context.Context, region string) (aws.Config, error) {
				c := base.Copy()
				c.Region = region
				return c, nil
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, srv := newFakeEC2(t, inv)
			src := testEC2(srv, "eu-west-1")
			tt.edit(src)
			got, err := src.Fetch(t.Context())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Fetch error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			diffInventories(t, got, inv)
		})
	}
}

// TestEC2StandardConfig checks that the zero configuration honours the
// SDK's environment: AWS_REGION, the credential chain and
// AWS_ENDPOINT_URL_EC2 (over AWS_ENDPOINT_URL).
func TestEC2StandardConfig(t *testing.T) {
	inv := genInventory([]string{"ap-southeast-2"}, 4, 4)
	fake, srv := newFakeEC2(t, inv)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_REGION":                  "ap-southeast-2",
		"AWS_ACCESS_KEY_ID":           "testing",
		"AWS_SECRET_ACCESS_KEY":       "testing",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "http://127.0.0.1:1", // nothing listens there
		"AWS_ENDPOINT_URL_EC2":        srv.URL,
	} {
		t.Setenv(k, v)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	src := &EC2{MaxAttempts: 1}
	got, err := src.Fetch(t.Context())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	diffInventories(t, got, inv)
	if n := fake.count("ap-southeast-2", ""); n == 0 {
		t.Errorf("no request signed for ap-southeast-2 reached the endpoint")
	}
}

func TestEC2Cancel(t *testing.T) {
	t.Parallel()
	inv := genInventory([]string{"eu-west-1"}, 10, 10)
	block := make(chan struct{})
	fake, srv := newFakeEC2(t, inv)
	fake.fault = func(region, action string, n int) *fakeReply {
		<-block
		return nil
	}
	t.Cleanup(func() { close(block) })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := testEC2(srv, "eu-west-1").Fetch(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch error %v, want the context's", err)
	}
}

// FuzzEC2SecurityGroups serves arbitrary bytes as the answer to
// DescribeSecurityGroups. Fetch must not panic, and whatever it accepts
// the offline source must read back identically from WriteDir's output:
// both sources accept the same estates.
func FuzzEC2SecurityGroups(f *testing.F) {
	inv := genInventory([]string{"eu-west-1"}, 3, 2)
	var page strings.Builder
	page.WriteString(`<DescribeSecurityGroupsResponse><securityGroupInfo>`)
	for _, g := range inv.Regions[0].SecurityGroups {
		writeGroup(&page, g)
	}
	page.WriteString(`</securityGroupInfo></DescribeSecurityGroupsResponse>`)
	f.Add(page.String())
	f.Add(`<DescribeSecurityGroupsResponse><securityGroupInfo><item><groupId>sg-0123456789abcdef0</groupId><groupName>x</groupName>` +
		`<ownerId>123456789012</ownerId><vpcId>vpc-0123456789abcdef0</vpcId><ipPermissions><item><ipProtocol>tcp</ipProtocol>` +
		`<fromPort>22</fromPort><toPort>22</toPort><ipRanges><item><cidrIp>10.0.0.0/8</cidrIp></item></ipRanges></item></ipPermissions></item></securityGroupInfo></DescribeSecurityGroupsResponse>`)
	f.Add(`<DescribeSecurityGroupsResponse><securityGroupInfo><item><groupId>sg-0123456789abcdef0</groupId></item></securityGroupInfo></DescribeSecurityGroupsResponse>`)
	f.Add(`<DescribeSecurityGroupsResponse/>`)
	f.Add(``)
	fake, srv := newFakeEC2(f, inv)
	var body atomicString
	fake.fault = func(region, action string, n int) *fakeReply {
		if action == CallDescribeSecurityGroups {
			return &fakeReply{status: http.StatusOK, body: body.Load()}
		}
		return nil
	}
	src := testEC2(srv, "eu-west-1")
	src.MaxAttempts = 1
	f.Fuzz(func(t *testing.T, s string) {
		body.Store(s)
		got, err := src.Fetch(t.Context())
		if err != nil {
			var fe *FetchError
			if !errors.As(err, &fe) || fe.Region != "eu-west-1" {
				t.Fatalf("error %v is not a FetchError of eu-west-1", err)
			}
			return
		}
		dir := t.TempDir()
		if err := WriteDir(dir, got); err != nil {
			t.Fatalf("WriteDir of an accepted inventory: %v", err)
		}
		back, err := ReadDir(t.Context(), dir)
		if err != nil {
			// A prefix list the API did not have fails Fetch, so
			// every referenced list is in got.
			t.Fatalf("ReadDir rejects what Fetch accepted: %v", err)
		}
		if !reflect.DeepEqual(back, got) {
			t.Fatalf("ReadDir(WriteDir(Fetch)) differs from Fetch:\n got %+v\nwant %+v", back, got)
		}
	})
}

// atomicString is a string shared between the fuzz loop and the endpoint.
type atomicString struct {
	mu sync.Mutex
	s  string
}

func (a *atomicString) Store(s string) { a.mu.Lock(); a.s = s; a.mu.Unlock() }
func (a *atomicString) Load() string   { a.mu.Lock(); defer a.mu.Unlock(); return a.s }
