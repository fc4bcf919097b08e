package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/sign"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadFollower runs the follower's configuration loading and decoding,
// without validation: what each layer made of the keys.
func loadFollower(t *testing.T, args, environ []string) FollowerConfig {
	t.Helper()
	return decodeConfig[FollowerConfig](t, "reyes-follower", followerOptions, followerUsage, args, environ)
}

// loadLeader is loadFollower for the leader.
func loadLeader(t *testing.T, args, environ []string) LeaderConfig {
	t.Helper()
	return decodeConfig[LeaderConfig](t, "reyes-leader", leaderOptions, leaderUsage, args, environ)
}

// decodeConfig runs the configuration loading and decoding of binary name
// into a C, failing the test on an error.
func decodeConfig[C any](t *testing.T, name string, opts []option, usage string, args, environ []string) C {
	t.Helper()
	var c C
	if err := readConfig(&c, name, opts, usage, args, environ, io.Discard); err != nil {
		t.Fatalf("reading the configuration of %s: %v", name, err)
	}
	return c
}

// TestConfigPrecedence checks, for each kind of key, that the default is
// overridden by the YAML file, the file by REYES_* variables and those by
// flags.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "follower.yaml", `
scope: from-file
dry_run: true
log_drop: true
interval: 90s
max_skew: 0
foreign_cidr:
  - 10.1.0.0/16
  - 10.2.0.0/16
groups: sg-11111111, sg-22222222
max_size: 1000
`)
	// fromFile is what the file sets.
	fromFile := func(c *FollowerConfig) {
		c.Config = file
		c.Scope, c.DryRun, c.LogDrop = "from-file", true, true
		c.Interval, c.MaxSkew = 90*time.Second, 0
		c.ForeignCIDR = []string{"10.1.0.0/16", "10.2.0.0/16"}
		c.Groups = []string{"sg-11111111", "sg-22222222"}
		c.MaxSize = 1000
	}
	layers := []struct {
		name string
		args []string
		env  []string
		want func(*FollowerConfig)
	}{
		{"defaults", nil, nil, func(c *FollowerConfig) {}},
		{"file", []string{"--config", file}, nil, fromFile},
		{"environment over file", []string{"--config", file}, []string{
			"REYES_SCOPE=from-env", "REYES_DRY_RUN=false", "REYES_LOG_DROP=1", "REYES_INTERVAL=2m",
			"REYES_FOREIGN_CIDR=10.3.0.0/16, 10.4.0.0/16", "REYES_GROUPS=sg-33333333", "REYES_MAX_SIZE=2000",
			"PATH=/usr/bin", "HOME=/root", // not reyes' business
		}, func(c *FollowerConfig) {
			c.Config = file
			c.Scope, c.DryRun, c.LogDrop = "from-env", false, true
			c.Interval, c.MaxSkew = 2*time.Minute, 0
			c.ForeignCIDR = []string{"10.3.0.0/16", "10.4.0.0/16"}
			c.Groups = []string{"sg-33333333"}
			c.MaxSize = 2000
		}},
		{"file named by REYES_CONFIG", nil, []string{"REYES_CONFIG=" + file, "REYES_SCOPE=from-env"}, func(c *FollowerConfig) {
			fromFile(c)
			c.Scope = "from-env"
		}},
		{"flags over environment", []string{
			"--config", file, "--scope", "from-flag", "--dry-run", "--log-drop=false", "--interval", "3m",
			"--foreign-cidr", "10.5.0.0/16", "--foreign-cidr", "10.6.0.0/16,10.7.0.0/16",
			"--groups", "sg-44444444", "--max-size", "3000",
		}, []string{
			"REYES_SCOPE=from-env", "REYES_DRY_RUN=false", "REYES_LOG_DROP=true", "REYES_INTERVAL=2m",
			"REYES_FOREIGN_CIDR=10.3.0.0/16", "REYES_GROUPS=sg-33333333", "REYES_MAX_SIZE=2000",
		}, func(c *FollowerConfig) {
			c.Config = file
			c.Scope, c.DryRun, c.LogDrop = "from-flag", true, false
			c.Interval, c.MaxSkew = 3*time.Minute, 0
			c.ForeignCIDR = []string{"10.5.0.0/16", "10.6.0.0/16", "10.7.0.0/16"}
			c.Groups = []string{"sg-44444444"}
			c.MaxSize = 3000
		}},
	}
	defaults := loadFollower(t, nil, nil)
	if defaults.Scope != "default" || defaults.StateDir != "/var/lib/reyes" || defaults.MaxSkew != reyes.DefaultMaxSkew ||
		!reflect.DeepEqual(defaults.ForeignCIDR, []string{"10.0.0.0/8"}) || defaults.MaxSize != reyes.DefaultMaxObjectSize ||
		defaults.DisableFile != "/etc/reyes/disabled" || defaults.Mode != "vpc" || defaults.Table != "shared" {
		t.Fatalf("defaults: %+v", defaults)
	}
	for _, l := range layers {
		t.Run(l.name, func(t *testing.T) {
			want := defaults
			want.ForeignCIDR = append([]string(nil), defaults.ForeignCIDR...)
			l.want(&want)
			got := loadFollower(t, l.args, l.env)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}

	t.Run("leader", func(t *testing.T) {
		file := writeFile(t, dir, "leader.yaml", "ttl: 2h\nregion: [eu-west-1]\nexclude_group: [vpn]\ns3_path_style: true\n")
		c := loadLeader(t, []string{"--config", file}, nil)
		if c.TTL != 2*time.Hour || !reflect.DeepEqual(c.Region, []string{"eu-west-1"}) || !c.S3PathStyle {
			t.Errorf("file: %+v", c)
		}
		env := []string{"REYES_TTL=30m", "REYES_REGION=us-east-1,us-west-2", "REYES_S3_PATH_STYLE=false"}
		c = loadLeader(t, []string{"--config", file}, env)
		if c.TTL != 30*time.Minute || !reflect.DeepEqual(c.Region, []string{"us-east-1", "us-west-2"}) || c.S3PathStyle {
			t.Errorf("environment: %+v", c)
		}
		c = loadLeader(t, []string{"--config", file, "--ttl", "10m", "--region", "ap-south-1", "--s3-path-style"}, env)
		if c.TTL != 10*time.Minute || !reflect.DeepEqual(c.Region, []string{"ap-south-1"}) || !c.S3PathStyle ||
			!reflect.DeepEqual(c.ExcludeGroup, []string{"vpn"}) {
			t.Errorf("flags: %+v", c)
		}
	})
	t.Run("flag --config over REYES_CONFIG", func(t *testing.T) {
		other := writeFile(t, dir, "other.yaml", "scope: other-file\n")
		c := loadFollower(t, []string{"--config", other}, []string{"REYES_CONFIG=" + file})
		if c.Scope != "other-file" || c.DryRun {
			t.Errorf("got %+v", c)
		}
	})
}

// TestConfigErrors checks every kind of configuration error: each is
// ErrConfig (or ErrUsage for the command line itself), is one line, and
// names the offending key.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	sec, pub, err := sign.GenerateKey("reyes config test", "", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	secret := writeFile(t, dir, "leader.key", string(sec))
	public := writeFile(t, dir, "leader.pub", string(pub))
	inv := filepath.Join(dir, "inventory")
	if err := os.Mkdir(inv, 0o755); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "ruleset.signed")
	yamlFile := func(content string) string {
		return writeFile(t, t.TempDir(), "reyes.yaml", content)
	}
	big := writeFile(t, dir, "big.yaml", "scope: x\n"+strings.Repeat("# padding padding padding\n", maxConfigFile/26+1))

	// follower is a valid follower command line; each case adds to it.
	follower := []string{"--store", store, "--trusted-key", public, "--state-dir", filepath.Join(dir, "state"), "--no-imds"}
	leader := []string{"--store", store, "--signing-key", secret, "--source", inv}

	type tc struct {
		name    string
		leader  bool // RunLeader, not RunFollower
		base    bool // prepend the valid command line
		args    []string
		env     []string
		want    error
		mention []string // the message names these
	}
	cases := []tc{
		{name: "unknown YAML key", base: true, args: []string{"--config", yamlFile("colour: red\n")}, want: reyes.ErrConfig, mention: []string{`"colour"`}},
		{name: "flag spelling as YAML key", base: true, args: []string{"--config", yamlFile("dry-run: true\n")}, want: reyes.ErrConfig, mention: []string{`"dry-run"`}},
		{name: "config key inside the config", base: true, args: []string{"--config", yamlFile("config: /etc/x\n")}, want: reyes.ErrConfig, mention: []string{`"config"`}},
		{name: "unknown REYES_ variable", base: true, env: []string{"REYES_COLOUR=red"}, want: reyes.ErrConfig, mention: []string{"REYES_COLOUR"}},
		{name: "nested mapping", base: true, args: []string{"--config", yamlFile("store:\n  bucket: b\n")}, want: reyes.ErrConfig, mention: []string{`"store"`, "mapping"}},
		{name: "nested mapping in a list", base: true, args: []string{"--config", yamlFile("groups:\n  - id: sg-11111111\n")}, want: reyes.ErrConfig, mention: []string{"groups"}},
		{name: "YAML not a mapping", base: true, args: []string{"--config", yamlFile("- a\n- b\n")}, want: reyes.ErrConfig, mention: []string{"config"}},
		{name: "YAML syntax", base: true, args: []string{"--config", yamlFile("scope: [a\n")}, want: reyes.ErrConfig, mention: []string{"config"}},
		{name: "missing config file", base: true, args: []string{"--config", filepath.Join(dir, "absent.yaml")}, want: reyes.ErrConfig, mention: []string{"config", "absent.yaml"}},
		{name: "oversized config file", base: true, args: []string{"--config", big}, want: reyes.ErrConfig, mention: []string{"config", "big.yaml", "larger"}},
		{name: "bad duration flag", base: true, args: []string{"--interval", "5 minutes"}, want: reyes.ErrConfig, mention: []string{"interval", `"5 minutes"`}},
		{name: "bad duration YAML", base: true, args: []string{"--config", yamlFile("max_skew: 5x\n")}, want: reyes.ErrConfig, mention: []string{"max_skew", `"5x"`}},
		{name: "bad duration env", base: true, env: []string{"REYES_MAX_VALIDITY=300"}, want: reyes.ErrConfig, mention: []string{"max_validity", `"300"`}},
		{name: "duration without unit in YAML", base: true, args: []string{"--config", yamlFile("interval: 300\n")}, want: reyes.ErrConfig, mention: []string{"interval", "unit"}},
		{name: "two bad keys both named", base: true, args: []string{"--config", yamlFile("interval: 5x\nmax_size: big\n")}, want: reyes.ErrConfig, mention: []string{"interval", "max_size"}},
		{name: "bad bool env", base: true, env: []string{"REYES_DRY_RUN=yes"}, want: reyes.ErrConfig, mention: []string{"dry_run", `"yes"`}},
		{name: "bad bool YAML", base: true, args: []string{"--config", yamlFile("log_drop: yes\n")}, want: reyes.ErrConfig, mention: []string{"log_drop", `"yes"`}},
		{name: "bad bool flag", base: true, args: []string{"--dry-run=yes"}, want: reyes.ErrUsage, mention: []string{"dry-run", `"yes"`}},
		{name: "bad int", base: true, args: []string{"--max-size", "10MB"}, want: reyes.ErrConfig, mention: []string{"max_size", `"10MB"`}},
		{name: "non-positive int", base: true, args: []string{"--max-size", "0"}, want: reyes.ErrConfig, mention: []string{"max_size"}},
		{name: "bad CIDR", base: true, args: []string{"--foreign-cidr", "10.0.0.0/33"}, want: reyes.ErrConfig, mention: []string{"foreign_cidr", "10.0.0.0/33"}},
		{name: "CIDR with host bits", base: true, args: []string{"--vpc-cidr", "10.20.1.10/16"}, want: reyes.ErrConfig, mention: []string{"vpc_cidr", "host bits", "10.20.0.0/16"}},
		{name: "CIDR with host bits in env list", base: true, env: []string{"REYES_FOREIGN_CIDR=10.0.0.0/8,fd00::1/8"}, want: reyes.ErrConfig, mention: []string{"foreign_cidr", "host bits"}},
		{name: "bad group ID", base: true, args: []string{"--groups", "sg-11111111,web"}, want: reyes.ErrConfig, mention: []string{"groups", `"web"`}},
		{name: "bad address", base: true, args: []string{"--addrs", "10.0.0.300"}, want: reyes.ErrConfig, mention: []string{"addrs", "10.0.0.300"}},
		{name: "bad fail-safe", base: true, args: []string{"--fail-safe", "10.1.0.0/16/sctp/22"}, want: reyes.ErrConfig, mention: []string{"fail_safe", "sctp"}},
		{name: "empty foreign range in vpc mode (flag)", base: true, args: []string{"--foreign-cidr", ""}, want: reyes.ErrConfig, mention: []string{"foreign_cidr", "filter nothing"}},
		{name: "empty foreign range in vpc mode (env)", base: true, env: []string{"REYES_FOREIGN_CIDR=,"}, want: reyes.ErrConfig, mention: []string{"foreign_cidr"}},
		{name: "empty foreign range in vpc mode (YAML)", base: true, args: []string{"--config", yamlFile("foreign_cidr: []\n")}, want: reyes.ErrConfig, mention: []string{"foreign_cidr"}},
		{name: "VPC CIDR covering the foreign range", base: true, args: []string{"--vpc-cidr", "0.0.0.0/0"}, want: reyes.ErrConfig, mention: []string{"vpc_cidr", "10.0.0.0/8"}},
		{name: "fail-safe allowing everything", base: true, args: []string{"--fail-safe", "0.0.0.0/0"}, want: reyes.ErrConfig, mention: []string{"fail_safe", "every packet"}},
		{name: "baseline interface that does not exist", base: true, args: []string{"--baseline", "--baseline-interface", "eht0"}, want: reyes.ErrConfig, mention: []string{"baseline_interface", "eht0"}},
		{name: "refresh not longer than the interval", leader: true, base: true, args: []string{"--refresh", "2m", "--interval", "5m"}, want: reyes.ErrConfig, mention: []string{"refresh", "interval"}},
		{name: "bad mode", base: true, args: []string{"--mode", "vpn"}, want: reyes.ErrConfig, mention: []string{"mode", `"vpn"`}},
		{name: "bad table", base: true, args: []string{"--table", "mine"}, want: reyes.ErrConfig, mention: []string{"table", `"mine"`}},
		{name: "bad backend", base: true, args: []string{"--backend", "bpf"}, want: reyes.ErrConfig, mention: []string{"backend"}},
		{name: "bad log level", base: true, args: []string{"--log-level", "loud"}, want: reyes.ErrConfig, mention: []string{"log_level", `"loud"`}},
		{name: "bad log format", base: true, env: []string{"REYES_LOG_FORMAT=xml"}, want: reyes.ErrConfig, mention: []string{"log_format", `"xml"`}},
		{name: "empty scope", base: true, args: []string{"--scope", ""}, want: reyes.ErrConfig, mention: []string{"scope", `""`}},
		{name: "bad scope", base: true, env: []string{"REYES_SCOPE=my estate"}, want: reyes.ErrConfig, mention: []string{"scope", `"my estate"`}},
		{name: "leader empty scope", leader: true, base: true, args: []string{"--config", yamlFile("scope:\n")}, want: reyes.ErrConfig, mention: []string{"scope"}},
		{name: "negative interval", base: true, args: []string{"--interval", "-1m"}, want: reyes.ErrConfig, mention: []string{"interval", "negative"}},
		{name: "negative max skew", base: true, args: []string{"--max-skew", "-1s"}, want: reyes.ErrConfig, mention: []string{"max_skew"}},
		{name: "missing store", args: []string{"--trusted-key", public}, want: reyes.ErrConfig, mention: []string{"store", "required"}},
		{name: "missing trusted key", args: []string{"--store", store}, want: reyes.ErrConfig, mention: []string{"trusted_key"}},
		{name: "unreadable trusted key", args: []string{"--store", store, "--trusted-key", filepath.Join(dir, "absent.pub")}, mention: []string{"trusted_key", "absent.pub"}},
		{name: "empty state dir", base: true, args: []string{"--state-dir", ""}, want: reyes.ErrConfig, mention: []string{"state_dir"}},
		{name: "bad store URL", args: []string{"--store", "s3://bucket-only", "--trusted-key", public}, mention: []string{"store"}},
		{name: "unexpected argument", base: true, args: []string{"extra"}, want: reyes.ErrUsage, mention: []string{`"extra"`}},
		{name: "unknown flag", base: true, args: []string{"--colour", "red"}, want: reyes.ErrUsage, mention: []string{"colour"}},

		{name: "leader missing store", leader: true, args: []string{"--signing-key", secret, "--source", inv}, want: reyes.ErrConfig, mention: []string{"store"}},
		{name: "leader missing signing key", leader: true, args: []string{"--store", store, "--source", inv}, want: reyes.ErrConfig, mention: []string{"signing_key"}},
		{name: "leader missing source", leader: true, args: []string{"--store", store, "--signing-key", secret}, want: reyes.ErrConfig, mention: []string{"source"}},
		{name: "leader region without ec2", leader: true, base: true, args: []string{"--region", "eu-west-1"}, want: reyes.ErrConfig, mention: []string{"region"}},
		{name: "leader vpc without ec2", leader: true, base: true, args: []string{"--vpc", "vpc-0123456789abcdef0"}, want: reyes.ErrConfig, mention: []string{"vpc"}},
		{name: "leader ec2 without region", leader: true, args: []string{"--store", store, "--signing-key", secret, "--source", "ec2"}, want: reyes.ErrConfig, mention: []string{"region"}},
		{name: "leader bad region", leader: true, args: []string{"--store", store, "--signing-key", secret, "--source", "ec2", "--region", "Europe"}, want: reyes.ErrConfig, mention: []string{"region", `"Europe"`}},
		{name: "leader bad vpc", leader: true, args: []string{"--store", store, "--signing-key", secret, "--source", "ec2", "--region", "eu-west-1", "--vpc", "vpc-x"}, want: reyes.ErrConfig, mention: []string{"vpc", `"vpc-x"`}},
		{name: "leader negative ttl", leader: true, base: true, args: []string{"--ttl", "-1h"}, want: reyes.ErrConfig, mention: []string{"ttl"}},
		{name: "leader zero ttl", leader: true, base: true, env: []string{"REYES_TTL=0s"}, want: reyes.ErrConfig, mention: []string{"ttl"}},
		{name: "leader bad ttl", leader: true, base: true, env: []string{"REYES_TTL=1 hour"}, want: reyes.ErrConfig, mention: []string{"ttl", `"1 hour"`}},
		// Followers refuse a validity above their max_validity (24h by
		// default): the leader used to publish it with a warning.
		{name: "leader ttl above max_validity", leader: true, base: true, args: []string{"--ttl", "48h"}, want: reyes.ErrConfig, mention: []string{"ttl", "48h0m0s", "max_validity", "24h0m0s"}},
		{name: "leader ttl above raised max_validity", leader: true, base: true, args: []string{"--ttl", "72h", "--max-validity", "48h"}, want: reyes.ErrConfig, mention: []string{"ttl", "max_validity", "48h0m0s"}},
		// A 1s ttl was published silently: expired before any follower saw it.
		{name: "leader ttl 1s", leader: true, base: true, args: []string{"--ttl", "1s"}, want: reyes.ErrConfig, mention: []string{"ttl", "1s", "10m0s"}},
		{name: "leader ttl too short for the interval", leader: true, base: true, args: []string{"--ttl", "20m", "--interval", "15m"}, want: reyes.ErrConfig, mention: []string{"ttl", "20m0s", "interval", "15m0s"}},
		{name: "leader ttl too short for the interval with refresh", leader: true, base: true, args: []string{"--ttl", "2h", "--refresh", "11m", "--interval", "10m"}, want: reyes.ErrConfig, mention: []string{"refresh", "11m0s", "interval"}},
		{name: "leader store in a missing directory", leader: true, args: []string{"--store", filepath.Join(dir, "missing", "ruleset.signed"), "--signing-key", secret, "--source", inv},
			want: reyes.ErrConfig, mention: []string{"store", "directory " + filepath.Join(dir, "missing") + " does not exist"}},
		{name: "follower one-slash s3 store", args: []string{"--store", "s3:/bucket/key", "--trusted-key", public, "--state-dir", filepath.Join(dir, "state"), "--no-imds"},
			want: reyes.ErrConfig, mention: []string{"s3:/bucket/key", "s3://bucket/key"}},
		{name: "leader zero timeout", leader: true, base: true, args: []string{"--timeout", "0s"}, want: reyes.ErrConfig, mention: []string{"timeout"}},
		{name: "leader bad layout", leader: true, base: true, args: []string{"--layout", "single"}, want: reyes.ErrConfig, mention: []string{"layout", `"single"`, "parts", "whole"}},
		{name: "leader layout in upper case", leader: true, base: true, env: []string{"REYES_LAYOUT=Parts"}, want: reyes.ErrConfig, mention: []string{"layout", `"Parts"`}},
		// A hot spare's parts must outlive its publish (bounded by timeout).
		{name: "leader gc_grace not longer than the timeout", leader: true, base: true, args: []string{"--gc-grace", "3m", "--timeout", "3m"}, want: reyes.ErrConfig, mention: []string{"gc_grace", "3m0s", "timeout"}},
		{name: "leader zero max_skew", leader: true, base: true, args: []string{"--max-skew", "0s"}, want: reyes.ErrConfig, mention: []string{"max_skew"}},
		{name: "follower negative timeout", base: true, args: []string{"--timeout", "-1s"}, want: reyes.ErrConfig, mention: []string{"timeout"}},
		{name: "follower zero max_validity", base: true, args: []string{"--max-validity", "0s"}, want: reyes.ErrConfig, mention: []string{"max_validity"}},
		{name: "leader source neither ec2 nor dir", leader: true, args: []string{"--store", store, "--signing-key", secret, "--source", filepath.Join(dir, "absent")}, want: reyes.ErrConfig, mention: []string{"source"}},
		{name: "leader public key as signing key", leader: true, args: []string{"--store", store, "--signing-key", public, "--source", inv}, mention: []string{"signing_key"}},
		{name: "leader unknown YAML key", leader: true, base: true, args: []string{"--config", yamlFile("trusted_key: [a]\n")}, want: reyes.ErrConfig, mention: []string{`"trusted_key"`}},
		{name: "leader unknown REYES_ variable", leader: true, base: true, env: []string{"REYES_DRY_RUN=true"}, want: reyes.ErrConfig, mention: []string{"REYES_DRY_RUN"}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			run := RunFollower
			if c.leader {
				run = RunLeader
				if c.base {
					args = append(append([]string{}, leader...), args...)
				}
			} else if c.base {
				args = append(append([]string{}, follower...), args...)
			}
			err := run(ctx, args, c.env, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %q is not %v", err, c.want)
			}
			if c.want == nil && (errors.Is(err, reyes.ErrUsage) || errors.Is(err, ErrHelp)) {
				t.Errorf("error %q is a usage error", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, m := range c.mention {
				if !strings.Contains(msg, m) {
					t.Errorf("error %q does not mention %s", msg, m)
				}
			}
		})
	}
	if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused configuration published or created something: %v", err)
	}
}

// TestConfigHelpListsEveryKey checks that --help prints every key of both
// option tables, with the defaults, and returns ErrHelp.
func TestConfigHelpListsEveryKey(t *testing.T) {
	for _, b := range []struct {
		name string
		run  func(context.Context, []string, []string, io.Writer, io.Writer) error
		opts []option
	}{
		{"reyes-leader", RunLeader, leaderOptions},
		{"reyes-follower", RunFollower, followerOptions},
	} {
		for _, flag := range []string{"--help", "-h"} {
			t.Run(b.name+" "+flag, func(t *testing.T) {
				var out, errOut strings.Builder
				err := b.run(context.Background(), []string{flag}, nil, &out, &errOut)
				if !errors.Is(err, ErrHelp) {
					t.Fatalf("error %v, want ErrHelp", err)
				}
				help := out.String()
				if !strings.HasPrefix(help, "Usage: "+b.name) {
					t.Errorf("help does not start with the usage line:\n%s", help)
				}
				for _, o := range append(append([]option{}, commonOptions...), b.opts...) {
					if !strings.Contains(help, "  --"+o.flag()+"\n") {
						t.Errorf("help does not list --%s", o.flag())
					}
					if !strings.Contains(help, o.help) {
						t.Errorf("help does not explain --%s", o.flag())
					}
				}
				defaults := []string{"(default default)", "(default text)", "(default 67108864)"}
				if b.name == "reyes-follower" {
					defaults = append(defaults, "(default /var/lib/reyes)", "(default 10.0.0.0/8)", "(default 5m0s)")
				} else {
					defaults = append(defaults, "(default 1h0m0s)")
				}
				for _, d := range defaults {
					if !strings.Contains(help, d) {
						t.Errorf("help does not show %s", d)
					}
				}
			})
		}
	}
}

func TestIntervalMinimum(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := RunLeader(context.Background(), []string{"--source", dir, "--store", filepath.Join(dir, "o"), "--signing-key", filepath.Join(dir, "k"), "--interval", "1ms"}, nil, &out, &errb)
	if !errors.Is(err, reyes.ErrConfig) || !strings.Contains(err.Error(), "interval") {
		t.Fatalf("RunLeader --interval 1ms: %v", err)
	}
}

// TestLeaderTTLAccepted: what the leader must keep accepting.
func TestLeaderTTLAccepted(t *testing.T) {
	base := []string{"--store", "x", "--signing-key", "k", "--source", "d"}
	for _, args := range [][]string{
		nil,              // 1h, once
		{"--ttl", "10m"}, // the shortest
		{"--ttl", "24h"}, // the followers' default cap
		{"--ttl", "48h", "--max-validity", "48h"}, // raised on both sides
		{"--interval", "5m"},                      // the README's schedule, 1h ttl
		{"--ttl", "14m", "--interval", "5m"},      // 7m window > 5m30s + 1m
		{"--ttl", "2h", "--refresh", "10m", "--interval", "5m"},
	} {
		c := loadLeader(t, append(append([]string{}, base...), args...), nil)
		if err := c.validate(); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}
