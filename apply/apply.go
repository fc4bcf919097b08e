package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/reyes-fw/reyes/render"
)

// Options configure Apply and Remove. The zero value runs the real tools
// of the host's default backend, keeps no state and honours no flag file.
type Options struct {
	// Runner runs the external tools; nil means ExecRunner{}.
	Runner Runner
	// Backend forces the iptables backend; BackendAuto follows the host.
	Backend Backend
	// StateDir is a directory where apply records per-set hashes, so an
	// unchanged set costs nothing to recognise. Empty means no state: apply
	// then reads set members back from the kernel ("ipset save").
	StateDir string
	// DisableFile, if set and the file exists, makes Apply change nothing
	// and return ErrDisabled.
	DisableFile string
	// FailSafe, if set, is checked against every plan: its traffic must be
	// allowed by rules of REYES-INPUT that come before anything that can
	// drop. A plan that does not is refused with ErrFailSafe.
	FailSafe []render.FailSafe
	// Force reloads every chain and set of the plan even when the plan hash
	// and the recorded set hashes say they are unchanged: for repairing
	// drift that Check found (a flushed chain further down, a set whose
	// members were replaced one for one), which the fast path cannot see.
	Force bool
	// FlushConntrack deletes the conntrack entries of addresses removed
	// from reyes' sets, so that their established connections end now
	// rather than when they go idle. Off by default.
	FlushConntrack bool
	// Logger receives progress at debug level and cleanup problems as
	// warnings; nil discards.
	Logger *slog.Logger
	// Prepare, if set, is the caller's own record of this change, written
	// but not yet in force (the follower's state: PrepareState). Apply
	// calls it once, concurrently with its reads of the kernel, so that
	// its fsync costs no time of its own, and waits for it before the
	// first kernel change: an error stops Apply with the kernel untouched
	// (ErrStateNotWritable). Apply does not return before Prepare has
	// returned; it is not called when Apply stops before its reads (the
	// flag file, a plan refused). The caller commits or drops what
	// Prepare wrote after Apply returns.
	Prepare func() error
}

// Sentinel errors callers branch on.
var (
	// ErrDisabled: the flag file exists; nothing was changed.
	ErrDisabled = errors.New("apply disabled by flag file")
	// ErrFailSafe: the plan does not accept the fail-safe traffic first.
	ErrFailSafe = errors.New("plan does not put the fail-safe rules first")
	// ErrPlan: the plan is not one apply can load safely (a shared-mode
	// text that touches chains other than reyes', a bad set name).
	ErrPlan = errors.New("invalid plan")
)

// Step names a step of Apply or Remove, for errors.
type Step string

// The steps, in order.
const (
	StepCheck    Step = "checking the plan"
	StepBackend  Step = "choosing the iptables backend"
	StepRead     Step = "reading the kernel's state"
	StepFill     Step = "filling sets in their free slots (ipset restore)"
	StepSwap     Step = "swapping sets in (ipset restore)"
	StepRules    Step = "loading rules (iptables-restore)"
	StepRollback Step = "rolling back sets"
	StepCleanup  Step = "destroying unused sets"
	StepState    Step = "recording state"
)

// StepError says which step failed, for which family, and which line of
// the generated input the tool rejected.
type StepError struct {
	Family render.Family // 0 when not family-specific
	Step   Step
	// Line is the 1-based line of the input the tool named, 0 if none;
	// Input is that line's text.
	Line  int
	Input string
	Err   error
}

// Error names the family, the step, the offending input line and the cause.
func (e *StepError) Error() string {
	var b strings.Builder
	b.WriteString("apply")
	if e.Family != 0 {
		fmt.Fprintf(&b, " ipv%d", e.Family)
	}
	b.WriteString(": ")
	b.WriteString(string(e.Step))
	if e.Line > 0 {
		fmt.Fprintf(&b, ": input line %d %q", e.Line, e.Input)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *StepError) Unwrap() error { return e.Err }

// Result says what Apply did.
type Result struct {
	// Disabled is set when the flag file stopped Apply.
	Disabled bool
	// Backend is the iptables backend used.
	Backend  Backend
	Families []FamilyResult
}

// Changed reports whether anything in the kernel was changed.
func (r Result) Changed() bool {
	for _, f := range r.Families {
		if f.Changed() {
			return true
		}
	}
	return false
}

// FamilyResult says what Apply did for one family.
type FamilyResult struct {
	Family render.Family
	// RulesLoaded: reyes' chains were (re)loaded with iptables-restore.
	RulesLoaded bool
	// JumpRepaired: the jump from INPUT was missing, duplicated or not
	// first, and was put back.
	JumpRepaired bool
	// Sets created (new to the kernel), swapped (members changed: swapped
	// in place, or loaded under their other slot and switched with the
	// rules) and destroyed (no longer in the plan, or left by an earlier
	// run), by the plan's names; chains deleted (no longer in the plan,
	// shared mode).
	SetsCreated, SetsSwapped, SetsDestroyed, ChainsDeleted []string
	// ConntrackFlushed are the sources whose conntrack entries were deleted.
	ConntrackFlushed []netip.Addr
}

// Changed reports whether anything was changed for the family.
func (f FamilyResult) Changed() bool {
	return f.RulesLoaded || f.JumpRepaired || len(f.SetsCreated)+len(f.SetsSwapped)+len(f.SetsDestroyed)+len(f.ChainsDeleted) > 0
}

func (o *Options) runner() Runner {
	if o.Runner == nil {
		return ExecRunner{}
	}
	return o.Runner
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// disabled reports whether the flag file exists.
func (o *Options) disabled() (bool, error) {
	if o.DisableFile == "" {
		return false, nil
	}
	_, err := os.Stat(o.DisableFile)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("checking flag file: %w", err)
}

// tools resolves the backend and its programs.
func (o *Options) tools(ctx context.Context) (Backend, map[render.Family]tools, error) {
	r := o.runner()
	b := o.Backend
	if b == BackendAuto {
		var err error
		if b, err = DetectBackend(ctx, r); err != nil {
			return "", nil, &StepError{Step: StepBackend, Err: err}
		}
	}
	t, err := resolveTools(ctx, r, b)
	if err != nil {
		return "", nil, &StepError{Step: StepBackend, Err: err}
	}
	return b, t, nil
}

// Apply loads plan into the kernel, both families as one unit, keeping
// the invariant of the package doc: every packet meets the old policy or
// the new one, at every instant and after a kill at any point.
//
// For each family it reads what differs (set headers, the plan hash on the
// first rule of REYES-INPUT, the hooks), then, before touching the kernel,
// writes the new state into a prepared file in Options.StateDir (a
// read-only or full directory fails here, with ErrStateNotWritable, and
// nothing was changed). Then the changed sets of both families are filled
// under their free slots, which no rule uses (one ipset restore for both
// when the plan is small), and, family by family: when only members
// changed (and the swaps cannot mix, see the package doc) the filled sets
// are swapped in place; otherwise one iptables-restore switches rules and
// members together. If a family fails, its own change
// is undone and so is the other family's, so that the recorded state (and
// the caller's) keeps describing the kernel. Last, sets nothing refers to
// any more are destroyed and the prepared states are committed.
//
// Unchanged parts are not touched; an unchanged plan makes no restore call
// at all. A failure returns a *StepError naming the family, the step and
// the offending input line.
//
// Apply must not run concurrently with itself or Remove on the same kernel:
// callers hold Lock on the state directory (the follower and reyesctl
// remove do).
func Apply(ctx context.Context, plan *render.Plan, opts Options) (Result, error) {
	var res Result
	if off, err := opts.disabled(); err != nil {
		return res, err
	} else if off {
		res.Disabled = true
		opts.logger().Info("flag file exists, not applying", "file", opts.DisableFile)
		return res, fmt.Errorf("%w: %s exists", ErrDisabled, opts.DisableFile)
	}
	fams := plan.Families()
	for _, fp := range fams {
		if err := checkPlan(fp, opts.FailSafe); err != nil {
			return res, &StepError{Family: fp.Family, Step: StepCheck, Err: err}
		}
	}
	// The caller's record is written alongside the reads, and waited for
	// before the first change.
	prepared := make(chan error, 1)
	if opts.Prepare != nil {
		go func() { prepared <- opts.Prepare() }()
	} else {
		prepared <- nil
	}
	// The families' reads may wait for it too (finishing a killed
	// backend switch changes the kernel), concurrently.
	var waitOnce sync.Once
	var prepErr error
	waitPrepare := func() error {
		waitOnce.Do(func() { prepErr = <-prepared })
		return prepErr
	}
	defer waitPrepare()
	first := opts.firstRun()
	res, err := applyOnce(ctx, fams, &opts, waitPrepare, first)
	if first && errors.Is(err, errFirstRunSetExists) {
		// A set of the plan exists although nothing recorded it: the
		// kernel is not as empty as a first run assumed. The sets this run
		// created are gone again (fillAll reverted them): start over,
		// reading the set headers as every other run does.
		opts.logger().Debug("first run: a set of the plan exists already; reading the set headers", "err", err)
		res, err = applyOnce(ctx, fams, &opts, waitPrepare, false)
	}
	return res, err
}

// errFirstRunSetExists is applyOnce's error when a first run (see
// firstRun) could not create a set of the plan under its own name and took
// its change back: Apply then runs again, reading the set headers.
var errFirstRunSetExists = errors.New("first run: a set of the plan could not be created")

// firstRun reports whether Apply may skip reading the set headers ("ipset
// list -t"): there is a state directory and it holds no record of either
// family, committed or prepared, so that no run with this directory
// created a set or a rule. Apply then also checks that neither family's
// table holds a chain of reyes (no rule of reyes refers to a set), and
// creates every set of the plan under its own name: "ipset restore"
// refuses to create a set that exists, before its first member, so a set
// that exists all the same (left by a run with another state directory)
// is never touched; Apply then starts over with the headers. Sets of
// earlier runs that the plan does not name stay until the next run, which
// has a record, reads the headers and destroys them.
func (o *Options) firstRun() bool {
	if o.StateDir == "" || o.Force {
		return false
	}
	for _, fam := range []render.Family{render.IPv4, render.IPv6} {
		for _, p := range []string{statePath(o.StateDir, fam), statePath(o.StateDir, fam) + pendingSuffix} {
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				return false
			}
		}
	}
	return true
}

// applyOnce is Apply after the flag file and the plan checks, with the
// caller's Prepare running (waitPrepare waits for it). first: see
// firstRun.
func applyOnce(ctx context.Context, fams []*render.FamilyPlan, o *Options, waitPrepare func() error, first bool) (Result, error) {
	var res Result
	opts := *o
	// Reading changes nothing in the kernel, so the reads run
	// concurrently: the backend's tools next to the set headers, then the
	// families' tables. Only the changes below are ordered.
	var (
		b          Backend
		tl         map[render.Family]tools
		kernelSets map[string]setInfo
	)
	rerrs := parallel(func() (err error) {
		b, tl, err = opts.tools(ctx)
		return err
	}, func() (err error) {
		if first {
			return nil // read below, if the tables say they must be
		}
		// One listing of set headers serves both families: each family
		// only touches sets of its own prefix.
		kernelSets, err = listSets(ctx, opts.runner())
		return err
	})
	if rerrs[0] != nil {
		return res, rerrs[0]
	}
	if rerrs[1] != nil {
		return res, &StepError{Step: StepRead, Err: rerrs[1]}
	}
	res.Backend = b
	var fas []*familyApply
	ss := &setSave{}
	for _, fp := range fams {
		if len(fp.Chains) == 0 {
			continue
		}
		fp = sealed(fp)
		fas = append(fas, &familyApply{opts: &opts, r: opts.runner(), log: opts.logger().With("family", fp.Family),
			fp: fp, t: tl[fp.Family], backend: b, res: FamilyResult{Family: fp.Family}, kernelSets: kernelSets, setSave: ss,
			waitPrepare: waitPrepare})
	}
	if first {
		// The tables first: a chain of reyes in either means rules that
		// may refer to sets, and the headers are read after all.
		tables := make([]func() error, len(fas))
		for i, a := range fas {
			tables[i] = func() error { return a.readTableOnce(ctx) }
		}
		for i, err := range parallel(tables...) {
			if err != nil {
				return res, fas[i].fail(StepRead, err, nil)
			}
		}
		first = !slices.ContainsFunc(fas, func(a *familyApply) bool { return len(a.savedChains) > 0 || a.haveInput })
		if first {
			kernelSets = map[string]setInfo{}
		} else {
			var err error
			if kernelSets, err = listSets(ctx, opts.runner()); err != nil {
				return res, &StepError{Step: StepRead, Err: err}
			}
		}
		for _, a := range fas {
			a.kernelSets, a.unread = kernelSets, first
		}
	}
	reads := make([]func() error, len(fas))
	for i, a := range fas {
		reads[i] = func() error { return a.read(ctx) }
	}
	for i, err := range parallel(reads...) {
		if err != nil {
			return res, fas[i].fail(StepRead, err, nil)
		}
	}
	results := func() []FamilyResult {
		out := make([]FamilyResult, len(fas))
		for i, a := range fas {
			out[i] = a.res
		}
		return out
	}
	// Nothing is changed in the kernel before every family's new state is
	// on disk, prepared.
	abort := func() {
		for _, a := range fas {
			a.prepared.abort()
		}
	}
	// The families' states are independent files: prepared (written and
	// fsync'd) concurrently, all before the first kernel change.
	prepares := make([]func() error, len(fas))
	for i, a := range fas {
		prepares[i] = a.prepare
	}
	for _, err := range parallel(prepares...) {
		if err != nil {
			abort()
			res.Families = results()
			return res, err
		}
	}
	if err := waitPrepare(); err != nil {
		abort()
		res.Families = results()
		return res, &StepError{Step: StepState, Err: fmt.Errorf("%w: %w", ErrStateNotWritable, err)}
	}
	// The material to put a family back if a later one fails.
	last := -1
	for i, a := range fas {
		if a.changes() {
			last = i
		}
	}
	for i, a := range fas {
		a.alone = i == last && !slices.ContainsFunc(fas[:i], (*familyApply).changes)
		if i < last && a.reloads() {
			if err := a.saveOld(ctx); err != nil {
				abort()
				return res, a.fail(StepRead, err, nil)
			}
		}
	}
	if opts.FlushConntrack {
		// The members before the change, read before anything is filled.
		for _, a := range fas {
			if !a.changes() {
				continue
			}
			var err error
			if a.oldMembers, err = a.readMembers(ctx); err != nil {
				abort()
				res.Families = results()
				return res, a.fail(StepRead, err, nil)
			}
		}
	}
	// Step 1 for every family, then step 2 family by family (package doc).
	if err := fillAll(ctx, opts.runner(), fas); err != nil {
		abort()
		res.Families = results()
		if first && rolledBack(err) == nil {
			// Every set this run created is gone again: nothing changed.
			return res, fmt.Errorf("%w: %w", errFirstRunSetExists, err)
		}
		return res, err
	}
	for i, a := range fas {
		if err := a.change(ctx); err != nil {
			if rolledBack(err) != nil {
				// The family could not be put back: its record must not
				// be trusted (see preparedState.keep).
				a.prepared.keep = true
			}
			// The families before are put back; those after only filled
			// their free slots, which go.
			for j := len(fas) - 1; j >= 0; j-- {
				if j == i || j > i && !fas[j].filled {
					continue
				}
				if rerr := fas[j].revert(ctx); rerr != nil {
					fas[j].prepared.keep = true
					err = errors.Join(err, fas[j].fail(StepRollback, rerr, nil))
				}
			}
			abort()
			res.Families = results()
			return res, err
		}
	}
	// The new policy is in force in every family: the old backend's
	// rules, which filtered alongside (only what both allowed passed),
	// can go, and with them their references on the old slots.
	// A failure is a warning: the new policy is in force and recorded.
	for _, a := range fas {
		if err := a.dropOldBackend(ctx); err != nil {
			a.log.Warn("the previous backend's rules stay", "err", err)
		}
	}
	cleanup(ctx, opts.runner(), opts.logger(), fas)
	var errs []error
	for _, a := range fas {
		if err := a.prepared.commit(); err != nil {
			errs = append(errs, a.fail(StepState, err, nil))
		}
	}
	res.Families = results()
	return res, errors.Join(errs...)
}

// sealed returns fp with the plan comment on its first rule, which is how
// apply recognises an unchanged plan in the kernel. Plans from
// render.Render carry it already; for others (built by hand, or by a
// custom renderer) a copy gets it.
func sealed(fp *render.FamilyPlan) *render.FamilyPlan {
	if len(fp.Chains) == 0 || len(fp.Chains[0].Rules) == 0 {
		return fp
	}
	// Render's plans (and plans sealed by their builder) carry their hash.
	if fp.Chains[0].Rules[0].Comment == render.PlanComment(fp.Hash()) {
		return fp
	}
	// A copy, sealed: its hash is computed once and kept for the run.
	c := *fp
	c.Chains = slices.Clone(fp.Chains)
	c.Chains[0].Rules = slices.Clone(c.Chains[0].Rules)
	c.Seal()
	return &c
}
