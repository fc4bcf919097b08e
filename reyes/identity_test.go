package reyes_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
)

// fakeIMDS is an IMDSv2 endpoint: it issues a token on PUT
// /latest/api/token (with a TTL header) and answers metadata reads only
// with that token. A read without it is recorded as a violation.
type fakeIMDS struct {
	// paths maps metadata paths (under /latest/meta-data/) to answers.
	paths map[string]string
	// tokenStatus, if not 0, is the status of every token request.
	tokenStatus int
	// fail maps paths to an HTTP status to answer instead.
	fail map[string]int

	mu         sync.Mutex
	tokens     int
	reads      []string
	violations []string
}

const fakeToken = "AQAEAFake-Token=="

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			f.violations = append(f.violations, r.Method+" token without TTL")
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		if r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, "", http.StatusForbidden)
			return
		}
		f.tokens++
		if f.tokenStatus != 0 {
			http.Error(w, "", f.tokenStatus)
			return
		}
		fmt.Fprint(w, fakeToken)
		return
	}
	if r.Header.Get("X-aws-ec2-metadata-token") != fakeToken {
		// IMDSv1, or a request before the token: what reyes must never do.
		f.violations = append(f.violations, r.Method+" "+r.URL.Path+" without the token")
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/latest/meta-data/")
	if !ok || r.Method != http.MethodGet {
		http.Error(w, "", http.StatusNotFound)
		return
	}
	f.reads = append(f.reads, path)
	if st := f.fail[path]; st != 0 {
		http.Error(w, "", st)
		return
	}
	body, ok := f.paths[path]
	if !ok {
		http.Error(w, "", http.StatusNotFound)
		return
	}
	fmt.Fprint(w, body)
}

// imdsInterface is what the metadata service says about one ENI.
type imdsInterface struct {
	mac, id, vpc     string
	groups, v4s, v6s []string
	cidrs4, cidrs6   []string
}

func newFakeIMDS(t *testing.T, ifaces ...imdsInterface) (*fakeIMDS, string) {
	f := &fakeIMDS{paths: map[string]string{}}
	var macs []string
	for _, n := range ifaces {
		macs = append(macs, n.mac+"/")
		p := "network/interfaces/macs/" + n.mac + "/"
		f.paths[p+"interface-id"] = n.id
		f.paths[p+"vpc-id"] = n.vpc
		f.paths[p+"security-group-ids"] = strings.Join(n.groups, "\n")
		for path, vals := range map[string][]string{"local-ipv4s": n.v4s, "ipv6s": n.v6s, "vpc-ipv4-cidr-blocks": n.cidrs4, "vpc-ipv6-cidr-blocks": n.cidrs6} {
			if len(vals) > 0 { // absent when empty, as on EC2
				f.paths[p+path] = strings.Join(vals, "\n")
			}
		}
	}
	f.paths["network/interfaces/macs/"] = strings.Join(macs, "\n")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, v := range f.violations {
			t.Errorf("IMDS fake: %s", v)
		}
	})
	return f, srv.URL
}

// testRuleset is a small estate: two VPCs with overlapping CIDRs in two
// regions, a host with two interfaces, a host with one.
func testRuleset() *ruleset.Ruleset {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	return &ruleset.Ruleset{
		VPCs: []ruleset.VPC{
			{ID: "vpc-0a000000000000001", Region: "eu-west-1", CIDRs: []netip.Prefix{p("10.20.0.0/16"), p("2001:db8:20::/56")}},
			{ID: "vpc-0a000000000000002", Region: "us-west-2", CIDRs: []netip.Prefix{p("10.20.0.0/16")}},
		},
		Groups: []ruleset.Group{
			{ID: "sg-0b000000000000001", Name: "api", Region: "eu-west-1", VPC: "vpc-0a000000000000001"},
			{ID: "sg-0b000000000000002", Name: "db", Region: "eu-west-1", VPC: "vpc-0a000000000000001"},
			{ID: "sg-0b000000000000003", Name: "bastion", Region: "us-west-2", VPC: "vpc-0a000000000000002"},
		},
		Interfaces: []ruleset.Interface{
			{ID: "eni-0c000000000000001", Region: "eu-west-1", VPC: "vpc-0a000000000000001",
				Addrs: []netip.Addr{a("10.20.1.10")}, Groups: []string{"sg-0b000000000000001"}},
			{ID: "eni-0c000000000000002", Region: "eu-west-1", VPC: "vpc-0a000000000000001",
				Addrs: []netip.Addr{a("10.20.1.11"), a("10.20.1.12"), a("2001:db8:20::11")}, Groups: []string{"sg-0b000000000000001", "sg-0b000000000000002"}},
			{ID: "eni-0c000000000000003", Region: "eu-west-1", VPC: "vpc-0a000000000000001",
				Addrs: []netip.Addr{a("10.20.1.50")}, Groups: []string{"sg-0b000000000000002"}},
			// The same address as eni-...1, in an overlapping VPC.
			{ID: "eni-0c000000000000004", Region: "us-west-2", VPC: "vpc-0a000000000000002",
				Addrs: []netip.Addr{a("10.20.1.10")}, Groups: []string{"sg-0b000000000000003"}},
			{ID: "eni-0c000000000000005", Region: "us-west-2", VPC: "vpc-0a000000000000002",
				Addrs: []netip.Addr{a("10.20.9.9")}, Groups: []string{"sg-0b000000000000003"}},
		},
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// checkIdentified fails the test unless Identify found want by method,
// with the unknown groups unknown.
func checkIdentified(t *testing.T, host render.Host, src reyes.IdentitySource, err error, want render.Host, method reyes.IdentityMethod, unknown []string) {
	t.Helper()
	if err != nil {
		t.Fatalf("Identify: %v", err)
	}
	if !reflect.DeepEqual(host, want) {
		t.Errorf("host\n got %+v\nwant %+v", host, want)
	}
	if src.Method != method || !reflect.DeepEqual(src.UnknownGroups, unknown) {
		t.Errorf("source %+v, want method %s, unknown groups %v", src, method, unknown)
	}
}

// hostAddrs is an InterfaceAddrs func returning fixed addresses.
func hostAddrs(ss ...string) func() ([]netip.Addr, error) {
	return func() ([]netip.Addr, error) { return addrs(ss...), nil }
}

// closedURL is the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	return url
}

// silentURL is the URL of a listener that accepts connections and never
// answers, like a filtered metadata address.
func silentURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

func TestIdentifyIMDS(t *testing.T) {
	t.Parallel()
	eni1 := imdsInterface{mac: "02:00:00:88:3c:77", id: "eni-0c000000000000001", vpc: "vpc-0a000000000000001",
		groups: []string{"sg-0b000000000000001"}, v4s: []string{"10.20.1.10"},
		cidrs4: []string{"10.20.0.0/16"}, cidrs6: []string{"2001:db8:20::/56"}}
	eni2 := imdsInterface{mac: "02:00:00:14:1a:09", id: "eni-0c000000000000002", vpc: "vpc-0a000000000000001",
		groups: []string{"sg-0b000000000000002", "sg-0b000000000000001"}, v4s: []string{"10.20.1.11", "10.20.1.12"}, v6s: []string{"2001:db8:20::11"},
		cidrs4: []string{"10.20.0.0/16", "100.64.0.0/16"}, cidrs6: []string{"2001:db8:20::/56"}}
	unknown := eni1
	unknown.groups = []string{"sg-0b000000000000001", "sg-0fffffffffffffff9"}

	tests := []struct {
		name    string
		ifaces  []imdsInterface
		edit    func(*fakeIMDS)
		opts    reyes.IdentityOptions
		want    render.Host
		method  reyes.IdentityMethod
		unknown []string
		wantErr error
		// wantLog is a substring of the logs.
		wantLog string
	}{
		{
			name:   "one interface",
			ifaces: []imdsInterface{eni1},
			want: render.Host{
				Interfaces: []render.HostInterface{{ID: "eni-0c000000000000001", Addrs: addrs("10.20.1.10"), Groups: []string{"sg-0b000000000000001"}}},
				VPCCIDRs:   prefixes("10.20.0.0/16", "2001:db8:20::/56"),
			},
			method: reyes.IdentityIMDS,
		},
		{
			name:   "two MACs",
			ifaces: []imdsInterface{eni2, eni1},
			want: render.Host{
				Interfaces: []render.HostInterface{
					{ID: "eni-0c000000000000001", Addrs: addrs("10.20.1.10"), Groups: []string{"sg-0b000000000000001"}},
					{ID: "eni-0c000000000000002", Addrs: addrs("10.20.1.11", "10.20.1.12", "2001:db8:20::11"),
						Groups: []string{"sg-0b000000000000001", "sg-0b000000000000002"}},
				},
				VPCCIDRs: prefixes("10.20.0.0/16", "100.64.0.0/16", "2001:db8:20::/56"),
			},
			method: reyes.IdentityIMDS,
		},
		{
			name:   "a group the ruleset does not know",
			ifaces: []imdsInterface{unknown},
			want: render.Host{
				Interfaces: []render.HostInterface{{ID: "eni-0c000000000000001", Addrs: addrs("10.20.1.10"),
					Groups: []string{"sg-0b000000000000001", "sg-0fffffffffffffff9"}}},
				VPCCIDRs: prefixes("10.20.0.0/16", "2001:db8:20::/56"),
			},
			method:  reyes.IdentityIMDS,
			unknown: []string{"sg-0fffffffffffffff9"},
			wantLog: `level=WARN msg="the host is in security groups that the ruleset does not know; they allow nothing" groups=[sg-0fffffffffffffff9]`,
		},
		{
			name:   "configured VPC CIDRs win",
			ifaces: []imdsInterface{eni1},
			opts:   reyes.IdentityOptions{VPCCIDRs: prefixes("10.0.0.0/8")},
			want: render.Host{
				Interfaces: []render.HostInterface{{ID: "eni-0c000000000000001", Addrs: addrs("10.20.1.10"), Groups: []string{"sg-0b000000000000001"}}},
				VPCCIDRs:   prefixes("10.0.0.0/8"),
			},
			method: reyes.IdentityIMDS,
		},
		{
			name:   "token refused: no IMDSv1, the addresses decide",
			ifaces: []imdsInterface{eni1},
			edit:   func(f *fakeIMDS) { f.tokenStatus = http.StatusForbidden },
			opts:   reyes.IdentityOptions{InterfaceAddrs: hostAddrs("10.20.1.50", "192.168.1.1")},
			want: render.Host{
				Interfaces: []render.HostInterface{{ID: "eni-0c000000000000003", Addrs: addrs("10.20.1.50"), Groups: []string{"sg-0b000000000000002"}}},
				VPCCIDRs:   prefixes("10.20.0.0/16", "2001:db8:20::/56"),
			},
			method:  reyes.IdentityAddresses,
			wantLog: "refused an IMDSv2 token; not trying IMDSv1",
		},
		{
			name:   "a read fails after the token",
			ifaces: []imdsInterface{eni1, eni2},
			edit: func(f *fakeIMDS) {
				f.fail = map[string]int{"network/interfaces/macs/02:00:00:14:1a:09/security-group-ids": 500}
			},
			opts:    reyes.IdentityOptions{InterfaceAddrs: hostAddrs("10.20.1.50")},
			wantErr: reyes.ErrIMDS,
		},
		{
			name:    "a bad group ID",
			ifaces:  []imdsInterface{{mac: "02:00:00:88:3c:77", id: "eni-0c000000000000001", vpc: "vpc-0a000000000000001", groups: []string{"sg-BAD"}, v4s: []string{"10.20.1.10"}}},
			wantErr: reyes.ErrIMDS,
		},
		{
			name:    "an interface without addresses",
			ifaces:  []imdsInterface{{mac: "02:00:00:88:3c:77", id: "eni-0c000000000000001", vpc: "vpc-0a000000000000001", groups: []string{"sg-0b000000000000001"}}},
			wantErr: reyes.ErrIMDS,
		},
		{
			name:    "no interfaces",
			edit:    func(f *fakeIMDS) { f.paths["network/interfaces/macs/"] = "" },
			wantErr: reyes.ErrIMDS,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake, url := newFakeIMDS(t, tt.ifaces...)
			if tt.edit != nil {
				tt.edit(fake)
			}
			var logs bytes.Buffer
			opts := tt.opts
			opts.IMDSEndpoint = url
			opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			if opts.InterfaceAddrs == nil {
				opts.InterfaceAddrs = func() ([]netip.Addr, error) {
					t.Error("the address lookup ran")
					return nil, nil
				}
			}
			host, src, err := reyes.Identify(t.Context(), testRuleset(), opts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Identify error %v, want %v", err, tt.wantErr)
				}
				return
			}
			checkIdentified(t, host, src, err, tt.want, tt.method, tt.unknown)
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("logs do not say %q:\n%s", tt.wantLog, logs.String())
			}
			if fake.tokens == 0 {
				t.Errorf("no token was requested")
			}
		})
	}
}

// TestIdentifyNoIMDS checks that a host without a metadata service falls
// back to its addresses within a second, with the default timeouts.
func TestIdentifyNoIMDS(t *testing.T) {
	t.Parallel()
	want := render.Host{
		Interfaces: []render.HostInterface{{ID: "eni-0c000000000000005", Addrs: addrs("10.20.9.9"), Groups: []string{"sg-0b000000000000003"}}},
		VPCCIDRs:   prefixes("10.20.0.0/16"),
	}
	for _, tt := range []struct {
		name string
		url  func(*testing.T) string
	}{
		{"connection refused", closedURL},
		{"no answer", silentURL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			host, src, err := reyes.Identify(t.Context(), testRuleset(), reyes.IdentityOptions{
				IMDSEndpoint:   tt.url(t),
				InterfaceAddrs: hostAddrs("10.20.9.9", "fe80::1"),
				Logger:         slog.New(slog.DiscardHandler),
			})
			took := time.Since(start)
			if err != nil {
				t.Fatalf("Identify: %v", err)
			}
			if took >= time.Second {
				t.Errorf("Identify took %v without a metadata service, want < 1 s", took)
			}
			t.Logf("decided in %v", took)
			if !reflect.DeepEqual(host, want) || src.Method != reyes.IdentityAddresses || src.IMDSSkipped == nil {
				t.Errorf("got %+v %+v, want %+v by addresses with IMDSSkipped set", host, src, want)
			}
		})
	}
}

func TestIdentifyWithoutIMDS(t *testing.T) {
	t.Parallel()
	eu := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("2001:db8:20::/56")}
	// eni2 is the host's first interface, as every lookup finds it.
	eni2 := render.HostInterface{ID: "eni-0c000000000000002", Addrs: addrs("10.20.1.11", "10.20.1.12", "2001:db8:20::11"),
		Groups: []string{"sg-0b000000000000001", "sg-0b000000000000002"}}
	tests := []struct {
		name    string
		opts    reyes.IdentityOptions
		want    render.Host
		method  reyes.IdentityMethod
		unknown []string
		wantErr error
	}{
		{
			name: "configured groups",
			opts: reyes.IdentityOptions{Groups: []string{"sg-0b000000000000002", "sg-0b000000000000001", "sg-0b000000000000002"}},
			want: render.Host{
				Interfaces: []render.HostInterface{{ID: reyes.ExplicitInterfaceID, Groups: []string{"sg-0b000000000000001", "sg-0b000000000000002"}}},
				VPCCIDRs:   eu,
			},
			method: reyes.IdentityExplicit,
		},
		{
			name: "configured groups, addresses and CIDRs",
			opts: reyes.IdentityOptions{Groups: []string{"sg-0b000000000000003", "sg-0fffffffffffffff9"},
				Addrs: addrs("10.20.9.9"), VPCCIDRs: prefixes("10.20.9.0/24")},
			want: render.Host{
				Interfaces: []render.HostInterface{{ID: reyes.ExplicitInterfaceID, Addrs: addrs("10.20.9.9"), Groups: []string{"sg-0b000000000000003", "sg-0fffffffffffffff9"}}},
				VPCCIDRs:   prefixes("10.20.9.0/24"),
			},
			method:  reyes.IdentityExplicit,
			unknown: []string{"sg-0fffffffffffffff9"},
		},
		{
			name: "configured addresses are looked up",
			opts: reyes.IdentityOptions{Addrs: addrs("10.20.1.12")},
			want: render.Host{
				Interfaces: []render.HostInterface{eni2},
				VPCCIDRs:   eu,
			},
			// an address lookup, as the quickstart says ("found by explicit" was wrong)
			method: reyes.IdentityAddresses,
		},
		{
			name:    "configured addresses found nowhere",
			opts:    reyes.IdentityOptions{Addrs: addrs("192.0.2.1"), InterfaceAddrs: hostAddrs("10.20.1.50")},
			wantErr: reyes.ErrUnknownHost,
		},
		{
			name: "own addresses: two interfaces",
			opts: reyes.IdentityOptions{DisableIMDS: true, InterfaceAddrs: hostAddrs("10.20.1.11", "10.20.1.50", "172.17.0.1")},
			want: render.Host{
				Interfaces: []render.HostInterface{
					eni2,
					{ID: "eni-0c000000000000003", Addrs: addrs("10.20.1.50"), Groups: []string{"sg-0b000000000000002"}},
				},
				VPCCIDRs: eu,
			},
			method: reyes.IdentityAddresses,
		},
		{
			name: "own IPv6 address",
			opts: reyes.IdentityOptions{DisableIMDS: true, InterfaceAddrs: hostAddrs("2001:db8:20::11")},
			want: render.Host{
				Interfaces: []render.HostInterface{eni2},
				VPCCIDRs:   eu,
			},
			method: reyes.IdentityAddresses,
		},
		{
			name:    "own address in two overlapping VPCs",
			opts:    reyes.IdentityOptions{DisableIMDS: true, InterfaceAddrs: hostAddrs("10.20.1.10")},
			wantErr: reyes.ErrAmbiguousHost,
		},
		{
			name: "own address in two overlapping VPCs, VPC configured",
			opts: reyes.IdentityOptions{DisableIMDS: true, VPCID: "vpc-0a000000000000002", InterfaceAddrs: hostAddrs("10.20.1.10")},
			want: render.Host{
				Interfaces: []render.HostInterface{{ID: "eni-0c000000000000004", Addrs: addrs("10.20.1.10"), Groups: []string{"sg-0b000000000000003"}}},
				VPCCIDRs:   prefixes("10.20.0.0/16"),
			},
			method: reyes.IdentityAddresses,
		},
		{
			name:    "own addresses found nowhere",
			opts:    reyes.IdentityOptions{DisableIMDS: true, InterfaceAddrs: hostAddrs("192.0.2.1", "10.99.0.1")},
			wantErr: reyes.ErrUnknownHost,
		},
		{
			name:    "no address at all",
			opts:    reyes.IdentityOptions{DisableIMDS: true, InterfaceAddrs: hostAddrs()},
			wantErr: reyes.ErrUnknownHost,
		},
		{
			name: "listing addresses fails",
			opts: reyes.IdentityOptions{DisableIMDS: true, InterfaceAddrs: func() ([]netip.Addr, error) {
				return nil, errors.New("netlink: permission denied")
			}},
			wantErr: errors.New("listing the host's addresses: netlink: permission denied"),
		},
		{
			name:    "every method disabled",
			opts:    reyes.IdentityOptions{DisableIMDS: true, DisableAddressLookup: true},
			wantErr: reyes.ErrUnknownHost,
		},
		{
			name:    "a bad configured group",
			opts:    reyes.IdentityOptions{Groups: []string{"api"}},
			wantErr: reyes.ErrIdentityConfig,
		},
		{
			name:    "a bad configured CIDR",
			opts:    reyes.IdentityOptions{Groups: []string{"sg-0b000000000000001"}, VPCCIDRs: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.1.2.3"), 16)}},
			wantErr: reyes.ErrIdentityConfig,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			opts.Logger = slog.New(slog.DiscardHandler)
			host, src, err := reyes.Identify(t.Context(), testRuleset(), opts)
			if tt.wantErr != nil {
				if err == nil || !errors.Is(err, tt.wantErr) && !strings.Contains(err.Error(), tt.wantErr.Error()) {
					t.Fatalf("Identify error %v, want %v", err, tt.wantErr)
				}
				if !reflect.DeepEqual(host, render.Host{}) {
					t.Errorf("Identify returned a host with its error: %+v", host)
				}
				return
			}
			checkIdentified(t, host, src, err, tt.want, tt.method, tt.unknown)
		})
	}
}

// TestIdentifyCancel checks that a cancelled context is the caller's
// error, not a missing metadata service.
func TestIdentifyCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := reyes.Identify(ctx, testRuleset(), reyes.IdentityOptions{
		IMDSEndpoint:   silentURL(t),
		InterfaceAddrs: hostAddrs("10.20.9.9"),
		Logger:         slog.New(slog.DiscardHandler),
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Identify error %v, want context.Canceled", err)
	}
}

// ExampleIdentify identifies a host from the groups its operator
// configured; on EC2 the zero IdentityOptions ask the instance metadata
// service instead.
func ExampleIdentify() {
	rs := &ruleset.Ruleset{
		VPCs:   []ruleset.VPC{{ID: "vpc-0a000000000000001", Region: "eu-west-1", CIDRs: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}},
		Groups: []ruleset.Group{{ID: "sg-0b000000000000001", Name: "api", Region: "eu-west-1", VPC: "vpc-0a000000000000001"}},
	}
	host, src, err := reyes.Identify(context.Background(), rs, reyes.IdentityOptions{
		Groups: []string{"sg-0b000000000000001"},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(src.Method, host.Interfaces[0].Groups, host.VPCCIDRs)
	// Output: explicit [sg-0b000000000000001] [10.20.0.0/16]
}

// TestIdentifyIMDSv2Only: whatever status refuses the token (the SDK's
// client falls back to IMDSv1 on 403, 404 and 405 unless told not to),
// Identify reads no metadata without a token and goes on to the addresses.
func TestIdentifyIMDSv2Only(t *testing.T) {
	t.Parallel()
	eni := imdsInterface{mac: "02:00:00:14:1a:09", id: "eni-0c000000000000001", vpc: "vpc-0a000000000000001",
		groups: []string{"sg-0b000000000000001"}, v4s: []string{"10.20.1.10"}}
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden,
		http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			fake, url := newFakeIMDS(t, eni)
			fake.tokenStatus = status
			_, src, err := reyes.Identify(t.Context(), testRuleset(), reyes.IdentityOptions{
				IMDSEndpoint:   url,
				InterfaceAddrs: hostAddrs("10.20.9.9"),
				Logger:         slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatalf("Identify: %v", err)
			}
			if src.Method != reyes.IdentityAddresses || src.IMDSSkipped == nil || !strings.Contains(src.IMDSSkipped.Error(), fmt.Sprint(status)) {
				t.Errorf("source %+v, want the addresses, IMDS skipped with HTTP %d", src, status)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if len(fake.reads) != 0 || fake.tokens != 1 {
				t.Errorf("%d token requests, metadata read without a token: %v", fake.tokens, fake.reads)
			}
		})
	}
}
