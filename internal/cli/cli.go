package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/internal/route"
	"github.com/reyes-fw/reyes/reyes"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// MinInterval is the shortest --interval the binaries accept.
const MinInterval = 10 * time.Second

// Defaults of --timeout, which bounds each run of the binaries: well inside
// the 5 minutes the shipped systemd units allow a run (TimeoutStartSec), so
// that a hung endpoint ends in reyes' own error naming the call, not in
// systemd's SIGKILL.
const (
	DefaultLeaderTimeout   = 3 * time.Minute
	DefaultFollowerTimeout = 2 * time.Minute
)

// MinTTL is the shortest --ttl the leader publishes: a ruleset must outlive
// the leader's schedule (the README's timer runs every 5 minutes), the
// followers' polling and their clock skew, or followers refuse it as
// expired before the next one arrives.
const MinTTL = 10 * time.Minute

// refreshMargin is how much longer than the leader's interval (and its
// jitter) the republish window must be: one follower poll and a slow put.
const refreshMargin = time.Minute

// commonConfig holds the keys of commonOptions.
type commonConfig struct {
	Config      string        `koanf:"config"`
	Store       string        `koanf:"store"`
	Scope       string        `koanf:"scope"`
	S3PathStyle bool          `koanf:"s3_path_style"`
	S3Endpoint  string        `koanf:"s3_endpoint"`
	S3Region    string        `koanf:"s3_region"`
	MaxSize     int64         `koanf:"max_size"`
	Interval    time.Duration `koanf:"interval"`
	LogFormat   string        `koanf:"log_format"`
	LogLevel    string        `koanf:"log_level"`
	Timeout     time.Duration `koanf:"timeout"`
	MaxValidity time.Duration `koanf:"max_validity"`
}

func (c *commonConfig) validate() error {
	if c.Store == "" {
		return fmt.Errorf("%w: store: required (s3://bucket/key or a file path)", reyes.ErrConfig)
	}
	if !ruleset.ValidScope(c.Scope) {
		// The leader would publish "" as "default" while a follower
		// refuses every ruleset: both must name the estate alike.
		return fmt.Errorf("%w: scope: %q is not a scope name (1-64 of A-Z a-z 0-9 . _ : / -, starting with a letter or digit)", reyes.ErrConfig, c.Scope)
	}
	if c.MaxSize <= 0 {
		return fmt.Errorf("%w: max_size: %d is not a positive size", reyes.ErrConfig, c.MaxSize)
	}
	if c.Interval < 0 {
		return fmt.Errorf("%w: interval: %s is negative", reyes.ErrConfig, c.Interval)
	}
	if c.Interval > 0 && c.Interval < MinInterval {
		return fmt.Errorf("%w: interval: %s is shorter than %s (it would hammer the EC2 API or the store)", reyes.ErrConfig, c.Interval, MinInterval)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: timeout: %s is not positive (every run must be bounded)", reyes.ErrConfig, c.Timeout)
	}
	if c.MaxValidity <= 0 {
		return fmt.Errorf("%w: max_validity: %s is not positive", reyes.ErrConfig, c.MaxValidity)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("%w: log_format: %q is not text or json", reyes.ErrConfig, c.LogFormat)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("%w: log_level: %q is not debug, info, warn or error", reyes.ErrConfig, c.LogLevel)
	}
	return nil
}

func (c *commonConfig) logger(w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: l}
	if c.LogFormat == "json" {
		// JSON would write durations as integer nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (c *commonConfig) storeOptions(log *slog.Logger) reyes.StoreOptions {
	return reyes.StoreOptions{MaxSize: c.MaxSize, PathStyle: c.S3PathStyle, Endpoint: c.S3Endpoint, Region: c.S3Region, Logger: log}
}

// LeaderConfig is the leader's configuration, as RunLeader reads it.
type LeaderConfig struct {
	commonConfig `koanf:",squash"`
	Source       string        `koanf:"source"`
	SigningKey   string        `koanf:"signing_key"`
	Region       []string      `koanf:"region"`
	VPC          []string      `koanf:"vpc"`
	ExcludeGroup []string      `koanf:"exclude_group"`
	TTL          time.Duration `koanf:"ttl"`
	Refresh      time.Duration `koanf:"refresh"`
}

var leaderOptions = []option{
	{"source", kString, "", "where the inventory comes from: ec2 (the EC2 API) or a directory of AWS CLI JSON"},
	{"signing_key", kString, "", "OpenPGP secret key file (as gpg --export-secret-keys writes it, no passphrase)"},
	{"region", kList, []string(nil), "EC2 region to describe (with --source ec2)"},
	{"vpc", kList, []string(nil), "only describe these VPC IDs (with --source ec2; default all)"},
	{"exclude_group", kList, []string(nil), "security group name or ID whose rules are not mirrored (the group that lets VPN traffic in)"},
	{"ttl", kDuration, ruleset.DefaultTTL, "validity of each published ruleset (not_after = generated_at + ttl)"},
	{"refresh", kDuration, time.Duration(0), "publish an unchanged ruleset again only when less than this is left before its not_after (0: half the ttl; negative: on every run)"},
	{"timeout", kDuration, DefaultLeaderTimeout, "bound on each run (fetch, sign, publish): a hung EC2 or S3 endpoint ends the run with an error naming the call"},
}

const leaderUsage = `reyes-leader --source ec2|DIR --store s3://bucket/key|PATH --signing-key FILE [flags]

Lists security groups and their members, builds the canonical ruleset, signs it
and publishes it as one object. Run it from cron or with --interval; several
leaders may publish to the same store (the last write wins).
--version prints the version and exits.`

// RunLeader is the reyes-leader command: it parses args (with environ for
// REYES_* variables), then publishes once or every --interval.
func RunLeader(ctx context.Context, args, environ []string, stdout, stderr io.Writer) (err error) {
	defer func() { err = reportEarly("reyes-leader", args, environ, stderr, err) }()
	if printVersion("reyes-leader", args, stdout) {
		return nil
	}
	var c LeaderConfig
	if err := readConfig(&c, "reyes-leader", leaderOptions, leaderUsage, args, environ, stdout); err != nil {
		return err
	}
	log := c.logger(stderr)
	defer func() { err = c.report(log, "reyes-leader", err) }()
	if err := c.validate(); err != nil {
		return err
	}
	l, err := c.leader(ctx, log)
	if err != nil {
		return err
	}
	return stopped(ctx, c.Interval, l.Run(ctx, c.Interval))
}

// readConfig reads a command's configuration into c: the YAML file, the
// REYES_* environment and the flags, with no argument left over.
func readConfig(c any, name string, opts []option, usage string, args, environ []string, stdout io.Writer) error {
	k, rest, err := loadConfig(name, opts, args, environ, stdout, usage)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", reyes.ErrUsage, rest[0])
	}
	return unmarshalConfig(k, c)
}

// stopped is the error of an --interval process: nil when a signal (the
// cancellation of ctx) stopped it, as it was asked to; a single run keeps
// its error, cancellation included, since it did not finish its work.
func stopped(ctx context.Context, interval time.Duration, err error) error {
	if interval > 0 && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (c *LeaderConfig) validate() error {
	if err := c.commonConfig.validate(); err != nil {
		return err
	}
	switch {
	case c.Source == "":
		return fmt.Errorf("%w: source: required (ec2 or an inventory directory)", reyes.ErrConfig)
	case c.SigningKey == "":
		return fmt.Errorf("%w: signing_key: required", reyes.ErrConfig)
	case c.Source == "ec2" && len(c.Region) == 0:
		return fmt.Errorf("%w: region: at least one is required with source ec2", reyes.ErrConfig)
	case c.Source != "ec2" && (len(c.Region) > 0 || len(c.VPC) > 0):
		return fmt.Errorf("%w: region and vpc apply to source ec2 only", reyes.ErrConfig)
	case c.TTL <= 0:
		return fmt.Errorf("%w: ttl: %s is not positive", reyes.ErrConfig, c.TTL)
	case c.TTL > c.MaxValidity:
		return fmt.Errorf("%w: ttl: %s is longer than max_validity %s: followers refuse such rulesets (raise max_validity on the followers and the leader together)", reyes.ErrConfig, c.TTL, c.MaxValidity)
	case c.TTL < MinTTL:
		return fmt.Errorf("%w: ttl: %s is shorter than %s: followers would refuse the ruleset as expired before the next one arrives", reyes.ErrConfig, c.TTL, MinTTL)
	case c.Refresh >= c.TTL:
		return fmt.Errorf("%w: refresh: %s is not shorter than the ttl %s", reyes.ErrConfig, c.Refresh, c.TTL)
	case c.Refresh > 0 && c.Interval > 0 && c.Refresh <= c.Interval:
		return fmt.Errorf("%w: refresh: %s is not longer than the interval %s: the ruleset could expire between two runs", reyes.ErrConfig, c.Refresh, c.Interval)
	}
	if c.Interval > 0 {
		// The republish window (refresh, by default half the ttl) must
		// hold one run at the latest jitter, plus a margin.
		refresh, what := c.Refresh, "refresh"
		if refresh <= 0 {
			refresh, what = c.TTL/2, "half the ttl"
		}
		if need := c.Interval + c.Interval/10 + refreshMargin; refresh < need {
			return fmt.Errorf("%w: ttl: %s is too short for the interval %s: the ruleset is republished when %s (%s) is left, which must exceed the interval with its jitter plus %s (%s): the ruleset could expire between two runs",
				reyes.ErrConfig, c.TTL, c.Interval, what, refresh, refreshMargin, need)
		}
	}
	for _, v := range c.VPC {
		if !ruleset.ValidVPCID(v) {
			return fmt.Errorf("%w: vpc: %q is not a VPC ID", reyes.ErrConfig, v)
		}
	}
	for _, r := range c.Region {
		if !ruleset.ValidRegion(r) {
			return fmt.Errorf("%w: region: %q is not a region", reyes.ErrConfig, r)
		}
	}
	return nil
}

func (c *LeaderConfig) leader(ctx context.Context, log *slog.Logger) (*reyes.Leader, error) {
	signer, err := sign.LoadSigner(c.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("signing_key: %w", err)
	}
	store, err := reyes.OpenStore(ctx, c.Store, c.storeOptions(log))
	if err != nil {
		return nil, fmt.Errorf("%w: store: %w", reyes.ErrConfig, err)
	}
	if fs, ok := store.(*reyes.FileStore); ok {
		// Say so now, not after the inventory was fetched, and name the
		// directory, not a temporary file in it.
		if err := fs.CheckDir(); err != nil {
			return nil, fmt.Errorf("%w: store: %s: %w", reyes.ErrConfig, fs.Path(), err)
		}
	}
	var src sgsource.Source
	if c.Source == "ec2" {
		src = &sgsource.EC2{Regions: c.Region, VPCIDs: c.VPC, Logger: log, ClientOptions: reyes.EC2ClientOptions(log, reyes.DefaultEC2RequestTimeout)}
	} else {
		fi, err := os.Stat(c.Source)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%w: source: %q is neither ec2 nor an inventory directory", reyes.ErrConfig, c.Source)
		}
		src = sgsource.Dir{Path: c.Source}
	}
	return &reyes.Leader{
		Source: src, Store: store, Signer: signer, Logger: log,
		Build:   ruleset.BuildOptions{Scope: c.Scope, TTL: c.TTL, Exclude: c.ExcludeGroup},
		Refresh: c.Refresh, MaxValidity: c.MaxValidity, Timeout: c.Timeout,
	}, nil
}

// planConfig holds the keys of planOptions: everything that shapes the
// plan of one host (identity, mode, table, logging, fail-safe, baseline).
// reyes-follower and reyesctl explain take them from the same table.
type planConfig struct {
	Mode        string   `koanf:"mode"`
	Table       string   `koanf:"table"`
	ForeignCIDR []string `koanf:"foreign_cidr"`
	VPCCIDR     []string `koanf:"vpc_cidr"`
	Groups      []string `koanf:"groups"`
	Addrs       []string `koanf:"addrs"`
	LogAccept   bool     `koanf:"log_accept"`
	LogDrop     bool     `koanf:"log_drop"`
	FailSafe    []string `koanf:"fail_safe"`

	Baseline            bool     `koanf:"baseline"`
	BaselineTCPPorts    []string `koanf:"baseline_tcp_ports"`
	BaselineInterface   string   `koanf:"baseline_interface"`
	BaselineAllowEcho   bool     `koanf:"baseline_allow_echo"`
	BaselineOutbound    string   `koanf:"baseline_outbound"`
	BaselineOutboundTCP []string `koanf:"baseline_outbound_tcp"`
	BaselineOutboundUDP []string `koanf:"baseline_outbound_udp"`
	BaselineKeepForward bool     `koanf:"baseline_keep_forward"`
}

// FollowerConfig is the follower's configuration, as RunFollower reads it.
type FollowerConfig struct {
	commonConfig   `koanf:",squash"`
	planConfig     `koanf:",squash"`
	TrustedKey     []string      `koanf:"trusted_key"`
	StateDir       string        `koanf:"state_dir"`
	NoIMDS         bool          `koanf:"no_imds"`
	DisableFile    string        `koanf:"disable_file"`
	DryRun         bool          `koanf:"dry_run"`
	MetricsFile    string        `koanf:"metrics_file"`
	Backend        string        `koanf:"backend"`
	MaxSkew        time.Duration `koanf:"max_skew"`
	FlushConntrack bool          `koanf:"flush_conntrack"`
	DriftCheck     time.Duration `koanf:"drift_check"`
}

// planOptions are the follower's keys that shape a host's plan; reyesctl
// explain takes them too (DefinePlanFlags).
var planOptions = []option{
	{"mode", kString, "vpc", "vpc: filter traffic from the foreign ranges outside the host's VPC; ipsec: filter traffic that arrived over IPsec"},
	{"table", kString, "shared", "shared: own REYES-* chains and one jump in INPUT; exclusive: the whole filter table"},
	{"foreign_cidr", kList, []string{"10.0.0.0/8"}, "foreign range filtered in vpc mode"},
	{"vpc_cidr", kList, []string(nil), "the host's own VPC CIDR blocks (default: found with the host's identity)"},
	{"groups", kList, []string(nil), "the host's security group IDs (default: from IMDSv2 or the host's addresses found in the ruleset)"},
	{"addrs", kList, []string(nil), "look these addresses up in the ruleset instead of the host's own (skips IMDS)"},
	{"log_accept", kBool, false, "log accepted packets (rate-limited, prefix \"reyes accept: \")"},
	{"log_drop", kBool, false, "log dropped packets (rate-limited, prefix \"reyes drop: \")"},
	{"fail_safe", kList, []string(nil), "traffic always allowed first, as CIDR, CIDR/tcp/PORT or CIDR/udp/PORT (e.g. 10.1.0.0/16/tcp/22)"},
	{"baseline", kBool, false, "add the host baseline (the starter moat) after the security-group rules: a packet must pass both"},
	{"baseline_tcp_ports", kList, []string{"22", "80", "443"}, "TCP ports the baseline opens to new connections"},
	{"baseline_interface", kString, "", "interface the baseline guards (default: the default route's)"},
	{"baseline_allow_echo", kBool, false, "let ICMP echo requests (ping) through the baseline"},
	{"baseline_outbound", kString, "accept", "outbound policy of the baseline: accept, or restrict to the outbound ports"},
	{"baseline_outbound_tcp", kList, []string{"80", "443"}, "TCP ports the host may connect to with baseline_outbound restrict (keep the store reachable)"},
	{"baseline_outbound_udp", kList, []string{"53", "123"}, "UDP ports the host may send to with baseline_outbound restrict"},
	{"baseline_keep_forward", kBool, false, "leave FORWARD alone (the baseline rejects forwarding otherwise; containers need it)"},
}

var followerOptions = append(append([]option{}, planOptions...), []option{
	{"trusted_key", kList, []string(nil), "leader public key file (as gpg --export writes it); several for rotation"},
	{"state_dir", kString, "/var/lib/reyes", "directory for the last accepted ruleset's state (rollback protection)"},
	{"no_imds", kBool, false, "do not ask the EC2 instance metadata service"},
	{"disable_file", kString, "/etc/reyes/disabled", "while this file exists the follower changes nothing"},
	{"dry_run", kBool, false, "print the plan and its difference from the kernel; change nothing"},
	{"metrics_file", kString, "", "write Prometheus metrics here (for node_exporter's textfile collector)"},
	{"backend", kString, "auto", "iptables backend: auto, nft or legacy"},
	{"max_skew", kDuration, reyes.DefaultMaxSkew, "how far in the future generated_at and the signature may be (the leader's clock running ahead)"},
	{"flush_conntrack", kBool, false, "delete conntrack entries of sources whose access was removed"},
	{"drift_check", kDuration, reyes.DefaultDriftCheck, "while the ruleset is unchanged, check this often that the kernel still holds the applied rules, and reload them if not (negative: never)"},
	{"timeout", kDuration, DefaultFollowerTimeout, "bound on each run (fetch, verify, identify, apply): a hung store or metadata service ends the run with an error naming the call"},
}...)

const followerUsage = `reyes-follower --store s3://bucket/key|PATH --trusted-key FILE [flags]

Fetches the signed ruleset, verifies it, and loads the host's security groups as
ipsets and iptables rules, atomically. On any failure the kernel keeps the last
good rules and the follower exits non-zero (or retries with --interval).
--version prints the version and exits.`

// RunFollower is the reyes-follower command.
func RunFollower(ctx context.Context, args, environ []string, stdout, stderr io.Writer) (err error) {
	defer func() { err = reportEarly("reyes-follower", args, environ, stderr, err) }()
	if printVersion("reyes-follower", args, stdout) {
		return nil
	}
	running := false // from here on every run records its own result
	defer func() {
		if !running {
			recordFollowerConfigFailure(args, environ, err, stderr)
		}
	}()
	var c FollowerConfig
	if err := readConfig(&c, "reyes-follower", followerOptions, followerUsage, args, environ, stdout); err != nil {
		return err
	}
	log := c.logger(stderr)
	defer func() { err = c.report(log, "reyes-follower", err) }()
	f, err := c.follower(ctx, log, stdout)
	if err != nil {
		return err
	}
	running = true
	return permissionHint(stopped(ctx, c.Interval, f.Run(ctx, c.Interval)), procSelfStatus)
}

// procSelfStatus says which capabilities the process has.
const procSelfStatus = "/proc/self/status"

// report logs the final error of a run as a JSON record when the log is
// JSON (and marks it reported, so that Exit does not print it again as
// text); in text format Exit prints it as one line.
func (c *commonConfig) report(log *slog.Logger, name string, err error) error {
	if err == nil || c.LogFormat != "json" || ExitCode(err) == ExitOK {
		return err
	}
	log.Error(name+" failed", "err", err.Error(), "exit", ExitCode(err))
	return reportedError{err}
}

// reportEarly reports, as JSON, an error that came before the logger
// existed (a bad flag, an unknown key) when the command line or the
// environment asks for JSON logs: every line on stderr stays JSON.
func reportEarly(name string, args, environ []string, stderr io.Writer, err error) error {
	var rep reportedError
	if err == nil || errors.Is(err, ErrHelp) || errors.As(err, &rep) || !jsonRequested(args, environ) {
		return err
	}
	c := commonConfig{LogFormat: "json", LogLevel: "info"}
	attrs := []any{"err", err.Error(), "exit", ExitCode(err)}
	if errors.Is(err, reyes.ErrUsage) {
		attrs = append(attrs, "help", name+" --help")
	}
	c.logger(stderr).Error(name+" failed", attrs...)
	return reportedError{err}
}

// jsonRequested reports whether --log-format json (or =json) is among
// args, or REYES_LOG_FORMAT=json in environ, the flag winning.
func jsonRequested(args, environ []string) bool {
	format := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "REYES_LOG_FORMAT="); ok {
			format = v
		}
	}
	for i, a := range args {
		if a == "--" {
			break
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "log-format" || !strings.HasPrefix(a, "-") {
			continue
		}
		if !hasValue && i+1 < len(args) {
			v = args[i+1]
		}
		format = v
	}
	return format == "json"
}

// plan turns the plan keys into render options and the identity options
// they imply. local says the plan is for this very host (the follower):
// the baseline interface must then exist here, and defaults to the one of
// the default route; otherwise (reyesctl explain) it defaults to eth0.
func (c *planConfig) plan(local bool) (render.Options, reyes.IdentityOptions, error) {
	var ropts render.Options
	var id reyes.IdentityOptions
	var err error
	if ropts.Mode, err = render.ParseMode(c.Mode); err != nil {
		return ropts, id, fmt.Errorf("%w: mode: %q is not vpc or ipsec", reyes.ErrConfig, c.Mode)
	}
	if ropts.Table, err = render.ParseTableMode(c.Table); err != nil {
		return ropts, id, fmt.Errorf("%w: table: %q is not shared or exclusive", reyes.ErrConfig, c.Table)
	}
	if ropts.ForeignCIDRs, err = parsePrefixes("foreign_cidr", c.ForeignCIDR); err != nil {
		return ropts, id, err
	}
	if ropts.Mode == render.ModeVPC && len(ropts.ForeignCIDRs) == 0 {
		return ropts, id, fmt.Errorf("%w: foreign_cidr: empty in vpc mode, which would filter nothing", reyes.ErrConfig)
	}
	ropts.LogAccept, ropts.LogDrop = c.LogAccept, c.LogDrop
	for _, s := range c.FailSafe {
		fsafe, err := parseFailSafe(s)
		if err != nil {
			return ropts, id, fmt.Errorf("%w: fail_safe: %w", reyes.ErrConfig, err)
		}
		ropts.FailSafe = append(ropts.FailSafe, fsafe)
	}
	for i, f := range ropts.FailSafe {
		if f.Protocol == ruleset.ProtoAll && (!f.Source.IsValid() || f.Source.Bits() == 0) {
			return ropts, id, fmt.Errorf("%w: fail_safe: %q allows every packet from everywhere, which would filter nothing", reyes.ErrConfig, c.FailSafe[i])
		}
	}
	if c.Baseline {
		b, err := c.baseline(local)
		if err != nil {
			return ropts, id, err
		}
		ropts.Baseline = b
	}
	for _, g := range c.Groups {
		if !ruleset.ValidGroupID(g) {
			return ropts, id, fmt.Errorf("%w: groups: %q is not a security group ID", reyes.ErrConfig, g)
		}
	}
	id.Groups = c.Groups
	for _, a := range c.Addrs {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return ropts, id, fmt.Errorf("%w: addrs: %q is not an address", reyes.ErrConfig, a)
		}
		id.Addrs = append(id.Addrs, addr)
	}
	if id.VPCCIDRs, err = parsePrefixes("vpc_cidr", c.VPCCIDR); err != nil {
		return ropts, id, err
	}
	if ropts.Mode == render.ModeVPC {
		for _, f := range ropts.ForeignCIDRs {
			for _, v := range id.VPCCIDRs {
				if v.Bits() <= f.Bits() && v.Contains(f.Addr()) {
					return ropts, id, fmt.Errorf("%w: vpc_cidr: %s covers the foreign range %s, which would then be filtered nowhere", reyes.ErrConfig, v, f)
				}
			}
		}
	}
	return ropts, id, nil
}

// PlanFlags are reyes-follower's flags that shape a host's plan (its
// identity, mode, table, logging, fail-safe and baseline), defined from the
// follower's own option table so that reyesctl explain takes exactly the
// flags, defaults and checks the follower does.
type PlanFlags struct {
	set map[string]any
}

// DefinePlanFlags defines the plan flags on fs. After fs.Parse, Options
// turns them into render and identity options.
func DefinePlanFlags(fs *flag.FlagSet) *PlanFlags {
	p := &PlanFlags{set: map[string]any{}}
	defineFlags(fs, planOptions, p.set, true)
	return p
}

// Options returns the render options and identity options the flags give,
// checked as reyes-follower checks them (an error wraps ErrConfig and
// names the key). The plan is not for this host: a baseline without
// --baseline-interface guards eth0.
func (p *PlanFlags) Options() (render.Options, reyes.IdentityOptions, error) {
	k := koanf.New(".")
	defs := map[string]any{}
	for _, o := range planOptions {
		defs[o.key] = o.def
	}
	if err := k.Load(confmap.Provider(defs, "."), nil); err != nil {
		return render.Options{}, reyes.IdentityOptions{}, fmt.Errorf("%w: defaults: %w", reyes.ErrConfig, err)
	}
	if err := k.Load(confmap.Provider(p.set, "\x00"), nil); err != nil {
		return render.Options{}, reyes.IdentityOptions{}, fmt.Errorf("%w: flags: %w", reyes.ErrConfig, err)
	}
	var c planConfig
	if err := unmarshalConfig(k, &c); err != nil {
		return render.Options{}, reyes.IdentityOptions{}, err
	}
	return c.plan(false)
}

func (c *FollowerConfig) follower(ctx context.Context, log *slog.Logger, stdout io.Writer) (*reyes.Follower, error) {
	if err := c.commonConfig.validate(); err != nil {
		return nil, err
	}
	if len(c.TrustedKey) == 0 {
		return nil, fmt.Errorf("%w: trusted_key: at least one is required", reyes.ErrConfig)
	}
	if c.StateDir == "" {
		return nil, fmt.Errorf("%w: state_dir: required", reyes.ErrConfig)
	}
	ropts, id, err := c.plan(true)
	if err != nil {
		return nil, err
	}
	backend, err := apply.ParseBackend(c.Backend)
	if err != nil {
		return nil, fmt.Errorf("%w: backend: %w", reyes.ErrConfig, err)
	}
	id.DisableIMDS = c.NoIMDS
	if c.MaxSkew <= 0 {
		return nil, fmt.Errorf("%w: max_skew: %s is not positive", reyes.ErrConfig, c.MaxSkew)
	}
	trusted, err := sign.LoadKeyring(c.TrustedKey...)
	if err != nil {
		return nil, fmt.Errorf("trusted_key: %w", err)
	}
	store, err := reyes.OpenStore(ctx, c.Store, c.storeOptions(log))
	if err != nil {
		return nil, fmt.Errorf("%w: store: %w", reyes.ErrConfig, err)
	}
	if !c.DryRun {
		if err := checkPrivilege(procSelfStatus); err != nil {
			return nil, err
		}
	}
	if !c.DryRun {
		if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("state_dir: %w", err)
		}
	}
	f := &reyes.Follower{
		Store: store, Trusted: trusted, MaxSize: c.MaxSize, StateDir: c.StateDir,
		Freshness: reyes.FreshnessPolicy{Scope: c.Scope, MaxSkew: c.MaxSkew, MaxValidity: c.MaxValidity},
		Identity:  id, Render: ropts,
		Apply: apply.Options{Backend: backend, DisableFile: c.DisableFile, FailSafe: ropts.FailSafe,
			FlushConntrack: c.FlushConntrack},
		DryRun: c.DryRun, Out: stdout, MetricsFile: c.MetricsFile, Logger: log, DriftCheck: c.DriftCheck,
		Timeout: c.Timeout,
	}
	return f, nil
}

func parsePrefixes(key string, ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %q is not a CIDR", reyes.ErrConfig, key, s)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%w: %s: %s has host bits set (did you mean %s?)", reyes.ErrConfig, key, p, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

// parseFailSafe parses CIDR, CIDR/tcp/PORT or CIDR/udp/PORT.
func parseFailSafe(s string) (render.FailSafe, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 2 && len(parts) != 4 {
		return render.FailSafe{}, fmt.Errorf("%q is not CIDR or CIDR/tcp|udp/PORT", s)
	}
	p, err := netip.ParsePrefix(parts[0] + "/" + parts[1])
	if err != nil || p.Masked() != p {
		return render.FailSafe{}, fmt.Errorf("%q does not start with a CIDR without host bits", s)
	}
	fs := render.FailSafe{Source: p, Protocol: ruleset.ProtoAll}
	if len(parts) == 4 {
		switch parts[2] {
		case "tcp":
			fs.Protocol = ruleset.ProtoTCP
		case "udp":
			fs.Protocol = ruleset.ProtoUDP
		default:
			return render.FailSafe{}, fmt.Errorf("%q: protocol %q is not tcp or udp", s, parts[2])
		}
		port, err := strconv.ParseUint(parts[3], 10, 16)
		if err != nil || port == 0 {
			return render.FailSafe{}, fmt.Errorf("%q: %q is not a port 1-65535", s, parts[3])
		}
		fs.Port = uint16(port)
	}
	return fs, nil
}

// baseline builds the baseline options; the guarded interface defaults to
// the one of the default route.
func (c *planConfig) baseline(local bool) (*render.Baseline, error) {
	b := &render.Baseline{Interface: c.BaselineInterface, AllowEchoRequest: c.BaselineAllowEcho, KeepForward: c.BaselineKeepForward}
	var err error
	if b.InboundTCP, err = parsePorts("baseline_tcp_ports", c.BaselineTCPPorts); err != nil {
		return nil, err
	}
	if b.OutboundTCP, err = parsePorts("baseline_outbound_tcp", c.BaselineOutboundTCP); err != nil {
		return nil, err
	}
	if b.OutboundUDP, err = parsePorts("baseline_outbound_udp", c.BaselineOutboundUDP); err != nil {
		return nil, err
	}
	switch c.BaselineOutbound {
	case "accept":
	case "restrict":
		b.Outbound = render.OutboundRestrict
	default:
		return nil, fmt.Errorf("%w: baseline_outbound: %q is not accept or restrict", reyes.ErrConfig, c.BaselineOutbound)
	}
	if !local {
		if b.Interface == "" {
			b.Interface = "eth0"
		}
		return b, nil
	}
	if b.Interface != "" {
		if _, err := net.InterfaceByName(b.Interface); err != nil {
			return nil, fmt.Errorf("%w: baseline_interface: %q: %w (a missing interface would leave the baseline guarding nothing)", reyes.ErrConfig, b.Interface, err)
		}
	}
	if b.Interface == "" {
		iface, err := route.DefaultInterface(route.ProcNetRoute)
		if err != nil {
			return nil, fmt.Errorf("%w: baseline_interface: not given, and %w", reyes.ErrConfig, err)
		}
		b.Interface = iface
	}
	return b, nil
}

func parsePorts(key string, ss []string) ([]uint16, error) {
	out := []uint16{}
	for _, s := range ss {
		p, err := strconv.ParseUint(s, 10, 16)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%w: %s: %q is not a port 1-65535", reyes.ErrConfig, key, s)
		}
		out = append(out, uint16(p))
	}
	return out, nil
}
