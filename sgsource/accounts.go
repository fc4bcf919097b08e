package sgsource

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/reyes-fw/reyes/internal/errtext"
	"github.com/reyes-fw/reyes/inventory"
)

// Names of the STS and Organizations calls, as they appear in errors.
const (
	CallGetCallerIdentity = "GetCallerIdentity"
	CallAssumeRole        = "AssumeRole"
	CallListAccounts      = "ListAccounts"
)

// RoleSessionName is the session name of the roles the EC2 source assumes:
// it appears in the reader accounts' CloudTrail.
const RoleSessionName = "reyes-leader"

// Account is one AWS account the EC2 source reads.
type Account struct {
	// ID is the 12-digit account ID; every Region read for it names it.
	ID string
	// RoleARN is the role assumed to read the account, for logs and
	// errors; empty for the caller's own credentials.
	RoleARN string
	// Credentials, if not nil, replace the credentials of the SDK
	// configuration for this account (see AssumeRole). Nil means the
	// configuration's own: the caller's account.
	Credentials aws.CredentialsProvider
}

// CallerAccount returns the account of the configuration's own
// credentials (STS GetCallerIdentity), read with them.
func CallerAccount(ctx context.Context, cfg aws.Config, optFns ...func(*sts.Options)) (Account, error) {
	out, err := sts.NewFromConfig(cfg, optFns...).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return Account{}, &FetchError{Region: cfg.Region, Call: CallGetCallerIdentity, Err: err}
	}
	id := aws.ToString(out.Account)
	if err := checkAccountID(id); err != nil {
		return Account{}, &FetchError{Region: cfg.Region, Call: CallGetCallerIdentity, Err: err}
	}
	return Account{ID: id}, nil
}

// AssumeRole returns the account of the role roleARN
// ("arn:aws:iam::123456789012:role/reyes-reader"), read through STS
// AssumeRole with the configuration's credentials. The credentials are
// cached and refreshed before they expire (aws.CredentialsCache over
// stscreds.AssumeRoleProvider), so a leader that runs for days keeps
// reading. Nothing is called until the first request.
func AssumeRole(cfg aws.Config, roleARN string, optFns ...func(*sts.Options)) (Account, error) {
	id, err := RoleAccount(roleARN)
	if err != nil {
		return Account{}, err
	}
	p := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg, optFns...), roleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = RoleSessionName
	})
	return Account{ID: id, RoleARN: roleARN, Credentials: aws.NewCredentialsCache(p)}, nil
}

// RoleAccount checks an IAM role ARN (arn:<partition>:iam::<account>:role/
// <name>, a path allowed) and returns its account ID.
func RoleAccount(roleARN string) (string, error) {
	a, err := arn.Parse(roleARN)
	if err != nil || a.Service != "iam" || !strings.HasPrefix(a.Resource, "role/") || len(a.Resource) == len("role/") {
		return "", fmt.Errorf("role ARN %q: want arn:<partition>:iam::<account>:role/<name>", errtext.Clip(roleARN))
	}
	if err := checkAccountID(a.AccountID); err != nil {
		return "", fmt.Errorf("role ARN %q: %w", errtext.Clip(roleARN), err)
	}
	return a.AccountID, nil
}

// CheckRoleName checks the name (or path/name) of the role that
// OrganizationAccounts assumes.
func CheckRoleName(name string) error {
	if name == "" || strings.ContainsAny(name, ":*\x00 ") || len(name) > 512 || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
		return fmt.Errorf("organization role name %q is not a role name (or path/name)", errtext.Clip(name))
	}
	return nil
}

// OrganizationAccounts lists the ACTIVE accounts of the caller's AWS
// Organization (Organizations ListAccounts, every page) and returns, for
// each but except, the account read through the role
// arn:<partition>:iam::<id>:role/<roleName> (see AssumeRole). except is the
// caller's own account, read with its own credentials; pass "" to assume
// the role in every account. Suspended and closed accounts are left out.
func OrganizationAccounts(ctx context.Context, cfg aws.Config, roleName, except string, stsOpts []func(*sts.Options), orgOpts ...func(*organizations.Options)) ([]Account, error) {
	if err := CheckRoleName(roleName); err != nil {
		return nil, err
	}
	c := organizations.NewFromConfig(cfg, orgOpts...)
	partition := partitionOf(cfg.Region)
	var out []Account
	seen := map[string]bool{}
	var token *string
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			return nil, &FetchError{Region: cfg.Region, Call: CallListAccounts, Err: fmt.Errorf("more than %d pages", pages)}
		}
		res, err := c.ListAccounts(ctx, &organizations.ListAccountsInput{NextToken: token})
		if err != nil {
			return nil, &FetchError{Region: cfg.Region, Call: CallListAccounts, Err: err}
		}
		for _, a := range res.Accounts {
			id := aws.ToString(a.Id)
			if err := checkAccountID(id); err != nil {
				return nil, &FetchError{Region: cfg.Region, Call: CallListAccounts, Err: err}
			}
			if !activeAccount(a) || id == except || seen[id] {
				continue
			}
			seen[id] = true
			acct, err := AssumeRole(cfg, "arn:"+partition+":iam::"+id+":role/"+roleName, stsOpts...)
			if err != nil {
				return nil, err
			}
			out = append(out, acct)
		}
		if res.NextToken == nil || *res.NextToken == "" {
			return out, nil
		}
		token = res.NextToken
	}
}

// activeAccount reads the account's State, or its Status (retired by AWS
// in 2026) when an older endpoint sends no State.
func activeAccount(a orgtypes.Account) bool {
	if a.State != "" {
		return a.State == orgtypes.AccountStateActive
	}
	return a.Status == orgtypes.AccountStatusActive
}

// partitionOf returns the partition of a region's ARNs.
func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	}
	return "aws"
}

// checkAccounts checks the Accounts of an EC2 source: valid IDs, each once.
func checkAccounts(accts []Account) error {
	seen := map[string]bool{}
	for _, a := range accts {
		if !inventory.ValidAccountID(a.ID) {
			return fmt.Errorf("checking EC2 accounts: %q is not an account ID", errtext.Clip(a.ID))
		}
		if seen[a.ID] {
			return fmt.Errorf("checking EC2 accounts: account %s is listed twice", a.ID)
		}
		seen[a.ID] = true
	}
	return nil
}

// MultiAccount is a Source that reads the caller's own account and others
// through roles, in every region of EC2, on every Fetch: the caller's
// account (STS GetCallerIdentity) with its own credentials, each of
// RoleARNs through AssumeRole, and with OrganizationRole every ACTIVE
// account of the Organization (listed again on every Fetch, so that new
// accounts are read) through arn:<partition>:iam::<id>:role/<name>. An
// account reached both ways is read once. Credentials of a role are cached
// across fetches and refreshed before they expire.
//
// Set the fields before the first Fetch; one Fetch at a time.
type MultiAccount struct {
	// EC2 is the template of the reads (Regions, VPCIDs, Config, retries,
	// MaxConcurrent, ...); its Accounts are replaced on every Fetch.
	EC2 *EC2
	// RoleARNs are roles to assume, one account each.
	RoleARNs []string
	// OrganizationRole, if set, is the name of the role to assume in every
	// ACTIVE account of the caller's Organization.
	OrganizationRole string
	// STSOptions and OrganizationsOptions are applied to those clients
	// (an endpoint, an HTTP client).
	STSOptions           []func(*sts.Options)
	OrganizationsOptions []func(*organizations.Options)

	roles map[string]Account // role ARN -> account with its cached credentials
}

var _ Source = (*MultiAccount)(nil)

// Fetch resolves the accounts and reads them all; any failure fails the
// whole Fetch.
func (m *MultiAccount) Fetch(ctx context.Context) (*inventory.Inventory, error) {
	if m.EC2 == nil {
		return nil, fmt.Errorf("reading accounts: no EC2 template")
	}
	cfg, err := m.config(ctx)
	if err != nil {
		return nil, err
	}
	caller, err := CallerAccount(ctx, cfg, m.STSOptions...)
	if err != nil {
		return nil, fmt.Errorf("reading accounts: the caller's account: %w", err)
	}
	accounts := []Account{caller}
	seen := map[string]bool{caller.ID: true}
	add := func(a Account) {
		if !seen[a.ID] {
			seen[a.ID] = true
			accounts = append(accounts, a)
		}
	}
	for _, r := range m.RoleARNs {
		a, err := m.role(cfg, r)
		if err != nil {
			return nil, fmt.Errorf("reading accounts: %w", err)
		}
		add(a)
	}
	if m.OrganizationRole != "" {
		org, err := OrganizationAccounts(ctx, cfg, m.OrganizationRole, caller.ID, m.STSOptions, m.OrganizationsOptions...)
		if err != nil {
			return nil, fmt.Errorf("reading accounts: the organization's: %w", err)
		}
		for _, a := range org {
			if cached, ok := m.roles[a.RoleARN]; ok {
				a = cached
			} else {
				m.remember(a)
			}
			add(a)
		}
	}
	src := *m.EC2
	src.Accounts = accounts
	src.logger().LogAttrs(ctx, slog.LevelInfo, "reading accounts", slog.Int("accounts", len(accounts)), slog.String("caller", caller.ID))
	return src.Fetch(ctx)
}

// role returns the account of a role ARN, with credentials cached across
// fetches.
func (m *MultiAccount) role(cfg aws.Config, roleARN string) (Account, error) {
	if a, ok := m.roles[roleARN]; ok {
		return a, nil
	}
	a, err := AssumeRole(cfg, roleARN, m.STSOptions...)
	if err != nil {
		return Account{}, err
	}
	m.remember(a)
	return a, nil
}

func (m *MultiAccount) remember(a Account) {
	if m.roles == nil {
		m.roles = map[string]Account{}
	}
	m.roles[a.RoleARN] = a
}

// config is the SDK configuration the STS and Organizations calls use:
// the template's, in its first region when it names none.
func (m *MultiAccount) config(ctx context.Context) (aws.Config, error) {
	region := ""
	if rs := uniqueNonEmpty(m.EC2.Regions); len(rs) > 0 {
		region = rs[0]
	}
	switch {
	case m.EC2.LoadConfig != nil:
		return m.EC2.LoadConfig(ctx, region)
	case m.EC2.Config != nil:
		c := m.EC2.Config.Copy()
		if c.Region == "" {
			c.Region = region
		}
		return c, nil
	}
	c, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the default AWS configuration: %w", err)
	}
	if c.Region == "" {
		c.Region = region
	}
	return c, nil
}
