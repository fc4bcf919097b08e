package sgsource

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/internal/errtext"

	"golang.org/x/sync/errgroup"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/reyes-fw/reyes/inventory"
)

// Names of the EC2 API calls the EC2 source makes, as they appear in a
// [FetchError].
const (
	CallDescribeVpcs                = "DescribeVpcs"
	CallDescribeSecurityGroups      = "DescribeSecurityGroups"
	CallDescribeNetworkInterfaces   = "DescribeNetworkInterfaces"
	CallGetManagedPrefixListEntries = "GetManagedPrefixListEntries"
	// The calls of security group VPC associations and transit gateway
	// security group referencing (2024).
	CallDescribeSecurityGroupVpcAssociations = "DescribeSecurityGroupVpcAssociations"
	CallDescribeTransitGateways              = "DescribeTransitGateways"
	CallDescribeTransitGatewayVpcAttachments = "DescribeTransitGatewayVpcAttachments"
)

// DefaultMaxConcurrent bounds how many (account, region) pairs the EC2
// source describes at once when EC2.MaxConcurrent is zero.
const DefaultMaxConcurrent = 8

// DefaultMaxAttempts is how many times the EC2 source tries one API call
// (the first attempt included) when EC2.MaxAttempts is zero.
const DefaultMaxAttempts = 10

// prefixListFetchers bounds how many prefix lists of one region are read at
// once.
const prefixListFetchers = 4

// ErrNoRegion is returned by EC2.Fetch when no region is configured, neither
// in EC2.Regions nor in the SDK configuration (AWS_REGION, profile).
var ErrNoRegion = errors.New("no region configured")

// FetchError is the error of a failed EC2 API call (or of a response that
// could not be converted). It names the region and the call; the whole Fetch
// failed with it and returned no inventory.
type FetchError struct {
	// Account is the account whose view failed; empty for the caller's
	// own in an EC2 source without Accounts.
	Account string
	Region  string
	// Call is one of the Call* constants.
	Call string
	Err  error
}

// Error returns "account <account>: <region>: <call>: <cause>", without
// the account part when Account is empty.
func (e *FetchError) Error() string {
	s := e.Region + ": " + e.Call + ": " + e.Err.Error()
	if e.Account != "" {
		s = "account " + e.Account + ": " + s
	}
	return s
}

// Unwrap returns the cause, often a smithy or SDK error.
func (e *FetchError) Unwrap() error { return e.Err }

// EC2 is the [Source] that reads the live EC2 API with aws-sdk-go-v2.
//
// For every region (of every account in Accounts), concurrently, it
// follows to the end one paginated sequence each of DescribeVpcs,
// DescribeSecurityGroups, DescribeNetworkInterfaces,
// DescribeTransitGateways and DescribeTransitGatewayVpcAttachments, then
// GetManagedPrefixListEntries once (a paginated sequence) for every prefix
// list an ingress rule refers to, AWS-managed lists included, and
// DescribeSecurityGroupVpcAssociations when an interface uses a group of
// another VPC. It makes no per-group or per-instance calls.
// Calls use the SDK's adaptive retry mode: throttling (RequestLimitExceeded)
// and transient errors are retried with backoff. Any call that still fails
// fails the whole Fetch with a [*FetchError]; there is never a partial
// inventory.
//
// The zero value with Regions set uses the SDK's standard configuration
// (config.LoadDefaultConfig: the credential chain, AWS_REGION,
// AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_EC2, shared config files).
//
// Set the fields before the first Fetch and do not change them afterwards.
// One Fetch at a time per EC2 value.
type EC2 struct {
	// Regions to describe. Empty means the one region of the SDK
	// configuration.
	Regions []string
	// VPCIDs, if not empty, restrict VPCs, groups and interfaces to these
	// VPCs (a vpc-id filter on every Describe call).
	VPCIDs []string
	// PageSize is the MaxResults of every Describe call: 0 for the API's
	// default, else 5..1000. GetManagedPrefixListEntries uses at most 100.
	PageSize int32

	// Config, if not nil, is the base SDK configuration; its Region is
	// replaced by each region in turn. Used when LoadConfig is nil.
	Config *aws.Config
	// LoadConfig, if not nil, makes the SDK configuration of one region.
	LoadConfig func(ctx context.Context, region string) (aws.Config, error)
	// ClientOptions are applied to every EC2 client after reyes' own (the
	// adaptive retryer), for example to set an HTTP client.
	ClientOptions []func(*ec2.Options)

	// MaxAttempts is how many times one call is tried; 0 means
	// DefaultMaxAttempts.
	MaxAttempts int
	// MaxBackoff caps the delay between two attempts; 0 means the SDK's
	// default (20 s). Tests set it small.
	MaxBackoff time.Duration
	// NewRetryer, if not nil, makes the retryer of each region's client
	// instead of the default: the SDK's adaptive mode
	// (retry.NewAdaptiveMode) with MaxAttempts and MaxBackoff, which after
	// a throttling error also slows down the region's later calls.
	NewRetryer func() aws.Retryer

	// Logger receives one debug line per call sequence and one info line
	// per region; nil means slog.Default().
	Logger *slog.Logger

	// Accounts, if not empty, are the accounts to read, each in every
	// region: the caller's own (CallerAccount) and others through roles
	// (AssumeRole, OrganizationAccounts). Every Region of the inventory
	// then names its account. Empty means the configuration's own
	// account alone, its Regions naming no account (as ReadDir's layout of
	// one directory per region).
	Accounts []Account
	// MaxConcurrent bounds how many (account, region) pairs are described
	// at once; 0 means DefaultMaxConcurrent.
	MaxConcurrent int
	// NoAssociations skips DescribeSecurityGroupVpcAssociations, for an
	// endpoint without it that answers neither InvalidAction nor
	// UnsupportedOperation (moto answers HTTP 500). The regions then say
	// the associations are unknown, and ruleset.Build reports every
	// reference that needs one as stale.
	NoAssociations bool
}

var _ Source = (*EC2)(nil)

// Fetch describes every configured region concurrently and returns the
// inventory in the order of Regions. The first failure cancels the calls in
// flight and is returned.
func (s *EC2) Fetch(ctx context.Context) (*inventory.Inventory, error) {
	if s.PageSize != 0 && (s.PageSize < 5 || s.PageSize > 1000) {
		return nil, fmt.Errorf("checking EC2 page size: %d is not 0 or 5..1000", s.PageSize)
	}
	for _, id := range s.VPCIDs {
		if err := checkVPCID(id); err != nil {
			return nil, fmt.Errorf("checking the EC2 VPC filter: %w", err)
		}
	}
	loadConfig, defaultRegion, err := s.configLoader(ctx)
	if err != nil {
		return nil, err
	}
	regions := uniqueNonEmpty(s.Regions)
	if len(regions) == 0 {
		if defaultRegion == "" {
			return nil, ErrNoRegion
		}
		regions = []string{defaultRegion}
	}

	if err := checkAccounts(s.Accounts); err != nil {
		return nil, err
	}
	accounts := s.Accounts
	if len(accounts) == 0 {
		accounts = []Account{{}} // the configuration's own, unnamed
	}
	limit := s.MaxConcurrent
	if limit <= 0 {
		limit = DefaultMaxConcurrent
	}
	out := make([]inventory.Region, len(accounts)*len(regions))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for ai, acct := range accounts {
		for ri, name := range regions {
			g.Go(func() error {
				cfg, err := loadConfig(gctx, name)
				if err != nil {
					return withAccount(acct.ID, fmt.Errorf("loading AWS configuration for %s: %w", name, err))
				}
				if acct.Credentials != nil {
					cfg.Credentials = acct.Credentials
				}
				r, err := s.fetchRegion(gctx, s.client(cfg, name), name, acct)
				r.Account = acct.ID
				out[ai*len(regions)+ri] = r
				return withAccount(acct.ID, err)
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The canonical order, as ReadDir returns it.
	slices.SortFunc(out, func(a, b inventory.Region) int {
		if c := strings.Compare(a.Account, b.Account); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return &inventory.Inventory{Regions: out}, nil
}

// withAccount names the account in err: a *FetchError gets it, any other
// error is prefixed with it.
func withAccount(id string, err error) error {
	if err == nil || id == "" {
		return err
	}
	var fe *FetchError
	if errors.As(err, &fe) {
		if fe.Account == "" {
			fe.Account = id
		}
		return err
	}
	return fmt.Errorf("account %s: %w", id, err)
}

// configLoader returns the function that makes one region's configuration
// and the default region. The default SDK configuration is loaded once per
// Fetch, so that credentials are resolved once.
func (s *EC2) configLoader(ctx context.Context) (func(context.Context, string) (aws.Config, error), string, error) {
	withRegion := func(base aws.Config) func(context.Context, string) (aws.Config, error) {
		return func(_ context.Context, region string) (aws.Config, error) {
			c := base.Copy()
			c.Region = region
			return c, nil
		}
	}
	switch {
	case s.LoadConfig != nil:
		return s.LoadConfig, "", nil
	case s.Config != nil:
		return withRegion(*s.Config), s.Config.Region, nil
	}
	base, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("loading the default AWS configuration: %w", err)
	}
	return withRegion(base), base.Region, nil
}

// client makes the EC2 client of one region with reyes' retry policy.
func (s *EC2) client(cfg aws.Config, region string) *ec2.Client {
	attempts := s.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	maxBackoff := s.MaxBackoff
	opts := []func(*ec2.Options){func(o *ec2.Options) {
		o.Region = region
		if s.NewRetryer != nil {
			o.Retryer = s.NewRetryer()
			return
		}
		o.Retryer = retry.NewAdaptiveMode(func(a *retry.AdaptiveModeOptions) {
			a.StandardOptions = append(a.StandardOptions, func(so *retry.StandardOptions) {
				so.MaxAttempts = attempts
				if maxBackoff > 0 {
					so.MaxBackoff = maxBackoff
					so.Backoff = retry.NewExponentialJitterBackoff(maxBackoff)
				}
			})
		})
	}}
	opts = append(opts, func(o *ec2.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Deserialize.Add(checkResponseRoot{}, middleware.After)
		})
	})
	return ec2.NewFromConfig(cfg, append(opts, s.ClientOptions...)...)
}

// checkResponseRoot fails a successful response whose body is not an XML
// document with the operation's root element. The SDK reads an empty body,
// or one without the expected element, as an empty result: from a broken
// proxy that would be an empty estate, and every rule would be dropped.
type checkResponseRoot struct{}

// rootPeek is how many bytes of a response are searched for its root
// element.
const rootPeek = 1024

func (checkResponseRoot) ID() string { return "reyesCheckResponseRoot" }

func (checkResponseRoot) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if !ok || resp.StatusCode < 200 || resp.StatusCode > 299 || resp.Body == nil {
		return out, md, err
	}
	br := bufio.NewReaderSize(resp.Body, rootPeek)
	head, _ := br.Peek(rootPeek) // fewer bytes at the end of the body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{br, resp.Body}
	want := awsmiddleware.GetOperationName(ctx) + "Response"
	if got := xmlRoot(head); got != want {
		if got == "" {
			got = "no XML element"
		}
		return out, md, fmt.Errorf("reading the response: want an XML %s document, got %s (HTTP %d, %d bytes)", want, errtext.Clip(got), resp.StatusCode, resp.ContentLength)
	}
	return out, md, nil
}

// xmlRoot returns the name of the first element of an XML document's
// beginning, skipping the declaration, comments and white space.
func xmlRoot(b []byte) string {
	for {
		b = bytes.TrimLeft(b, " \t\r\n")
		switch {
		case bytes.HasPrefix(b, []byte("<?")):
			i := bytes.Index(b, []byte("?>"))
			if i < 0 {
				return ""
			}
			b = b[i+2:]
		case bytes.HasPrefix(b, []byte("<!--")):
			i := bytes.Index(b, []byte("-->"))
			if i < 0 {
				return ""
			}
			b = b[i+3:]
		case bytes.HasPrefix(b, []byte("<")):
			b = b[1:]
			end := bytes.IndexAny(b, " \t\r\n/>")
			if end < 0 {
				return ""
			}
			return string(b[:end])
		default:
			return ""
		}
	}
}

func (s *EC2) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// fetchRegion describes one region: the three Describe sequences
// concurrently, then the prefix lists the groups refer to.
func (s *EC2) fetchRegion(ctx context.Context, c *ec2.Client, region string, acct Account) (inventory.Region, error) {
	start := time.Now()
	r := inventory.Region{Name: region}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if r.TransitGateways, err = s.describeTransitGateways(gctx, c, region); err != nil {
			return err
		}
		r.TransitGatewayAttachments, err = s.describeTransitGatewayAttachments(gctx, c, region)
		r.TransitGatewaysKnown = err == nil
		return err
	})
	g.Go(func() (err error) {
		r.VPCs, err = s.describeVpcs(gctx, c, region)
		return err
	})
	g.Go(func() (err error) {
		r.NetworkInterfaces, err = s.describeNetworkInterfaces(gctx, c, region)
		return err
	})
	g.Go(func() (err error) {
		if r.SecurityGroups, err = s.describeSecurityGroups(gctx, c, region); err != nil {
			return err
		}
		r.PrefixLists, err = s.prefixLists(gctx, c, region, referencedPrefixLists(r.SecurityGroups))
		return err
	})
	if err := g.Wait(); err != nil {
		return inventory.Region{}, err
	}
	// Associations matter only for an interface that uses a group of
	// another VPC: without one there is nothing to ask (and an endpoint
	// without the call is never asked).
	if usesOtherVPCGroups(r) {
		var err error
		if r.SecurityGroupVPCAssociations, r.AssociationsKnown, err = s.describeAssociations(ctx, c, region); err != nil {
			return inventory.Region{}, err
		}
	} else {
		r.AssociationsKnown = !s.NoAssociations
	}
	s.logger().LogAttrs(ctx, slog.LevelInfo, "described EC2 region",
		slog.String("account", acct.ID),
		slog.String("role", acct.RoleARN),
		slog.String("region", region),
		slog.Int("vpcs", len(r.VPCs)),
		slog.Int("security_groups", len(r.SecurityGroups)),
		slog.Int("network_interfaces", len(r.NetworkInterfaces)),
		slog.Int("prefix_lists", len(r.PrefixLists)),
		slog.Int("transit_gateways", len(r.TransitGateways)),
		slog.Int("security_group_vpc_associations", len(r.SecurityGroupVPCAssociations)),
		slog.Duration("took", time.Since(start)))
	return r, nil
}

func (s *EC2) filters() []types.Filter {
	if len(s.VPCIDs) == 0 {
		return nil
	}
	return []types.Filter{{Name: aws.String("vpc-id"), Values: slices.Clone(s.VPCIDs)}}
}

func (s *EC2) maxResults(limit int32) *int32 {
	if s.PageSize == 0 {
		return nil
	}
	return aws.Int32(min(s.PageSize, limit))
}

// paginate calls page with each NextToken until the API returns none. A
// token seen twice is an error, not the end: the SDK's paginators would stop
// silently there and yield a partial list.
func (s *EC2) paginate(ctx context.Context, region, call, what string, page func(ctx context.Context, token *string) (*string, error)) error {
	var token *string
	seen := make(map[string]struct{})
	pages := 0
	for {
		next, err := page(ctx, token)
		if err != nil {
			return &FetchError{Region: region, Call: call, Err: err}
		}
		pages++
		if next == nil || *next == "" {
			break
		}
		if _, ok := seen[*next]; ok {
			return &FetchError{Region: region, Call: call, Err: fmt.Errorf("paginating: NextToken %q returned twice", *next)}
		}
		seen[*next] = struct{}{}
		token = next
	}
	s.logger().LogAttrs(ctx, slog.LevelDebug, "followed EC2 pagination",
		slog.String("region", region), slog.String("call", call), slog.String("what", what), slog.Int("pages", pages))
	return nil
}

func (s *EC2) describeVpcs(ctx context.Context, c *ec2.Client, region string) ([]inventory.VPC, error) {
	return describe(ctx, s, region, CallDescribeVpcs, vpcsCall, s.filters(), func(ctx context.Context, in pageInput) (*ec2.DescribeVpcsOutput, error) {
		return c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: in.filters, MaxResults: in.maxResults, NextToken: in.token})
	})
}

func (s *EC2) describeSecurityGroups(ctx context.Context, c *ec2.Client, region string) ([]inventory.SecurityGroup, error) {
	return describe(ctx, s, region, CallDescribeSecurityGroups, securityGroupsCall, s.filters(), func(ctx context.Context, in pageInput) (*ec2.DescribeSecurityGroupsOutput, error) {
		return c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: in.filters, MaxResults: in.maxResults, NextToken: in.token})
	})
}

func (s *EC2) describeNetworkInterfaces(ctx context.Context, c *ec2.Client, region string) ([]inventory.NetworkInterface, error) {
	return describe(ctx, s, region, CallDescribeNetworkInterfaces, networkInterfacesCall, s.filters(), func(ctx context.Context, in pageInput) (*ec2.DescribeNetworkInterfacesOutput, error) {
		return c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: in.filters, MaxResults: in.maxResults, NextToken: in.token})
	})
}

// describeAssociations reads DescribeSecurityGroupVpcAssociations. An
// endpoint that does not know the call (a partition without the feature,
// an emulator) answers InvalidAction or UnsupportedOperation: then known is
// false, a warning says so, and ruleset.Build reports every reference that
// needs an association as stale. Any other error fails the Fetch, access
// denied included: grant the call rather than guess.
func (s *EC2) describeAssociations(ctx context.Context, c *ec2.Client, region string) (list []inventory.SecurityGroupVPCAssociation, known bool, err error) {
	if s.NoAssociations {
		return nil, false, nil
	}
	list, err = describe(ctx, s, region, CallDescribeSecurityGroupVpcAssociations, associationsCall, nil, func(ctx context.Context, in pageInput) (*ec2.DescribeSecurityGroupVpcAssociationsOutput, error) {
		return c.DescribeSecurityGroupVpcAssociations(ctx, &ec2.DescribeSecurityGroupVpcAssociationsInput{MaxResults: in.maxResults, NextToken: in.token})
	})
	if err != nil && unsupported(err) {
		s.logger().LogAttrs(ctx, slog.LevelWarn, "the EC2 endpoint does not describe security group VPC associations: references to members in associated VPCs will be stale",
			slog.String("region", region), slog.String("error", err.Error()))
		return nil, false, nil
	}
	return list, err == nil, err
}

// usesOtherVPCGroups reports whether an interface of r uses a group that
// is not a group of its own VPC in r (of another VPC, or not described
// here).
func usesOtherVPCGroups(r inventory.Region) bool {
	vpcOf := make(map[string]string, len(r.SecurityGroups))
	for _, g := range r.SecurityGroups {
		vpcOf[g.ID] = g.VPCID
	}
	for _, n := range r.NetworkInterfaces {
		for _, g := range n.Groups {
			if v, ok := vpcOf[g]; !ok || v != n.VPCID {
				return true
			}
		}
	}
	return false
}

// unsupported reports whether err says the endpoint does not know the call.
func unsupported(err error) bool {
	var ae interface{ ErrorCode() string }
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "InvalidAction", "UnsupportedOperation", "NotImplemented":
		return true
	}
	return false
}

func (s *EC2) describeTransitGateways(ctx context.Context, c *ec2.Client, region string) ([]inventory.TransitGateway, error) {
	return describe(ctx, s, region, CallDescribeTransitGateways, transitGatewaysCall, nil, func(ctx context.Context, in pageInput) (*ec2.DescribeTransitGatewaysOutput, error) {
		return c.DescribeTransitGateways(ctx, &ec2.DescribeTransitGatewaysInput{MaxResults: in.maxResults, NextToken: in.token})
	})
}

func (s *EC2) describeTransitGatewayAttachments(ctx context.Context, c *ec2.Client, region string) ([]inventory.TransitGatewayVPCAttachment, error) {
	return describe(ctx, s, region, CallDescribeTransitGatewayVpcAttachments, attachmentsCall, nil, func(ctx context.Context, in pageInput) (*ec2.DescribeTransitGatewayVpcAttachmentsOutput, error) {
		return c.DescribeTransitGatewayVpcAttachments(ctx, &ec2.DescribeTransitGatewayVpcAttachmentsInput{MaxResults: in.maxResults, NextToken: in.token})
	})
}

// pageInput is what every Describe call of a Fetch sends.
type pageInput struct {
	filters    []types.Filter
	maxResults *int32
	token      *string
}

// describe follows one paginated Describe call of c to the end, each page
// asked for with filters (nil for the transit gateway and association
// calls, which take no vpc-id filter: a gateway has no VPC; the
// associations of a group matter from every VPC), and converts the list
// of every page.
func describe[O, S, T any](ctx context.Context, s *EC2, region, call string, c listCall[O, S, T], filters []types.Filter, page func(context.Context, pageInput) (*O, error)) ([]T, error) {
	var out []T
	seen := map[string]int{}
	err := s.paginate(ctx, region, call, "", func(ctx context.Context, token *string) (*string, error) {
		o, err := page(ctx, pageInput{filters: filters, maxResults: s.maxResults(1000), token: token})
		if err != nil {
			return nil, err
		}
		items, next := c.items(o)
		return next, apiError(convertList(apiList(c.list), c.idField, items, &out, seen, c.conv, c.id))
	})
	return out, err
}

// prefixLists reads the entries of every listed prefix list, a few at a
// time, and returns them in the order of ids.
func (s *EC2) prefixLists(ctx context.Context, c *ec2.Client, region string, ids []string) ([]inventory.PrefixList, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	lists := make([]inventory.PrefixList, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(prefixListFetchers)
	for i, id := range ids {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // an earlier list failed: start no more
			}
			pl := inventory.PrefixList{ID: id}
			err := s.paginate(gctx, region, CallGetManagedPrefixListEntries, id, func(ctx context.Context, token *string) (*string, error) {
				out, err := c.GetManagedPrefixListEntries(ctx, &ec2.GetManagedPrefixListEntriesInput{
					PrefixListId: aws.String(id), MaxResults: s.maxResults(100), NextToken: token,
				})
				if err != nil {
					return nil, fmt.Errorf("%s: %w", id, err)
				}
				err = convertPrefixListEntries(apiList("Entries"), out.Entries, &pl.Entries)
				return out.NextToken, inFile(id, apiError(err))
			})
			lists[i] = pl
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return lists, nil
}

// apiList is a list of an API response, its elements named by their ID in
// errors.
func apiList(name string) where { return where{field: name, byID: true} }

// apiError drops the JSON pointer of a *FieldError about an API response:
// there is no document it could point into.
func apiError(err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		fe.Pointer = ""
	}
	return err
}

func uniqueNonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
