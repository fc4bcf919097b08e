package render_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenCase is a testdata/cases/<name>/case.json.
type goldenCase struct {
	Inventory string   `json:"inventory"`
	Exclude   []string `json:"exclude"`
	Host      struct {
		ENIs       []string `json:"enis"`
		Interfaces []struct {
			ID     string       `json:"id"`
			Addrs  []netip.Addr `json:"addrs"`
			Groups []string     `json:"groups"`
		} `json:"interfaces"`
		VPCCIDRs []netip.Prefix `json:"vpc_cidrs"`
	} `json:"host"`
	Options struct {
		Mode      string          `json:"mode"`
		Table     string          `json:"table"`
		Foreign   *[]netip.Prefix `json:"foreign"`
		LogAccept bool            `json:"log_accept"`
		LogDrop   bool            `json:"log_drop"`
		Baseline  *struct {
			InboundTCP  *[]uint16 `json:"inbound_tcp"`
			Interface   string    `json:"interface"`
			AllowEcho   bool      `json:"allow_echo"`
			Outbound    string    `json:"outbound"`
			KeepForward bool      `json:"keep_forward"`
		} `json:"baseline"`
		FailSafe []struct {
			Source netip.Prefix `json:"source"`
			Proto  string       `json:"proto"`
			Port   uint16       `json:"port"`
		} `json:"failsafe"`
	} `json:"options"`
	Packets []goldenPacket `json:"packets"`
	// NoKernelPackets: the packets are for Decide only (e.g. they name an
	// interface the test namespaces do not have).
	NoKernelPackets bool `json:"no_kernel_packets"`
}

type goldenPacket struct {
	Src         netip.Addr `json:"src"`
	Dst         netip.Addr `json:"dst"`
	Proto       string     `json:"proto"`
	Port        int        `json:"port"`
	ICMPType    int        `json:"icmp_type"`
	ICMPCode    int        `json:"icmp_code"`
	IPsec       bool       `json:"ipsec"`
	Established bool       `json:"established"`
	InIface     string     `json:"in"`
	OutIface    string     `json:"out"`
	Hook        string     `json:"hook"`
	TCPFlags    string     `json:"tcp_flags"`
	Invalid     bool       `json:"invalid"`
}

// flags parses "SF" style TCP flags (F S R P A U).
func (p goldenPacket) flags() uint8 {
	var f uint8
	for _, c := range p.TCPFlags {
		f |= map[rune]uint8{'F': render.FIN, 'S': render.SYN, 'R': render.RST, 'P': render.PSH, 'A': render.ACK, 'U': render.URG, 'N': render.CWR}[c]
	}
	return f
}

func (p goldenPacket) packet() render.Packet {
	proto, err := ruleset.ParseProtocol(p.Proto)
	if err != nil {
		panic(err)
	}
	return render.Packet{Src: p.Src, Dst: p.Dst, Protocol: proto, Port: p.Port, ICMPType: p.ICMPType,
		ICMPCode: p.ICMPCode, IPsec: p.IPsec, Established: p.Established, InIface: p.InIface,
		OutIface: p.OutIface, Hook: p.Hook, TCPFlags: p.flags(), Invalid: p.Invalid}
}

func (p goldenPacket) String() string {
	s := fmt.Sprintf("%s %s -> %s", p.Proto, p.Src, p.Dst)
	switch p.Proto {
	case "tcp", "udp":
		s += fmt.Sprintf(" port %d", p.Port)
	case "icmp", "icmpv6":
		s += fmt.Sprintf(" type %d code %d", p.ICMPType, p.ICMPCode)
	}
	for _, f := range []struct {
		set  bool
		text string
	}{
		{p.IPsec, " ipsec"},
		{p.Established, " established"},
		{p.InIface != "", " in " + p.InIface},
		{p.TCPFlags != "", " flags " + p.TCPFlags},
		{p.Invalid, " invalid"},
		{p.Hook != "", " hook " + p.Hook},
		{p.OutIface != "", " out " + p.OutIface},
	} {
		if f.set {
			s += f.text
		}
	}
	return s
}

// loadedCase is a golden case rendered.
type loadedCase struct {
	name string
	dir  string
	c    goldenCase
	plan *render.Plan
	// findings of the ruleset Build made; findings.txt holds them when
	// there are any.
	findings []ruleset.Finding
}

var genTime = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func loadCase(t testing.TB, dir string) *loadedCase {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c goldenCase
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	inv, err := sgsource.ReadDir(context.Background(), filepath.Join("testdata", "inventories", c.Inventory))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: genTime, Exclude: c.Exclude})
	if err != nil {
		t.Fatal(err)
	}
	x := ruleset.NewIndex(rs)
	var host render.Host
	for _, id := range c.Host.ENIs {
		var found *ruleset.Interface
		for i := range rs.Interfaces {
			if rs.Interfaces[i].ID == id {
				found = &rs.Interfaces[i]
			}
		}
		if found == nil {
			t.Fatalf("%s: no interface %s", dir, id)
		}
		host.Interfaces = append(host.Interfaces, render.HostInterface{ID: found.ID, Addrs: found.Addrs, Groups: found.Groups})
		if v := x.VPC(found.VPC); v != nil && host.VPCCIDRs == nil {
			host.VPCCIDRs = v.CIDRs
		}
	}
	for _, n := range c.Host.Interfaces {
		host.Interfaces = append(host.Interfaces, render.HostInterface{ID: n.ID, Addrs: n.Addrs, Groups: n.Groups})
	}
	if c.Host.VPCCIDRs != nil {
		host.VPCCIDRs = c.Host.VPCCIDRs
	}
	var opts render.Options
	if opts.Mode, err = render.ParseMode(c.Options.Mode); err != nil {
		t.Fatal(err)
	}
	if opts.Table, err = render.ParseTableMode(c.Options.Table); err != nil {
		t.Fatal(err)
	}
	if c.Options.Foreign != nil {
		opts.ForeignCIDRs = append([]netip.Prefix{}, (*c.Options.Foreign)...)
	}
	opts.LogAccept, opts.LogDrop = c.Options.LogAccept, c.Options.LogDrop
	if b := c.Options.Baseline; b != nil {
		opts.Baseline = &render.Baseline{Interface: b.Interface, AllowEchoRequest: b.AllowEcho, KeepForward: b.KeepForward}
		if b.InboundTCP != nil {
			opts.Baseline.InboundTCP = append([]uint16{}, (*b.InboundTCP)...)
		}
		switch b.Outbound {
		case "", "accept":
		case "restrict":
			opts.Baseline.Outbound = render.OutboundRestrict
		default:
			t.Fatalf("%s: outbound %q", dir, b.Outbound)
		}
	}
	for _, f := range c.Options.FailSafe {
		p, err := ruleset.ParseProtocol(f.Proto)
		if err != nil {
			t.Fatal(err)
		}
		opts.FailSafe = append(opts.FailSafe, render.FailSafe{Source: f.Source, Protocol: p, Port: f.Port})
	}
	plan, err := render.Render(rs, host, opts)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return &loadedCase{name: filepath.Base(dir), dir: dir, c: c, plan: plan, findings: rs.Findings}
}

func allCases(t testing.TB) []*loadedCase {
	dirs, err := filepath.Glob(filepath.Join("testdata", "cases", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no golden cases under testdata/cases")
	}
	var out []*loadedCase
	for _, d := range dirs {
		out = append(out, loadCase(t, d))
	}
	return out
}

func decideText(t testing.TB, lc *loadedCase) []byte {
	var b bytes.Buffer
	for _, p := range lc.c.Packets {
		v, err := render.Decide(lc.plan, p.packet())
		if err != nil {
			t.Fatalf("%s: %s: %v", lc.name, p, err)
		}
		fmt.Fprintf(&b, "%s\n  => %s", p, v.Action)
		if v.Rule != "" {
			fmt.Fprintf(&b, " by %s #%d\n  %s", v.Chain, v.Index, v.Rule)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	for _, lc := range allCases(t) {
		t.Run(lc.name, func(t *testing.T) {
			files := map[string][]byte{
				"ipset4.txt": lc.plan.V4.IpsetRestore(),
				"rules4.txt": lc.plan.V4.IptablesRestore(),
				"ipset6.txt": lc.plan.V6.IpsetRestore(),
				"rules6.txt": lc.plan.V6.IptablesRestore(),
				"decide.txt": decideText(t, lc),
			}
			if len(lc.findings) > 0 {
				var b bytes.Buffer
				for _, f := range lc.findings {
					fmt.Fprintf(&b, "%s %s ref=%s account=%s: %s\n", f.Kind, f.Group, f.Ref, f.Account, f.Detail)
				}
				files["findings.txt"] = b.Bytes()
			}
			for name, got := range files {
				path := filepath.Join(lc.dir, name)
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./render -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the golden file (go test ./render -update rewrites it):\n%s", path, lineDiff(string(want), string(got)))
				}
			}
		})
	}
}

// lineDiff is a small readable diff: lines only in want (-) and only in got
// (+), in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	in := func(xs []string) map[string]int {
		m := map[string]int{}
		for _, x := range xs {
			m[x]++
		}
		return m
	}
	wm, gm := in(w), in(g)
	var b strings.Builder
	for _, l := range w {
		if gm[l] == 0 {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if wm[l] == 0 {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		b.WriteString("(same lines, different order or count)\n")
	}
	return b.String()
}
