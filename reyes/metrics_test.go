package reyes_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/sign"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// promFile is a metrics file as Prometheus' own parser reads it.
type promFile struct {
	text     string
	families map[string]*dto.MetricFamily
}

func readMetrics(t *testing.T, path string) promFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading metrics: %v", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parsing metrics: %v\n%s", err, b)
	}
	return promFile{text: string(b), families: fams}
}

// sample returns the value of the sample of name whose labels are
// labels ("k=v" each); ok is false when there is none.
func (f promFile) sample(name string, labels ...string) (float64, bool) {
	fam, ok := f.families[name]
	if !ok {
		return 0, false
	}
	want := append([]string(nil), labels...)
	sort.Strings(want)
	for _, m := range fam.GetMetric() {
		var have []string
		for _, l := range m.GetLabel() {
			have = append(have, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(have)
		if strings.Join(have, ",") != strings.Join(want, ",") {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func (f promFile) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.sample(name, labels...)
	if !ok {
		t.Fatalf("no sample %s%v in:\n%s", name, labels, f.text)
	}
	return v
}

// oneShot runs a copy of p's follower, as a cron-run follower is a new
// process every time: nothing carries over but the files.
func oneShot(t *testing.T, p *pipeline) (reyes.FollowerResult, error) {
	t.Helper()
	f := *p.follower
	return f.RunOnce(context.Background())
}

// TestMetricsDescribeTheHostOnEveryRun: after an apply, runs that find the
// object unchanged, are paused or fail still say what is loaded (serial
// exact, generated_at, not_after, rules and members), when the follower
// last succeeded and how the last run ended; counters add up across
// one-shot runs.
func TestMetricsDescribeTheHostOnEveryRun(t *testing.T) {
	p := newPipeline(t)
	// The serial is generated_at in Unix nanoseconds, above 2^53: a
	// float64 cannot hold this one exactly.
	p.now = p.now.Add(123)
	if _, err := p.leader.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := oneShot(t, p)
	if err != nil {
		t.Fatal(err)
	}
	applied := p.now
	h := res.Header
	m := readMetrics(t, p.follower.MetricsFile)
	if !strings.Contains(m.text, "\nreyes_ruleset_serial 1795262400000000123\n") || strings.Contains(m.text, "e+") {
		t.Fatalf("serial not written as an exact integer:\n%s", m.text)
	}
	if _, ok := m.sample("reyes_ruleset_info", "scope=test", "serial=1795262400000000123", "sha256="+mustState(t, p).Digest.String()); !ok {
		t.Errorf("no reyes_ruleset_info with the exact serial:\n%s", m.text)
	}
	rules, members := m.value(t, "reyes_rules_loaded"), m.value(t, "reyes_set_members_loaded")
	if rules == 0 || members == 0 {
		t.Fatalf("rules %v members %v loaded", rules, members)
	}
	check := func(t *testing.T, m promFile, result string, lastSuccess time.Time) {
		t.Helper()
		for name, want := range map[string]float64{
			"reyes_ruleset_serial":                          float64(h.Serial),
			"reyes_ruleset_generated_timestamp_seconds":     float64(h.GeneratedAt.Unix()),
			"reyes_ruleset_not_after_timestamp_seconds":     float64(h.NotAfter.Unix()),
			"reyes_ruleset_applied_timestamp_seconds":       float64(applied.Unix()),
			"reyes_rules_loaded":                            rules,
			"reyes_set_members_loaded":                      members,
			"reyes_follower_last_success_timestamp_seconds": float64(lastSuccess.Unix()),
			"reyes_follower_last_run_timestamp_seconds":     float64(p.now.Unix()),
		} {
			if got := m.value(t, name); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		for _, r := range []string{"applied", "unchanged", "paused", "failed"} {
			want := 0.0
			if r == result {
				want = 1
			}
			if got := m.value(t, "reyes_follower_last_run_result", "result="+r); got != want {
				t.Errorf("last_run_result{result=%q} = %v, want %v", r, got, want)
			}
		}
	}
	check(t, m, "applied", applied)

	t.Run("unchanged", func(t *testing.T) {
		p.now = p.now.Add(time.Minute)
		if res, err := oneShot(t, p); err != nil || !res.NotModified {
			t.Fatalf("NotModified=%v err=%v", res.NotModified, err)
		}
		check(t, readMetrics(t, p.follower.MetricsFile), "unchanged", p.now)
	})
	lastSuccess := p.now
	t.Run("paused", func(t *testing.T) {
		p.now = p.now.Add(time.Minute)
		if err := os.WriteFile(p.follower.Apply.DisableFile, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p.follower.Apply.DisableFile)
		if res, err := oneShot(t, p); err != nil || !res.Paused {
			t.Fatalf("Paused=%v err=%v", res.Paused, err)
		}
		m := readMetrics(t, p.follower.MetricsFile)
		check(t, m, "paused", lastSuccess)
		if m.value(t, "reyes_follower_paused") != 1 {
			t.Error("reyes_follower_paused is not 1")
		}
	})
	t.Run("failed twice", func(t *testing.T) {
		obj := filepath.Join(p.dir, "ruleset.signed")
		body, _ := os.ReadFile(obj)
		os.Remove(obj)
		defer os.WriteFile(obj, body, 0o644)
		for range 2 {
			p.now = p.now.Add(time.Minute)
			if _, err := oneShot(t, p); err == nil {
				t.Fatal("no error without an object")
			}
		}
		m := readMetrics(t, p.follower.MetricsFile)
		check(t, m, "failed", lastSuccess)
		if got := m.value(t, "reyes_follower_failures_total", "reason=store"); got != 2 {
			t.Errorf("failures{reason=store} = %v, want 2", got)
		}
		if got := m.value(t, "reyes_follower_last_failure_timestamp_seconds"); got != float64(p.now.Unix()) {
			t.Errorf("last failure %v", got)
		}
		for r, want := range map[string]float64{"applied": 1, "unchanged": 1, "paused": 1, "failed": 2} {
			if got := m.value(t, "reyes_follower_runs_total", "result="+r); got != want {
				t.Errorf("runs_total{result=%q} = %v, want %v", r, got, want)
			}
		}
	})
}

func mustState(t *testing.T, p *pipeline) reyes.State {
	t.Helper()
	st, err := reyes.LoadState(p.follower.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestMetricsFailureStages: each failure is counted under the stage that
// failed.
func TestMetricsFailureStages(t *testing.T) {
	tests := []struct {
		stage string
		setup func(t *testing.T, p *pipeline)
	}{
		{"store", func(t *testing.T, p *pipeline) { os.Remove(filepath.Join(p.dir, "ruleset.signed")) }},
		{"signature", func(t *testing.T, p *pipeline) {
			intruder, _, _ := sealtest.Key(t, "intruder", p.now.Add(-time.Hour))
			p.leader.Signer, p.leader.Refresh = intruder, -1
			p.now = p.now.Add(time.Minute)
			if _, err := p.leader.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"freshness", func(t *testing.T, p *pipeline) { p.now = p.now.Add(2 * time.Hour) }},
		{"rollback", func(t *testing.T, p *pipeline) {
			older, _ := os.ReadFile(filepath.Join(p.dir, "ruleset.signed"))
			p.leader.Refresh = -1
			p.now = p.now.Add(time.Minute)
			p.publishAndApply(t)
			if err := p.store.Put(context.Background(), older); err != nil {
				t.Fatal(err)
			}
		}},
		{"decode", func(t *testing.T, p *pipeline) {
			obj, err := sign.Seal([]byte(`{"format":"something/else"}`), p.signer, p.now)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.store.Put(context.Background(), obj); err != nil {
				t.Fatal(err)
			}
		}},
		{"render", func(t *testing.T, p *pipeline) {
			p.follower.Render.FailSafe = []render.FailSafe{{Source: netip.MustParsePrefix("192.0.2.0/24"), Protocol: 99}}
		}},
		{"identity", func(t *testing.T, p *pipeline) {
			p.follower.Identity.InterfaceAddrs = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil }
		}},
		{"apply", func(t *testing.T, p *pipeline) {
			p.follower.Render.LogDrop = true
			p.kernel.Fail = func(c applytest.Call) error {
				if strings.HasSuffix(c.Name, "restore") && !strings.HasPrefix(c.Name, "ipset") {
					return errors.New("kernel says no")
				}
				return nil
			}
		}},
		{"lock", func(t *testing.T, p *pipeline) {
			p.follower.Render.LogDrop = true
			p.kernel.Fail = func(c applytest.Call) error { return &apply.LockedError{Path: "lock"} }
		}},
		{"state", func(t *testing.T, p *pipeline) {
			os.WriteFile(filepath.Join(p.follower.StateDir, reyes.StateFile), []byte("{"), 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.stage, func(t *testing.T) {
			p := appliedPipeline(t)
			tt.setup(t, p)
			if _, err := oneShot(t, p); err == nil {
				t.Fatal("the run did not fail")
			}
			m := readMetrics(t, p.follower.MetricsFile)
			if got := m.value(t, "reyes_follower_failures_total", "reason="+tt.stage); got != 1 {
				t.Errorf("failures{reason=%q} = %v, want 1\n%s", tt.stage, got, m.text)
			}
			st, err := reyes.LoadStatus(p.follower.StateDir)
			if err != nil || st.LastRun == nil || st.LastRun.Stage != reyes.Stage(tt.stage) || st.LastRun.Error == "" {
				t.Errorf("status: %+v %v", st.LastRun, err)
			}
		})
	}
}

// TestMetricsConfigFailure: a follower whose configuration is wrong counts
// the failure under "config" and keeps what the metrics said.
func TestMetricsConfigFailure(t *testing.T) {
	p := appliedPipeline(t)
	before := readMetrics(t, p.follower.MetricsFile)
	key := filepath.Join(p.dir, "leader.pub")
	pub, err := p.signer.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--store", filepath.Join(p.dir, "ruleset.signed"), "--trusted-key", key, "--state-dir", p.follower.StateDir}
	for i, tc := range []struct {
		args, env []string
	}{
		{args: []string{"--metrics-file", p.follower.MetricsFile, "--mode", "bogus"}},
		{args: []string{"--metrics-file", p.follower.MetricsFile, "--no-such-flag"}},
		{env: []string{"REYES_METRICS_FILE=" + p.follower.MetricsFile, "REYES_NO_SUCH_KEY=1"}},
	} {
		args := append(append([]string(nil), base...), tc.args...)
		var out, errb strings.Builder
		if err := cli.RunFollower(context.Background(), args, tc.env, &out, &errb); err == nil {
			t.Fatalf("RunFollower %v: no error", args)
		}
		m := readMetrics(t, p.follower.MetricsFile)
		if got := m.value(t, "reyes_follower_failures_total", "reason=config"); got != float64(i+1) {
			t.Errorf("%v: failures{reason=config} = %v, want %d", args, got, i+1)
		}
		for _, name := range []string{"reyes_ruleset_serial", "reyes_ruleset_generated_timestamp_seconds", "reyes_rules_loaded", "reyes_follower_last_success_timestamp_seconds"} {
			if got, want := m.value(t, name), before.value(t, name); got != want {
				t.Errorf("%v: %s = %v, was %v", args, name, got, want)
			}
		}
		if m.value(t, "reyes_follower_last_run_result", "result=failed") != 1 {
			t.Errorf("%v: last run not failed", args)
		}
	}
	st, err := reyes.LoadStatus(p.follower.StateDir)
	if err != nil || st.LastRun.Stage != reyes.StageConfig {
		t.Errorf("status: %+v %v", st.LastRun, err)
	}
}
