package reyes

import (
	"strconv"
	"time"

	"github.com/reyes-fw/reyes/internal/atomicfile"
	"github.com/reyes-fw/reyes/ruleset"
)

// Results of a leader run, as reyes_leader_last_run_result and
// reyes_leader_runs_total label them.
const (
	leaderPublished = "published"
	leaderUnchanged = "unchanged"
	leaderFailed    = "failed"
)

// leaderMetrics is what the leader's metrics file says. The gauges of the
// published ruleset describe the last successful run; the counters and
// the last success are read back from the previous file, since a one-shot
// leader is a new process every run.
type leaderMetrics struct {
	lastRun, lastSuccess time.Time
	result               string
	serial               uint64
	generated            time.Time
	groups, interfaces   int
	findings             map[string]int
	unreadAccounts       int
	runs                 map[string]float64
	readFailures         float64
	// The parts layout: parts the published root names (gauge), and what
	// runs put and deleted (counters).
	parts                                     int
	partsPut, bytesPut, partsDeleted, gcFails float64
}

// recordLeaderRun writes the leader's metrics file after a run. readFailed
// says whether this run failed to read the published object back.
// Problems are logged: the run's own result stands.
func (l *Leader) recordLeaderRun(now time.Time, res LeaderResult, runErr error, readFailed bool) {
	if l.MetricsFile == "" {
		return
	}
	m := readLeaderMetrics(l.MetricsFile)
	m.lastRun = now
	switch {
	case runErr != nil:
		m.result = leaderFailed
	default:
		m.result = leaderPublished
		if res.Skipped {
			m.result = leaderUnchanged
		}
		m.lastSuccess = now
		m.serial, m.generated = res.Header.Serial, res.Header.GeneratedAt
		m.groups, m.interfaces = res.Groups, res.Interfaces
		m.findings = map[string]int(res.FindingCounts)
		accounts := map[string]bool{}
		for _, f := range res.Findings {
			if f.Kind == ruleset.FindingUnreadAccount {
				accounts[f.Account] = true
			}
		}
		m.unreadAccounts = len(accounts)
		m.parts = res.Parts
		m.partsPut += float64(res.PartsPut)
		m.bytesPut += float64(res.BytesPut)
		m.partsDeleted += float64(res.PartsDeleted)
		if res.GCError != nil {
			m.gcFails++
		}
	}
	m.runs[m.result]++
	if readFailed {
		m.readFailures++
	}
	if err := writeLeaderMetrics(l.MetricsFile, m); err != nil {
		l.logger().Warn("writing metrics", "file", l.MetricsFile, "err", err)
	}
}

// readLeaderMetrics reads back what an earlier run wrote to path. A
// missing or unreadable file reads as nothing.
func readLeaderMetrics(path string) leaderMetrics {
	m := leaderMetrics{runs: map[string]float64{}, findings: map[string]int{}}
	eachSample(path, func(name string, labels map[string]string, value string) {
		if name == "reyes_leader_published_serial" {
			if s, err := strconv.ParseUint(value, 10, 64); err == nil {
				m.serial = s
			}
			return
		}
		v, ok := sampleValue(value)
		if !ok {
			return
		}
		switch name {
		case "reyes_leader_last_success_timestamp_seconds":
			m.lastSuccess = fromSeconds(v)
		case "reyes_leader_published_generated_timestamp_seconds":
			m.generated = fromSeconds(v)
		case "reyes_leader_groups":
			m.groups = int(v)
		case "reyes_leader_interfaces":
			m.interfaces = int(v)
		case "reyes_leader_unread_accounts":
			m.unreadAccounts = int(v)
		case "reyes_leader_findings":
			if k := labels["kind"]; k != "" {
				m.findings[k] = int(v)
			}
		case "reyes_leader_runs_total":
			if r := labels["result"]; r != "" {
				m.runs[r] = v
			}
		case "reyes_leader_previous_read_failures_total":
			m.readFailures = v
		case "reyes_leader_parts":
			m.parts = int(v)
		case "reyes_leader_parts_put_total":
			m.partsPut = v
		case "reyes_leader_bytes_put_total":
			m.bytesPut = v
		case "reyes_leader_parts_deleted_total":
			m.partsDeleted = v
		case "reyes_leader_gc_failures_total":
			m.gcFails = v
		}
	})
	return m
}

// writeLeaderMetrics replaces path atomically with m in the Prometheus
// text format (node_exporter's textfile collector).
func writeLeaderMetrics(path string, m leaderMetrics) error {
	var b promText
	gauge, counter, ts, num := b.gauge, b.counter, promTime, promNum

	gauge("reyes_leader_last_run_timestamp_seconds", "When the leader last ran.", ts(m.lastRun))
	gauge("reyes_leader_last_success_timestamp_seconds", "When a run last succeeded (published, or found the store unchanged).", ts(m.lastSuccess))
	oneHot(&b, "reyes_leader_last_run_result", "result", "1 for how the last run ended (published, unchanged, failed), 0 for the others.",
		[]string{leaderPublished, leaderUnchanged, leaderFailed}, m.result)
	gauge("reyes_leader_published_serial", "Serial of the ruleset in the store as of the last successful run (exact integer; above 2^53 Prometheus rounds it).", strconv.FormatUint(m.serial, 10))
	gauge("reyes_leader_published_generated_timestamp_seconds", "generated_at of that ruleset.", ts(m.generated))
	gauge("reyes_leader_groups", "Security groups in the ruleset the last successful run built.", strconv.Itoa(m.groups))
	gauge("reyes_leader_interfaces", "Network interfaces in the ruleset the last successful run built.", strconv.Itoa(m.interfaces))
	byLabel(&b, "reyes_leader_findings", "gauge", "kind", "Findings of the ruleset the last successful run built, by kind: what it could not mirror as AWS applies it.", m.findings, strconv.Itoa)
	gauge("reyes_leader_unread_accounts", "Distinct accounts that groups reference and the leader did not read (findings of kind unread-account).", strconv.Itoa(m.unreadAccounts))
	byLabel(&b, "reyes_leader_runs_total", "counter", "result", "Runs by result.", m.runs, num)
	counter("reyes_leader_previous_read_failures_total", "Runs whose read of the published object back failed (other than not found): they publish without comparing.", num(m.readFailures))
	gauge("reyes_leader_parts", "Parts the root published by the last successful run names (0 in the whole layout).", strconv.Itoa(m.parts))
	counter("reyes_leader_parts_put_total", "Parts put (those the previous root did not name).", num(m.partsPut))
	counter("reyes_leader_bytes_put_total", "Bytes put into the store: parts, root history copies and roots (whole objects in the whole layout).", num(m.bytesPut))
	counter("reyes_leader_parts_deleted_total", "Parts deleted by garbage collection (no unexpired root names them).", num(m.partsDeleted))
	counter("reyes_leader_gc_failures_total", "Publishes whose garbage collection failed (logged; the publish stands).", num(m.gcFails))
	return atomicfile.Write(path, []byte(b.String()), 0o644)
}
