package netns_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/netns"
)

func TestTraffic(t *testing.T) {
	t.Parallel()
	a := netns.New(t, "netns")
	b := netns.New(t, "netns")
	l := netns.Connect(t, a, b)
	b.ServeTCP(t, 8080)
	b.ServeUDP(t, 8081)
	const timeout = 2 * time.Second
	for _, fam := range []struct {
		name     string
		src, dst netip.Addr
	}{
		{"ipv4", l.A.V4, l.B.V4},
		{"ipv6", l.A.V6, l.B.V6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			for _, c := range []struct {
				name  string
				probe func() error
				want  bool
			}{
				{"tcp open", func() error { return a.TCP(fam.src, netip.AddrPortFrom(fam.dst, 8080), timeout) }, true},
				{"tcp closed", func() error { return a.TCP(fam.src, netip.AddrPortFrom(fam.dst, 9), timeout) }, false},
				{"udp", func() error { return a.UDP(fam.src, netip.AddrPortFrom(fam.dst, 8081), timeout) }, true},
				{"ping", func() error { return a.Ping(fam.src, fam.dst, timeout) }, true},
				{"ping any source", func() error { return a.Ping(netip.Addr{}, fam.dst, timeout) }, true},
			} {
				t.Run(c.name, func(t *testing.T) {
					if err := netns.Expect(c.want, c.probe); err != nil {
						t.Error(err)
					}
				})
			}
		})
	}
}

func TestNamesAreUniqueAndCleanedUp(t *testing.T) {
	t.Parallel()
	var names []string
	t.Run("create", func(t *testing.T) {
		a := netns.New(t, "netns")
		b := netns.New(t, "netns")
		if a.Name == b.Name || !strings.HasPrefix(a.Name, "reyes-netns-") {
			t.Fatalf("names %q, %q", a.Name, b.Name)
		}
		if out := a.MustRun("ip", "-o", "link", "show", "lo"); !strings.Contains(out, "UP") {
			t.Errorf("loopback not up: %s", out)
		}
		names = append(names, a.Name, b.Name)
	})
	for _, n := range names {
		ns := &netns.NS{Name: n}
		if ns.Exists() {
			t.Errorf("namespace %s still exists after its test ended", n)
		}
	}
}
