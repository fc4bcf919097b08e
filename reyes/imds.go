package reyes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reyes-fw/reyes/internal/errtext"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// Internal outcomes of the token request that let Identify go on.
var (
	errIMDSAbsent  = errors.New("no instance metadata service answered")
	errIMDSRefused = errors.New("the instance metadata service refused a token")
)

const (
	// imdsTokenPath is where IMDSv2 issues session tokens (PUT).
	imdsTokenPath = "/latest/api/token"
	// imdsTTLHeader carries the token's lifetime, asked for and granted.
	imdsTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
)

// metadata reads the EC2 instance metadata service through the SDK's
// client (feature/ec2/imds), IMDSv2 only: EnableFallback is off, so a
// refused or failed token request is an error, never an IMDSv1 read. The
// client does not retry (each wait is bounded by our timeouts instead) and
// reads no AWS_EC2_METADATA_* environment.
type metadata struct {
	client *imds.Client
	http   *imdsHTTP
}

func newIMDS(opts IdentityOptions) *metadata {
	base := strings.TrimSuffix(opts.IMDSEndpoint, "/")
	if base == "" {
		base = DefaultIMDSEndpoint
	}
	h := &imdsHTTP{client: opts.HTTPClient, tokenTimeout: opts.IMDSTokenTimeout, timeout: opts.IMDSTimeout}
	if h.tokenTimeout <= 0 {
		h.tokenTimeout = DefaultIMDSTokenTimeout
	}
	if h.timeout <= 0 {
		h.timeout = DefaultIMDSTimeout
	}
	if h.client == nil {
		h.own = true
		h.client = &http.Client{
			Transport: &http.Transport{
				Proxy:        nil, // the metadata service is link-local: never through a proxy
				DialContext:  (&net.Dialer{Timeout: h.timeout}).DialContext,
				MaxIdleConns: 1,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &metadata{
		http: h,
		client: imds.New(imds.Options{
			Endpoint:              base,
			HTTPClient:            h,
			Retryer:               aws.NopRetryer{},
			ClientEnableState:     imds.ClientEnabled,
			EnableFallback:        aws.FalseTernary,
			DisableDefaultTimeout: true,
		}),
	}
}

// imdsHTTP is the metadata client's transport: it bounds each request by
// its own timeout (the token request by the short one, which decides "not
// on EC2" within a second; each read by the longer one), and records what
// became of the token request, which the SDK's error does not say
// reliably.
type imdsHTTP struct {
	client                *http.Client
	own                   bool // client is ours: close its connections
	tokenTimeout, timeout time.Duration

	mu          sync.Mutex
	tokenStatus int   // HTTP status of the last token request, 0 if none came
	tokenErr    error // its transport error
}

// Do implements the SDK's HTTPClient.
func (h *imdsHTTP) Do(req *http.Request) (*http.Response, error) {
	isToken := req.Method == http.MethodPut && req.URL.Path == imdsTokenPath
	t := h.timeout
	if isToken {
		t = h.tokenTimeout
	}
	ctx, cancel := context.WithTimeout(req.Context(), t)
	resp, err := h.client.Do(req.WithContext(ctx))
	if isToken {
		h.mu.Lock()
		h.tokenStatus, h.tokenErr = 0, err
		if err == nil {
			h.tokenStatus = resp.StatusCode
		}
		h.mu.Unlock()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if isToken && resp.StatusCode == http.StatusOK && resp.Header.Get(imdsTTLHeader) == "" {
		// IMDS states the granted lifetime; the SDK refuses a token
		// without it. A service that leaves it out granted what we asked.
		resp.Header.Set(imdsTTLHeader, req.Header.Get(imdsTTLHeader))
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// tokenOutcome is what the last token request came to.
func (h *imdsHTTP) tokenOutcome() (status int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tokenStatus, h.tokenErr
}

// cancelOnClose ends a request's timeout when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// host reads every interface of the instance.
func (m *metadata) host(ctx context.Context) (render.Host, error) {
	if m.http.own {
		defer m.http.client.CloseIdleConnections()
	}
	macs, err := m.list(ctx, "network/interfaces/macs/")
	if err != nil {
		return render.Host{}, m.tokenError(ctx, err)
	}
	if len(macs) == 0 {
		return render.Host{}, fmt.Errorf("%w: no network interfaces listed", ErrIMDS)
	}
	if len(macs) > imdsMaxMACs {
		return render.Host{}, fmt.Errorf("%w: more than %d network interfaces listed", ErrIMDS, imdsMaxMACs)
	}
	var host render.Host
	var cidrs []netip.Prefix
	seen := map[string]bool{}
	for _, mac := range macs {
		mac = strings.TrimSuffix(mac, "/")
		if !inventory.ValidMAC(mac) {
			return render.Host{}, fmt.Errorf("%w: %q is not a MAC address", ErrIMDS, errtext.Clip(mac))
		}
		n, c, err := m.iface(ctx, mac)
		if err != nil {
			return render.Host{}, err
		}
		if seen[n.ID] {
			return render.Host{}, fmt.Errorf("%w: interface %s listed twice", ErrIMDS, n.ID)
		}
		seen[n.ID] = true
		host.Interfaces = append(host.Interfaces, n)
		cidrs = append(cidrs, c...)
	}
	slices.SortFunc(host.Interfaces, func(a, b render.HostInterface) int { return strings.Compare(a.ID, b.ID) })
	host.VPCCIDRs = ruleset.SortedPrefixes(cidrs)
	return host, nil
}

// tokenError classifies the error of the first read, which asked for the
// session token: no answer in time is errIMDSAbsent, an HTTP error or an
// unusable token errIMDSRefused (Identify goes on with the next method);
// once a token was issued, any failure is ErrIMDS.
func (m *metadata) tokenError(ctx context.Context, err error) error {
	status, terr := m.http.tokenOutcome()
	switch {
	case status == http.StatusOK:
		return err // the read itself failed: already ErrIMDS
	case ctx.Err() != nil:
		return ctx.Err() // the caller gave up, which says nothing about IMDS
	case status != 0:
		return fmt.Errorf("%w: PUT %s: HTTP %d", errIMDSRefused, imdsTokenPath, status)
	case terr != nil:
		return fmt.Errorf("%w: %w", errIMDSAbsent, terr)
	}
	return fmt.Errorf("%w: %w", errIMDSAbsent, err)
}

// iface reads one interface and its VPC's CIDR blocks.
func (m *metadata) iface(ctx context.Context, mac string) (render.HostInterface, []netip.Prefix, error) {
	p := "network/interfaces/macs/" + mac + "/"
	var n render.HostInterface
	id, err := m.one(ctx, p+"interface-id")
	if err != nil {
		return n, nil, err
	}
	if !ruleset.ValidInterfaceID(id) {
		return n, nil, fmt.Errorf("%w: %s: %q is not a network interface ID", ErrIMDS, p+"interface-id", errtext.Clip(id))
	}
	n.ID = id
	vpc, err := m.one(ctx, p+"vpc-id")
	if err != nil {
		return n, nil, err
	}
	if !ruleset.ValidVPCID(vpc) {
		return n, nil, fmt.Errorf("%w: %s: %q is not a VPC ID", ErrIMDS, p+"vpc-id", errtext.Clip(vpc))
	}
	groups, err := m.list(ctx, p+"security-group-ids")
	if err != nil {
		return n, nil, err
	}
	for _, g := range groups {
		if !ruleset.ValidGroupID(g) {
			return n, nil, fmt.Errorf("%w: %s: %q is not a security group ID", ErrIMDS, p+"security-group-ids", errtext.Clip(g))
		}
	}
	if len(groups) == 0 {
		return n, nil, fmt.Errorf("%w: %s: interface %s is in no security group", ErrIMDS, p+"security-group-ids", id)
	}
	slices.Sort(groups)
	n.Groups = slices.Compact(groups)
	// Either list is absent (404) when the interface has no address of
	// that family.
	for _, f := range []struct {
		path   string
		is4    bool
		family string
	}{{"local-ipv4s", true, "IPv4"}, {"ipv6s", false, "IPv6"}} {
		vals, err := m.optionalList(ctx, p+f.path)
		if err != nil {
			return n, nil, err
		}
		for _, v := range vals {
			a, err := netip.ParseAddr(v)
			if err != nil || a.Is4() != f.is4 || a.Zone() != "" || a.Is4In6() {
				return n, nil, fmt.Errorf("%w: %s: %q is not an %s address", ErrIMDS, p+f.path, errtext.Clip(v), f.family)
			}
			n.Addrs = append(n.Addrs, a)
		}
	}
	if len(n.Addrs) == 0 {
		// An interface without addresses would apply its groups to all
		// the host's traffic: never build one from metadata.
		return n, nil, fmt.Errorf("%w: interface %s has no addresses", ErrIMDS, id)
	}
	n.Addrs = ruleset.SortedAddrs(n.Addrs)
	var cidrs []netip.Prefix
	for _, f := range []struct {
		path string
		is4  bool
	}{{"vpc-ipv4-cidr-blocks", true}, {"vpc-ipv6-cidr-blocks", false}} {
		vals, err := m.optionalList(ctx, p+f.path)
		if err != nil {
			return n, nil, err
		}
		for _, v := range vals {
			c, err := netip.ParsePrefix(v)
			if err != nil || c.Addr().Is4() != f.is4 || c.Masked() != c {
				return n, nil, fmt.Errorf("%w: %s: %q is not a CIDR block", ErrIMDS, p+f.path, errtext.Clip(v))
			}
			cidrs = append(cidrs, c)
		}
	}
	return n, cidrs, nil
}

// errNotFound is a 404 from the metadata service.
var errNotFound = errors.New("not found")

// get reads one metadata path (under /latest/meta-data/) with the token.
func (m *metadata) get(ctx context.Context, path string) (string, error) {
	out, err := m.client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		var st interface{ HTTPStatusCode() int }
		if errors.As(err, &st) && st.HTTPStatusCode() == http.StatusNotFound {
			return "", fmt.Errorf("%w: GET %s: %w", ErrIMDS, path, errNotFound)
		}
		return "", fmt.Errorf("%w: GET %s: %w", ErrIMDS, path, err)
	}
	defer out.Content.Close()
	body, err := io.ReadAll(io.LimitReader(out.Content, imdsMaxBody+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: GET %s: %w", ErrIMDS, path, err)
	case len(body) > imdsMaxBody:
		return "", fmt.Errorf("%w: GET %s: answer longer than %d bytes", ErrIMDS, path, imdsMaxBody)
	}
	return string(body), nil
}

// one reads a path holding one value.
func (m *metadata) one(ctx context.Context, path string) (string, error) {
	vals, err := m.list(ctx, path)
	if err != nil {
		return "", err
	}
	if len(vals) != 1 {
		return "", fmt.Errorf("%w: GET %s: want one value, got %d", ErrIMDS, path, len(vals))
	}
	return vals[0], nil
}

// list reads a path holding one value per line.
func (m *metadata) list(ctx context.Context, path string) ([]string, error) {
	body, err := m.get(ctx, path)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v := strings.TrimSpace(sc.Text()); v != "" {
			out = append(out, v)
		}
	}
	return out, nil
}

// optionalList is list for a path that is absent (404) when empty.
func (m *metadata) optionalList(ctx context.Context, path string) ([]string, error) {
	vals, err := m.list(ctx, path)
	if errors.Is(err, errNotFound) {
		return nil, nil
	}
	return vals, err
}
