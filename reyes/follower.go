package reyes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// DefaultDriftCheck is how often an unchanged follower checks the kernel
// for drift when Follower.DriftCheck is zero.
const DefaultDriftCheck = 5 * time.Minute

// driftFile's modification time is when the kernel was last found (or
// made) to hold the applied rules.
const driftFile = "drift-checked"

// ErrStale is returned when the store still holds the last accepted
// ruleset (unchanged) but it has expired: the leaders have stopped
// publishing. The kernel keeps the last good rules (fail static).
var ErrStale = errors.New("ruleset in the store has expired and was not replaced")

// Follower loads the published ruleset on one host: it fetches the signed
// object, verifies it, checks freshness and rollback, finds the host's
// identity, renders the plan and applies it (or prints it in dry-run). On
// any failure the kernel keeps the last good rules and the state is not
// advanced. A Follower is safe for use by one goroutine at a time.
type Follower struct {
	// Store holds the signed object.
	Store Store
	// Parts, if set, is where the parts of a split ruleset are; nil means
	// the Store's own (a PartStore's Parts).
	Parts Objects
	// Trusted are the leaders' public keys.
	Trusted *sign.Keyring
	// MaxSize caps the signed object (and the payload); 0 means
	// DefaultMaxObjectSize.
	MaxSize int64
	// Freshness says which rulesets may replace the last accepted one.
	Freshness FreshnessPolicy
	// StateDir keeps the last accepted ruleset's header, digest and ETag
	// (rollback protection, conditional GET). Required.
	StateDir string
	// Identity says how the host finds itself.
	Identity IdentityOptions
	// Render are the rendering options (mode, table, logging, fail-safe).
	Render render.Options
	// Apply are the apply options (runner, backend, flag file). Its
	// FailSafe should be Render.FailSafe, so apply verifies them.
	Apply apply.Options
	// LockWait bounds how long a run waits for another run (on the same
	// StateDir) to finish before it gives up with an *apply.LockedError;
	// zero means apply.DefaultLockWait.
	LockWait time.Duration
	// DryRun prints the plan (and a diff against the kernel's reyes rules,
	// when they can be read) to Out instead of applying it, and records
	// nothing.
	DryRun bool
	// Out receives the dry-run output; nil means io.Discard.
	Out io.Writer
	// DriftCheck: when the store's object is unchanged, at most this often
	// the follower checks with a few kernel reads (apply.Check) that the
	// last applied rules are still in place, and reloads them if someone
	// flushed a chain, removed a jump or emptied a set. Zero means
	// DefaultDriftCheck; negative never checks. An apply counts as a check.
	DriftCheck time.Duration
	// MetricsFile, if set, is rewritten atomically after every run in the
	// Prometheus text format, for node_exporter's textfile collector.
	MetricsFile string
	// Timeout, if positive, bounds each run of Run: a hung store or
	// metadata service ends the run with an error naming the call.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per run; nil discards.
	Logger *slog.Logger
}

// FollowerResult describes one run.
type FollowerResult struct {
	// Paused: the flag file exists; nothing was fetched or changed.
	Paused bool
	// NotModified: the store's object is the one accepted last (a
	// conditional GET answered 304), and the local settings, the host's
	// identity and apply's record of the kernel are those of the last
	// apply; nothing else was done (but a drift check, when due).
	NotModified bool
	// Header of the ruleset that was verified (zero when NotModified).
	Header ruleset.Header
	// Signer is the fingerprint of the primary key that signed it ("" when
	// NotModified).
	Signer string
	// Host is the host view the plan was rendered for.
	Host render.Host
	// Identity says how the host was found.
	Identity IdentitySource
	// Plan is what was applied (or printed in dry-run).
	Plan *render.Plan
	// Applied says what apply changed (zero in dry-run).
	Applied apply.Result
	// Drift lists what a drift check found (the rules were then reloaded).
	Drift []apply.Drift
	// DriftChecked: the object was unchanged and a drift check was due, so
	// apply.Check compared the kernel with the last apply; DriftErr is its
	// error (no record to compare with, a failed read), if any.
	DriftChecked bool
	DriftErr     error
	// PlanUnchanged: the store held a new root (split ruleset) that gives
	// this host the plan it has, and nothing on the host's side changed:
	// the root was accepted (rollback and freshness advance) without
	// touching the kernel. Either the root still lists every part the
	// plan was made from, or its change list (ruleset.Changes, since the
	// root accepted last) holds none of the plan's records: then no part
	// was read and nothing rendered (PartsFetched and PartsCached are 0);
	// or the parts were read and the plan rendered the same.
	PlanUnchanged bool
	// Parts names the parts of a split ruleset that the plan was made
	// from (empty for a whole ruleset).
	Parts []string
	// Keys names the records (ruleset.ViewKey) the plan was made from.
	Keys []string
	// StoreBytes counts the bytes read from the store in this run (the
	// root or whole object, and the parts not found in the local cache);
	// PartsFetched and PartsCached count the parts read from the store
	// and from the cache.
	StoreBytes   int64
	PartsFetched int
	PartsCached  int
	Duration     time.Duration

	// planDigest is planDigest(Plan), once computed.
	planDigest string
	// accepted is the digest of the state this run committed (zero if
	// none), for the status record.
	accepted Digest
}

// RunOnce runs the follower once.
func (f *Follower) RunOnce(ctx context.Context) (res FollowerResult, err error) {
	start := time.Now()
	now := f.now()
	log := f.logger()
	if f.Store == nil || f.Trusted == nil || f.StateDir == "" {
		return res, errors.New("follower: Store, Trusted and StateDir are required")
	}
	// stage names the step a failure happened in, for the status file and
	// the failures metric.
	stage := StageState
	// The status and metrics are recorded before the lock is released,
	// so that the next run reads this run's record, not an older one.
	var unlock func()
	defer func() {
		res.Duration = time.Since(start)
		if !f.DryRun { // a dry run records nothing, metrics included
			f.record(ctx, now, res, failureStage(stage, err), err)
		}
		if unlock != nil {
			unlock()
		}
	}()

	if !f.DryRun && f.Apply.DisableFile != "" {
		if _, serr := os.Stat(f.Apply.DisableFile); serr == nil {
			log.Warn("paused by flag file: nothing fetched or changed", "file", f.Apply.DisableFile)
			res.Paused = true
			return res, nil
		}
	}
	if !f.DryRun {
		// One run at a time, from reading the state to recording it.
		if err := os.MkdirAll(f.StateDir, 0o700); err != nil {
			return res, fmt.Errorf("creating the state directory: %w", err)
		}
		wait := f.LockWait
		if wait == 0 {
			wait = apply.DefaultLockWait
		}
		lock, err := apply.Lock(ctx, f.StateDir, wait)
		if err != nil {
			return res, err
		}
		unlock = func() { lock.Unlock() }
	}
	last, err := LoadState(f.StateDir)
	if err != nil {
		return res, err
	}
	settings := f.settingsDigest()
	applied := f.lastApplied(last)
	etag := last.ETag
	force := false
	if f.DryRun {
		etag = "" // always show the current plan
	} else if what := f.changedSince(ctx, last, applied, settings, now); what != "" {
		// The store's "not modified" says nothing about this host's side:
		// fetch, verify, render and apply again.
		log.Info("changed since the last apply: verifying and applying the ruleset again", "what", what, "serial", last.Serial)
		etag = ""
		// apply's own fast path trusts its record: reload everything.
		force = what == changedKernelRecord
	}
	stage = StageStore
	body, newTag, err := f.Store.Get(ctx, etag)
	if errors.Is(err, ErrNotModified) {
		if !last.NotAfter.IsZero() && now.After(last.NotAfter) {
			stage = StageFreshness
			return res, fmt.Errorf("%w: serial %d expired at %s", ErrStale, last.Serial, last.NotAfter.Format(time.RFC3339))
		}
		stage = StageApply
		drift, due, derr := f.checkDrift(ctx, now)
		res.DriftChecked, res.DriftErr = due, derr
		if !due || (derr == nil && len(drift) == 0) {
			res.NotModified = true
			log.Info("ruleset unchanged", "store", f.Store.String(), "serial", last.Serial, "drift_checked", due)
			return res, nil
		}
		// Drift, or no record to compare with: load the rules again, all
		// of them (the fast path would trust what drifted).
		res.Drift = drift
		force = true
		log.Warn("kernel drifted from the applied ruleset; reloading", "drift", fmt.Sprint(drift), "err", derr)
		stage = StageStore
		body, newTag, err = f.Store.Get(ctx, "")
	}
	if err != nil {
		return res, fmt.Errorf("fetching %s: %w", f.Store, err)
	}
	res.StoreBytes += int64(len(body))
	stage = StageSignature
	ver, err := sign.OpenVerified(bytes.NewReader(body), f.Trusted, now, sign.WithMaxSize(f.maxSize()), f.Freshness.SkewOption())
	if err != nil {
		return res, err
	}
	res.Signer = ver.Signer
	stage = StageDecode
	var (
		rs   *ruleset.Ruleset // a whole ruleset (reyes.ruleset/v1)
		root *ruleset.Root    // or a root naming its parts (reyes.root/v1)
	)
	if ruleset.IsRoot(ver.Payload) {
		root, err = ruleset.DecodeRoot(ver.Payload, ruleset.Limits{MaxBytes: f.maxSize()})
		if err != nil {
			return res, err
		}
		res.Header = root.Header
	} else {
		rs, err = ruleset.DecodeLimits(ver.Payload, ruleset.Limits{MaxBytes: f.maxSize()})
		if err != nil {
			return res, err
		}
		res.Header = rs.Header
	}
	header := res.Header
	digest := SumPayload(ver.Payload)
	stage = StageFreshness
	bound := last
	if applied != nil && applied.Signer != "" && last.Scope == f.Freshness.Scope && !slices.Contains(f.Trusted.Fingerprints(), applied.Signer) {
		// The last ruleset was signed by a key no longer trusted (rotated
		// out after a leak): its serial, which that key could push up to
		// its not_after, does not bind; its generation time does.
		if err := f.Freshness.checkHeader(header, now); err != nil {
			return res, err
		}
		if !header.GeneratedAt.After(last.GeneratedAt) {
			return res, fmt.Errorf("%w: generated at %s, not after the last accepted ruleset's %s (signed by %s, no longer trusted)",
				ErrRollback, stamp(header.GeneratedAt), stamp(last.GeneratedAt), applied.Signer)
		}
		bound = State{}
	}
	changed, err := f.Freshness.Check(header, digest, now, bound)
	if err != nil {
		return res, err
	}
	if why := samePlanInputs(applied, last, root); why != "" && !f.DryRun && !force && etag != "" && f.identityUnchanged(ctx, applied) &&
		f.kernelStillHolds(ctx, now, &res, &force) {
		// Fast path: the new root gives this host the records its plan was
		// made from (the same parts, or a change list that holds none of
		// them), and nothing on this host's side changed (changedSince
		// said so: etag is still the last one). The same records and the
		// same inputs make the same plan: accept the root, touch nothing.
		stage = StageState
		res.Parts, res.Keys = applied.Parts, applied.Keys
		if err := f.acceptSamePlan(&res, NewState(header, digest, newTag, now), nil); err != nil {
			return res, err
		}
		log.Info("ruleset changed elsewhere; this host's plan did not: nothing read or applied",
			"serial", header.Serial, "by", why, "parts", len(applied.Parts), "bytes", res.StoreBytes)
		return res, nil
	}
	var (
		host    render.Host
		src     IdentitySource
		fetched map[string][]byte // parts read from the store, to keep for the next run
	)
	if root != nil {
		stage = StageIdentity
		probe, err := probeHost(ctx, f.identity(), log)
		if err != nil {
			return res, fmt.Errorf("identifying the host: %w", err)
		}
		stage = StageStore
		view, got, err := f.loadView(ctx, root, probe.request(f.identity()), applied, last, &res)
		if err != nil {
			return res, err
		}
		fetched = got
		rs = view.Ruleset
		res.Parts, res.Keys = partNames(view.Parts), view.Keys
		stage = StageIdentity
		host, src, err = identifyIn(ctx, rs, probe, f.identity(), log)
		if err != nil {
			return res, err
		}
	} else {
		stage = StageIdentity
		host, src, err = Identify(ctx, rs, f.identity())
		if err != nil {
			return res, err
		}
	}
	res.Host, res.Identity = host, src
	stage = StageRender
	plan, err := render.Render(rs, host, f.Render)
	if err != nil {
		return res, fmt.Errorf("rendering: %w", err)
	}
	res.Plan = plan
	if f.DryRun {
		f.printPlan(ctx, plan, header, src)
		log.Info("dry run: plan printed, nothing changed", "serial", header.Serial, "identity", src.Method)
		return res, nil
	}
	res.planDigest = planDigest(plan)
	if !force && etag != "" && applied != nil && applied.PlanDigest == res.planDigest && f.kernelStillHolds(ctx, now, &res, &force) {
		// A new ruleset whose plan for this host is the one the kernel
		// holds (apply's record unchanged since, the settings and the
		// host's identity too: changedSince said so, etag is still the
		// last one): accept it, and leave the kernel alone, as an
		// unchanged object does. A due drift check runs here too (an
		// estate whose every publish touches this host's parts would
		// otherwise starve it); drift makes it a full reload.
		stage = StageState
		if err := f.acceptSamePlan(&res, NewState(header, digest, newTag, now), fetched); err != nil {
			return res, err
		}
		log.Info("new ruleset, same plan for this host: nothing applied",
			"serial", header.Serial, "parts", len(res.Parts), "bytes", res.StoreBytes, "fetched", res.PartsFetched)
		return res, nil
	}
	stage = StageApply
	aopts := f.applyOptions()
	aopts.Force = aopts.Force || force
	// Nothing is applied that cannot be recorded: the new state is written
	// (not yet in force) before the kernel is touched; apply does it while
	// it reads the kernel, and waits for it before any change.
	var commit func() error
	var abort func()
	aopts.Prepare = func() (err error) {
		commit, abort, err = PrepareState(f.StateDir, NewState(header, digest, newTag, now))
		return err
	}
	// The parts read from the store are written to the cache while apply
	// runs (mostly waiting on the kernel tools); the old ones are pruned
	// once the new plan is recorded.
	var caching sync.WaitGroup
	var cacheOK bool
	caching.Go(func() { cacheOK = f.writeParts(res.Parts, fetched) })
	defer caching.Wait() // never return while it writes
	ar, err := apply.Apply(ctx, plan, aopts)
	res.Applied = ar
	if err == nil && commit == nil {
		err = fmt.Errorf("%w: apply did not prepare the state", apply.ErrStateNotWritable)
	}
	if err != nil && abort != nil {
		abort()
	}
	if errors.Is(err, apply.ErrDisabled) {
		res.Paused = true
		log.Warn("paused by flag file: nothing changed", "file", f.Apply.DisableFile)
		return res, nil
	}
	if err != nil {
		return res, err
	}
	stage = StageState
	if err := commit(); err != nil {
		return res, fmt.Errorf("recording the accepted ruleset (the rules are loaded): %w", err)
	}
	res.accepted = digest
	f.markChecked(now)
	if caching.Wait(); cacheOK {
		f.pruneParts(res.Parts)
	}
	log.Info("ruleset applied",
		"serial", header.Serial, "new", changed, "changed", ar.Changed(), "identity", src.Method,
		"interfaces", len(host.Interfaces), "summary", summarize(ar), "bytes", res.StoreBytes, "parts", len(res.Parts),
		"duration", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// Run runs the follower every interval (with jitter) until ctx ends; a
// failed run is logged and retried at the next tick, with the last good
// rules left in force. With interval 0 it runs once and returns its error.
func (f *Follower) Run(ctx context.Context, interval time.Duration) error {
	return loop(ctx, interval, f.Timeout, f.logger(), "follower run", func(ctx context.Context) error {
		_, err := f.RunOnce(ctx)
		return err
	})
}

// lastApplied returns the status file's record of the apply that the
// state last recorded, or nil when the status file does not hold that
// very apply (missing, unreadable, or from another apply: a crash between
// the two writes). The state file stays in the format earlier releases
// read, so a rollback of the binary keeps working.
func (f *Follower) lastApplied(last State) *LoadedRecord {
	if last.IsZero() {
		return nil
	}
	st, err := LoadStatus(f.StateDir)
	if err != nil || st.Loaded == nil {
		return nil
	}
	l := st.Loaded
	accepted := l.AppliedAt
	if !l.AcceptedAt.IsZero() {
		accepted = l.AcceptedAt
	}
	if l.Digest != last.Digest || l.Serial != last.Serial || !accepted.Equal(last.AcceptedAt) {
		return nil
	}
	return l
}

// changedSince says what of this host's side differs from the last
// completed apply (applied, as lastApplied returns it): the local
// settings (their digest differs, or is unknown), apply's record of the
// kernel (changedKernelRecord), or what the host's identity was found from
// (its own addresses on every run, the metadata service's view when a
// drift check is due); "" when nothing does or nothing was applied yet.
func (f *Follower) changedSince(ctx context.Context, last State, applied *LoadedRecord, settings string, now time.Time) string {
	if last.IsZero() {
		return ""
	}
	if applied == nil || applied.Settings != settings {
		return "local settings"
	}
	if applied.KernelRecord != "" && kernelRecordDigest(f.StateDir) != applied.KernelRecord {
		return changedKernelRecord
	}
	if applied.IdentityDigest == "" {
		return ""
	}
	if probe := f.identityProbe(ctx, applied.Identity.Method, f.driftDue(now)); probe != "" && probe != applied.IdentityDigest {
		return "the host's identity"
	}
	return ""
}

// changedKernelRecord is what changedSince says when apply's record of
// the kernel changed.
const changedKernelRecord = "apply's record of the kernel"

// driftDue says whether a drift check is due at now: DriftCheck has
// passed since the kernel was last found (or made) to hold the applied
// rules. Never in a dry run or with a negative DriftCheck.
func (f *Follower) driftDue(now time.Time) bool {
	every := f.DriftCheck
	if every == 0 {
		every = DefaultDriftCheck
	}
	if every < 0 || f.DryRun {
		return false
	}
	fi, err := os.Stat(filepath.Join(f.StateDir, driftFile))
	if err != nil {
		return true
	}
	// A check stamped in the future (the clock ran ahead then, and was
	// corrected since) is due now, not when the clock catches up.
	since := now.Sub(fi.ModTime())
	return since >= every || since < 0
}

// checkDrift runs apply.Check when a check is due. due is false when it
// is not (or DriftCheck is negative, or this is a dry run).
func (f *Follower) checkDrift(ctx context.Context, now time.Time) (drift []apply.Drift, due bool, err error) {
	if !f.driftDue(now) {
		return nil, false, nil
	}
	drift, err = apply.Check(ctx, f.applyOptions())
	if err == nil && len(drift) == 0 {
		f.markChecked(now)
	}
	return drift, true, err
}

// markChecked records that the kernel holds the applied rules as of now.
func (f *Follower) markChecked(now time.Time) {
	p := filepath.Join(f.StateDir, driftFile)
	// O_NONBLOCK: opening a FIFO (an odd state directory) for writing
	// fails at once instead of waiting for a reader for ever.
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return
	}
	w.Close()
	_ = os.Chtimes(p, now, now)
}

func (f *Follower) identity() IdentityOptions {
	o := f.Identity
	if o.Logger == nil {
		o.Logger = f.logger()
	}
	return o
}

func (f *Follower) applyOptions() apply.Options {
	o := f.Apply
	if o.Logger == nil {
		o.Logger = f.logger()
	}
	if o.StateDir == "" {
		o.StateDir = f.StateDir
	}
	return o
}

func (f *Follower) maxSize() int64 {
	if f.MaxSize <= 0 {
		return DefaultMaxObjectSize
	}
	return f.MaxSize
}

func (f *Follower) now() time.Time { return clock(f.Now) }

func (f *Follower) logger() *slog.Logger { return orDiscard(f.Logger) }

func summarize(r apply.Result) string {
	var parts []string
	for _, fr := range r.Families {
		var p []string
		if fr.RulesLoaded {
			p = append(p, "rules loaded")
		}
		if fr.JumpRepaired {
			p = append(p, "jump repaired")
		}
		for _, x := range []struct {
			n    string
			sets []string
		}{{"sets created", fr.SetsCreated}, {"sets swapped", fr.SetsSwapped}, {"sets destroyed", fr.SetsDestroyed}, {"chains deleted", fr.ChainsDeleted}} {
			if len(x.sets) > 0 {
				p = append(p, fmt.Sprintf("%d %s", len(x.sets), x.n))
			}
		}
		if len(p) == 0 {
			p = append(p, "unchanged")
		}
		parts = append(parts, fmt.Sprintf("IPv%d: %s", fr.Family, strings.Join(p, ", ")))
	}
	return strings.Join(parts, "; ")
}

// printPlan writes the dry-run output: the plan, then the difference from
// the reyes rules in the kernel when they can be read.
func (f *Follower) printPlan(ctx context.Context, plan *render.Plan, h ruleset.Header, src IdentitySource) {
	out := f.Out
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintf(out, "# reyes dry run: scope %s serial %d generated %s not after %s; host found by %s\n",
		h.Scope, h.Serial, h.GeneratedAt.Format(time.RFC3339), h.NotAfter.Format(time.RFC3339), src.Method)
	for _, fp := range plan.Families() {
		fmt.Fprintf(out, "\n# ---- IPv%d: ipset restore ----\n%s", fp.Family, fp.IpsetRestore())
		fmt.Fprintf(out, "\n# ---- IPv%d: iptables-restore ----\n%s", fp.Family, fp.IptablesRestore())
		diff, err := f.kernelDiff(ctx, fp)
		if err != nil {
			fmt.Fprintf(out, "\n# ---- IPv%d: kernel not compared: %v\n", fp.Family, err)
			continue
		}
		if diff == "" {
			fmt.Fprintf(out, "\n# ---- IPv%d: the kernel already has these rules\n", fp.Family)
		} else {
			fmt.Fprintf(out, "\n# ---- IPv%d: difference from the kernel's reyes rules (- kernel, + plan) ----\n%s", fp.Family, diff)
		}
	}
}

// kernelDiff reads the kernel's reyes rules with iptables-save and returns
// the lines only the kernel (-) or only the plan (+) has.
func (f *Follower) kernelDiff(ctx context.Context, fp *render.FamilyPlan) (string, error) {
	r := f.Apply.Runner
	if r == nil {
		r = apply.ExecRunner{}
	}
	save := "iptables-save"
	if fp.Family == render.IPv6 {
		save = "ip6tables-save"
	}
	switch f.Apply.Backend {
	case apply.BackendNFT:
		save = strings.Replace(save, "-save", "-nft-save", 1)
	case apply.BackendLegacy:
		save = strings.Replace(save, "-save", "-legacy-save", 1)
	}
	b, err := r.Run(ctx, nil, save, "-t", "filter")
	if err != nil {
		return "", err
	}
	have := map[string]bool{}
	var kernel []string
	for _, l := range strings.Split(string(b), "\n") {
		l = apply.PlanSetNames(l) // a set may live in its second slot
		// Rules compare without their hash comments: a rule whose
		// predecessor changed is still the same rule to a reader.
		l = render.StripRuleHashes(l)
		if strings.HasPrefix(l, "-A "+render.ChainPrefix) || l == "-A INPUT -j "+render.InputChain {
			kernel = append(kernel, l)
			have[l] = true
		}
	}
	want := map[string]bool{}
	var plan []string
	if fp.Table == render.TableShared {
		plan = append(plan, "-A INPUT -j "+render.InputChain)
	}
	for _, l := range strings.Split(render.StripRuleHashes(string(fp.IptablesRestore())), "\n") {
		if strings.HasPrefix(l, "-A ") {
			plan = append(plan, l)
		}
	}
	for _, l := range plan {
		want[l] = true
	}
	var d strings.Builder
	for _, l := range kernel {
		if !want[l] {
			d.WriteString("- " + l + "\n")
		}
	}
	for _, l := range plan {
		if !have[l] {
			d.WriteString("+ " + l + "\n")
		}
	}
	return d.String(), nil
}
