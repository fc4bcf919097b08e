package reyes_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

const sampleInventory = "../examples/quickstart/inventory"

type pipeline struct {
	dir      string
	signer   *sign.Signer
	trusted  *sign.Keyring
	store    *reyes.FileStore
	kernel   *applytest.Kernel
	now      time.Time
	leader   *reyes.Leader
	follower *reyes.Follower
	out      *bytes.Buffer
}

func newPipeline(t testing.TB) *pipeline {
	t.Helper()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	signer, _, pub := sealtest.Key(t, "reyes test", now.Add(-time.Hour))
	trusted, err := sign.ParseKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &pipeline{dir: dir, signer: signer, trusted: trusted, now: now, out: &bytes.Buffer{},
		store:  reyes.NewFileStore(filepath.Join(dir, "ruleset.signed"), reyes.StoreOptions{}),
		kernel: applytest.New("nft")}
	clock := func() time.Time { return p.now }
	p.leader = &reyes.Leader{Source: sgsource.Dir{Path: sampleInventory}, Store: p.store, Signer: signer,
		Build: ruleset.BuildOptions{Scope: "test"}, Now: clock}
	p.follower = &reyes.Follower{Store: p.store, Trusted: trusted, StateDir: filepath.Join(dir, "state"),
		Freshness: reyes.FreshnessPolicy{Scope: "test"},
		Identity:  reyes.IdentityOptions{DisableIMDS: true, InterfaceAddrs: func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("10.20.1.10")}, nil }},
		Apply:     apply.Options{Runner: p.kernel, DisableFile: filepath.Join(dir, "disabled")},
		Out:       p.out, Now: clock, MetricsFile: filepath.Join(dir, "reyes.prom")}
	if err := os.MkdirAll(p.follower.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// appliedPipeline is a new pipeline whose leader has published and whose
// follower has applied the ruleset once.
func appliedPipeline(t *testing.T) *pipeline {
	t.Helper()
	p := newPipeline(t)
	p.publishAndApply(t)
	return p
}

// driftedPipeline is an applied pipeline whose IPv4 rules an
// iptables-restore script then changed behind reyes' back; good is the
// kernel as reyes left it.
func driftedPipeline(t *testing.T, script string) (p *pipeline, good string) {
	t.Helper()
	p = appliedPipeline(t)
	good = p.kernel.Dump()
	if err := p.kernel.Script(4, script); err != nil {
		t.Fatal(err)
	}
	return p, good
}

// checkRepaired fails the test unless the kernel holds good again, but
// for the slots of the sets (a reload puts changed sets in their other
// slot: see package apply).
func (p *pipeline) checkRepaired(t *testing.T, good string) {
	t.Helper()
	if got := p.kernel.Dump(); applytest.Unslotted(got) != applytest.Unslotted(good) {
		t.Errorf("not repaired:\n%s\nwant:\n%s", got, good)
	}
}

// publishAndApply runs the leader and then the follower once, failing the
// test on either error.
func (p *pipeline) publishAndApply(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := p.leader.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.follower.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPipelinePublishApplyUnchanged(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	if _, err := p.leader.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := p.follower.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Applied.Changed() || res.Identity.Method != reyes.IdentityAddresses {
		t.Fatalf("first run: changed=%v identity=%v", res.Applied.Changed(), res.Identity.Method)
	}
	if !strings.Contains(p.kernel.Dump(), "REYES-FILTER") {
		t.Fatalf("kernel has no reyes chains:\n%s", p.kernel.Dump())
	}
	// Same object: the file store's ETag makes it a no-op with no kernel call.
	p.kernel.ResetCalls()
	res, err = p.follower.RunOnce(ctx)
	if err != nil || !res.NotModified || len(p.kernel.Calls()) != 0 {
		t.Fatalf("second run: %+v, %v, calls %v", res.NotModified, err, p.kernel.Calls())
	}
	if got := readMetrics(t, p.follower.MetricsFile).value(t, "reyes_follower_last_success_timestamp_seconds"); got != float64(p.now.Unix()) {
		t.Fatalf("last success %v, want %d", got, p.now.Unix())
	}
}

func TestPipelineRefusals(t *testing.T) {
	ctx := context.Background()
	p := appliedPipeline(t)
	good, _ := os.ReadFile(filepath.Join(p.follower.StateDir, "state.json"))
	before := p.kernel.Dump()
	older, _ := os.ReadFile(filepath.Join(p.dir, "ruleset.signed"))
	p.leader.Refresh = -1 // republish the same estate with a newer serial

	p.now = p.now.Add(10 * time.Minute)
	p.publishAndApply(t)
	good, _ = os.ReadFile(filepath.Join(p.follower.StateDir, "state.json"))
	before = p.kernel.Dump()
	newer, _ := os.ReadFile(filepath.Join(p.dir, "ruleset.signed"))

	put := func(b []byte) {
		if err := p.store.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// One bit of the payload (its last byte: the root is signed gzip-compressed).
	tampered := bytes.Clone(newer)
	tampered[len(tampered)-1] ^= 1
	intruder, _, _ := sealtest.Key(t, "intruder", p.now.Add(-time.Hour))
	payload, _, _ := sign.Unpack(newer)
	untrusted, _ := sign.Seal(payload, intruder, p.now)

	tests := []struct {
		name string
		obj  []byte
		at   time.Time
		want error
	}{
		{"rollback to an older object", older, p.now, reyes.ErrRollback},
		{"tampered payload", tampered, p.now, sign.ErrBadSignature},
		{"untrusted signer", untrusted, p.now, sign.ErrUnknownSigner},
		{"expired", newer, p.now.Add(2 * time.Hour), reyes.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put(tt.obj)
			p.now = tt.at
			defer func(n time.Time) { p.now = n }(p.now)
			p.kernel.ResetCalls()
			_, err := p.follower.RunOnce(ctx)
			if !errors.Is(err, tt.want) {
				t.Fatalf("RunOnce: %v, want %v", err, tt.want)
			}
			if len(p.kernel.Calls()) != 0 || p.kernel.Dump() != before {
				t.Errorf("the kernel was touched: %v", p.kernel.Calls())
			}
			if got, _ := os.ReadFile(filepath.Join(p.follower.StateDir, "state.json")); !bytes.Equal(got, good) {
				t.Error("the state changed")
			}
		})
	}
}

func TestPipelinePausedAndDryRun(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	if _, err := p.leader.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.follower.Apply.DisableFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := p.follower.RunOnce(ctx)
	if err != nil || !res.Paused || len(p.kernel.Calls()) != 0 {
		t.Fatalf("paused run: %+v %v %v", res.Paused, err, p.kernel.Calls())
	}
	p.follower.DryRun = true
	if _, err := p.follower.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.out.String(), "-A REYES-FILTER") || !strings.Contains(p.out.String(), "kernel") {
		t.Errorf("dry run printed:\n%s", p.out)
	}
	if _, err := os.Stat(filepath.Join(p.follower.StateDir, "state.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run recorded state: %v", err)
	}
}

func TestPipelineBaseline(t *testing.T) {
	p := newPipeline(t)
	p.follower.Render.Baseline = &render.Baseline{Interface: "ens5"}
	p.publishAndApply(t)
	dump := p.kernel.Dump()
	for _, want := range []string{"REYES-BASE-IN", "-A OUTPUT -j REYES-OUTPUT", "-A FORWARD -j REYES-FORWARD", "IPT: Xmas flags"} {
		if !strings.Contains(dump, want) {
			t.Errorf("the kernel lacks %q:\n%s", want, dump)
		}
	}
}

func TestFollowerBaselineFlags(t *testing.T) {
	dir := t.TempDir()
	_, pub, err := sign.GenerateKey("k", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "k.asc")
	os.WriteFile(key, pub, 0o644)
	var out, errb bytes.Buffer
	err = cli.RunFollower(context.Background(), []string{"--store", filepath.Join(dir, "none"), "--trusted-key", key,
		"--state-dir", dir, "--baseline", "--baseline-interface", "eth0", "--baseline-outbound", "sometimes"}, nil, &out, &errb)
	if !errors.Is(err, reyes.ErrConfig) || !strings.Contains(err.Error(), "baseline_outbound") {
		t.Fatalf("RunFollower: %v", err)
	}
	err = cli.RunFollower(context.Background(), []string{"--store", filepath.Join(dir, "none"), "--trusted-key", key,
		"--state-dir", dir, "--baseline", "--baseline-interface", "eth0", "--baseline-tcp-ports", "22,0"}, nil, &out, &errb)
	if !errors.Is(err, reyes.ErrConfig) || !strings.Contains(err.Error(), "baseline_tcp_ports") {
		t.Fatalf("RunFollower: %v", err)
	}
}

func TestPipelineBaselineWithFailSafe(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	fs := []render.FailSafe{{Source: netip.MustParsePrefix("10.99.0.0/16"), Protocol: 6, Port: 22}}
	p.follower.Render.Baseline = &render.Baseline{Interface: "ens5"}
	p.follower.Render.FailSafe = fs
	p.follower.Apply.FailSafe = fs
	if _, err := p.leader.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.follower.RunOnce(ctx); err != nil {
		t.Fatalf("apply refused a baseline plan with fail-safe rules: %v", err)
	}
}

func TestLeaderRefresh(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	first, err := p.leader.RunOnce(ctx)
	if err != nil || first.Skipped {
		t.Fatalf("first publish: %+v %v", first, err)
	}
	if _, err := p.follower.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// Ten minutes later, same estate: not republished, so followers see
	// an unchanged object (no download, no decode).
	p.now = p.now.Add(10 * time.Minute)
	res, err := p.leader.RunOnce(ctx)
	if err != nil || !res.Skipped || res.Header.Serial != first.Header.Serial {
		t.Fatalf("second run: %+v %v", res, err)
	}
	if fr, err := p.follower.RunOnce(ctx); err != nil || !fr.NotModified {
		t.Fatalf("follower after a skipped publish: %+v %v", fr.NotModified, err)
	}
	// Past half the TTL: republished with a new serial.
	p.now = p.now.Add(25 * time.Minute)
	res, err = p.leader.RunOnce(ctx)
	if err != nil || res.Skipped || res.Header.Serial <= first.Header.Serial {
		t.Fatalf("refresh: %+v %v", res, err)
	}
	// A leader with another key cannot vouch for the object: it publishes.
	spare := *p.leader
	spare.Signer, _, _ = sealtest.Key(t, "spare", p.now.Add(-time.Hour))
	p.now = p.now.Add(time.Minute)
	if res, err := spare.RunOnce(ctx); err != nil || res.Skipped {
		t.Fatalf("leader with another key: %+v %v", res, err)
	}
}

func TestFollowerRepairsDriftOnUnchangedObject(t *testing.T) {
	ctx := context.Background()
	p, good := driftedPipeline(t, "*filter\n-F REYES-INPUT\n-D INPUT -j REYES-INPUT\nCOMMIT\n")
	// Within the check interval an unchanged object costs no kernel call.
	p.now = p.now.Add(time.Minute)
	p.kernel.ResetCalls()
	res, err := p.follower.RunOnce(ctx)
	if err != nil || !res.NotModified || len(p.kernel.Calls()) != 0 {
		t.Fatalf("unchanged run within the interval: %+v %v %v", res.NotModified, err, p.kernel.Calls())
	}
	// Once it is due, the check finds the flushed chain and the run
	// reloads the rules.
	res, err = p.followLater(ctx, reyes.DefaultDriftCheck)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Drift) == 0 || !res.Applied.Changed() {
		t.Fatalf("drift %v, changed %v", res.Drift, res.Applied.Changed())
	}
	p.checkRepaired(t, good)
	// Repaired: the next runs are unchanged again.
	p.unchangedNext(t, "after the repair")
}

// TestFollowerRepairsDeepDrift: a chain flushed below REYES-INPUT and a set
// member replaced one for one are invisible to apply's fast path; the
// drift check finds them and the follower reloads everything.
func TestFollowerRepairsDeepDrift(t *testing.T) {
	ctx := context.Background()
	p, good := driftedPipeline(t, "*filter\n-F REYES-FILTER\nCOMMIT\n")
	if _, err := p.kernel.Run(ctx, []byte("del reyes4-sg-3afd97af72adefa56 10.20.1.50\nadd reyes4-sg-3afd97af72adefa56 10.66.6.6\n"), "ipset", "restore"); err != nil {
		t.Fatal(err)
	}
	res, err := p.followLater(ctx, reyes.DefaultDriftCheck+time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Drift) != 2 {
		t.Errorf("drift %v, want the chain and the set", res.Drift)
	}
	p.checkRepaired(t, good)
}

// TestDriftCheckAfterClockWentBack: the last drift check is recorded as
// the modification time of drift-checked in the state directory. A clock
// that ran ahead when it was written (a host booted with its RTC in the
// future, then corrected by NTP) left that time in the future, and no
// drift check was due again until the clock caught up with it (years,
// with an RTC reset to a far date): a flushed chain was never repaired
// and, with IMDS, a changed identity never noticed. A check stamped in the
// future is due now.
func TestDriftCheckAfterClockWentBack(t *testing.T) {
	ctx := context.Background()
	p := appliedPipeline(t)
	ahead := p.now.Add(365 * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(p.follower.StateDir, "drift-checked"), ahead, ahead); err != nil {
		t.Fatal(err)
	}
	res, err := p.followLater(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !res.DriftChecked {
		t.Errorf("the last check is stamped a year ahead of the clock: no drift check was due (NotModified=%v)", res.NotModified)
	}
	if res, err := p.followLater(ctx, time.Minute); err != nil || res.DriftChecked {
		t.Errorf("the run after it: DriftChecked=%v err=%v, want no check due", res.DriftChecked, err)
	}
}

// TestHotSparesWithSkewedClocks: a hot spare whose clock is behind
// publishes a change after the other; its serial must still be higher, or
// every follower refuses the change as a rollback.
func TestHotSparesWithSkewedClocks(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	ahead := *p.leader
	ahead.Now = func() time.Time { return p.now.Add(2 * time.Minute) }
	a, err := ahead.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.follower.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// The estate changes; the leader whose clock is behind sees it first.
	p.leader.Source = sgsource.Dir{Path: "../render/testdata/inventories/estate"}
	p.follower.Identity = reyes.IdentityOptions{DisableIMDS: true, Addrs: []netip.Addr{netip.MustParseAddr("10.1.2.30")}}
	p.now = p.now.Add(30 * time.Second)
	b, err := p.leader.RunOnce(ctx)
	if err != nil || b.Skipped {
		t.Fatalf("behind leader: %+v %v", b, err)
	}
	if b.Header.Serial <= a.Header.Serial {
		t.Fatalf("serial %d after %d: followers would refuse it", b.Header.Serial, a.Header.Serial)
	}
	if _, err := p.follower.RunOnce(ctx); err != nil {
		t.Fatalf("follower refused the change: %v", err)
	}
}

func TestLeaderRefusesEmptyInventory(t *testing.T) {
	p := newPipeline(t)
	empty := t.TempDir()
	if err := os.MkdirAll(filepath.Join(empty, "us-east-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"security-groups.json", "network-interfaces.json", "vpcs.json"} {
		body := map[string]string{"security-groups.json": `{"SecurityGroups":[]}`, "network-interfaces.json": `{"NetworkInterfaces":[]}`, "vpcs.json": `{"Vpcs":[]}`}[f]
		if err := os.WriteFile(filepath.Join(empty, "us-east-1", f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.leader.Source = sgsource.Dir{Path: empty}
	if _, err := p.leader.RunOnce(context.Background()); !errors.Is(err, reyes.ErrEmptyInventory) {
		t.Fatalf("RunOnce: %v, want ErrEmptyInventory", err)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "ruleset.signed")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was published: %v", err)
	}
}

func TestLeaderRefusesUnmatchedExclusion(t *testing.T) {
	p := newPipeline(t)
	p.leader.Build.Exclude = []string{"api", "vpn-acess"} // a typo
	_, err := p.leader.RunOnce(context.Background())
	if !errors.Is(err, reyes.ErrExcludeUnmatched) || !strings.Contains(err.Error(), "vpn-acess") || strings.Contains(err.Error(), `"api"`) {
		t.Fatalf("RunOnce: %v", err)
	}
}

func TestExplicitUnknownGroupsNeedVPC(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	if _, err := p.leader.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	p.follower.Identity = reyes.IdentityOptions{Groups: []string{"sg-41c9bbb04cf721a81"}} // a typo of a real group
	if _, err := p.follower.RunOnce(ctx); !errors.Is(err, reyes.ErrIdentityConfig) {
		t.Fatalf("RunOnce: %v, want ErrIdentityConfig", err)
	}
	if len(p.kernel.Calls()) != 0 {
		t.Errorf("the kernel was touched: %v", p.kernel.Calls())
	}
}

// TestAddressLookupNeedsTheDefaultRouteAddress: a host whose own ENI is
// not (yet) in the ruleset must not adopt another VPC's ENI because a
// tunnel or overlapping address of it matches.
func TestAddressLookupNeedsTheDefaultRouteAddress(t *testing.T) {
	inv, err := sgsource.ReadDir(context.Background(), sampleInventory)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	addrs := func(ss ...string) func() ([]netip.Addr, error) {
		return func() ([]netip.Addr, error) {
			var out []netip.Addr
			for _, s := range ss {
				out = append(out, netip.MustParseAddr(s))
			}
			return out, nil
		}
	}
	opts := reyes.IdentityOptions{DisableIMDS: true, InterfaceAddrs: addrs("10.99.0.7", "10.30.0.5"), PrimaryAddrs: addrs("10.99.0.7")}
	if _, _, err := reyes.Identify(context.Background(), rs, opts); !errors.Is(err, reyes.ErrUnknownHost) {
		t.Fatalf("Identify through a tunnel address: %v, want ErrUnknownHost", err)
	}
	opts.PrimaryAddrs = addrs("10.30.0.5")
	host, _, err := reyes.Identify(context.Background(), rs, opts)
	if err != nil || len(host.Interfaces) != 1 || host.Interfaces[0].ID != "eni-7be938ba11b8ec7b0" {
		t.Fatalf("Identify: %+v %v", host, err)
	}
}

// followLater moves the clock on by d and runs the follower once.
func (p *pipeline) followLater(ctx context.Context, d time.Duration) (reyes.FollowerResult, error) {
	p.now = p.now.Add(d)
	return p.follower.RunOnce(ctx)
}

// unchangedNext runs the follower a minute later and fails the test
// unless the run found nothing to do and touched no kernel tool.
func (p *pipeline) unchangedNext(t *testing.T, what string) {
	t.Helper()
	p.now = p.now.Add(time.Minute)
	p.kernel.ResetCalls()
	if res, err := p.follower.RunOnce(context.Background()); err != nil || !res.NotModified || len(p.kernel.Calls()) != 0 {
		t.Fatalf("%s: NotModified=%v err=%v calls=%v", what, res.NotModified, err, p.kernel.Calls())
	}
}
