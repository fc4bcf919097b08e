package reyes_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

// TestLeaderMetricsFile: every leader run, as a one-shot process (a new
// Leader each time), rewrites the metrics file: how it ended, what is
// published, the findings, and counters read back from the previous file.
// A failed run keeps the last success and what was published.
func TestLeaderMetricsFile(t *testing.T) {
	p := newPipeline(t)
	path := filepath.Join(p.dir, "leader.prom")
	start := p.now
	type want struct {
		result       string
		success      time.Time
		findings     map[string]float64
		unread       float64
		runs         map[string]float64
		readFailures float64
	}
	var serial uint64
	var generated time.Time
	var groups, ifaces float64 // of the last successful run
	for i, step := range []struct {
		name    string
		source  string
		corrupt bool // the store holds garbage: the read back fails
		fail    bool
		want    want
	}{
		{name: "published", source: sampleInventory, want: want{result: "published", success: start,
			runs: map[string]float64{"published": 1}}},
		{name: "unchanged", source: sampleInventory, want: want{result: "unchanged", success: start.Add(time.Minute),
			runs: map[string]float64{"published": 1, "unchanged": 1}}},
		{name: "findings, unreadable previous object", source: "../render/testdata/inventories/accounts", corrupt: true,
			want: want{result: "published", success: start.Add(2 * time.Minute),
				findings: map[string]float64{ruleset.FindingUnreadAccount: 1, ruleset.FindingStaleReference: 4, ruleset.FindingClientIP: 1}, unread: 1,
				runs: map[string]float64{"published": 2, "unchanged": 1}, readFailures: 1}},
		{name: "failed", source: filepath.Join(p.dir, "no-such-inventory"), fail: true,
			want: want{result: "failed", success: start.Add(2 * time.Minute),
				findings: map[string]float64{ruleset.FindingUnreadAccount: 1, ruleset.FindingStaleReference: 4, ruleset.FindingClientIP: 1}, unread: 1,
				runs: map[string]float64{"published": 2, "unchanged": 1, "failed": 1}, readFailures: 1}},
	} {
		t.Run(step.name, func(t *testing.T) {
			now := start.Add(time.Duration(i) * time.Minute)
			p.now = now
			if step.corrupt {
				if err := os.WriteFile(p.store.Path(), []byte("not a signed object"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			l := *p.leader // a new process
			l.Source = sgsource.Dir{Path: step.source}
			l.MetricsFile = path
			res, err := l.RunOnce(context.Background())
			if step.fail != (err != nil) {
				t.Fatalf("RunOnce: %v, want failure %v", err, step.fail)
			}
			if err == nil {
				serial, generated = res.Header.Serial, res.Header.GeneratedAt
				groups, ifaces = float64(res.Groups), float64(res.Interfaces)
				if groups == 0 || ifaces == 0 {
					t.Fatalf("published %v groups, %v interfaces", groups, ifaces)
				}
			}
			w := step.want
			f := readMetrics(t, path)
			check := func(name string, got, want float64) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			check("last_run", f.value(t, "reyes_leader_last_run_timestamp_seconds"), float64(now.Unix()))
			check("last_success", f.value(t, "reyes_leader_last_success_timestamp_seconds"), float64(w.success.Unix()))
			for _, r := range []string{"published", "unchanged", "failed"} {
				v := 0.0
				if r == w.result {
					v = 1
				}
				check("last_run_result "+r, f.value(t, "reyes_leader_last_run_result", "result="+r), v)
				if got, _ := f.sample("reyes_leader_runs_total", "result="+r); got != w.runs[r] {
					t.Errorf("runs_total{%s} = %v, want %v", r, got, w.runs[r])
				}
			}
			if !strings.Contains(f.text, "\nreyes_leader_published_serial "+strconv.FormatUint(serial, 10)+"\n") {
				t.Errorf("published serial %d is not written exactly:\n%s", serial, f.text)
			}
			check("generated", f.value(t, "reyes_leader_published_generated_timestamp_seconds"), float64(generated.Unix()))
			check("groups", f.value(t, "reyes_leader_groups"), groups)
			check("interfaces", f.value(t, "reyes_leader_interfaces"), ifaces)
			if fam := f.families["reyes_leader_findings"]; len(fam.GetMetric()) != len(w.findings) {
				t.Errorf("%d findings series, want %d:\n%s", len(fam.GetMetric()), len(w.findings), f.text)
			}
			for k, n := range w.findings {
				check("findings "+k, f.value(t, "reyes_leader_findings", "kind="+k), n)
			}
			check("unread_accounts", f.value(t, "reyes_leader_unread_accounts"), w.unread)
			check("previous_read_failures_total", f.value(t, "reyes_leader_previous_read_failures_total"), w.readFailures)
		})
	}
}
