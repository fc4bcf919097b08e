package reyes_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/sign"
)

// TestUnchangedMeansUnchanged: with the object unchanged in the store, a
// change of any local setting that shapes the plan or the trust decision
// makes the next run verify, render and apply again (or refuse, when the
// new setting refuses the object); the same settings are "unchanged", one
// conditional GET and no kernel call.
func TestUnchangedMeansUnchanged(t *testing.T) {
	fsafe := []render.FailSafe{{Source: netip.MustParsePrefix("192.0.2.0/24"), Protocol: 6, Port: 22}}
	addrs := func(ss ...string) func() ([]netip.Addr, error) {
		return func() ([]netip.Addr, error) {
			var out []netip.Addr
			for _, s := range ss {
				out = append(out, netip.MustParseAddr(s))
			}
			return out, nil
		}
	}
	_, otherPub, err := sign.GenerateKey("other leader", "", time.Date(2026, 11, 21, 11, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	other, err := sign.ParseKeyring(otherPub)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(p *pipeline)
		kernel string // the kernel must then hold this
		err    error  // or the run must fail with this
	}{
		{name: "fail-safe added", change: func(p *pipeline) {
			p.follower.Render.FailSafe, p.follower.Apply.FailSafe = fsafe, fsafe
		}, kernel: "192.0.2.0/24"},
		{name: "log drop", change: func(p *pipeline) { p.follower.Render.LogDrop = true }, kernel: "reyes drop: "},
		{name: "log accept", change: func(p *pipeline) { p.follower.Render.LogAccept = true }, kernel: "reyes accept: "},
		{name: "mode ipsec", change: func(p *pipeline) { p.follower.Render.Mode = render.ModeIPsec }, kernel: "--pol ipsec"},
		{name: "table exclusive", change: func(p *pipeline) { p.follower.Render.Table = render.TableExclusive }, kernel: "-A INPUT -j REYES-INPUT"},
		{name: "foreign ranges", change: func(p *pipeline) {
			p.follower.Render.ForeignCIDRs = []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}
		}, kernel: "172.16.0.0/12"},
		{name: "baseline", change: func(p *pipeline) { p.follower.Render.Baseline = &render.Baseline{Interface: "ens5"} }, kernel: "REYES-BASE-IN"},
		{name: "identity: vpc cidrs", change: func(p *pipeline) {
			p.follower.Identity.VPCCIDRs = []netip.Prefix{netip.MustParsePrefix("10.31.0.0/16")}
		}, kernel: "10.31.0.0/16"},
		{name: "identity: explicit groups", change: func(p *pipeline) {
			p.follower.Identity.Groups = []string{"sg-41c9bbb04cf721a80"}
		}, kernel: "tcp/5432 from sg-b238c182ba23a5210"},
		{name: "identity found: the host's addresses", change: func(p *pipeline) {
			p.follower.Identity.InterfaceAddrs = addrs("10.20.1.60")
		}, kernel: "tcp/5432 from sg-b238c182ba23a5210"},
		{name: "identity: explicit addresses", change: func(p *pipeline) {
			p.follower.Identity.Addrs = []netip.Addr{netip.MustParseAddr("10.20.1.60")}
		}, kernel: "tcp/5432 from sg-b238c182ba23a5210"},
		{name: "identity: metadata service enabled", change: func(p *pipeline) {
			p.follower.Identity.DisableIMDS, p.follower.Identity.IMDSEndpoint = false, closedURL(t)
		}},
		{name: "backend", change: func(p *pipeline) { p.follower.Apply.Backend = apply.BackendNFT }},
		{name: "baseline option", change: func(p *pipeline) {
			p.follower.Render.Baseline = &render.Baseline{Interface: "ens5", AllowEchoRequest: true}
		}, kernel: "REYES-BASE-IN"},
		{name: "scope", change: func(p *pipeline) { p.follower.Freshness.Scope = "prod" }, err: reyes.ErrWrongScope},
		{name: "max validity", change: func(p *pipeline) { p.follower.Freshness.MaxValidity = 30 * time.Minute }, err: reyes.ErrValidityTooLong},
		{name: "trusted keys replaced", change: func(p *pipeline) { p.follower.Trusted = other }, err: sign.ErrUnknownSigner},
		{name: "trusted key added", change: func(p *pipeline) { p.follower.Trusted = p.trusted.Merge(other) }},
		{name: "max skew", change: func(p *pipeline) { p.follower.Freshness.MaxSkew = time.Minute }},
		{name: "max size", change: func(p *pipeline) { p.follower.MaxSize = 100 }, err: sign.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p := appliedPipeline(t)
			// Unchanged: no kernel call.
			p.unchangedNext(t, "same settings")
			tt.change(p)
			res, err := p.followLater(ctx, time.Minute)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("after the change: %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("after the change: %v", err)
			}
			if res.NotModified || res.Plan == nil || res.Header.Serial == 0 {
				t.Fatalf("after the change the run was not verified and applied: NotModified=%v", res.NotModified)
			}
			if tt.kernel != "" && !strings.Contains(p.kernel.Dump(), tt.kernel) {
				t.Errorf("the kernel lacks %q:\n%s", tt.kernel, p.kernel.Dump())
			}
			// Applied with the new settings: unchanged again.
			p.unchangedNext(t, "second run with the new settings")
		})
	}
}

// TestUnchangedAfterFailedSettingsChange: a setting that makes the run
// fail does not get recorded; going back to the old settings is unchanged
// again, and the kernel was never touched.
func TestUnchangedAfterFailedSettingsChange(t *testing.T) {
	ctx := context.Background()
	p := appliedPipeline(t)
	good := p.kernel.Dump()
	p.kernel.ResetCalls()
	p.follower.Freshness.Scope = "prod"
	if _, err := p.follower.RunOnce(ctx); !errors.Is(err, reyes.ErrWrongScope) {
		t.Fatalf("run in another scope: %v", err)
	}
	p.follower.Freshness.Scope = "test"
	if res, err := p.follower.RunOnce(ctx); err != nil || !res.NotModified {
		t.Fatalf("back to the old scope: NotModified=%v err=%v", res.NotModified, err)
	}
	if len(p.kernel.Calls()) != 0 || p.kernel.Dump() != good {
		t.Errorf("the kernel was touched: %v", p.kernel.Calls())
	}
}

// TestDryRunUnaffectedBySettings: a dry run always prints the current
// plan and records nothing: a real run after it still sees the changed
// setting.
func TestDryRunUnaffectedBySettings(t *testing.T) {
	ctx := context.Background()
	p := appliedPipeline(t)
	p.follower.Render.LogDrop = true
	p.follower.DryRun = true
	if _, err := p.follower.RunOnce(ctx); err != nil || !strings.Contains(p.out.String(), "reyes drop: ") {
		t.Fatalf("dry run: %v\n%s", err, p.out)
	}
	p.follower.DryRun = false
	res, err := p.follower.RunOnce(ctx)
	if err != nil || res.NotModified || !strings.Contains(p.kernel.Dump(), "reyes drop: ") {
		t.Fatalf("run after the dry run: NotModified=%v err=%v", res.NotModified, err)
	}
}

// TestUnchangedIdentityFromIMDS: a host found through the metadata
// service whose groups change there while the object does not is
// re-applied when the next drift check is due; until then an unchanged
// poll asks the metadata service nothing.
func TestUnchangedIdentityFromIMDS(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	eni := imdsInterface{mac: "02:00:00:00:00:01", id: "eni-f9d642e9aab729078", vpc: "vpc-f7fb0634aa419bc31",
		groups: []string{"sg-b238c182ba23a5210"}, v4s: []string{"10.20.1.10"}, cidrs4: []string{"10.20.0.0/16"}}
	imds, url := newFakeIMDS(t, eni)
	p.follower.Identity = reyes.IdentityOptions{IMDSEndpoint: url, DisableAddressLookup: true}
	p.publishAndApply(t)
	if !strings.Contains(p.kernel.Dump(), "sg-b238c182ba23a5210") || strings.Contains(p.kernel.Dump(), "tcp/5432 from sg-b238c182ba23a5210") {
		t.Fatalf("first apply:\n%s", p.kernel.Dump())
	}
	reads := func() int {
		imds.mu.Lock()
		defer imds.mu.Unlock()
		return len(imds.reads)
	}
	// The instance gets the db group; the leader has not run since.
	imds.mu.Lock()
	imds.paths["network/interfaces/macs/02:00:00:00:00:01/security-group-ids"] = "sg-b238c182ba23a5210\nsg-41c9bbb04cf721a80"
	imds.mu.Unlock()
	before := reads()
	p.now = p.now.Add(time.Minute)
	p.kernel.ResetCalls()
	if res, err := p.follower.RunOnce(ctx); err != nil || !res.NotModified || len(p.kernel.Calls()) != 0 || reads() != before {
		t.Fatalf("poll within the drift interval: NotModified=%v err=%v kernel calls %d, metadata reads %d", res.NotModified, err, len(p.kernel.Calls()), reads()-before)
	}
	res, err := p.followLater(ctx, reyes.DefaultDriftCheck)
	if err != nil || res.NotModified {
		t.Fatalf("poll with a drift check due: NotModified=%v err=%v", res.NotModified, err)
	}
	if !strings.Contains(p.kernel.Dump(), "tcp/5432 from sg-b238c182ba23a5210") {
		t.Errorf("the new group's rules are not loaded:\n%s", p.kernel.Dump())
	}
	if res, err := p.followLater(ctx, reyes.DefaultDriftCheck); err != nil || !res.NotModified {
		t.Fatalf("next drift check: NotModified=%v err=%v", res.NotModified, err)
	}
}

// TestUnchangedRecordIsSafe: what the settings were is kept in the status
// file, next to the state; the state file keeps the fields earlier
// releases read (a rolled-back binary still reads it), and a status file
// that is missing or from another apply (a crash between the two writes)
// makes the next run apply again, never skip.
func TestUnchangedRecordIsSafe(t *testing.T) {
	ctx := context.Background()
	p := appliedPipeline(t)
	b, err := os.ReadFile(filepath.Join(p.follower.StateDir, reyes.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for k := range fields {
		switch k {
		case "format", "scope", "serial", "generated_at", "not_after", "sha256", "etag", "accepted_at":
		default:
			t.Errorf("state.json has field %q, which the previous release refuses", k)
		}
	}
	statusFile := filepath.Join(p.follower.StateDir, reyes.StatusFile)
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T)
	}{
		{"status file missing", func(t *testing.T) { os.Remove(statusFile) }},
		{"status file from another apply", func(t *testing.T) {
			st, err := reyes.LoadStatus(p.follower.StateDir)
			if err != nil || st.Loaded == nil {
				t.Fatalf("status: %+v %v", st, err)
			}
			st.Loaded.AppliedAt = st.Loaded.AppliedAt.Add(-time.Hour)
			if err := reyes.SaveStatus(p.follower.StateDir, st); err != nil {
				t.Fatal(err)
			}
		}},
		{"status file unreadable", func(t *testing.T) { os.WriteFile(statusFile, []byte("{"), 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.breakIt(t)
			if res, err := p.followLater(ctx, time.Minute); err != nil || res.NotModified || res.Plan == nil {
				t.Fatalf("NotModified=%v err=%v, want a verified apply", res.NotModified, err)
			}
			if res, err := p.followLater(ctx, time.Minute); err != nil || !res.NotModified {
				t.Fatalf("next run: NotModified=%v err=%v", res.NotModified, err)
			}
		})
	}
}

// TestUnchangedKernelRecord: "reyesctl remove" (apply.Remove) takes the
// rules out and forgets apply's record; the follower's next run loads
// them again at once, as the README says, not only at the next drift
// check. A kernel record edited behind the follower's back does the same.
func TestUnchangedKernelRecord(t *testing.T) {
	ctx := context.Background()
	p := appliedPipeline(t)
	good := p.kernel.Dump()
	if _, err := apply.Remove(ctx, apply.Options{Runner: p.kernel, StateDir: p.follower.StateDir}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.kernel.Dump(), "REYES-INPUT") {
		t.Fatalf("remove left rules:\n%s", p.kernel.Dump())
	}
	res, err := p.followLater(ctx, time.Minute)
	if err != nil || res.NotModified || p.kernel.Dump() != good {
		t.Fatalf("run after remove: NotModified=%v err=%v\n%s", res.NotModified, err, p.kernel.Dump())
	}
	p.unchangedNext(t, "next run")
	// Someone restores an old record over apply's: reloaded in full.
	rec := filepath.Join(p.follower.StateDir, "apply-ipv4.json")
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec, append(b, ' '), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := p.followLater(ctx, time.Minute); err != nil || res.NotModified {
		t.Fatalf("run after the record changed: NotModified=%v err=%v", res.NotModified, err)
	}
}
