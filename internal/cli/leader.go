package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// MinTTL is the shortest --ttl the leader publishes: a ruleset must outlive
// the leader's schedule (the README's timer runs every 5 minutes), the
// followers' polling and their clock skew, or followers refuse it as
// expired before the next one arrives.
const MinTTL = 10 * time.Minute

// refreshMargin is how much longer than the leader's interval (and its
// jitter) the republish window must be: one follower poll and a slow put.
const refreshMargin = time.Minute

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
	MetricsFile  string        `koanf:"metrics_file"`
	Layout       string        `koanf:"layout"`
	GCGrace      time.Duration `koanf:"gc_grace"`
	MaxSkew      time.Duration `koanf:"max_skew"`

	// The accounts read besides the leader's own.
	accountConfig `koanf:",squash"`
}

var leaderOptions = append([]option{
	{"source", kString, "", "where the inventory comes from: ec2 (the EC2 API) or a directory of AWS CLI JSON"},
	{"signing_key", kString, "", "OpenPGP secret key file (as gpg --export-secret-keys writes it, no passphrase)"},
	{"region", kList, []string(nil), "EC2 region to describe (with --source ec2)"},
	{"vpc", kList, []string(nil), "only describe these VPC IDs (with --source ec2; default all)"},
	{"exclude_group", kList, []string(nil), "security group name or ID whose rules are not mirrored (the group that lets VPN traffic in)"},
	{"ttl", kDuration, ruleset.DefaultTTL, "validity of each published ruleset (not_after = generated_at + ttl)"},
	{"refresh", kDuration, time.Duration(0), "publish an unchanged ruleset again only when less than this is left before its not_after (0: half the ttl; negative: on every run)"},
	{"metrics_file", kString, "", "write Prometheus metrics here after every run (for node_exporter's textfile collector)"},
	{"layout", kString, string(reyes.LayoutParts), "how the ruleset is published: parts (a signed root naming content-addressed parts; followers read only what their plan needs) or whole (one signed object, for followers older than the parts layout: upgrade followers first)"},
	{"gc_grace", kDuration, reyes.DefaultGCGrace, "delete a part no unexpired root names only once it is older than this (longer than any leader's run, so a hot spare's fresh parts survive until its root lands)"},
	{"max_skew", kDuration, reyes.DefaultMaxSkew, "the followers' max_skew: a published root counts as expired for garbage collection only after its not_after plus this"},
	{"timeout", kDuration, DefaultLeaderTimeout, "bound on each run (fetch, sign, publish): a hung EC2 or S3 endpoint ends the run with an error naming the call"},
}, accountOptions...)

const leaderUsage = `reyes-leader --source ec2|DIR --store s3://bucket/key|PATH --signing-key FILE [flags]

Lists security groups and their members, builds the canonical ruleset, signs it
and publishes it: by default as a signed root naming content-addressed parts
(next to the store's key: KEY.parts/, and KEY.roots/ for garbage collection),
with --layout whole as one object. Run it from cron or with --interval; several
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
	return l.Run(ctx, c.Interval)
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
	case c.Layout != string(reyes.LayoutParts) && c.Layout != string(reyes.LayoutWhole):
		return fmt.Errorf("%w: layout: %q: want parts or whole", reyes.ErrConfig, c.Layout)
	case c.GCGrace <= c.Timeout:
		return fmt.Errorf("%w: gc_grace: %s is not longer than the timeout %s: a hot spare's parts could be deleted before its root lands", reyes.ErrConfig, c.GCGrace, c.Timeout)
	case c.MaxSkew <= 0:
		return fmt.Errorf("%w: max_skew: %s is not positive", reyes.ErrConfig, c.MaxSkew)
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
	if err := c.accountConfig.validate(c.Source); err != nil {
		return err
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
		src = c.accountConfig.source(&sgsource.EC2{Regions: c.Region, VPCIDs: c.VPC, Logger: log, ClientOptions: reyes.EC2ClientOptions(log, reyes.DefaultEC2RequestTimeout)})
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
		Refresh: c.Refresh, MaxValidity: c.MaxValidity, Timeout: c.Timeout, MetricsFile: c.MetricsFile,
		Layout: reyes.Layout(c.Layout), GCGrace: c.GCGrace, MaxSkew: c.MaxSkew,
	}, nil
}
