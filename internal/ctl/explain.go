package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
)

type explainFlags struct {
	objectFlags
	store                  string
	src, dst, proto        string
	port, icmpType, icmpCo int
	ipsec, established     bool
	iface                  string
	vpc                    string
	// plan are the follower's own flags that shape the host's plan
	// (--mode, --table, --foreign-cidr, --vpc-cidr, --groups, --addrs,
	// --fail-safe, --log-accept, --log-drop, --baseline...), from its
	// option table.
	plan *cli.PlanFlags
	set  map[string]bool // flags given on the command line
}

func explainCommand() command {
	return command{
		name:     "explain",
		synopsis: "what reyes on the host owning --dst does with a packet, and which rule decides",
		usage: "--store URL|PATH --trusted-key FILE... --src IP --dst IP --proto tcp|udp|icmp|icmpv6|N\n" +
			"         [--port N] [--icmp-type N --icmp-code N] [--ipsec] [--established] [--in-interface IF]\n" +
			"         [--vpc ID] [--max-size N] [--max-skew D] [--s3-path-style]\n" +
			"         and reyes-follower's flags that shape the plan:\n" + planFlagsUsage(),
		help: `
Fetches and verifies the ruleset in --store, finds the host as its follower
would, renders that host's policy with the follower's own flags (the same
names, defaults and checks as reyes-follower: give it the flags the host's
follower runs with), and asks render.Decide what it does with the packet:
allow, drop, or pass (not reyes' business). Prints the verdict, the
deciding rule as iptables-restore text, the chain and the rule number in it
as the host loads them (iptables -S CHAIN N prints it), its comment
(which names the security group rule) and the chains the packet went
through.

The host: with --groups, the one interface a follower with --groups makes
(its rules in REYES-FILTER, for all the host's traffic); with --addrs, the
interfaces holding those addresses, as a follower with --addrs, or one that
finds itself by IMDS or its own addresses, loads them (one REYES-eni-<id>
chain each); without either, the interface that holds --dst. Give every
address of a host with several interfaces in --addrs.

The exit status is 0 whatever the verdict: the answer is the output. It is
non-zero only when there is no answer (bad flags, an object that does not
verify, a host the ruleset does not hold). An expired ruleset is still
explained, with a warning. The host's own iptables rules are not modelled.`,
		flags: func(c *invocation, fl *flag.FlagSet) func(context.Context, []string) error {
			f := &explainFlags{}
			f.define(fl)
			return func(ctx context.Context, _ []string) error {
				f.visit(fl)
				return c.explain(ctx, f)
			}
		},
	}
}

// planFlagsUsage lists the follower's plan flags for the usage line,
// wrapped.
func planFlagsUsage() string {
	fl := flag.NewFlagSet("", flag.ContinueOnError)
	cli.DefinePlanFlags(fl)
	var b strings.Builder
	line := "        "
	fl.VisitAll(func(f *flag.Flag) {
		item := " [--" + f.Name + "]"
		if isBool(f) {
			// no value
		} else if _, usage := flag.UnquoteUsage(f); strings.Contains(usage, "repeatable") {
			item = " [--" + f.Name + " V]..."
		} else {
			item = " [--" + f.Name + " V]"
		}
		if len(line)+len(item) > 100 {
			b.WriteString(line + "\n")
			line = "        "
		}
		line += item
	})
	b.WriteString(line)
	return b.String()
}

func (f *explainFlags) define(fl *flag.FlagSet) {
	f.objectFlags.define(fl, "trust the public key(s) in `FILE` (repeatable; required)")
	fl.DurationVar(&f.maxSkew, "max-skew", reyes.DefaultMaxSkew, "how far in the future the signature may be, as the followers' max_skew `D`")
	fl.StringVar(&f.store, "store", "", "read the signed ruleset from `URL|PATH`: s3://bucket/key or a file (required)")
	fl.StringVar(&f.src, "src", "", "the packet's source `IP` (required)")
	fl.StringVar(&f.dst, "dst", "", "the packet's destination `IP`, an address of the host asked about (required)")
	fl.StringVar(&f.proto, "proto", "", "the packet's protocol `P`: tcp, udp, icmp, icmpv6 or a number 0..255 (required)")
	fl.IntVar(&f.port, "port", 0, "the destination port `N` (required for tcp and udp)")
	fl.IntVar(&f.icmpType, "icmp-type", 0, "the ICMP or ICMPv6 type `N` (default: echo request, 8 or 128)")
	fl.IntVar(&f.icmpCo, "icmp-code", 0, "the ICMP or ICMPv6 code `N`")
	fl.BoolVar(&f.ipsec, "ipsec", false, "the packet arrived over IPsec (decapsulated by an inbound policy)")
	fl.BoolVar(&f.established, "established", false, "the packet belongs to a connection conntrack already knows")
	fl.StringVar(&f.iface, "in-interface", "", "the interface `IF` the packet came in on (default: the baseline's interface, else none)")
	fl.StringVar(&f.vpc, "vpc", "", "look the host's addresses up in this VPC `ID` only (for overlapping VPCs)")
	f.plan = cli.DefinePlanFlags(fl)
}

// visit records which flags the command line set.
func (f *explainFlags) visit(fl *flag.FlagSet) {
	f.set = map[string]bool{}
	fl.Visit(func(x *flag.Flag) { f.set[x.Name] = true })
}

// question is the validated form of the explain flags.
type question struct {
	pkt  render.Packet
	opts render.Options
	id   reyes.IdentityOptions
	// fromDst: the host was looked up by --dst alone.
	fromDst bool
}

func (f *explainFlags) validate() (question, error) {
	var q question
	bad := func(format string, a ...any) (question, error) {
		return question{}, &UsageError{Cmd: "explain", Err: fmt.Errorf(format, a...)}
	}
	if err := f.objectFlags.check("explain", true); err != nil {
		return question{}, err
	}
	for _, req := range []struct{ name, v string }{{"store", f.store}, {"src", f.src}, {"dst", f.dst}, {"proto", f.proto}} {
		if req.v == "" {
			return bad("--%s is required", req.name)
		}
	}
	var err error
	if q.pkt.Src, err = parseAddr(f.src); err != nil {
		return bad("--src: %v", err)
	}
	if q.pkt.Dst, err = parseAddr(f.dst); err != nil {
		return bad("--dst: %v", err)
	}
	if q.pkt.Src.Is4() != q.pkt.Dst.Is4() {
		return bad("--src %s and --dst %s are of different address families", q.pkt.Src, q.pkt.Dst)
	}
	v6 := q.pkt.Dst.Is6()
	proto, err := ruleset.ParseProtocol(strings.ToLower(f.proto))
	if err != nil || proto == ruleset.ProtoAll {
		return bad("--proto %q: want tcp, udp, icmp, icmpv6 or a protocol number 0..255", f.proto)
	}
	q.pkt.Protocol = proto
	switch proto {
	case ruleset.ProtoTCP, ruleset.ProtoUDP:
		if !f.set["port"] {
			return bad("--port is required for --proto %s", f.proto)
		}
		if f.port < 0 || f.port > 65535 {
			return bad("--port %d: want 0..65535", f.port)
		}
		if f.set["icmp-type"] || f.set["icmp-code"] {
			return bad("--icmp-type and --icmp-code are for icmp and icmpv6 only")
		}
		q.pkt.Port = f.port
	case ruleset.ProtoICMP, ruleset.ProtoICMPv6:
		if proto == ruleset.ProtoICMP && v6 {
			return bad("--proto icmp with IPv6 addresses: use icmpv6")
		}
		if proto == ruleset.ProtoICMPv6 && !v6 {
			return bad("--proto icmpv6 with IPv4 addresses: use icmp")
		}
		if f.set["port"] {
			return bad("--port is for tcp and udp only; use --icmp-type and --icmp-code")
		}
		q.pkt.ICMPType, q.pkt.ICMPCode = 8, 0
		if v6 {
			q.pkt.ICMPType = 128
		}
		if f.set["icmp-type"] {
			q.pkt.ICMPType = f.icmpType
		}
		if f.set["icmp-code"] {
			q.pkt.ICMPCode = f.icmpCo
		}
		if q.pkt.ICMPType < 0 || q.pkt.ICMPType > 255 || q.pkt.ICMPCode < 0 || q.pkt.ICMPCode > 255 {
			return bad("--icmp-type %d --icmp-code %d: want 0..255", q.pkt.ICMPType, q.pkt.ICMPCode)
		}
	default:
		if f.set["port"] || f.set["icmp-type"] || f.set["icmp-code"] {
			return bad("--port, --icmp-type and --icmp-code do not apply to protocol %d", proto)
		}
	}
	q.pkt.IPsec, q.pkt.Established = f.ipsec, f.established

	if q.opts, q.id, err = f.plan.Options(); err != nil {
		// "configuration: vpc_cidr: ..." is the follower's wording;
		// here the key is a flag.
		msg := strings.TrimPrefix(err.Error(), reyes.ErrConfig.Error()+": ")
		if key, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(key, " -") {
			msg = "--" + strings.ReplaceAll(key, "_", "-") + ": " + rest
		}
		return bad("%s", msg)
	}
	q.pkt.InIface = f.iface
	if q.pkt.InIface == "" && q.opts.Baseline != nil {
		q.pkt.InIface = q.opts.Baseline.Interface
	}
	switch {
	case len(q.id.Groups) > 0:
		if f.vpc != "" {
			return bad("--vpc is for looking the host's addresses up; with --groups give --vpc-cidr instead")
		}
	case len(q.id.Addrs) > 0:
		if !slices.Contains(q.id.Addrs, q.pkt.Dst) {
			return bad("--dst %s is not one of the host's --addrs", q.pkt.Dst)
		}
	default:
		q.id.Addrs = []netip.Addr{q.pkt.Dst}
		q.fromDst = true
	}
	if f.vpc != "" && !ruleset.ValidVPCID(f.vpc) {
		return bad("--vpc: %q is not a VPC ID", f.vpc)
	}
	q.id.VPCID = f.vpc
	q.id.DisableIMDS, q.id.DisableAddressLookup = true, true
	q.id.Logger = slog.New(slog.DiscardHandler)
	return q, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: zones are not allowed", s)
	}
	return a.Unmap(), nil
}

func (c *invocation) explain(ctx context.Context, f *explainFlags) error {
	q, err := f.validate()
	if err != nil {
		return err
	}
	now := c.now()
	res, err := f.open(ctx, f.store, now, true)
	if err != nil {
		return err
	}
	if h := res.rs.Header; now.After(h.NotAfter) {
		fmt.Fprintf(c.stderr, "reyesctl: warning: the ruleset (serial %d) expired at %s, %s ago; followers refuse it and keep their last good rules\n",
			h.Serial, h.NotAfter.UTC().Format(time.RFC3339), round(now.Sub(h.NotAfter)))
	}
	host, src, err := reyes.Identify(ctx, res.rs, q.id)
	if err != nil {
		if errors.Is(err, reyes.ErrUnknownHost) && len(q.id.Groups) == 0 {
			return fmt.Errorf("%w (no interface in the ruleset has address %s; give --groups to ask about a host by its security groups)", err, q.pkt.Dst)
		}
		return err
	}
	plan, err := render.Render(res.rs, host, q.opts)
	if err != nil {
		return fmt.Errorf("rendering the policy: %w", err)
	}
	v, err := render.Decide(plan, q.pkt)
	if err != nil {
		return fmt.Errorf("deciding: %w", err)
	}
	return printVerdict(c.stdout, host, src, q, v)
}

func printVerdict(out io.Writer, host render.Host, src reyes.IdentitySource, q question, v render.Verdict) error {
	w := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	for _, n := range host.Interfaces {
		addrs := "all of the host's traffic"
		if len(n.Addrs) > 0 {
			addrs = joinStrings(n.Addrs)
		}
		fmt.Fprintf(w, "host:\t%s (%s) groups %s\n", n.ID, addrs, strings.Join(n.Groups, ","))
	}
	if len(src.UnknownGroups) > 0 {
		fmt.Fprintf(w, "unknown groups:\t%s (not in the ruleset: they allow nothing)\n", strings.Join(src.UnknownGroups, ","))
	}
	vpc := "none"
	if len(host.VPCCIDRs) > 0 {
		vpc = joinStrings(host.VPCCIDRs)
	}
	if q.fromDst && len(host.Interfaces) == 1 {
		fmt.Fprintf(w, "host view:\tthe interface holding --dst only; a host with more interfaces loads one REYES-eni-<id> chain each: give all its addresses in --addrs\n")
	}
	fmt.Fprintf(w, "own VPC:\t%s\n", vpc)
	fmt.Fprintf(w, "packet:\t%s\n", describePacket(q.pkt))
	fmt.Fprintf(w, "policy:\t%s\n", policyText(q.opts))
	fmt.Fprintf(w, "verdict:\t%s\n", v.Action)
	if v.Rule != "" {
		tool := "iptables"
		if q.pkt.Dst.Is6() {
			tool = "ip6tables"
		}
		fmt.Fprintf(w, "rule:\t%s\n", v.Rule)
		fmt.Fprintf(w, "where:\trule %d of chain %s, as the host loads it (%s -S %s %d)\n", v.Index, v.Chain, tool, v.Chain, v.Index)
	} else {
		fmt.Fprintf(w, "rule:\tnone (the packet ran off the end of reyes' chains)\n")
	}
	if v.Comment != "" {
		fmt.Fprintf(w, "comment:\t%s\n", v.Comment)
	}
	fmt.Fprintf(w, "path:\t%s\n", strings.Join(v.Path, " -> "))
	if q.opts.Table == render.TableShared && v.Action != render.Dropped {
		fmt.Fprintf(w, "note:\tin shared mode the host's own INPUT rules still see this packet\n")
	}
	return w.Flush()
}

func describePacket(p render.Packet) string {
	var b strings.Builder
	switch p.Protocol {
	case ruleset.ProtoTCP:
		fmt.Fprintf(&b, "tcp %s -> %s port %d", p.Src, p.Dst, p.Port)
	case ruleset.ProtoUDP:
		fmt.Fprintf(&b, "udp %s -> %s port %d", p.Src, p.Dst, p.Port)
	case ruleset.ProtoICMP:
		fmt.Fprintf(&b, "icmp %s -> %s type %d code %d", p.Src, p.Dst, p.ICMPType, p.ICMPCode)
	case ruleset.ProtoICMPv6:
		fmt.Fprintf(&b, "icmpv6 %s -> %s type %d code %d", p.Src, p.Dst, p.ICMPType, p.ICMPCode)
	default:
		fmt.Fprintf(&b, "proto %d %s -> %s", p.Protocol, p.Src, p.Dst)
	}
	if p.IPsec {
		b.WriteString(", over IPsec")
	}
	if p.Established {
		b.WriteString(", established")
	}
	return b.String()
}

// policyText says which of the follower's options the policy was rendered
// with.
func policyText(o render.Options) string {
	parts := []string{"mode " + o.Mode.String(), "table " + o.Table.String(), "foreign " + foreignText(o)}
	if len(o.FailSafe) > 0 {
		fs := make([]string, len(o.FailSafe))
		for i, f := range o.FailSafe {
			fs[i] = failSafeText(f)
		}
		parts = append(parts, "fail-safe "+strings.Join(fs, ","))
	}
	if o.LogAccept {
		parts = append(parts, "log-accept")
	}
	if o.LogDrop {
		parts = append(parts, "log-drop")
	}
	if o.Baseline != nil {
		parts = append(parts, "baseline on "+o.Baseline.Interface)
	}
	return strings.Join(parts, ", ")
}

func failSafeText(f render.FailSafe) string {
	s := "any"
	if f.Source.IsValid() {
		s = f.Source.String()
	}
	switch f.Protocol {
	case ruleset.ProtoTCP:
		s += "/tcp"
	case ruleset.ProtoUDP:
		s += "/udp"
	}
	if f.Port != 0 {
		s += fmt.Sprintf("/%d", f.Port)
	}
	return s
}

func foreignText(o render.Options) string {
	if o.Mode != render.ModeVPC {
		return "n/a"
	}
	if o.ForeignCIDRs == nil {
		return joinStrings(render.DefaultForeignCIDRs)
	}
	return joinStrings(o.ForeignCIDRs)
}

func joinStrings[T fmt.Stringer](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}
