package reyes_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/internal/hungsrv"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

// TestBinariesEndWithinTimeout runs the real binaries against endpoints on
// 127.0.0.1 that accept and never answer: the leader against EC2 used to
// hang 900 s, the follower against S3 4 min, against a FIFO for ever. Each
// now ends within --timeout with exit 1 and an error naming the call.
func TestBinariesEndWithinTimeout(t *testing.T) {
	leader, follower := binaries(t)
	dir := t.TempDir()
	_, secret, public := keys(t, dir, "leader")
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	hung := hungsrv.URL(t)
	aws := []string{"AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
	follow := []string{"--trusted-key", public, "--state-dir", filepath.Join(dir, "state"), "--no-imds", "--addrs", "10.20.1.10",
		"--disable-file", filepath.Join(dir, "disabled"), "--timeout", "2s", "--dry-run"}
	for _, tc := range []struct {
		name    string
		bin     string
		env     []string
		args    []string
		mention []string
	}{
		{"leader, hung EC2", leader, append([]string{"AWS_ENDPOINT_URL_EC2=" + hung}, aws...),
			[]string{"--source", "ec2", "--region", "eu-west-1", "--store", filepath.Join(dir, "out.signed"), "--signing-key", secret, "--timeout", "2s"},
			[]string{"eu-west-1", "Describe", "timed out after 2s", "deadline"}},
		{"follower, hung S3", follower, aws,
			append([]string{"--store", "s3://bucket/ruleset", "--s3-endpoint", hung, "--s3-path-style", "--s3-region", "us-east-1"}, follow...),
			[]string{"GetObject", "s3://bucket/ruleset", "timed out after 2s"}},
		{"follower, FIFO store", follower, nil, append([]string{"--store", fifo}, follow...),
			[]string{fifo, "not a regular file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := run(t, tc.env, nil, tc.bin, tc.args...)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s with --timeout 2s", d)
			}
			if r.code != cli.ExitFailure {
				t.Fatalf("exit %d, want 1: %v", r.code, r)
			}
			last := r.stderr[strings.LastIndex(strings.TrimSuffix(r.stderr, "\n"), "\n")+1:]
			for _, m := range tc.mention {
				if !strings.Contains(last, m) {
					t.Errorf("final error does not mention %q: %s", m, last)
				}
			}
		})
	}
}

// TestIdentifyHungMetadata: a metadata service that issues a token and
// then never answers ends Identify within the per-request timeout, with an
// error naming the path.
func TestIdentifyHungMetadata(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			w.Write([]byte("token"))
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	_, _, err := reyes.Identify(t.Context(), testRuleset(), reyes.IdentityOptions{
		IMDSEndpoint: srv.URL, IMDSTimeout: 300 * time.Millisecond, DisableAddressLookup: true,
	})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Identify took %s", d)
	}
	if !errors.Is(err, reyes.ErrIMDS) || !strings.Contains(err.Error(), "GET ") || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("Identify: %v", err)
	}
}

// TestFollowerNeedsNetAdmin: a follower without CAP_NET_ADMIN failed with
// ipset's bare "Operation not permitted".
func TestFollowerNeedsNetAdmin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop CAP_NET_ADMIN with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv is not installed")
	}
	_, follower := binaries(t)
	dir := t.TempDir()
	signer, _, public := keys(t, dir, "leader")
	l := &reyes.Leader{Source: sgsource.Dir{Path: sampleInventory}, Signer: signer, Build: ruleset.BuildOptions{Scope: "test"},
		Store: reyes.NewFileStore(filepath.Join(dir, "ruleset.signed"), reyes.StoreOptions{})}
	if _, err := l.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := struct{ dir string }{dir}
	args := []string{"--store", filepath.Join(p.dir, "ruleset.signed"), "--trusted-key", public, "--scope", "test",
		"--state-dir", filepath.Join(p.dir, "cli-state"), "--no-imds", "--addrs", "10.20.1.10", "--disable-file", filepath.Join(p.dir, "disabled")}
	r := run(t, nil, []string{setpriv, "--bounding-set", "-net_admin", "--"}, follower, args...)
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "CAP_NET_ADMIN") || !strings.Contains(r.stderr, "root") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("want exit 1 and one line naming root and CAP_NET_ADMIN: %v", r)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "cli-state")); err == nil {
		t.Error("the state directory was made before the privilege check")
	}
	// A dry run needs no privilege.
	r = run(t, nil, []string{setpriv, "--bounding-set", "-net_admin", "--"}, follower, append(args, "--dry-run")...)
	if r.code != 0 {
		t.Fatalf("dry run without CAP_NET_ADMIN: %v", r)
	}
}

// TestBinariesSkewAndSerial runs the real follower: max_skew 10m with the
// leader 8 minutes ahead (freshness accepted, the signature check refused
// "allowed skew 5m0s"), and a validly signed serial 2^64-1 (every later
// object was refused as a rollback until the state file was deleted by
// hand); then the real leader publishes again and the follower accepts.
func TestBinariesSkewAndSerial(t *testing.T) {
	leader, follower := binaries(t)
	dir := t.TempDir()
	signer, secret, public := keys(t, dir, "leader")
	storePath := filepath.Join(dir, "ruleset.signed")
	p := &pipeline{signer: signer, store: reyes.NewFileStore(storePath, reyes.StoreOptions{})}
	args := []string{"--store", storePath, "--trusted-key", public, "--scope", "test", "--state-dir", filepath.Join(dir, "state"),
		"--no-imds", "--addrs", "10.20.1.10", "--dry-run"}

	p.publishSerial(t, uint64(time.Now().Add(8*time.Minute).UnixNano()), time.Now().Add(8*time.Minute))
	if r := run(t, nil, nil, follower, args...); r.code != 1 || !strings.Contains(r.stderr, "not yet valid") && !strings.Contains(r.stderr, "skew") {
		t.Fatalf("default skew, leader 8m ahead: %v", r)
	}
	if r := run(t, nil, nil, follower, append(args, "--max-skew", "10m")...); r.code != 0 {
		t.Fatalf("max_skew 10m, leader 8m ahead: %v", r)
	}

	p.publishSerial(t, math.MaxUint64, time.Now())
	if r := run(t, nil, nil, follower, args...); r.code != 1 || !strings.Contains(r.stderr, "serial ahead of its time") {
		t.Fatalf("serial 2^64-1: %v", r)
	}
	if r := run(t, nil, nil, leader, "--source", sampleInventory, "--store", storePath, "--signing-key", secret, "--scope", "test"); r.code != 0 || !strings.Contains(r.stderr, "beyond its time") {
		t.Fatalf("leader after serial 2^64-1: %v", r)
	}
	if r := run(t, nil, nil, follower, args...); r.code != 0 {
		t.Fatalf("follower after the leader's next publish: %v", r)
	}
}

// within fails the test when fn has not returned after d.
func within(t *testing.T, d time.Duration, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s: still waiting after %s", what, d)
		return nil
	}
}

// TestFIFOPathsDoNotHang: a FIFO (without a writer) given as the
// configuration file, a trusted key or the metrics file ends the run at
// once; each used to block in open(2) for ever, where SIGTERM does not
// reach.
func TestFIFOPathsDoNotHang(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ctx := context.Background()
	t.Run("config file", func(t *testing.T) {
		var out, errb bytes.Buffer
		err := within(t, 5*time.Second, "--config FIFO", func() error {
			return cli.RunFollower(ctx, []string{"--config", fifo, "--dry-run"}, nil, &out, &errb)
		})
		if err == nil || cli.ExitCode(err) == cli.ExitOK {
			t.Fatalf("--config FIFO: %v", err)
		}
	})
	t.Run("trusted key", func(t *testing.T) {
		var out, errb bytes.Buffer
		err := within(t, 5*time.Second, "--trusted-key FIFO", func() error {
			return cli.RunFollower(ctx, []string{"--store", filepath.Join(dir, "obj"), "--trusted-key", fifo,
				"--state-dir", filepath.Join(dir, "st"), "--scope", "s", "--no-imds", "--dry-run"}, nil, &out, &errb)
		})
		if err == nil {
			t.Fatal("--trusted-key FIFO accepted")
		}
	})
	t.Run("metrics file", func(t *testing.T) {
		p := newPipeline(t)
		if _, err := p.leader.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		p.follower.MetricsFile = fifo
		err := within(t, 5*time.Second, "metrics file FIFO", func() error {
			_, err := p.follower.RunOnce(ctx)
			return err
		})
		if err != nil {
			t.Fatalf("run with the metrics file a FIFO: %v", err)
		}
	})
}

// TestMetricsFileMissingDirectoryNamed: a --metrics-file in a directory
// that does not exist is logged naming the directory, not a temporary
// file in it.
func TestMetricsFileMissingDirectoryNamed(t *testing.T) {
	p := newPipeline(t)
	var logs bytes.Buffer
	p.follower.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	missing := filepath.Join(p.dir, "textfile_collector")
	p.follower.MetricsFile = filepath.Join(missing, "reyes.prom")
	p.publishAndApply(t)
	if !strings.Contains(logs.String(), "directory "+missing+" does not exist") || strings.Contains(logs.String(), ".tmp-") {
		t.Errorf("the warning does not name the missing directory:\n%s", logs.String())
	}
}
