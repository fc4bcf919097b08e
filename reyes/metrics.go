package reyes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/internal/atomicfile"
	"github.com/reyes-fw/reyes/internal/version"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// Metric names the follower writes (see README, "Operating it").
const (
	failuresMetric = "reyes_follower_failures_total"
	causesMetric   = "reyes_follower_failure_causes_total"
	runsMetric     = "reyes_follower_runs_total"
	repairsMetric  = "reyes_follower_drift_repairs_total"
)

// failureStage names the stage of a failed run: the step the run was in,
// except that a held lock, a rollback and a corrupt state name themselves
// wherever they happened.
func failureStage(stage Stage, err error) Stage {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, apply.ErrLocked):
		return StageLock
	case errors.Is(err, ErrRollback):
		return StageRollback
	case errors.Is(err, ErrCorruptState):
		return StageState
	case errors.Is(err, ErrConfig):
		return StageConfig
	}
	return stage
}

// failureCause names what failed more finely than the stage, for the
// causes counter: an unknown signer and a bad signature are both stage
// "signature", and call for different responses.
func failureCause(err error) string {
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
		{ErrUnknownHost, "unknown_host"}, {ErrAmbiguousHost, "ambiguous_host"}, {ErrIMDS, "imds"}, {ErrIdentityConfig, "identity_config"},
		{ErrCorruptState, "corrupt_state"}, {ErrConfig, "config"}, {ErrUsage, "usage"},
		{apply.ErrFailSafe, "fail_safe"}, {apply.ErrPlan, "invalid_plan"},
	} {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	if errors.Is(err, apply.ErrLocked) {
		return "locked"
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		// --timeout cut the run short (the stage says where).
		return "timeout"
	}
	var se *apply.StepError
	if errors.As(err, &se) {
		return "apply_step"
	}
	return "other"
}

// counters are the follower's counters; a one-shot follower is a new
// process every run, so they are read back from the metrics file it wrote
// last.
type counters struct {
	failures map[Stage]float64
	causes   map[string]float64
	runs     map[RunResult]float64
	repairs  float64
}

// record writes the status file and the metrics file after a run.
// Problems are logged: the run's own result stands.
func (f *Follower) record(ctx context.Context, now time.Time, res FollowerResult, stage Stage, runErr error) {
	log := f.logger()
	st, err := LoadStatus(f.StateDir)
	if err != nil {
		log.Warn("reading the status file; starting a new one", "err", err)
		st = Status{}
	}
	prev, c := readMetricsFile(f.MetricsFile)
	if st.Loaded == nil {
		// No status yet (a follower that predates it, or a new metrics
		// file): the state says what is loaded; counts come from the
		// metrics written last.
		if last, err := LoadState(f.StateDir); err == nil {
			st.Loaded = loadedFromState(last)
		}
		if st.Loaded == nil {
			st.Loaded = prev.Loaded
		} else if prev.Loaded != nil && prev.Loaded.Serial == st.Loaded.Serial {
			st.Loaded.Rules, st.Loaded.Members = prev.Loaded.Rules, prev.Loaded.Members
		}
	}
	if st.LastSuccess.IsZero() {
		st.LastSuccess = prev.LastSuccess
	}
	if st.LastFailure.IsZero() {
		st.LastFailure = prev.LastFailure
	}

	ver := version.Get().Short()
	run := &RunRecord{At: now.UTC(), Duration: res.Duration.Seconds(), Version: ver,
		StoreBytes: res.StoreBytes, PartsFetched: res.PartsFetched, PartsCached: res.PartsCached}
	switch {
	case runErr != nil:
		run.Result, run.Stage, run.Error = ResultFailed, stage, runErr.Error()
		st.LastFailure = run.At
		c.failures[stage]++
		c.causes[failureCause(runErr)]++
	case res.Paused:
		run.Result = ResultPaused
	case res.NotModified:
		run.Result = ResultUnchanged
		st.LastSuccess = run.At
	case res.PlanUnchanged:
		run.Result = ResultUnchanged
		st.LastSuccess = run.At
		if st.Loaded != nil {
			h := res.Header
			st.Loaded.Scope, st.Loaded.Serial = h.Scope, h.Serial
			st.Loaded.GeneratedAt, st.Loaded.NotAfter = h.GeneratedAt.UTC(), h.NotAfter.UTC()
			st.Loaded.AcceptedAt, st.Loaded.Signer = now.UTC(), res.Signer
			st.Loaded.Parts, st.Loaded.Keys = res.Parts, res.Keys
			st.Loaded.Digest = res.accepted
		}
	default:
		run.Result = ResultApplied
		st.LastSuccess = run.At
		st.Loaded = f.loadedRecord(ctx, now, res, ver)
		st.DriftCheck = &DriftRecord{At: run.At, Result: "applied"}
		if len(res.Drift) > 0 {
			c.repairs++
		}
	}
	if res.DriftChecked {
		d := &DriftRecord{At: run.At, Result: "clean", Drift: driftStrings(res.Drift)}
		switch {
		case res.DriftErr != nil:
			d.Result, d.Error = "error", res.DriftErr.Error()
		case len(res.Drift) > 0:
			d.Result = "drift"
		}
		if run.Result != ResultApplied || d.Result != "clean" {
			st.DriftCheck = d
		}
	}
	c.runs[run.Result]++
	st.LastRun = run
	if err := SaveStatus(f.StateDir, st); err != nil {
		log.Warn("writing the status file", "err", err)
	}
	if err := writeMetrics(f.MetricsFile, st, c, now); err != nil {
		log.Warn("writing metrics", "file", f.MetricsFile, "err", err)
	}
}

// loadedRecord describes what an apply that just completed loaded.
func (f *Follower) loadedRecord(ctx context.Context, now time.Time, res FollowerResult, ver string) *LoadedRecord {
	h := res.Header
	l := &LoadedRecord{
		Scope: h.Scope, Serial: h.Serial, GeneratedAt: h.GeneratedAt.UTC(), NotAfter: h.NotAfter.UTC(), AppliedAt: now.UTC(),
		Identity: IdentityRecord{Method: res.Identity.Method, Interfaces: res.Host.Interfaces, VPCCIDRs: res.Host.VPCCIDRs,
			UnknownGroups: res.Identity.UnknownGroups},
		Table: f.Render.Table.String(), Mode: f.Render.Mode.String(), Version: ver,
		ApplySeconds: res.Duration.Seconds(),
		Settings:     f.settingsDigest(), IdentityDigest: f.recordedIdentity(ctx, res.Host, res.Identity),
		KernelRecord: kernelRecordDigest(f.StateDir), Signer: res.Signer,
		Parts: res.Parts, Keys: res.Keys,
	}
	l.Digest = res.accepted
	if res.Plan != nil {
		l.PlanIPv4, l.PlanIPv6 = res.Plan.V4.Hash(), res.Plan.V6.Hash()
		l.PlanDigest = res.planDigest
		if l.PlanDigest == "" {
			l.PlanDigest = planDigest(res.Plan)
		}
		l.Rules, l.Members = planCounts(res.Plan)
	}
	return l
}

func planCounts(p *render.Plan) (rules, members int) {
	for _, fp := range p.Families() {
		for _, c := range fp.Chains {
			rules += len(c.Rules)
		}
		for _, s := range fp.Sets {
			members += len(s.Members)
		}
	}
	return rules, members
}

func driftStrings(d []apply.Drift) []string {
	var out []string
	for _, x := range d {
		out = append(out, x.String())
	}
	return out
}

// RecordConfigFailure records a follower run that failed before it could
// start, on its configuration: the failures metric counts it with reason
// "config" (and the run as failed), every other value is kept as the last
// run wrote it. metricsFile and stateDir are what the configuration said,
// as far as it could be read; either may be empty. The state directory is
// written only if it exists. It returns the first error writing.
func RecordConfigFailure(metricsFile, stateDir string, cfgErr error) error {
	now := time.Now()
	var st Status
	if stateDir != "" {
		if fi, err := os.Stat(stateDir); err != nil || !fi.IsDir() {
			stateDir = ""
		} else if s, err := LoadStatus(stateDir); err == nil {
			st = s
		}
	}
	prev, c := readMetricsFile(metricsFile)
	if st.Loaded == nil {
		if stateDir != "" {
			if last, err := LoadState(stateDir); err == nil {
				st.Loaded = loadedFromState(last)
			}
		}
		if st.Loaded == nil {
			st.Loaded = prev.Loaded
		}
	}
	if st.LastSuccess.IsZero() {
		st.LastSuccess = prev.LastSuccess
	}
	st.LastFailure = now.UTC()
	st.LastRun = &RunRecord{At: now.UTC(), Result: ResultFailed, Stage: StageConfig, Version: version.Get().Short()}
	if cfgErr != nil {
		st.LastRun.Error = cfgErr.Error()
	}
	c.failures[StageConfig]++
	c.causes[failureCause(cfgErr)]++
	c.runs[ResultFailed]++
	var errs []error
	if stateDir != "" {
		errs = append(errs, SaveStatus(stateDir, st))
	}
	errs = append(errs, writeMetrics(metricsFile, st, c, now))
	return errors.Join(errs...)
}

// readMetricsFile reads back what an earlier run wrote to path: the
// counters, and the gauges as a Status (for a host whose state directory
// cannot be read). A missing or unreadable file reads as nothing.
func readMetricsFile(path string) (Status, counters) {
	c := counters{failures: map[Stage]float64{}, causes: map[string]float64{}, runs: map[RunResult]float64{}}
	var st Status
	if path == "" {
		return st, c
	}
	loaded := &LoadedRecord{}
	var haveLoaded bool
	eachSample(path, func(name string, labels map[string]string, value string) {
		v, ok := sampleValue(value)
		if !ok {
			return
		}
		switch name {
		case failuresMetric:
			if r := labels["reason"]; r != "" {
				c.failures[Stage(r)] = v
			}
		case causesMetric:
			if r := labels["cause"]; r != "" {
				c.causes[r] = v
			}
		case runsMetric:
			if r := labels["result"]; r != "" {
				c.runs[RunResult(r)] = v
			}
		case repairsMetric:
			c.repairs = v
		case "reyes_follower_last_success_timestamp_seconds":
			st.LastSuccess = fromSeconds(v)
		case "reyes_follower_last_failure_timestamp_seconds":
			st.LastFailure = fromSeconds(v)
		case "reyes_ruleset_info":
			if s, err := strconv.ParseUint(labels["serial"], 10, 64); err == nil {
				loaded.Serial, loaded.Scope, haveLoaded = s, labels["scope"], true
				_ = loaded.Digest.UnmarshalText([]byte(labels["sha256"]))
			}
		case "reyes_ruleset_generated_timestamp_seconds":
			loaded.GeneratedAt = fromSeconds(v)
		case "reyes_ruleset_not_after_timestamp_seconds":
			loaded.NotAfter = fromSeconds(v)
		case "reyes_ruleset_applied_timestamp_seconds":
			loaded.AppliedAt = fromSeconds(v)
		case "reyes_rules_loaded":
			loaded.Rules = int(v)
		case "reyes_set_members_loaded":
			loaded.Members = int(v)
		case "reyes_apply_duration_seconds":
			loaded.ApplySeconds = v
		}
	})
	if haveLoaded {
		st.Loaded = loaded
	}
	return st, c
}

// eachSample calls fn with every sample of the metrics file at path, as
// parseSample splits it. A missing or unreadable file has none. It opens
// with O_NONBLOCK and reads a regular file only: a FIFO at the path would
// otherwise block the run in open(2) for ever.
func eachSample(path string, fn func(name string, labels map[string]string, value string)) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if name, labels, value, ok := parseSample(sc.Text()); ok {
			fn(name, labels, value)
		}
	}
}

// parseSample splits one sample line of the text format as writeMetrics
// writes it: name, labels (values without escapes), value.
func parseSample(l string) (name string, labels map[string]string, value string, ok bool) {
	if l == "" || l[0] == '#' {
		return "", nil, "", false
	}
	labels = map[string]string{}
	i := strings.IndexAny(l, "{ ")
	if i <= 0 {
		return "", nil, "", false
	}
	name, rest := l[:i], l[i:]
	if rest[0] == '{' {
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return "", nil, "", false
		}
		for _, kv := range strings.Split(rest[1:end], ",") {
			k, v, found := strings.Cut(kv, "=")
			if !found {
				continue
			}
			if u, err := strconv.Unquote(v); err == nil {
				labels[k] = u
			}
		}
		rest = rest[end+1:]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", nil, "", false
	}
	return name, labels, f[0], true
}

func fromSeconds(v float64) time.Time {
	if v <= 0 {
		return time.Time{}
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// promText builds a file in the Prometheus text format, as the follower's
// and the leader's metrics files are written.
type promText struct{ strings.Builder }

func (b *promText) header(name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (b *promText) gauge(name, help, v string) {
	b.header(name, "gauge", help)
	fmt.Fprintf(b, "%s %s\n", name, v)
}

func (b *promText) counter(name, help, v string) {
	b.header(name, "counter", help)
	fmt.Fprintf(b, "%s %s\n", name, v)
}

// oneHot writes the gauge name with a sample for each of values (as the
// label label): 1 for current, 0 for the others.
func oneHot[T ~string](b *promText, name, label, help string, values []T, current T) {
	b.header(name, "gauge", help)
	for _, v := range values {
		n := 0
		if v == current {
			n = 1
		}
		fmt.Fprintf(b, "%s{%s=%q} %d\n", name, label, v, n)
	}
}

// byLabel writes the metric name of type typ with a sample for each key
// of values (as the label label, in sorted order), its value as format
// writes it.
func byLabel[K ~string, V any](b *promText, name, typ, label, help string, values map[K]V, format func(V) string) {
	b.header(name, typ, help)
	for _, k := range sortedKeysOf(values) {
		fmt.Fprintf(b, "%s{%s=%q} %s\n", name, label, k, format(values[K(k)]))
	}
}

// sampleValue parses the value of a counter or a timestamp read back: a
// finite number, not negative.
func sampleValue(value string) (float64, bool) {
	v, err := strconv.ParseFloat(value, 64)
	return v, err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0
}

// promTime writes t in seconds, plain decimal; the zero time as 0.
func promTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', -1, 64)
}

func promNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// writeMetrics replaces path atomically with the metrics of st and c, in
// the Prometheus text format (node_exporter's textfile collector). Values
// are written in plain decimal, the serial as an exact integer.
func writeMetrics(path string, st Status, c counters, now time.Time) error {
	if path == "" {
		return nil
	}
	var b promText
	header, gauge, ts, num := b.header, b.gauge, promTime, promNum

	bi := version.Get()
	header("reyes_follower_build_info", "gauge", "The follower binary: module version and VCS revision.")
	fmt.Fprintf(&b, "reyes_follower_build_info{version=%q,revision=%q} 1\n", bi.Version, bi.Revision)

	run := st.LastRun
	if run == nil {
		run = &RunRecord{}
	}
	gauge("reyes_follower_last_run_timestamp_seconds", "When the follower last ran.", ts(run.At))
	oneHot(&b, "reyes_follower_last_run_result", "result", "1 for how the last run ended (applied, unchanged, paused, failed), 0 for the others.",
		[]RunResult{ResultApplied, ResultUnchanged, ResultPaused, ResultFailed}, run.Result)
	gauge("reyes_follower_last_run_duration_seconds", "Duration of the last run.", num(run.Duration))
	gauge("reyes_follower_last_run_store_bytes", "Bytes the last run read from the store: the root (or whole object) and the parts not in the local cache.", strconv.FormatInt(run.StoreBytes, 10))
	gauge("reyes_follower_last_run_parts_fetched", "Parts of a split ruleset the last run read from the store.", strconv.Itoa(run.PartsFetched))
	gauge("reyes_follower_last_run_parts_cached", "Parts of a split ruleset the last run read from its local cache (verified: against the root, or an earlier part against its name).", strconv.Itoa(run.PartsCached))
	gauge("reyes_follower_last_success_timestamp_seconds", "When a run last succeeded (applied, or found everything unchanged).", ts(st.LastSuccess))
	gauge("reyes_follower_last_failure_timestamp_seconds", "When a run last failed (the kernel kept the last good rules).", ts(st.LastFailure))
	paused := "0"
	if run.Result == ResultPaused {
		paused = "1"
	}
	gauge("reyes_follower_paused", "1 when the flag file paused the last run.", paused)

	l := st.Loaded
	if l == nil {
		l = &LoadedRecord{}
	} else {
		header("reyes_ruleset_info", "gauge", "The ruleset loaded by the last completed apply (serial exact, as a label).")
		fmt.Fprintf(&b, "reyes_ruleset_info{scope=%q,serial=%q,sha256=%q} 1\n", l.Scope, strconv.FormatUint(l.Serial, 10), l.Digest.String())
	}
	gauge("reyes_ruleset_serial", "Serial of the ruleset loaded (exact integer; above 2^53 Prometheus rounds it: see reyes_ruleset_info).", strconv.FormatUint(l.Serial, 10))
	gauge("reyes_ruleset_generated_timestamp_seconds", "generated_at of the ruleset loaded.", ts(l.GeneratedAt))
	gauge("reyes_ruleset_not_after_timestamp_seconds", "not_after of the ruleset loaded: after it, a follower refuses it.", ts(l.NotAfter))
	gauge("reyes_ruleset_applied_timestamp_seconds", "When the ruleset loaded was applied.", ts(l.AppliedAt))
	gauge("reyes_rules_loaded", "iptables rules in reyes' chains, both families, as last applied.", strconv.Itoa(l.Rules))
	gauge("reyes_set_members_loaded", "Members of reyes' ipsets, both families, as last applied.", strconv.Itoa(l.Members))
	gauge("reyes_apply_duration_seconds", "Duration of the last run that applied a ruleset.", num(l.ApplySeconds))
	var driftAt time.Time
	drifted := "0"
	if d := st.DriftCheck; d != nil {
		driftAt = d.At
		if d.Result == "drift" || d.Result == "error" {
			drifted = "1"
		}
	}
	gauge("reyes_follower_last_drift_check_timestamp_seconds", "When the kernel was last compared with (or loaded with) the applied rules.", ts(driftAt))
	gauge("reyes_follower_drift_detected", "1 when the last drift check found the kernel changed (the rules were reloaded).", drifted)

	byLabel(&b, runsMetric, "counter", "result", "Runs by result.", c.runs, num)
	byLabel(&b, failuresMetric, "counter", "reason", "Failed runs by the stage that failed (config, lock, state, store, signature, decode, freshness, rollback, identity, render, apply); the kernel kept the last good rules.", c.failures, num)
	byLabel(&b, causesMetric, "counter", "cause", "Failed runs by what failed (unknown_signer, bad_signature, expired, not_found, ...): finer than the stage.", c.causes, num)
	b.counter(repairsMetric, "Drift checks that found the kernel changed, followed by a reload.", num(c.repairs))
	// No fsync (atomicfile.Replace): the exporter reads the old file or
	// the new; a crash of the machine may take back the last run's
	// counts, which Prometheus sees as a counter reset.
	return atomicfile.Replace(path, []byte(b.String()), 0o644)
}

func sortedKeysOf[K ~string, V any](m map[K]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}
