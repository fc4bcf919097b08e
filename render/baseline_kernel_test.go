package render_test

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/netns"
)

// baselineHost loads the baseline-shared golden case into a fresh host
// namespace connected to a peer, with the ELB's addresses on the host and
// an own-VPC source (10.1.9.9) on the peer.
func baselineHost(t *testing.T) (host, peer *netns.NS, link *netns.Link) {
	t.Helper()
	lc := loadCase(t, "testdata/cases/baseline-shared")
	host = netns.New(t, "rbh")
	peer = netns.New(t, "rbp")
	link = netns.Connect(t, peer, host)
	link.B.AddAddr(t, netip.MustParsePrefix("10.1.2.30/32"))
	link.B.AddAddr(t, netip.MustParsePrefix("2600:1f18:1:100::30/128"))
	link.A.AddAddr(t, netip.MustParsePrefix("10.1.9.9/32"))
	link.A.AddAddr(t, netip.MustParsePrefix("2600:1f18:2::1/128"))
	for _, e := range []netns.Endpoint{link.A, link.B} {
		e.NS.MustRun("ip", "route", "add", "default", "dev", e.Dev)
		e.NS.MustRun("ip", "-6", "route", "add", "default", "dev", e.Dev)
	}
	loadPlan(t, host, lc.plan)
	for _, port := range []uint16{22, 80, 443, 8080} {
		host.ServeTCP(t, port)
	}
	return host, peer, link
}

// counter returns the packet counter of the rule whose comment is comment.
func counter(t *testing.T, ns *netns.NS, save, comment string) int {
	t.Helper()
	out := ns.MustRun(save, "-c", "-t", "filter")
	re := regexp.MustCompile(`^\[(\d+):\d+\] .*--comment "?` + regexp.QuoteMeta(comment) + `"? `)
	for _, l := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	t.Fatalf("no rule with comment %q in:\n%s", comment, out)
	return 0
}

func TestBaselineKernelTraffic(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireTools(t, "ipset", "iptables-restore", "ip6tables-restore", "iptables-save")
	host, peer, _ := baselineHost(t)
	own := netip.MustParseAddr("10.1.9.9")
	dst := netip.MustParseAddr("10.1.2.30")
	for _, port := range []uint16{22, 80, 443} {
		if err := netns.Expect(true, func() error { return peer.TCP(own, netip.AddrPortFrom(dst, port), 2*time.Second) }); err != nil {
			t.Errorf("NEW tcp/%d from the VPC: %v", port, err)
		}
	}
	err := peer.TCP(own, netip.AddrPortFrom(dst, 8080), 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("tcp/8080 must be rejected (connection refused), got %v", err)
	}
	if err := netns.Expect(false, func() error { return peer.Ping(own, dst, 700*time.Millisecond) }); err != nil {
		t.Errorf("echo request: %v", err)
	}
	if n := counter(t, host, "iptables-save", "echo request"); n == 0 {
		t.Error("the echo request was not counted on its rule")
	}
	// IPv6: neighbour discovery works (nothing below would otherwise), the
	// host's own pings get their replies, and inbound 443 is open.
	h6, p6 := netip.MustParseAddr("2600:1f18:1:100::30"), netip.MustParseAddr("2600:1f18:2::1")
	if err := host.Ping(h6, p6, 2*time.Second); err != nil {
		t.Errorf("ping6 from the host: %v", err)
	}
	if err := peer.TCP(p6, netip.AddrPortFrom(h6, 443), 2*time.Second); err != nil {
		t.Errorf("tcp6/443: %v", err)
	}
	if err := netns.Expect(false, func() error { return peer.Ping(p6, h6, 700*time.Millisecond) }); err != nil {
		t.Errorf("inbound echo request over IPv6: %v", err)
	}
}

func TestBaselineKernelBadPackets(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireTools(t, "ipset", "iptables-restore", "ip6tables-restore", "iptables-save", "hping3")
	host, peer, link := baselineHost(t)
	// Let spoofed loopback and local sources reach netfilter: by default
	// the kernel drops them as martians before INPUT, which would prove
	// nothing about the rules.
	for _, k := range []string{"net.ipv4.conf.all.accept_local=1", "net.ipv4.conf." + link.B.Dev + ".accept_local=1",
		"net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf." + link.B.Dev + ".route_localnet=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf." + link.B.Dev + ".rp_filter=0"} {
		host.MustRun("sysctl", "-qw", k)
	}
	hping := func(src string, flags ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		args := append([]string{"-q", "-c", "1", "-i", "u100000", "-a", src, "-p", "80"}, flags...)
		// hping3 exits non-zero when no reply comes back, which is the point.
		peer.Exec(ctx, nil, "hping3", append(args, "10.1.2.30")...)
	}
	tests := []struct {
		name    string
		src     string
		flags   []string
		comment string
	}{
		{"SYN+FIN", "10.1.9.9", []string{"-S", "-F"}, "bad TCP flags FIN,SYN FIN,SYN"},
		{"SYN+RST", "10.1.9.9", []string{"-S", "-R"}, "bad TCP flags SYN,RST SYN,RST"},
		{"Xmas", "10.1.9.9", []string{"-F", "-P", "-U"}, "bad TCP flags FIN,SYN,RST,PSH,ACK,URG FIN,PSH,URG"},
		{"null", "10.1.9.9", nil, "bad TCP flags FIN,SYN,RST,PSH,ACK,URG NONE"},
		{"FIN without ACK", "10.1.9.9", []string{"-F"}, "bad TCP flags FIN,ACK FIN"},
		{"loopback source", "127.0.0.1", []string{"-S"}, "bogon source 127.0.0.0/8"},
		{"own address from outside", "10.1.2.30", []string{"-S"}, "own address from outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counter(t, host, "iptables-save", tt.comment)
			hping(tt.src, tt.flags...)
			if after := counter(t, host, "iptables-save", tt.comment); after <= before {
				t.Errorf("rule %q counted %d -> %d packets", tt.comment, before, after)
			}
		})
	}
	if n := counter(t, host, "iptables-save", "inbound tcp/80"); n != 0 {
		t.Errorf("a bad packet reached the accept rule of tcp/80 (%d packets)", n)
	}
}

func TestBaselineKernelScans(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireTools(t, "ipset", "iptables-restore", "ip6tables-restore", "nmap")
	_, peer, link := baselineHost(t)
	for _, scan := range []string{"-sX", "-sN", "-sF"} {
		t.Run(scan, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := peer.Exec(ctx, nil, "nmap", scan, "-Pn", "-n", "--max-retries", "0", "--host-timeout", "30s",
				"-e", link.A.Dev, "-S", "10.1.9.9", "-p", "22,80,8080,9999", "10.1.2.30")
			if err != nil {
				t.Fatalf("nmap: %v\n%s", err, out)
			}
			// Without the baseline, closed ports (8080 has no rule, 9999 no
			// listener) answer RST and nmap reports them "closed".
			if strings.Contains(out, "closed") || !strings.Contains(out, "open|filtered") {
				t.Errorf("the scan learned something:\n%s", out)
			}
		})
	}
}
