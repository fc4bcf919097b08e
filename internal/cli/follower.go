package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/sign"
)

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
	return permissionHint(f.Run(ctx, c.Interval), procSelfStatus)
}

// procSelfStatus says which capabilities the process has.
const procSelfStatus = "/proc/self/status"

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
