// Command quickstart runs reyes end to end on the bundled example estate,
// with no AWS account and no change to this machine: it builds the canonical
// ruleset from the AWS CLI JSON under inventory/ (embedded in the binary),
// renders it for one host of the estate, prints the ipset and iptables
// restore text that a follower would load, and asks Decide about a few
// packets.
//
//	go run ./examples/quickstart [-host 10.20.1.10] [-mode vpc|ipsec] [-table shared|exclusive]
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

//go:embed inventory
var inventory embed.FS

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fl := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	hostAddr := fl.String("host", "10.20.1.10", "an address of the host to render for (an ENI address of the estate)")
	mode := fl.String("mode", "vpc", "vpc or ipsec")
	table := fl.String("table", "shared", "shared or exclusive")
	if err := fl.Parse(args); err != nil {
		return err
	}
	addr, err := netip.ParseAddr(*hostAddr)
	if err != nil {
		return fmt.Errorf("-host: %w", err)
	}
	var opts render.Options
	if opts.Mode, err = render.ParseMode(*mode); err != nil {
		return err
	}
	if opts.Table, err = render.ParseTableMode(*table); err != nil {
		return err
	}

	sub, err := fs.Sub(inventory, "inventory")
	if err != nil {
		return err
	}
	inv, err := sgsource.ReadFS(ctx, sub)
	if err != nil {
		return err
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: time.Now(), Scope: "quickstart"})
	if err != nil {
		return err
	}
	x := ruleset.NewIndex(rs)
	host, err := hostOf(x, rs, addr)
	if err != nil {
		return err
	}
	plan, err := render.RenderIndex(x, host, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "# reyes quickstart: %d groups, %d interfaces in %d regions; rendering for %s (%d interface(s)), mode %s, table %s\n",
		len(rs.Groups), len(rs.Interfaces), len(inv.Regions), addr, len(host.Interfaces), opts.Mode, opts.Table)
	for _, fp := range plan.Families() {
		fmt.Fprintf(out, "\n# ---- IPv%d: ipset restore ----\n%s", fp.Family, fp.IpsetRestore())
		fmt.Fprintf(out, "\n# ---- IPv%d: iptables-restore%s ----\n%s", fp.Family, map[bool]string{true: " --noflush"}[fp.Table == render.TableShared], fp.IptablesRestore())
	}
	fmt.Fprintf(out, "\n# ---- what Decide says ----\n")
	for _, p := range []render.Packet{
		{Src: netip.MustParseAddr("10.30.0.5"), Dst: addr, Protocol: 6, Port: 443},
		{Src: netip.MustParseAddr("10.30.0.5"), Dst: addr, Protocol: 6, Port: 22},
		{Src: netip.MustParseAddr("10.20.1.50"), Dst: addr, Protocol: 6, Port: 8443},
		{Src: netip.MustParseAddr("10.30.0.5"), Dst: addr, Protocol: 6, Port: 22, IPsec: true},
	} {
		if p.Src.Is4() != addr.Is4() {
			continue
		}
		v, err := render.Decide(plan, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "# %s -> %s proto %d port %d ipsec=%v: %s", p.Src, p.Dst, p.Protocol, p.Port, p.IPsec, v.Action)
		if v.Comment != "" {
			fmt.Fprintf(out, " (%s)", v.Comment)
		}
		fmt.Fprintln(out)
	}
	return nil
}

// hostOf finds the host that has addr: the interface with that address and
// every other interface of the same instance is out of reach offline, so
// the host is the interfaces that carry addr, in their VPC.
func hostOf(x *ruleset.Index, rs *ruleset.Ruleset, addr netip.Addr) (render.Host, error) {
	ifs := x.InterfacesByAddr(addr)
	if len(ifs) == 0 {
		return render.Host{}, errors.New("no interface of the estate has address " + addr.String())
	}
	var h render.Host
	for _, n := range ifs {
		h.Interfaces = append(h.Interfaces, render.HostInterface{ID: n.ID, Addrs: n.Addrs, Groups: n.Groups})
	}
	if v := x.VPC(ifs[0].VPC); v != nil {
		h.VPCCIDRs = v.CIDRs
	}
	return h, nil
}
