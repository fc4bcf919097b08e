// Command customsource shows a custom inventory source with reyes.Leader.
// A source is anything with
//
//	Fetch(ctx context.Context) (*inventory.Inventory, error)
//
// Here two are defined (source.go): CSV, an estate described in a CSV file
// (VPCs, security groups and interfaces from a CMDB rather than the EC2
// API), and Merge, which merges several sources region by region (several
// AWS accounts, or EC2 plus a CSV estate). The example merges the
// quickstart's inventory directory (standing in for an sgsource.EC2) with
// estate.csv, whose monitoring group allows a group of the other source;
// publishes the signed ruleset with a throwaway key to a file store in a
// temporary directory; reads it back as a follower would; and asks
// render.Decide about packets to the CSV estate's monitoring host.
//
// Run it from the repository root (no AWS, no network, no root; the
// temporary directory is removed at the end):
//
//	go run ./examples/customsource [-inventory DIR] [-csv FILE]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "customsource:", err)
		os.Exit(1)
	}
}

// monitoringHost is the CSV estate's monitoring host.
var monitoringHost = netip.MustParseAddr("10.40.0.7")

func run(ctx context.Context, args []string, out io.Writer) error {
	fl := flag.NewFlagSet("customsource", flag.ContinueOnError)
	inventoryDir := fl.String("inventory", "examples/quickstart/inventory", "inventory directory (AWS CLI JSON), the first source")
	csvFile := fl.String("csv", "examples/customsource/estate.csv", "CSV estate, the second source")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	for _, p := range []string{*inventoryDir, *csvFile} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (run from the repository root, or give -inventory and -csv)", err)
		}
	}
	dir, err := os.MkdirTemp("", "reyes-customsource-")
	if err != nil {
		return fmt.Errorf("making the temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	// In production the first source would be
	// &sgsource.EC2{Regions: ..., Config: &accountA}, and a second account
	// another sgsource.EC2 with its own Config.
	source := Merge{sgsource.Dir{Path: *inventoryDir}, CSV{Path: *csvFile}}
	fmt.Fprintf(out, "== sources ==\n1. sgsource.Dir %s\n2. CSV %s\n", *inventoryDir, *csvFile)

	secret, public, err := sign.GenerateKey("reyes customsource example", "", time.Now().Add(-time.Minute))
	if err != nil {
		return err
	}
	signer, err := sign.ParseSigner(secret)
	if err != nil {
		return err
	}
	trusted, err := sign.ParseKeyring(public)
	if err != nil {
		return err
	}
	store := reyes.NewFileStore(filepath.Join(dir, "ruleset.signed"), reyes.StoreOptions{})
	leader := &reyes.Leader{
		Source: source,
		Store:  store,
		Signer: signer,
		Build:  ruleset.BuildOptions{Scope: "merged"},
		Logger: slog.New(slog.DiscardHandler),
	}
	lr, err := leader.RunOnce(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== leader ==\npublished scope %q serial %d: %d security groups, %d interfaces, %d bytes\n",
		lr.Header.Scope, lr.Header.Serial, lr.Groups, lr.Interfaces, lr.Bytes)

	// What a follower gets: fetch and verify the signed root, then read
	// the parts it names (each checked against the root's digests). A
	// follower reads only the parts its host needs (ruleset.LoadView);
	// this program shows the whole estate.
	obj, _, err := store.Get(ctx, "")
	if err != nil {
		return err
	}
	payload, err := sign.OpenBytes(obj, trusted, time.Now())
	if err != nil {
		return err
	}
	root, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
	if err != nil {
		return err
	}
	rs, err := ruleset.Join(ctx, root, func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
		return store.Parts().Get(ctx, ref.Name, ref.Size)
	})
	if err != nil {
		return err
	}
	x := ruleset.NewIndex(rs)
	fmt.Fprintf(out, "\n== the merged ruleset ==\n")
	for _, g := range rs.Groups {
		fmt.Fprintf(out, "%-13s %-21s %-12s %d rule(s), %d member address(es)\n",
			g.Region, g.ID, g.Name, len(g.Rules), len(x.Members(g.ID)))
	}

	host, _, err := reyes.Identify(ctx, rs, reyes.IdentityOptions{
		Addrs: []netip.Addr{monitoringHost}, DisableIMDS: true, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	plan, err := render.Render(rs, host, render.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== render.Decide for the CSV estate's monitoring host %s ==\n", monitoringHost)
	for _, p := range []struct {
		what string
		pkt  render.Packet
	}{
		{"api host (group of source 1) scrapes node_exporter", render.Packet{Src: netip.MustParseAddr("10.20.1.10"), Protocol: 6, Port: 9100}},
		{"load balancer scrapes node_exporter", render.Packet{Src: netip.MustParseAddr("10.20.1.50"), Protocol: 6, Port: 9100}},
		{"bastion pings", render.Packet{Src: netip.MustParseAddr("10.30.0.5"), Protocol: 1, ICMPType: 8}},
	} {
		p.pkt.Dst = monitoringHost
		v, err := render.Decide(plan, p.pkt)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-52s %s -> %s: %s", p.what, p.pkt.Src, p.pkt.Dst, v.Action)
		if v.Comment != "" {
			fmt.Fprintf(out, " (%s)", v.Comment)
		}
		fmt.Fprintln(out)
	}
	return nil
}
