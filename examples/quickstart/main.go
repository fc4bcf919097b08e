// Command quickstart runs reyes end to end on the bundled example estate,
// with no AWS account, no network, no root and no change to this machine:
//
//  1. a leader reads the AWS CLI JSON under inventory/ (embedded in the
//     binary), builds the canonical ruleset, signs it with a throwaway key
//     made on the spot and publishes it to a file store in a temporary
//     directory: content-addressed parts (ruleset.signed.parts/) and the
//     signed root naming them (ruleset.signed);
//  2. the signed root is shown: a header line, the detached signature, the
//     root (the ruleset's header and one sha256sum line per part);
//  3. a follower fetches that object, verifies it with the public key,
//     checks its freshness, finds the host by its address (-host) and, in
//     dry-run mode, prints the ipset and iptables-restore text it would
//     load (and the difference from the kernel when iptables-save can read
//     it; otherwise it says "kernel not compared");
//  4. render.Decide says what that plan does with a few packets.
//
// The temporary directory is removed at the end; with -dir DIR the files
// are written to DIR and kept, and the "same with the binaries" commands it
// prints use them.
//
//	go run ./examples/quickstart [-host 10.20.1.10] [-mode vpc|ipsec] [-table shared|exclusive] [-dir DIR]
package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

//go:embed inventory
var inventoryFS embed.FS

// scope names the example estate; leader and follower must agree on it.
const scope = "quickstart"

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// fsSource is an sgsource.Source over a file system holding an inventory
// directory (here the embedded one): every Fetch reads it again.
type fsSource struct{ fsys fs.FS }

// Fetch reads the inventory with sgsource.ReadFS.
func (s fsSource) Fetch(ctx context.Context) (*inventory.Inventory, error) {
	return sgsource.ReadFS(ctx, s.fsys)
}

// config is what the flags say.
type config struct {
	host   netip.Addr
	render render.Options
	// dir, if set, holds the files and is kept.
	dir string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fl := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fl.SetOutput(stderr)
	hostAddr := fl.String("host", "10.20.1.10", "an address of the host to render for (an ENI address of the estate)")
	mode := fl.String("mode", "vpc", "vpc or ipsec")
	table := fl.String("table", "shared", "shared or exclusive")
	dir := fl.String("dir", "", "write the keys, the signed object and the state here and keep them (default: a temporary directory, removed at the end)")
	if err := fl.Parse(args); err != nil {
		return config{}, err
	}
	if fl.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	c := config{dir: *dir}
	var err error
	if c.host, err = netip.ParseAddr(*hostAddr); err != nil {
		return config{}, fmt.Errorf("-host: %w", err)
	}
	if c.render.Mode, err = render.ParseMode(*mode); err != nil {
		return config{}, fmt.Errorf("-mode: %w", err)
	}
	if c.render.Table, err = render.ParseTableMode(*table); err != nil {
		return config{}, fmt.Errorf("-table: %w", err)
	}
	return c, nil
}

// run is the quickstart. kernel runs the tools the follower's dry run
// reads the kernel's reyes rules with, to show the difference; nil means
// this machine's own.
func run(ctx context.Context, args []string, out, stderr io.Writer, kernel apply.Runner) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, keep := c.dir, c.dir != ""
	if keep {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("making %s: %w", dir, err)
		}
	} else {
		if dir, err = os.MkdirTemp("", "reyes-quickstart-"); err != nil {
			return fmt.Errorf("making the temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	// The "same with the binaries" commands name files that exist after
	// the run: those in -dir, or files the commands make themselves in
	// ./reyes-quickstart (the temporary directory is gone by then).
	shown := dir
	if !keep {
		shown = "reyes-quickstart"
	}
	showFile := func(name string) string { return filepath.Join(shown, name) }
	// Warnings (an unknown group, say) go to stderr; the story goes to out.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Step 1: the leader.
	secretFile, publicFile := filepath.Join(dir, "leader.key"), filepath.Join(dir, "leader.pub")
	storeFile := filepath.Join(dir, "ruleset.signed")
	if keep {
		// A kept directory may hold an earlier run's files.
		for _, f := range []string{secretFile, publicFile, storeFile} {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("replacing %s: %w", f, err)
			}
		}
		if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
			return fmt.Errorf("replacing %s: %w", filepath.Join(dir, "state"), err)
		}
	}
	fmt.Fprintf(out, "== 1. leader: bundled inventory -> ruleset -> signed object in a file store ==\n")
	secret, public, err := sign.GenerateKey("reyes quickstart", "quickstart@example.invalid", time.Now().Add(-time.Minute))
	if err != nil {
		return err
	}
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		return fmt.Errorf("writing the secret key: %w", err)
	}
	if err := os.WriteFile(publicFile, public, 0o644); err != nil {
		return fmt.Errorf("writing the public key: %w", err)
	}
	signer, err := sign.LoadSigner(secretFile)
	if err != nil {
		return err
	}
	where := "in a temporary directory, removed at the end (-dir DIR keeps them)"
	if keep {
		where = "kept in " + dir
	}
	fmt.Fprintf(out, "throwaway signing key %s, %s\n  secret (leader):   %s\n  public (followers): %s\n",
		signer.Fingerprint(), where, secretFile, publicFile)

	sub, err := fs.Sub(inventoryFS, "inventory")
	if err != nil {
		return fmt.Errorf("opening the embedded inventory: %w", err)
	}
	store := reyes.NewFileStore(storeFile, reyes.StoreOptions{})
	leader := &reyes.Leader{
		Source: fsSource{sub},
		Store:  store,
		Signer: signer,
		Build:  ruleset.BuildOptions{Scope: scope, TTL: time.Hour},
		Logger: log,
	}
	lr, err := leader.RunOnce(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "published scope %q serial %d: %d security groups, %d interfaces, %d bytes, valid until %s\n  to %s\n",
		lr.Header.Scope, lr.Header.Serial, lr.Groups, lr.Interfaces, lr.Bytes, lr.Header.NotAfter.Format(time.RFC3339), store)
	fmt.Fprintf(out, "(the same with the binaries, from the repository's root:\n")
	if !keep {
		fmt.Fprintf(out, "  mkdir -p %s && reyesctl keygen --secret %s --public %s\n", shown, showFile("leader.key"), showFile("leader.pub"))
	}
	fmt.Fprintf(out, "  reyes-leader --source examples/quickstart/inventory --store %s --signing-key %s --scope %s)\n",
		showFile("ruleset.signed"), showFile("leader.key"), scope)

	// Step 2: the signed object.
	obj, err := os.ReadFile(storeFile)
	if err != nil {
		return fmt.Errorf("reading the signed object: %w", err)
	}
	fmt.Fprintf(out, "\n== 2. the signed root: a header line, an OpenPGP detached signature, the root (one sha256sum line per part, the %d parts in %s) ==\n",
		lr.Parts, store.Parts())
	printObject(out, obj)

	// Step 3: the follower.
	trusted, err := sign.LoadKeyring(publicFile)
	if err != nil {
		return err
	}
	follower := &reyes.Follower{
		Store:     store,
		Trusted:   trusted,
		StateDir:  filepath.Join(dir, "state"),
		Freshness: reyes.FreshnessPolicy{Scope: scope},
		Identity:  reyes.IdentityOptions{Addrs: []netip.Addr{c.host}, DisableIMDS: true},
		Render:    c.render,
		Apply:     apply.Options{Runner: kernel},
		DryRun:    true,
		Out:       out,
		Logger:    log,
	}
	fmt.Fprintf(out, "\n== 3. follower (dry run): fetch, verify, check freshness, find host %s, render; nothing is applied ==\n", c.host)
	fmt.Fprintf(out, "(the same with the binary: reyes-follower --store %s --trusted-key %s --scope %s --state-dir %s --addrs %s --no-imds --mode %s --table %s --dry-run)\n\n",
		showFile("ruleset.signed"), showFile("leader.pub"), scope, showFile("state"), c.host, c.render.Mode, c.render.Table)
	fr, err := follower.RunOnce(ctx)
	if err != nil {
		return err
	}
	explainUnreachable(out, fr.Plan, c.render)

	// Step 4: what the plan does with a few packets.
	fmt.Fprintf(out, "\n== 4. what render.Decide says about a few packets to %s ==\n", c.host)
	for _, p := range []render.Packet{
		{Src: netip.MustParseAddr("10.30.0.5"), Dst: c.host, Protocol: 6, Port: 443},
		{Src: netip.MustParseAddr("10.30.0.5"), Dst: c.host, Protocol: 6, Port: 22},
		{Src: netip.MustParseAddr("10.20.1.50"), Dst: c.host, Protocol: 6, Port: 8443},
		{Src: netip.MustParseAddr("10.30.0.5"), Dst: c.host, Protocol: 6, Port: 22, IPsec: true},
	} {
		if p.Src.Is4() != c.host.Is4() {
			continue
		}
		v, err := render.Decide(fr.Plan, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s -> %s proto %d port %d ipsec=%v: %s", p.Src, p.Dst, p.Protocol, p.Port, p.IPsec, v.Action)
		if v.Comment != "" {
			fmt.Fprintf(out, " (%s)", v.Comment)
		}
		fmt.Fprintln(out)
	}
	if keep {
		fmt.Fprintf(out, "\nkept the keys, the signed object and the state in %s; nothing else on this machine was changed\n", dir)
	} else {
		fmt.Fprintf(out, "\nremoved %s; nothing on this machine was changed\n", dir)
	}
	return nil
}

// explainUnreachable says why a family's filter chains were printed
// although nothing sends traffic to them: in vpc mode only traffic from the
// foreign ranges is filtered, and with IPv4 ranges only (the default
// 10.0.0.0/8) no IPv6 packet reaches REYES-FILTER. The chains are loaded
// all the same, ready for an IPv6 foreign range.
func explainUnreachable(out io.Writer, plan *render.Plan, opts render.Options) {
	if plan == nil || opts.Mode != render.ModeVPC {
		return
	}
	for _, fp := range plan.Families() {
		if len(fp.Chains) == 0 || jumpsToFilter(fp.Chains[0]) {
			continue
		}
		fmt.Fprintf(out, "\n(note: nothing jumps to the IPv%d %s above: in vpc mode reyes filters only traffic from the foreign ranges, and none is an IPv%d range, so every IPv%d packet passes untouched; the chains are loaded all the same. Give an IPv%d range with --foreign-cidr to filter it.)\n",
			fp.Family, render.FilterChain, fp.Family, fp.Family, fp.Family)
	}
}

// jumpsToFilter reports whether a rule of the chain sends packets to
// REYES-FILTER.
func jumpsToFilter(c render.Chain) bool {
	for _, r := range c.Rules {
		if (r.Action.Kind == render.Goto || r.Action.Kind == render.Jump) && r.Action.Chain == render.FilterChain {
			return true
		}
	}
	return false
}

// printObject shows the start of each section of a signed object: the
// header line, the armored signature, and the first lines of the payload (a
// whole ruleset's JSON is indented here for reading; the object holds it
// compact, and the signature covers those exact bytes).
func printObject(out io.Writer, obj []byte) {
	payload, sig, err := sign.Unpack(obj)
	if err != nil {
		fmt.Fprintf(out, "(%v)\n", err)
		return
	}
	header, _, _ := bytes.Cut(obj, []byte("\n"))
	fmt.Fprintf(out, "%s\n%s", header, sig)
	if ruleset.IsRoot(payload) {
		// Leaders sign the root gzip-compressed; shown inflated.
		text, err := ruleset.RootText(payload)
		if err != nil {
			fmt.Fprintf(out, "(%v)\n", err)
			return
		}
		if len(text) != len(payload) {
			fmt.Fprintf(out, "(%d bytes of gzip; inflated:)\n", len(payload))
		}
		payload = text
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, payload, "", "  "); err != nil {
		pretty.Reset()
		pretty.Write(payload)
	}
	lines := strings.Split(strings.TrimRight(pretty.String(), "\n"), "\n")
	const show = 8
	for _, l := range lines[:min(show, len(lines))] {
		fmt.Fprintln(out, clip(l, 110))
	}
	if len(lines) > show {
		fmt.Fprintf(out, "  ... (%d more lines when indented)\n", len(lines)-show)
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
