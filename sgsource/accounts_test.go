package sgsource

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"

	"github.com/reyes-fw/reyes/internal/mototest"
	"github.com/reyes-fw/reyes/inventory"
)

// pairGauge wraps the fake and records how many (account, region) pairs
// had a request in flight at once.
type pairGauge struct {
	next   http.Handler
	mu     sync.Mutex
	active map[string]int
	max    int
}

func (g *pairGauge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	key := credentialKey(auth) + " " + credentialRegion(auth)
	g.mu.Lock()
	g.active[key]++
	g.max = max(g.max, len(g.active))
	g.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // let pairs overlap if they may
	g.next.ServeHTTP(w, r)
	g.mu.Lock()
	if g.active[key]--; g.active[key] == 0 {
		delete(g.active, key)
	}
	g.mu.Unlock()
}

// accountInventory is genInventory with every region naming account id
// and IDs of its own.
func accountInventory(id string, regions []string, seed int) *inventory.Inventory {
	inv := genInventory(regions, 10+seed, 20)
	for i := range inv.Regions {
		inv.Regions[i].Account = id
	}
	return inv
}

func TestEC2Accounts(t *testing.T) {
	t.Parallel()
	regions := []string{"eu-west-1", "us-west-2"}
	const a, b, c = "111111111111", "222222222222", "333333333333"
	invs := map[string]*inventory.Inventory{a: accountInventory(a, regions, 0), b: accountInventory(b, regions, 1), c: accountInventory(c, regions, 2)}
	want := &inventory.Inventory{}
	for _, id := range []string{a, b, c} {
		want.Regions = append(want.Regions, invs[id].Regions...)
	}
	static := func(id string) aws.CredentialsProvider {
		return credentials.NewStaticCredentialsProvider(id, "secret", "")
	}
	accounts := []Account{{ID: c, Credentials: static(c)}, {ID: a, Credentials: static(a)}, {ID: b, Credentials: static(b)}}
	for _, limit := range []int{1, 2, 6} {
		t.Run(fmt.Sprintf("at most %d at once", limit), func(t *testing.T) {
			t.Parallel()
			fake, srv := newFakeEC2(t, &inventory.Inventory{})
			fake.accounts = invs
			gauge := &pairGauge{next: fake, active: map[string]int{}}
			srv.Config.Handler = gauge
			src := testEC2(srv, regions...)
			src.Accounts, src.MaxConcurrent = accounts, limit
			got, err := src.Fetch(t.Context())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			diffInventories(t, got, want)
			if gauge.max > limit {
				t.Errorf("%d (account, region) pairs were described at once; the bound is %d", gauge.max, limit)
			}
		})
	}

	t.Run("a failing account fails the fetch, named", func(t *testing.T) {
		t.Parallel()
		fake, srv := newFakeEC2(t, &inventory.Inventory{})
		fake.accounts = invs
		fake.fault = func(region, action string, _ int) *fakeReply {
			if region == "us-west-2" && action == CallDescribeTransitGateways {
				return ec2Error(403, "UnauthorizedOperation", "You are not authorized to perform this operation.")
			}
			return nil
		}
		src := testEC2(srv, regions...)
		src.Accounts = []Account{{ID: b, Credentials: static(b)}}
		inv, err := src.Fetch(t.Context())
		if err == nil {
			t.Fatalf("Fetch succeeded: %+v", inv)
		}
		var fe *FetchError
		if !errors.As(err, &fe) || fe.Account != b || fe.Region != "us-west-2" || fe.Call != CallDescribeTransitGateways {
			t.Fatalf("error %v: want a FetchError of account %s, us-west-2, %s", err, b, CallDescribeTransitGateways)
		}
		if !strings.HasPrefix(err.Error(), "account "+b+": us-west-2: DescribeTransitGateways: ") {
			t.Errorf("error %q does not name account, region and call first", err)
		}
	})

	t.Run("accounts listed twice or malformed are refused", func(t *testing.T) {
		for _, accts := range [][]Account{{{ID: a}, {ID: a}}, {{ID: "12345"}}} {
			src := &EC2{Regions: regions, Accounts: accts, Config: &aws.Config{}}
			if _, err := src.Fetch(t.Context()); err == nil || !strings.Contains(err.Error(), "checking EC2 accounts") {
				t.Errorf("Accounts %+v: error %v", accts, err)
			}
		}
	})
}

func TestAssumeRoleARN(t *testing.T) {
	for _, tt := range []struct {
		arn, id, err string
	}{
		{arn: "arn:aws:iam::123456789012:role/reyes-reader", id: "123456789012"},
		{arn: "arn:aws-us-gov:iam::123456789012:role/path/reader", id: "123456789012"},
		{arn: "arn:aws:iam::123456789012:user/bob", err: "want arn:"},
		{arn: "arn:aws:iam::12345:role/x", err: "not a valid account ID"},
		{arn: "arn:aws:sts::123456789012:role/x", err: "want arn:"},
		{arn: "reyes-reader", err: "want arn:"},
	} {
		t.Run(tt.arn, func(t *testing.T) {
			acct, err := AssumeRole(aws.Config{}, tt.arn)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || acct.ID != tt.id || acct.RoleARN != tt.arn || acct.Credentials == nil {
				t.Fatalf("AssumeRole = %+v, %v", acct, err)
			}
		})
	}
}

// TestAccountsAgainstMoto reads two accounts of moto_server: the caller's
// own and one through STS AssumeRole (moto keeps EC2 state per account),
// and lists an organization's ACTIVE accounts.
func TestAccountsAgainstMoto(t *testing.T) {
	t.Parallel()
	url := mototest.Start(t, mototest.Options{Why: "STS and Organizations against moto"})
	cfg := aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	}
	ctx := t.Context()
	caller, err := CallerAccount(ctx, cfg)
	if err != nil {
		t.Fatalf("CallerAccount: %v", err)
	}
	const other = "111122223333"
	role, err := AssumeRole(cfg, "arn:aws:iam::"+other+":role/reyes-reader")
	if err != nil {
		t.Fatal(err)
	}
	// Seed a VPC in each account, with each account's credentials.
	for _, acct := range []Account{caller, role} {
		c := cfg.Copy()
		if acct.Credentials != nil {
			c.Credentials = acct.Credentials
		}
		if _, err := ec2.NewFromConfig(c).CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.77.0.0/16")}); err != nil {
			t.Fatalf("seeding account %s: %v", acct.ID, err)
		}
	}
	src := &EC2{Regions: []string{"us-east-1"}, Config: &cfg, Accounts: []Account{role, caller}, NoAssociations: true, MaxBackoff: 10 * time.Millisecond}
	inv, err := src.Fetch(ctx)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(inv.Regions) != 2 || inv.Regions[0].Account != other || inv.Regions[1].Account != caller.ID {
		t.Fatalf("regions %+v: want one per account, sorted", inv.Regions)
	}
	for _, r := range inv.Regions {
		owners := map[string]bool{}
		for _, v := range r.VPCs {
			owners[v.OwnerID] = true
		}
		if !owners[r.Account] || len(owners) != 1 {
			t.Errorf("account %s sees VPCs of %v: want its own only", r.Account, owners)
		}
	}

	org := organizations.NewFromConfig(cfg)
	if _, err := org.CreateOrganization(ctx, &organizations.CreateOrganizationInput{}); err != nil {
		t.Fatalf("CreateOrganization: %v", err)
	}
	for _, name := range []string{"dev", "prod"} {
		if _, err := org.CreateAccount(ctx, &organizations.CreateAccountInput{AccountName: aws.String(name), Email: aws.String(name + "@example.com")}); err != nil {
			t.Fatalf("CreateAccount: %v", err)
		}
	}
	list, err := org.ListAccounts(ctx, &organizations.ListAccountsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var wantIDs []string
	for _, a := range list.Accounts {
		if id := aws.ToString(a.Id); id != caller.ID {
			wantIDs = append(wantIDs, id)
		}
	}
	accts, err := OrganizationAccounts(ctx, cfg, "reyes-reader", caller.ID, nil)
	if err != nil {
		t.Fatalf("OrganizationAccounts: %v", err)
	}
	var gotIDs []string
	for _, a := range accts {
		gotIDs = append(gotIDs, a.ID)
		if a.RoleARN != "arn:aws:iam::"+a.ID+":role/reyes-reader" || a.Credentials == nil {
			t.Errorf("account %+v: want the role reyes-reader with credentials", a)
		}
	}
	slices.Sort(gotIDs)
	slices.Sort(wantIDs)
	if len(wantIDs) < 2 || !slices.Equal(gotIDs, wantIDs) {
		t.Fatalf("organization accounts %v, want %v (every ACTIVE account but the caller's)", gotIDs, wantIDs)
	}
	src.Accounts = append([]Account{caller}, accts...)
	inv, err = src.Fetch(ctx)
	if err != nil {
		t.Fatalf("Fetch of the organization: %v", err)
	}
	if len(inv.Regions) != 1+len(accts) {
		t.Errorf("%d regions, want one per account", len(inv.Regions))
	}
	if _, err := OrganizationAccounts(ctx, cfg, "", "", nil); err == nil {
		t.Error("an empty role name was accepted")
	}

	// The Source the leader uses: caller, roles and organization, resolved
	// on every Fetch; a role's credentials are kept between fetches.
	multi := &MultiAccount{
		EC2:              &EC2{Regions: []string{"us-east-1"}, Config: &cfg, NoAssociations: true, MaxBackoff: 10 * time.Millisecond},
		RoleARNs:         []string{role.RoleARN, "arn:aws:iam::" + accts[0].ID + ":role/reyes-reader"},
		OrganizationRole: "reyes-reader",
	}
	for run := range 2 {
		inv, err := multi.Fetch(ctx)
		if err != nil {
			t.Fatalf("MultiAccount.Fetch %d: %v", run, err)
		}
		var got []string
		for _, r := range inv.Regions {
			got = append(got, r.Account)
		}
		want := append([]string{caller.ID, other}, wantIDs...)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("run %d read accounts %v, want %v (each once)", run, got, want)
		}
	}
	if cached := multi.roles[role.RoleARN]; cached.Credentials == nil || len(multi.roles) != 1+len(wantIDs) {
		t.Errorf("cached roles %v", multi.roles)
	}
}

// TestEC2AssociationsUnsupported: an endpoint that does not know
// DescribeSecurityGroupVpcAssociations makes the associations unknown (a
// warning), not a failure; access denied fails the fetch.
func TestEC2AssociationsUnsupported(t *testing.T) {
	t.Parallel()
	regions := []string{"eu-west-1"}
	for _, tt := range []struct {
		code string
		ok   bool
	}{{"InvalidAction", true}, {"UnsupportedOperation", true}, {"UnauthorizedOperation", false}} {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			fake, srv := newFakeEC2(t, genInventory(regions, 5, 5))
			fake.fault = func(_, action string, _ int) *fakeReply {
				if action == CallDescribeSecurityGroupVpcAssociations {
					return ec2Error(400, tt.code, "no")
				}
				return nil
			}
			inv, err := testEC2(srv, regions...).Fetch(t.Context())
			if !tt.ok {
				var fe *FetchError
				if !errors.As(err, &fe) || fe.Call != CallDescribeSecurityGroupVpcAssociations {
					t.Fatalf("error %v, want a FetchError of %s", err, CallDescribeSecurityGroupVpcAssociations)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := inv.Regions[0]; r.AssociationsKnown || r.SecurityGroupVPCAssociations != nil || !r.TransitGatewaysKnown {
				t.Errorf("associations known %v %v, transit gateways known %v", r.AssociationsKnown, r.SecurityGroupVPCAssociations, r.TransitGatewaysKnown)
			}
		})
	}
}
