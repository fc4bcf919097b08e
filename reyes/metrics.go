package reyes

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// metrics are the follower's metrics, written in the Prometheus text
// format. Failure counters survive restarts by being read back from the
// file (a cron-run follower is a new process every time).
type metrics struct {
	lastSuccess   time.Time
	lastRun       time.Time
	generatedAt   time.Time
	notAfter      time.Time
	serial        uint64
	rules         int
	members       int
	applySeconds  float64
	paused        bool
	failures      map[string]float64
	lastFailure   time.Time
	lastFailureBy string
}

const failuresMetric = "reyes_follower_failures_total"

// loadMetrics reads the failure counters of an earlier run back from path.
func loadMetrics(path string) *metrics {
	m := &metrics{failures: map[string]float64{}}
	if path == "" {
		return m
	}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, failuresMetric+`{reason="`) {
			continue
		}
		rest := strings.TrimPrefix(l, failuresMetric+`{reason="`)
		i := strings.Index(rest, `"} `)
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(rest[i+3:], 64); err == nil {
			m.failures[rest[:i]] = v
		}
	}
	return m
}

// failureReason names the kind of a failure for the failures metric.
func failureReason(err error) string {
	for _, c := range []struct {
		err    error
		reason string
	}{
		{ErrNotFound, "not_found"}, {ErrTooLarge, "too_large"}, {sign.ErrTooLarge, "too_large"},
		{sign.ErrUnknownSigner, "unknown_signer"}, {sign.ErrBadSignature, "bad_signature"},
		{sign.ErrWeakAlgorithm, "weak_algorithm"}, {sign.ErrKeyExpired, "key_expired"}, {sign.ErrKeyRevoked, "key_revoked"},
		{sign.ErrMalformed, "malformed_object"}, {sign.ErrUnknownFormat, "unknown_format"},
		{ruleset.ErrUnknownFormat, "unknown_format"}, {ruleset.ErrMalformed, "malformed_ruleset"}, {ruleset.ErrInvalid, "invalid_ruleset"},
		{ErrExpired, "expired"}, {ErrStale, "stale"}, {ErrNotYetValid, "not_yet_valid"}, {ErrValidityTooLong, "validity_too_long"},
		{ErrWrongScope, "wrong_scope"}, {ErrRollback, "rollback"}, {ErrBadHeader, "bad_header"},
		{ErrUnknownHost, "unknown_host"}, {ErrCorruptState, "corrupt_state"},
		{apply.ErrFailSafe, "fail_safe"}, {apply.ErrPlan, "invalid_plan"},
	} {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	var se *apply.StepError
	if errors.As(err, &se) {
		return "apply"
	}
	return "other"
}

func (m *metrics) record(now time.Time, res FollowerResult, err error) {
	m.lastRun = now
	m.paused = res.Paused
	if err != nil {
		r := failureReason(err)
		m.failures[r]++
		m.lastFailure, m.lastFailureBy = now, r
		return
	}
	if res.Paused {
		return
	}
	m.lastSuccess = now
	if res.NotModified {
		return
	}
	m.generatedAt, m.notAfter, m.serial = res.Header.GeneratedAt, res.Header.NotAfter, res.Header.Serial
	if res.Plan != nil {
		m.rules, m.members = 0, 0
		for _, fp := range res.Plan.Families() {
			for _, c := range fp.Chains {
				m.rules += len(c.Rules)
			}
			for _, s := range fp.Sets {
				m.members += len(s.Members)
			}
		}
	}
	m.applySeconds = res.Duration.Seconds()
}

// write replaces path atomically with the metrics.
func (m *metrics) write(path string) error {
	if path == "" {
		return nil
	}
	var b strings.Builder
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", name, help, name, name, strconv.FormatFloat(v, 'g', -1, 64))
	}
	ts := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	gauge("reyes_follower_last_run_timestamp_seconds", "When the follower last ran.", ts(m.lastRun))
	gauge("reyes_follower_last_success_timestamp_seconds", "When the follower last succeeded (applied, or found the ruleset unchanged).", ts(m.lastSuccess))
	gauge("reyes_ruleset_generated_timestamp_seconds", "generated_at of the ruleset last applied.", ts(m.generatedAt))
	gauge("reyes_ruleset_not_after_timestamp_seconds", "not_after of the ruleset last applied.", ts(m.notAfter))
	gauge("reyes_ruleset_serial", "Serial of the ruleset last applied.", float64(m.serial))
	gauge("reyes_rules_loaded", "iptables rules in reyes' chains, both families.", float64(m.rules))
	gauge("reyes_set_members_loaded", "Members of reyes' ipsets, both families.", float64(m.members))
	gauge("reyes_apply_duration_seconds", "Duration of the last run that applied a ruleset.", m.applySeconds)
	paused := 0.0
	if m.paused {
		paused = 1
	}
	gauge("reyes_follower_paused", "1 when the flag file paused the last run.", paused)
	gauge("reyes_follower_last_failure_timestamp_seconds", "When the follower last failed.", ts(m.lastFailure))
	fmt.Fprintf(&b, "# HELP %s Failed runs by reason; the kernel kept the last good rules.\n# TYPE %s counter\n", failuresMetric, failuresMetric)
	reasons := make([]string, 0, len(m.failures))
	for r := range m.failures {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(&b, "%s{reason=%q} %s\n", failuresMetric, r, strconv.FormatFloat(m.failures[r], 'g', -1, 64))
	}
	return writeFileAtomic(path, []byte(b.String()), 0o644)
}
