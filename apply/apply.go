package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"

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
// nothing was changed). Then, family by family: when only members changed
// (and the swaps cannot mix, see the package doc) the changed sets are
// filled under their second slot and swapped in place; otherwise every
// changed set is filled under its free slot and one iptables-restore
// switches rules and members together. If a family fails, its own change
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
	b, tl, err := opts.tools(ctx)
	if err != nil {
		return res, err
	}
	res.Backend = b
	// One listing of set headers serves both families: each family only
	// touches sets of its own prefix.
	kernelSets, err := listSets(ctx, opts.runner())
	if err != nil {
		return res, &StepError{Step: StepRead, Err: err}
	}
	var fas []*familyApply
	for _, fp := range fams {
		if len(fp.Chains) == 0 {
			continue
		}
		fp = sealed(fp)
		a := &familyApply{opts: &opts, r: opts.runner(), log: opts.logger().With("family", fp.Family),
			fp: fp, t: tl[fp.Family], backend: b, res: FamilyResult{Family: fp.Family}, kernelSets: kernelSets}
		if err := a.read(ctx); err != nil {
			return res, a.fail(StepRead, err, nil)
		}
		fas = append(fas, a)
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
	for _, a := range fas {
		if err := a.prepare(); err != nil {
			abort()
			res.Families = results()
			return res, err
		}
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
	for i, a := range fas {
		if err := a.change(ctx); err != nil {
			if rolledBack(err) != nil {
				// The family could not be put back: its record must not
				// be trusted (see preparedState.keep).
				a.prepared.keep = true
			}
			for j := i - 1; j >= 0; j-- {
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

// rolledBack returns the *StepError of a failed rollback in err, or nil.
func rolledBack(err error) *StepError {
	var found *StepError
	var walk func(error)
	walk = func(e error) {
		if e == nil || found != nil {
			return
		}
		if se, ok := e.(*StepError); ok && se.Step == StepRollback {
			found = se
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return found
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

func setPrefix(fam render.Family) string {
	if fam == render.IPv6 {
		return render.SetPrefix6
	}
	return render.SetPrefix4
}

// checkPlan refuses plans apply cannot load safely.
func checkPlan(fp *render.FamilyPlan, failSafe []render.FailSafe) error {
	if len(fp.Chains) == 0 {
		if len(fp.Sets) > 0 {
			return fmt.Errorf("%w: sets without chains", ErrPlan)
		}
		return nil
	}
	if fp.Family != render.IPv4 && fp.Family != render.IPv6 {
		return fmt.Errorf("%w: family %d", ErrPlan, fp.Family)
	}
	if fp.Chains[0].Name != render.InputChain {
		return fmt.Errorf("%w: first chain is %q, not %s", ErrPlan, fp.Chains[0].Name, render.InputChain)
	}
	if err := fp.Validate(); err != nil { // a zero Rule, port 0, protocol 0...
		return fmt.Errorf("%w: %w", ErrPlan, err)
	}
	names := map[string]bool{}
	for _, s := range fp.Sets {
		names[s.Name] = true
	}
	for _, s := range fp.Sets {
		if names[secondSlot(s)] {
			// Each set needs its second name as its second slot.
			return fmt.Errorf("%w: set %q is the second name of set %q", ErrPlan, secondSlot(s), s.Name)
		}
		if !strings.HasPrefix(s.Name, setPrefix(fp.Family)) || len(s.TempName()) > render.MaxSetName || strings.ContainsAny(s.Name, " \t\n") {
			return fmt.Errorf("%w: set name %q", ErrPlan, s.Name)
		}
		if s.Family != fp.Family {
			return fmt.Errorf("%w: set %s is not of family %d", ErrPlan, s.Name, fp.Family)
		}
	}
	for _, c := range fp.Chains {
		if !strings.HasPrefix(c.Name, render.ChainPrefix) || len(c.Name) > render.MaxChainName {
			return fmt.Errorf("%w: chain name %q", ErrPlan, c.Name)
		}
	}
	return checkFailSafe(fp, failSafe)
}

// checkSharedText makes sure a shared-mode restore text touches nothing
// but reyes' chains. It runs on the text about to be loaded, so only when
// rules change.
func checkSharedText(text []byte) error {
	for i, l := range strings.Split(string(text), "\n") {
		ok := l == "" || l == "*filter" || l == "COMMIT" || strings.HasPrefix(l, "#") ||
			strings.HasPrefix(l, ":"+render.ChainPrefix) || strings.HasPrefix(l, "-A "+render.ChainPrefix)
		if !ok {
			return fmt.Errorf("%w: shared-mode line %d touches a chain reyes does not own: %q", ErrPlan, i+1, l)
		}
	}
	return nil
}

// checkFailSafe checks that each fail-safe of the plan's family is allowed
// in REYES-INPUT before any rule that can drop or divert traffic.
func checkFailSafe(fp *render.FamilyPlan, failSafe []render.FailSafe) error {
	rules := fp.Chains[0].Rules
	for _, f := range failSafe {
		if f.Source.IsValid() && f.Source.Bits() != 0 && f.Source.Addr().Is4() != (fp.Family == render.IPv4) {
			continue
		}
		found := false
		for _, r := range rules {
			if matchesFailSafe(r, f) && (r.Action.Kind == render.Accept || r.Action.Kind == render.Return) {
				found = true
				break
			}
			if k := r.Action.Kind; k != render.Accept && k != render.Return && k != render.Log {
				break
			}
		}
		if !found {
			return fmt.Errorf("%w: ipv%d: source %v protocol %d port %d", ErrFailSafe, fp.Family, f.Source, f.Protocol, f.Port)
		}
	}
	return nil
}

func matchesFailSafe(r render.Rule, f render.FailSafe) bool {
	m := r.Match
	src := f.Source
	if src.IsValid() && src.Bits() == 0 {
		src = netip.Prefix{}
	}
	if m.Src != src || m.Protocol != f.Protocol || m.SrcSet != "" || m.Dst.IsValid() || m.InIface != "" || m.IPsecIn || m.Established {
		return false
	}
	if f.Port == 0 {
		return m.DPortFrom < 0
	}
	return m.DPortFrom == int(f.Port) && m.DPortTo == int(f.Port)
}

// setChange is what happens to one set of the plan. Every set has two
// slots in the kernel, its name and its second name (name + SlotSuffix):
// the rules refer to one, the live slot; the other is where new members
// are filled while the live one stays untouched.
type setChange struct {
	set    render.Set
	live   string // the slot the kernel's rules refer to; "" if neither
	fill   string // the slot filled with the plan's members; "" if unchanged
	target string // the slot the rules refer to after the apply
	// initval is live's initval before an in-place swap: a swap moves
	// another set under the name, which is how a rollback tells.
	initval string
}

// SlotSuffix ends the name of a set's second slot: a changed set is
// loaded under whichever of its name and its name + SlotSuffix the rules
// do not use (see the package doc). It is as long as render.TempSuffix,
// so render's limit on TempName bounds it too.
const SlotSuffix = "-b"

// secondSlot is the name of the set's second slot.
func secondSlot(s render.Set) string { return s.Name + SlotSuffix }

// other returns the set's slot that is not name.
func other(s render.Set, name string) string {
	if name == s.Name {
		return secondSlot(s)
	}
	return s.Name
}

// familyApply is one run of Apply for one family.
type familyApply struct {
	opts    *Options
	r       Runner
	log     *slog.Logger
	fp      *render.FamilyPlan
	t       tools
	backend Backend
	res     FamilyResult

	kernelSets map[string]setInfo
	st         *state
	members    map[string][]netip.Addr // read back lazily
	sets       []*setChange
	changed    []*setChange
	inPlace    bool     // changed sets are swapped in place; no rule load
	oldChains  []string // reyes chains in the kernel not in the plan
	jumpFix    []string // restore lines that repair the hooks
	rulesOK    bool     // the kernel's rules are the plan's, on the live slots
	planText   []byte   // the plan's restore text, rendered once (see text)
	loadText   []byte   // planText with the sets' slots, as loaded

	prepared *preparedState
	oldSave  []byte // the rules before the change, for revert (see saveOld)
	// oldExclusive: oldSave is a whole table, loaded back as such.
	oldExclusive bool
	oldJumps     []string // the jumps to reyes from built-in chains before the change
	oldMembers   map[string][]netip.Addr
	swapped      []*setChange // swaps done (in place)
	filled       bool         // fill slots were created
	loaded       bool         // rules were loaded
	alone        bool         // the only family that changes: no revert after it
	destroyed    bool         // the swapped-out fill slots were destroyed with the swap
}

// text is the plan's iptables-restore text, rendered on first use: read,
// rules and the state all need it, and at 20,000 rules it is megabytes.
func (a *familyApply) text() []byte {
	if a.planText == nil {
		a.planText = a.fp.IptablesRestore()
	}
	return a.planText
}

// kernelText is the plan's text with each set's name replaced by the slot
// its rules use after the apply.
func (a *familyApply) kernelText() []byte {
	if a.loadText != nil {
		return a.loadText
	}
	var pairs []string
	for _, c := range a.sets {
		if c.target != "" && c.target != c.set.Name {
			pairs = append(pairs, " --match-set "+c.set.Name+" ", " --match-set "+c.target+" ")
		}
	}
	if len(pairs) == 0 {
		a.loadText = a.text()
	} else {
		a.loadText = []byte(strings.NewReplacer(pairs...).Replace(string(a.text())))
	}
	return a.loadText
}

func (a *familyApply) fail(step Step, err error, text []byte) error {
	e := &StepError{Family: a.fp.Family, Step: step, Err: err}
	if text != nil {
		if n := failedLine(err.Error()); n > 0 {
			e.Line, e.Input = n, lineOf(text, n)
			if len(e.Input) > 300 {
				e.Input = e.Input[:300] + "..."
			}
		}
	}
	return e
}

// orphans are the family's kernel sets that no rule will refer to after
// the apply and that are not being filled: leftovers of a changed set's
// other slot, of a killed run, or of sets that left the plan.
func (a *familyApply) orphans() []string {
	keep := map[string]bool{}
	for _, c := range a.sets {
		keep[c.target] = true
		if c.fill != "" {
			keep[c.fill] = true
		}
	}
	var out []string
	for name := range a.kernelSets {
		if strings.HasPrefix(name, setPrefix(a.fp.Family)) && !keep[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// changes reports whether the family changes anything in the kernel.
func (a *familyApply) changes() bool {
	return len(a.changed) > 0 || !a.rulesOK || len(a.jumpFix) > 0 || len(a.orphans()) > 0
}

// reloads reports whether the family loads rules.
func (a *familyApply) reloads() bool { return !a.rulesOK || len(a.jumpFix) > 0 }

// newState is what the state will say once the apply is done.
func (a *familyApply) newState() *state {
	st := &state{Backend: a.backend, Sets: a.slots(), Hashes: map[string]string{}, Entries: map[string]int{}, Members: map[string]string{},
		Plan: a.fp.Hash(), Table: a.fp.Table.String(), Hooks: hooks(a.fp)}
	if a.rulesOK && !a.reloads() && a.st != nil && a.st.Plan == st.Plan && a.st.Rules != nil && maps.Equal(a.st.Sets, st.Sets) {
		// The rules stay as recorded: no need to render 20,000 of them.
		st.Rules, st.Text = a.st.Rules, a.st.Text
	} else {
		st.Rules = chainHashes(a.kernelText())
		if a.keepsText() {
			st.Text = textHash(a.kernelText())
		}
	}
	for _, c := range a.fp.Chains {
		st.Chains = append(st.Chains, c.Name)
	}
	for _, c := range a.sets {
		if a.st != nil && c.fill == "" && a.st.Sets[c.set.Name] == c.target && a.st.Hashes[c.set.Name] != "" && a.st.Members[c.target] != "" {
			// Unchanged, as recorded: keep the record (no sorting).
			st.Hashes[c.set.Name] = a.st.Hashes[c.set.Name]
			st.Entries[c.target] = a.st.Entries[c.target]
			st.Members[c.target] = a.st.Members[c.target]
			continue
		}
		st.Hashes[c.set.Name] = c.set.Hash()
		st.Entries[c.target] = uniqueCount(c.set.Members)
		st.Members[c.target] = memberHash(c.set.Members)
	}
	return st
}

// keepsText reports whether the family records the text it loads, for a
// later run to put back: IPv4, the family a failing IPv6 makes revert.
func (a *familyApply) keepsText() bool {
	return a.fp.Family == render.IPv4 && a.opts.StateDir != ""
}

// slots maps each set of the plan to the kernel set its rules use after
// the apply.
func (a *familyApply) slots() map[string]string {
	m := make(map[string]string, len(a.sets))
	for _, c := range a.sets {
		m[c.set.Name] = c.target
	}
	return m
}

// prepare writes the family's new state next to the recorded one, before
// the kernel is touched. A family that changes nothing and whose record
// already says so writes nothing.
func (a *familyApply) prepare() error {
	if !a.changes() && a.st != nil && a.st.Backend == a.backend && a.st.Plan == a.fp.Hash() &&
		a.st.Rules != nil && a.st.Members != nil && a.st.Hashes != nil && maps.Equal(a.st.Sets, a.slots()) {
		a.log.Debug("unchanged")
		a.prepared = &preparedState{done: true}
		return nil
	}
	keep := pending(a.opts.StateDir, a.fp.Family)
	st := a.newState()
	var text []byte
	if a.keepsText() && a.reloads() {
		text = a.kernelText()
	}
	p, err := prepareState(a.opts.StateDir, a.fp.Family, st, text)
	if err != nil {
		return a.fail(StepState, err, nil)
	}
	p.keep = keep
	a.prepared = p
	return nil
}

func (a *familyApply) readMembers(ctx context.Context) (map[string][]netip.Addr, error) {
	if a.members == nil {
		m, err := saveMembers(ctx, a.r, setPrefix(a.fp.Family))
		if err != nil {
			return nil, err
		}
		a.members = m
	}
	return a.members, nil
}

// read finds out what differs between the kernel and the plan, reading as
// little as possible: set headers (with their references, which say which
// slot is live), the first rule of REYES-INPUT (which carries the plan
// hash) and the built-in chains of the hooks.
func (a *familyApply) read(ctx context.Context) error {
	fp := a.fp
	a.st = readState(a.opts.StateDir, fp.Family)
	if a.st != nil && a.st.Backend != a.backend {
		a.st = nil
	}
	rules, err := listRules(ctx, a.r, a.t.iptables, render.InputChain, 1)
	if err != nil {
		a.log.Debug("reading plan hash", "err", err)
	}
	haveInput := err == nil
	a.rulesOK = err == nil && kernelPlanHash(rules) == fp.Hash() && !a.opts.Force
	for _, s := range fp.Sets {
		c := &setChange{set: s}
		for _, n := range []string{s.Name, secondSlot(s)} {
			k, ok := a.kernelSets[n]
			if !ok || k.Refs == 0 {
				continue
			}
			if c.live != "" {
				return fmt.Errorf("sets %s and %s are both in use by rules: cannot tell which one reyes' rules use", c.live, n)
			}
			if k.Type != "hash:ip" || k.Family != fp.Family.String() {
				return fmt.Errorf("set %s exists as %s family %s and is in use, cannot replace it with hash:ip family %s",
					n, k.Type, k.Family, fp.Family)
			}
			c.live, c.initval = n, k.InitVal
		}
		if c.live == "" {
			// No rule refers to the set: the kernel's rules are not the
			// plan's, whatever the hash says.
			a.rulesOK = false
		}
		same := false
		if c.live != "" && !a.opts.Force { // Force reloads every set
			if same, err = a.sameMembers(ctx, s, c.live); err != nil {
				return err
			}
		}
		if same {
			c.target = c.live
		} else {
			a.changed = append(a.changed, c)
		}
		a.sets = append(a.sets, c)
	}

	planText := []byte(nil)
	if fp.Table == render.TableExclusive {
		planText = a.text()
	}
	for _, h := range a.builtins() {
		lines, err := listRules(ctx, a.r, a.t.iptables, h.Builtin, 0)
		if err != nil {
			return err
		}
		if fp.Table == render.TableExclusive {
			// The built-in chain must hold exactly what the plan writes.
			var want, got []string
			for _, l := range strings.Split(string(planText), "\n") {
				if strings.HasPrefix(l, "-A "+h.Builtin+" ") {
					want = append(want, l)
				}
			}
			for _, l := range lines {
				if strings.HasPrefix(l, "-A ") {
					got = append(got, l)
				}
			}
			if !slices.Equal(want, got) {
				a.rulesOK = false
			}
			continue
		}
		a.jumpFix = append(a.jumpFix, hookFix(lines, h)...)
	}

	// Swap in place only when the rules stay and the swaps cannot mix;
	// else every changed set goes to its free slot and one restore
	// switches rules and members together.
	if a.rulesOK && len(a.jumpFix) == 0 && len(a.changed) > 0 {
		if a.inPlace, err = a.swapSafe(ctx); err != nil {
			return err
		}
	}
	if len(a.changed) > 0 && !a.inPlace {
		a.rulesOK = false
	}
	// Sets named like render's temporary sets (name + "-n") are left over
	// from an apply before sets had two slots: orphans, destroyed below.
	for _, c := range a.changed {
		switch {
		case a.inPlace:
			c.fill, c.target = other(c.set, c.live), c.live
		case c.live != "":
			c.fill = other(c.set, c.live)
			c.target = c.fill
		default:
			c.fill, c.target = c.set.Name, c.set.Name
		}
		if k, ok := a.kernelSets[c.fill]; ok && k.Refs > 0 {
			return fmt.Errorf("set %s is in use by a rule that is not reyes'", c.fill)
		}
	}
	if fp.Table == render.TableExclusive {
		return nil
	}
	if !a.rulesOK && (haveInput || a.st != nil) {
		// Chains no longer in the plan are deleted in the same restore.
		// Without REYES-INPUT and state this is a first run: chains left
		// over without it are unreachable, and Remove takes them out.
		old, err := a.kernelChains(ctx)
		if err != nil {
			return err
		}
		for _, c := range old {
			if !slices.ContainsFunc(fp.Chains, func(pc render.Chain) bool { return pc.Name == c }) {
				a.oldChains = append(a.oldChains, c)
			}
		}
	}
	return nil
}

// builtins are the built-in chains whose jumps to reyes apply keeps: the
// plan's hooks, plus (shared mode) every built-in chain a previous plan
// hooked into, so that a hook that left the plan (the baseline's OUTPUT
// and FORWARD) is taken out. Without a record, all three are read.
func (a *familyApply) builtins() []render.Hook {
	hs := slices.Clone(hooks(a.fp))
	if a.fp.Table == render.TableExclusive {
		return hs
	}
	var was []string
	if a.st != nil {
		for _, h := range a.st.Hooks {
			was = append(was, h.Builtin)
		}
	} else {
		was = []string{"INPUT", "FORWARD", "OUTPUT"}
	}
	for _, b := range was {
		if !slices.ContainsFunc(hs, func(h render.Hook) bool { return h.Builtin == b }) {
			hs = append(hs, render.Hook{Builtin: b}) // no chain: no jump wanted
		}
	}
	return hs
}

// maxInPlace caps the number of sets swapped in place in one run; more
// go through a rule load (the check reads each set's members).
const maxInPlace = 64

// swapSafe reports whether the changed sets can be swapped in place, one
// after the other, with every packet meeting the old policy or the new
// one at every instant (the argument is in the package doc): one set
// always can; several can when every rule that matches a set allows, and
// no address leaves one changed set while it joins another.
func (a *familyApply) swapSafe(ctx context.Context) (bool, error) {
	if len(a.changed) == 1 {
		return true, nil
	}
	if len(a.changed) > maxInPlace {
		return false, nil
	}
	for _, ch := range a.fp.Chains {
		for _, r := range ch.Rules {
			if r.Match.SrcSet != "" && !allows(r) {
				return false, nil
			}
		}
	}
	removed := map[netip.Addr]string{}
	added := map[netip.Addr][]string{}
	for _, c := range a.changed {
		out, err := a.r.Run(ctx, nil, "ipset", "save", c.live)
		if err != nil {
			return false, err
		}
		old := map[netip.Addr]bool{}
		for _, m := range parseSave(out)[c.live] {
			old[m] = true
		}
		now := map[netip.Addr]bool{}
		for _, m := range c.set.Members {
			now[m] = true
			if !old[m] {
				added[m] = append(added[m], c.set.Name)
			}
		}
		for m := range old {
			if !now[m] {
				removed[m] = c.set.Name
			}
		}
	}
	for m, from := range removed {
		for _, to := range added[m] {
			if to != from {
				a.log.Debug("an address moves between sets: switching with a rule load", "addr", m, "from", from, "to", to)
				return false, nil
			}
		}
	}
	return true, nil
}

// allows reports whether a rule lets what it matches through: a jump to
// REYES-ALLOW, or a rule render marked as allowing.
func allows(r render.Rule) bool {
	return r.Allow || ((r.Action.Kind == render.Goto || r.Action.Kind == render.Jump) && r.Action.Chain == render.AllowChain)
}

// kernelChains returns reyes' chains in the kernel: from the state when
// there is one (chains only apply creates), else from "iptables -S".
func (a *familyApply) kernelChains(ctx context.Context) ([]string, error) {
	if a.st != nil {
		return a.st.Chains, nil
	}
	return listReyesChains(ctx, a.r, a.t.iptables)
}

func listReyesChains(ctx context.Context, r Runner, ipt string) ([]string, error) {
	lines, err := listRules(ctx, r, ipt, "", 0)
	if err != nil {
		return nil, err
	}
	var chains []string
	for _, l := range lines {
		if c, ok := strings.CutPrefix(l, "-N "); ok && strings.HasPrefix(c, render.ChainPrefix) {
			chains = append(chains, c)
		}
	}
	return chains, nil
}

// hooks are the plan's jumps from built-in chains; a plan without any
// gets the one every plan needs, INPUT -> REYES-INPUT.
func hooks(fp *render.FamilyPlan) []render.Hook {
	if len(fp.Hooks) > 0 {
		return fp.Hooks
	}
	return []render.Hook{{Builtin: "INPUT", Chain: render.InputChain}}
}

// jumpFix is hookFix for the INPUT hook.
func jumpFix(input []string) []string {
	return hookFix(input, render.Hook{Builtin: "INPUT", Chain: render.InputChain})
}

// hookFix returns the restore lines that leave exactly one jump from the
// built-in chain to reyes, to h.Chain, as its first rule (none at all when
// h.Chain is empty); nil if that is so. lines are "iptables -S <builtin>".
func hookFix(lines []string, h render.Hook) []string {
	var rules, jumps []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A "+h.Builtin+" ") {
			rules = append(rules, l)
			if refersToReyes(l) {
				jumps = append(jumps, l)
			}
		}
	}
	if h.Chain == "" {
		var fix []string
		for _, j := range jumps {
			fix = append(fix, "-D"+strings.TrimPrefix(j, "-A"))
		}
		return fix
	}
	want := "-A " + h.Builtin + " -j " + h.Chain
	if len(jumps) == 1 && len(rules) > 0 && rules[0] == want {
		return nil
	}
	var fix []string
	for _, j := range jumps {
		fix = append(fix, "-D"+strings.TrimPrefix(j, "-A"))
	}
	return append(fix, "-I "+h.Builtin+" 1 -j "+h.Chain)
}

// sameMembers decides whether the kernel set name already holds the plan's
// members: from the recorded hash when there is state, else by reading
// the members back.
func (a *familyApply) sameMembers(ctx context.Context, s render.Set, name string) (bool, error) {
	if a.st != nil && a.st.Sets[s.Name] == name && a.st.Hashes[s.Name] != "" {
		// The recorded members: equal hashes mean equal members, whose
		// number was recorded too (no sorting of the plan's members).
		if a.st.Hashes[s.Name] != s.Hash() {
			return false, nil
		}
		n, ok := a.st.Entries[name]
		return ok && a.kernelSets[name].Entries == n, nil
	}
	if a.kernelSets[name].Entries != uniqueCount(s.Members) {
		return false, nil
	}
	if a.st != nil {
		if h, ok := a.st.Members[name]; ok {
			return h == memberHash(s.Members), nil
		}
	}
	m, err := a.readMembers(ctx)
	if err != nil {
		return false, err
	}
	return memberHash(m[name]) == memberHash(s.Members), nil
}

func uniqueCount(as []netip.Addr) int {
	if slices.IsSortedFunc(as, netip.Addr.Compare) {
		return len(slices.Compact(slices.Clone(as)))
	}
	c := slices.Clone(as)
	slices.SortFunc(c, netip.Addr.Compare)
	return len(slices.Compact(c))
}

// ipsetSession is how many sets one ipset restore handles: a session gets
// slower with every set it has seen (148,000 members took 0.95 s in 1,000
// sets but 7 s in 8,000), so large plans are loaded in several.
const ipsetSession = 500

// sessions splits n items into runs of at most ipsetSession.
func sessions(n int) [][2]int {
	var out [][2]int
	for i := 0; i < n; i += ipsetSession {
		out = append(out, [2]int{i, min(i+ipsetSession, n)})
	}
	return out
}

// change makes the family's kernel change: fill, then swap in place or
// load the rules. On failure it undoes its own change and returns the
// step's error.
func (a *familyApply) change(ctx context.Context) error {
	if !a.changes() {
		return nil
	}
	if a.opts.FlushConntrack {
		var err error
		if a.oldMembers, err = a.readMembers(ctx); err != nil {
			return a.fail(StepRead, err, nil)
		}
	}
	if err := a.fill(ctx); err != nil {
		return err
	}
	if a.inPlace {
		return a.swap(ctx)
	}
	return a.rules(ctx)
}

// fill creates and fills the fill slot of every changed set, in ipset
// restore sessions of ipsetSession sets. No rule refers to a fill slot, so
// this changes no verdict. On failure every fill slot is destroyed again.
func (a *familyApply) fill(ctx context.Context) error {
	if len(a.changed) == 0 {
		return nil
	}
	a.filled = true
	for _, run := range sessions(len(a.changed)) {
		var b bytes.Buffer
		for _, c := range a.changed[run[0]:run[1]] {
			if _, ok := a.kernelSets[c.fill]; ok {
				fmt.Fprintf(&b, "destroy %s\n", c.fill) // unreferenced: a leftover
			}
			tmp := c.set.TempName()
			for _, l := range bytes.SplitAfter(c.set.RestoreText(), []byte("\n")) {
				f := bytes.Fields(l)
				if len(f) >= 2 && string(f[1]) == tmp &&
					(string(f[0]) == "create" || string(f[0]) == "flush" || string(f[0]) == "add") {
					b.Write(f[0])
					b.WriteByte(' ')
					b.WriteString(c.fill)
					b.Write(l[len(f[0])+1+len(tmp):])
				}
			}
		}
		text := b.Bytes()
		if _, err := a.r.Run(ctx, text, "ipset", "restore"); err != nil {
			return a.undo(ctx, a.fail(StepFill, err, text))
		}
	}
	a.log.Debug("filled sets", "sets", len(a.changed))
	return nil
}

// undo takes the family's change back after its own step failed and
// returns the step's error, joined with the undo's if that failed too.
func (a *familyApply) undo(ctx context.Context, stepErr error) error {
	if err := a.revert(ctx); err != nil {
		return errors.Join(stepErr, a.fail(StepRollback, err, nil))
	}
	return stepErr
}

// revert puts the family back as it was before change: rules reloaded
// from the saved text, in-place swaps swapped back, fill slots destroyed.
func (a *familyApply) revert(ctx context.Context) error {
	var errs []error
	if a.loaded {
		if a.oldSave == nil {
			return errors.New("no saved rules to load back")
		}
		text, args := a.revertText()
		if _, err := a.r.Run(ctx, text, a.t.restore, args...); err != nil {
			// The new rules stay in force and refer to the fill slots:
			// they must not be destroyed.
			return fmt.Errorf("loading the previous rules back: %w", err)
		}
		a.loaded = false
		a.res.RulesLoaded, a.res.JumpRepaired, a.res.ChainsDeleted = false, false, nil
	}
	if len(a.swapped) > 0 {
		sets, err := listSets(ctx, a.r)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		for _, c := range a.swapped {
			// A set whose initval changed was swapped; swap it back.
			if k, ok := sets[c.live]; ok && k.InitVal != c.initval {
				if _, ok := sets[c.fill]; ok {
					fmt.Fprintf(&b, "swap %s %s\n", c.fill, c.live)
				}
			}
		}
		if err := a.ipsetScript(ctx, b.Bytes()); err != nil {
			return fmt.Errorf("swapping the previous members back: %w", err)
		}
		a.swapped = nil
	}
	if a.filled {
		sets, err := listSets(ctx, a.r)
		if err != nil {
			return err
		}
		var b bytes.Buffer
		for _, c := range a.changed {
			if k, ok := sets[c.fill]; ok && k.Refs == 0 {
				fmt.Fprintf(&b, "destroy %s\n", c.fill)
			}
		}
		if err := a.ipsetScript(ctx, b.Bytes()); err != nil {
			errs = append(errs, fmt.Errorf("destroying filled sets: %w", err))
		}
		a.filled = false
	}
	a.res.SetsCreated, a.res.SetsSwapped = nil, nil
	return errors.Join(errs...)
}

// ipsetScript runs a script of one-set-per-line commands (destroy, swap)
// in sessions of ipsetSession lines.
func (a *familyApply) ipsetScript(ctx context.Context, text []byte) error {
	lines := bytes.SplitAfter(text, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for _, run := range sessions(len(lines)) {
		if _, err := a.r.Run(ctx, bytes.Join(lines[run[0]:run[1]], nil), "ipset", "restore"); err != nil {
			return err
		}
	}
	return nil
}

// swap swaps each filled slot with its live one; the fill slot then holds
// the old members, kept until cleanup for a revert. When nothing can need
// a revert any more (the only family that changes, one session), the fill
// slots are destroyed in the same call, after all swaps.
func (a *familyApply) swap(ctx context.Context) error {
	if a.alone && len(a.changed) <= ipsetSession {
		var b bytes.Buffer
		for _, c := range a.changed {
			fmt.Fprintf(&b, "swap %s %s\n", c.fill, c.live)
		}
		for _, c := range a.changed {
			fmt.Fprintf(&b, "destroy %s\n", c.fill)
		}
		a.swapped = a.changed
		text := b.Bytes()
		if _, err := a.r.Run(ctx, text, "ipset", "restore"); err != nil {
			if failedLine(err.Error()) <= len(a.changed) {
				return a.undo(ctx, a.fail(StepSwap, err, text))
			}
			// Every swap went through; only a destroy failed: cleanup
			// tries again.
			a.log.Warn("destroying swapped-out sets", "err", err)
		} else {
			a.destroyed = true
		}
		a.recordSets()
		return nil
	}
	for _, run := range sessions(len(a.changed)) {
		var b bytes.Buffer
		for _, c := range a.changed[run[0]:run[1]] {
			fmt.Fprintf(&b, "swap %s %s\n", c.fill, c.live)
		}
		// Swapped or perhaps swapped: revert compares initvals.
		a.swapped = append(a.swapped, a.changed[run[0]:run[1]]...)
		text := b.Bytes()
		if _, err := a.r.Run(ctx, text, "ipset", "restore"); err != nil {
			return a.undo(ctx, a.fail(StepSwap, err, text))
		}
	}
	a.recordSets()
	return nil
}

func (a *familyApply) recordSets() {
	for _, c := range a.changed {
		if c.live != "" {
			a.res.SetsSwapped = append(a.res.SetsSwapped, c.set.Name)
		} else {
			a.res.SetsCreated = append(a.res.SetsCreated, c.set.Name)
		}
	}
}

// rules loads the chains, with each set's target slot: in shared mode also
// the deletion of chains that left the plan and the repair of the hooks,
// all in one transaction. It is the one step that switches the family
// from the old policy to the new.
func (a *familyApply) rules(ctx context.Context) error {
	if !a.reloads() {
		a.recordSets()
		return nil
	}
	var text []byte
	args := []string{"--wait"}
	if a.fp.Table == render.TableExclusive {
		text = a.kernelText()
	} else {
		args = append(args, "--noflush")
		var b bytes.Buffer
		if a.rulesOK {
			b.WriteString("*filter\n")
		} else {
			planText := a.kernelText()
			if err := checkSharedText(planText); err != nil {
				return a.undo(ctx, a.fail(StepCheck, err, nil))
			}
			b.Write(bytes.TrimSuffix(planText, []byte("COMMIT\n")))
		}
		// Hooks go before chains are deleted: a hook may jump to one.
		for _, l := range a.jumpFix {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		if !a.rulesOK {
			for _, c := range a.oldChains {
				fmt.Fprintf(&b, ":%s - [0:0]\n", c)
			}
			for _, c := range a.oldChains {
				fmt.Fprintf(&b, "-X %s\n", c)
			}
		}
		b.WriteString("COMMIT\n")
		text = b.Bytes()
	}
	if _, err := a.r.Run(ctx, text, a.t.restore, args...); err != nil {
		// iptables-restore commits all or nothing: the old rules stand.
		return a.undo(ctx, a.fail(StepRules, err, text))
	}
	a.loaded = true
	a.res.RulesLoaded = !a.rulesOK
	a.res.JumpRepaired = len(a.jumpFix) > 0
	if !a.rulesOK {
		a.res.ChainsDeleted = a.oldChains
	}
	a.recordSets()
	return nil
}

// saveOld keeps the rules as they are now, to put them back if a later
// family fails after this one loaded its rules: the text the previous run
// recorded it loaded (apply-ipv4.rules, checked against the recorded
// hash), or, without a trusted record, the kernel's table read back with
// iptables-save (slow at tens of thousands of rules on nft, so only after
// a kill, on a first run or when switching to exclusive mode).
func (a *familyApply) saveOld(ctx context.Context) error {
	if a.st != nil && a.st.Text != "" && (a.fp.Table != render.TableExclusive || a.st.Table == render.TableExclusive.String()) {
		if b, err := os.ReadFile(rulesPath(a.opts.StateDir, a.fp.Family)); err == nil && textHash(b) == a.st.Text {
			a.oldSave = b
			a.oldExclusive = a.st.Table == render.TableExclusive.String()
			for _, h := range a.st.Hooks {
				a.oldJumps = append(a.oldJumps, "-A "+h.Builtin+" -j "+h.Chain)
			}
			return nil
		}
	}
	out, err := a.r.Run(ctx, nil, a.t.save, "-t", "filter")
	if err != nil {
		return err
	}
	a.oldSave = out
	a.oldExclusive = a.fp.Table == render.TableExclusive // the whole table, whatever it held
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-A ") && !strings.HasPrefix(l, "-A "+render.ChainPrefix) && refersToReyes(l) {
			a.oldJumps = append(a.oldJumps, l)
		}
	}
	return nil
}

// revertText is the restore input that puts back the rules kept by
// saveOld: the whole table when that is what was kept; else reyes' chains
// and hooks as they were, and no chain the plan added, with --noflush.
func (a *familyApply) revertText() ([]byte, []string) {
	var lines []string
	for _, l := range strings.Split(string(a.oldSave), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if a.oldExclusive {
		return []byte(strings.Join(lines, "\n") + "\n"), []string{"--wait"}
	}
	var decl, rules []string
	old := map[string]bool{}
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, ":"+render.ChainPrefix):
			name := strings.Fields(l[1:])[0]
			old[name] = true
			decl = append(decl, ":"+name+" - [0:0]")
		case strings.HasPrefix(l, "-A "+render.ChainPrefix):
			rules = append(rules, l)
		}
	}
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, d := range decl {
		b.WriteString(d + "\n")
	}
	var added []string
	for _, c := range a.fp.Chains {
		if !old[c.Name] {
			added = append(added, c.Name)
			b.WriteString(":" + c.Name + " - [0:0]\n")
		}
	}
	if len(a.jumpFix) > 0 {
		// Our hooks out, the old jumps back at the top, in order.
		for _, h := range hooks(a.fp) {
			b.WriteString("-D " + h.Builtin + " -j " + h.Chain + "\n")
		}
		for i := len(a.oldJumps) - 1; i >= 0; i-- {
			f := strings.Fields(a.oldJumps[i])
			b.WriteString("-I " + f[1] + " 1 " + strings.Join(f[2:], " ") + "\n")
		}
	}
	for _, r := range rules {
		b.WriteString(r + "\n")
	}
	for _, c := range added {
		b.WriteString("-X " + c + "\n")
	}
	b.WriteString("COMMIT\n")
	return []byte(b.String()), []string{"--wait", "--noflush"}
}

// garbage is the sets the family leaves that nothing refers to any more:
// the other slot of each changed set (the old members) and the sets that
// left the plan or that a killed run left behind.
func (a *familyApply) garbage() []string {
	names := a.orphans()
	if a.inPlace && !a.destroyed {
		for _, c := range a.swapped {
			names = append(names, c.fill)
		}
	}
	return names
}

// destroyed records that name is gone.
func (a *familyApply) gone(name string) {
	for _, c := range a.sets {
		if name == c.set.Name || name == secondSlot(c.set) {
			return // a slot of a set of the plan, not a set that left it
		}
	}
	a.res.SetsDestroyed = append(a.res.SetsDestroyed, name)
}

// cleanup destroys the garbage of every family in one ipset call.
// Failures are logged, not returned: the new policy is in force, and the
// next run tries again.
func cleanup(ctx context.Context, r Runner, log *slog.Logger, fas []*familyApply) {
	var b bytes.Buffer
	n := 0
	for _, a := range fas {
		for _, name := range a.garbage() {
			fmt.Fprintf(&b, "destroy %s\n", name)
			n++
		}
	}
	if n > 0 {
		err := fas[0].ipsetScript(ctx, b.Bytes())
		for _, a := range fas {
			for _, name := range a.garbage() {
				if err != nil {
					// One at a time, to destroy all that can be.
					if _, err := r.Run(ctx, nil, "ipset", "destroy", name); err != nil {
						log.Warn("destroying unused set", "set", name, "err", err)
						continue
					}
				}
				a.gone(name)
			}
		}
	}
	for _, a := range fas {
		if a.opts.FlushConntrack && a.oldMembers != nil {
			a.flushConntrack(ctx, a.oldMembers)
		}
	}
}

// flushConntrack deletes the conntrack entries of sources that were in a
// set before and are in none now.
func (a *familyApply) flushConntrack(ctx context.Context, old map[string][]netip.Addr) {
	now := map[netip.Addr]bool{}
	for _, s := range a.fp.Sets {
		for _, m := range s.Members {
			now[m] = true
		}
	}
	gone := map[netip.Addr]bool{}
	for name, ms := range old {
		if a.kernelSets[name].Refs == 0 {
			continue // not matched by any rule before: its members were not let in
		}
		for _, m := range ms {
			if !now[m] {
				gone[m] = true
			}
		}
	}
	addrs := make([]netip.Addr, 0, len(gone))
	for m := range gone {
		addrs = append(addrs, m)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, m := range addrs {
		args := []string{"-D", "-s", m.String()}
		if m.Is6() {
			args = append(args, "-f", "ipv6")
		}
		// conntrack exits 1 when no entry matched; that is fine.
		if _, err := a.r.Run(ctx, nil, "conntrack", args...); err != nil && exitCode(err) != 1 {
			a.log.Warn("flushing conntrack", "source", m, "err", err)
			continue
		}
		a.res.ConntrackFlushed = append(a.res.ConntrackFlushed, m)
	}
}
