package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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
	StepFill     Step = "filling temporary sets (ipset restore)"
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
	// Sets created, swapped (members changed) and destroyed (no longer in
	// the plan); chains deleted (no longer in the plan, shared mode).
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

// Apply loads plan into the kernel, family by family: sets that changed are
// filled under temporary names and swapped in, then the rules are loaded
// with one iptables-restore (--noflush in shared mode, the whole table in
// exclusive mode), then sets and chains nothing refers to any more are
// destroyed. Unchanged parts are not touched; an unchanged plan makes no
// restore call at all. If a step fails, the family's previous rules and
// sets stay in force, temporary sets are destroyed, and the error (a
// *StepError) names the step and the offending input line.
//
// Apply must not run concurrently with itself or Remove on the same kernel;
// callers serialise runs (the follower runs one at a time).
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
	for _, fp := range fams {
		if len(fp.Chains) == 0 {
			continue
		}
		fp = sealed(fp)
		a := &familyApply{opts: &opts, r: opts.runner(), log: opts.logger().With("family", fp.Family),
			fp: fp, t: tl[fp.Family], backend: b, res: FamilyResult{Family: fp.Family}, kernelSets: kernelSets}
		err := a.run(ctx)
		res.Families = append(res.Families, a.res)
		if err != nil {
			return res, err
		}
	}
	return res, nil
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
	for _, s := range fp.Sets {
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

// setChange is what happens to one set of the plan.
type setChange struct {
	set     render.Set
	tmp     string
	exists  bool   // the set exists in the kernel
	initval string // its initval before the swap
	hash    string
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
	changed    []*setChange
	stale      []string // reyes sets in the kernel not in the plan
	staleTmp   []string // leftover temporary sets of changed sets
	oldChains  []string // reyes chains in the kernel not in the plan
	jumpFix    []string // restore lines that repair the INPUT jump
	rulesOK    bool
	tmpsDone   bool   // the temporary sets were destroyed with the swap
	planText   []byte // the plan's restore text, rendered once (see text)
}

// text is the plan's iptables-restore text, rendered on first use: read,
// rules and saveState all need it, and at 20,000 rules it is megabytes.
func (a *familyApply) text() []byte {
	if a.planText == nil {
		a.planText = a.fp.IptablesRestore()
	}
	return a.planText
}

// undo runs fn to take a failed step back and returns the step's error,
// joined with the rollback's if that failed too.
func (a *familyApply) undo(ctx context.Context, stepErr error, fn func(context.Context) error) error {
	if err := fn(ctx); err != nil {
		return errors.Join(stepErr, a.fail(StepRollback, err, nil))
	}
	return stepErr
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

func (a *familyApply) run(ctx context.Context) error {
	if err := a.read(ctx); err != nil {
		return a.fail(StepRead, err, nil)
	}
	if len(a.changed) == 0 && a.rulesOK && len(a.jumpFix) == 0 && len(a.stale) == 0 && len(a.staleTmp) == 0 {
		a.log.Debug("unchanged")
		if a.st != nil && a.st.Backend == a.backend && a.st.Plan == a.fp.Hash() && a.st.Rules != nil && a.st.Members != nil {
			return nil // the record already says so: nothing to render, hash or write
		}
		return a.saveState()
	}
	var oldMembers map[string][]netip.Addr
	if a.opts.FlushConntrack {
		var err error
		if oldMembers, err = a.readMembers(ctx); err != nil {
			return a.fail(StepRead, err, nil)
		}
	}
	if err := a.fill(ctx); err != nil {
		return err
	}
	if err := a.swap(ctx); err != nil {
		return err
	}
	if err := a.rules(ctx); err != nil {
		return a.undo(ctx, err, a.rollback)
	}
	a.cleanup(ctx)
	if a.opts.FlushConntrack {
		a.flushConntrack(ctx, oldMembers)
	}
	return a.saveState()
}

func (a *familyApply) saveState() error {
	st := &state{Backend: a.backend, Sets: map[string]string{}, Entries: map[string]int{}, Members: map[string]string{},
		Plan: a.fp.Hash(), Table: a.fp.Table.String(), Hooks: hooks(a.fp), Rules: chainHashes(a.text())}
	for _, c := range a.fp.Chains {
		st.Chains = append(st.Chains, c.Name)
	}
	for _, s := range a.fp.Sets {
		st.Sets[s.Name] = s.Hash()
		st.Entries[s.Name] = uniqueCount(s.Members)
		st.Members[s.Name] = memberHash(s.Members)
	}
	if err := writeState(a.opts.StateDir, a.fp.Family, st); err != nil {
		return a.fail(StepState, err, nil)
	}
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
// little as possible: set headers, the first rule of REYES-INPUT (which
// carries the plan hash) and INPUT.
func (a *familyApply) read(ctx context.Context) error {
	fp := a.fp
	a.st = readState(a.opts.StateDir, fp.Family)
	if a.st != nil && a.st.Backend != a.backend {
		a.st = nil
	}
	inPlan := map[string]bool{}
	for _, s := range fp.Sets {
		inPlan[s.Name] = true
		inPlan[s.TempName()] = true
		c := &setChange{set: s, tmp: s.TempName(), hash: s.Hash()}
		if _, ok := a.kernelSets[c.tmp]; ok {
			a.staleTmp = append(a.staleTmp, c.tmp)
		}
		k, ok := a.kernelSets[s.Name]
		if ok {
			if k.Type != "hash:ip" || k.Family != fp.Family.String() {
				return fmt.Errorf("set %s exists as %s family %s, cannot swap in hash:ip family %s",
					s.Name, k.Type, k.Family, fp.Family)
			}
			c.exists, c.initval = true, k.InitVal
			same, err := false, error(nil)
			if !a.opts.Force { // Force reloads every set, whatever the records say
				same, err = a.sameMembers(ctx, s, k)
			}
			if err != nil {
				return err
			}
			if same {
				continue
			}
		}
		a.changed = append(a.changed, c)
	}
	prefix := setPrefix(fp.Family)
	for name := range a.kernelSets {
		if strings.HasPrefix(name, prefix) && !inPlan[name] {
			a.stale = append(a.stale, name)
		}
	}
	slices.Sort(a.stale)
	// Leftover temporaries of unchanged sets are stale too.
	for _, tmp := range a.staleTmp {
		if !slices.ContainsFunc(a.changed, func(c *setChange) bool { return c.tmp == tmp }) {
			a.stale = append(a.stale, tmp)
		}
	}

	rules, err := listRules(ctx, a.r, a.t.iptables, render.InputChain, 1)
	if err != nil {
		a.log.Debug("reading plan hash", "err", err)
	}
	haveInput := err == nil
	a.rulesOK = err == nil && kernelPlanHash(rules) == fp.Hash() && !a.opts.Force
	planText := []byte(nil)
	if fp.Table == render.TableExclusive {
		planText = a.text()
	}
	for _, h := range hooks(fp) {
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
// built-in chain to reyes' chain, as its first rule; nil if that is so.
// lines are "iptables -S <builtin>".
func hookFix(lines []string, h render.Hook) []string {
	var rules, jumps []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A "+h.Builtin+" ") {
			rules = append(rules, l)
			if isJumpTo(l, h.Chain) {
				jumps = append(jumps, l)
			}
		}
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

func isJumpTo(l, chain string) bool {
	f := strings.Fields(l)
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && f[i+1] == chain {
			return true
		}
	}
	return false
}

// sameMembers decides whether a kernel set already holds the plan's
// members: from the recorded hash when there is state, else by reading
// the members back.
func (a *familyApply) sameMembers(ctx context.Context, s render.Set, k setInfo) (bool, error) {
	want := uniqueCount(s.Members)
	if k.Entries != want {
		return false, nil
	}
	if a.st != nil {
		if h, ok := a.st.Sets[s.Name]; ok {
			return h == s.Hash(), nil
		}
	}
	m, err := a.readMembers(ctx)
	if err != nil {
		return false, err
	}
	got := slices.Clone(m[s.Name])
	wantM := slices.Clone(s.Members)
	slices.SortFunc(got, netip.Addr.Compare)
	slices.SortFunc(wantM, netip.Addr.Compare)
	return slices.Equal(got, slices.Compact(wantM)), nil
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

// fill creates and fills the temporary sets of every changed set, in ipset
// restore sessions of ipsetSession sets. On failure every temporary set is
// destroyed again.
func (a *familyApply) fill(ctx context.Context) error {
	if len(a.changed) == 0 {
		return nil
	}
	var stale bytes.Buffer
	for _, tmp := range a.staleTmp {
		if slices.ContainsFunc(a.changed, func(c *setChange) bool { return c.tmp == tmp }) {
			fmt.Fprintf(&stale, "destroy %s\n", tmp)
		}
	}
	for k, run := range sessions(len(a.changed)) {
		var b bytes.Buffer
		if k == 0 {
			b.Write(stale.Bytes())
		}
		for _, c := range a.changed[run[0]:run[1]] {
			for _, l := range bytes.SplitAfter(c.set.RestoreText(), []byte("\n")) {
				f := bytes.Fields(l)
				if len(f) >= 2 && string(f[1]) == c.tmp &&
					(string(f[0]) == "create" || string(f[0]) == "flush" || string(f[0]) == "add") {
					b.Write(l)
				}
			}
		}
		text := b.Bytes()
		if _, err := a.r.Run(ctx, text, "ipset", "restore"); err != nil {
			return a.undo(ctx, a.fail(StepFill, err, text), a.destroyTemps)
		}
	}
	a.log.Debug("filled temporary sets", "sets", len(a.changed))
	return nil
}

// destroyTemps destroys whichever temporary sets of changed sets exist.
func (a *familyApply) destroyTemps(ctx context.Context) error {
	sets, err := listSets(ctx, a.r)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, c := range a.changed {
		if _, ok := sets[c.tmp]; ok {
			fmt.Fprintf(&b, "destroy %s\n", c.tmp)
		}
	}
	return a.ipsetScript(ctx, b.Bytes())
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

// swap puts the filled sets in place: a swap for sets that exist (the
// temporary set then holds the old members, for rollback), a rename for
// new ones.
func (a *familyApply) swap(ctx context.Context) error {
	if len(a.changed) == 0 {
		return nil
	}
	var b bytes.Buffer
	for _, c := range a.changed {
		if c.exists {
			fmt.Fprintf(&b, "swap %s %s\n", c.tmp, c.set.Name)
		} else {
			fmt.Fprintf(&b, "rename %s %s\n", c.tmp, c.set.Name)
		}
	}
	// When no rules load after the swap, nothing can need a rollback: the
	// temporary sets (old members) go in the same call, after all swaps.
	// A plan too large for one session swaps in several, and keeps the
	// temporary sets until every swap went through, for the rollback.
	if len(a.changed) > ipsetSession {
		a.tmpsDone = false
		lines := bytes.SplitAfter(b.Bytes(), []byte("\n"))
		for _, run := range sessions(len(a.changed)) {
			text := bytes.Join(lines[run[0]:run[1]], nil)
			if _, err := a.r.Run(ctx, text, "ipset", "restore"); err != nil {
				return a.undo(ctx, a.fail(StepSwap, err, text), a.rollback)
			}
		}
		a.recordSwapped()
		return nil
	}
	a.tmpsDone = a.rulesOK && len(a.jumpFix) == 0
	if a.tmpsDone {
		for _, c := range a.changed {
			if c.exists {
				fmt.Fprintf(&b, "destroy %s\n", c.tmp)
			}
		}
	}
	text := b.Bytes()
	if _, err := a.r.Run(ctx, text, "ipset", "restore"); err != nil {
		if a.tmpsDone && failedLine(err.Error()) > len(a.changed) {
			// Every swap went through; only a destroy failed.
			a.log.Warn("destroying temporary sets", "err", err)
			a.tmpsDone = false
		} else {
			a.tmpsDone = false
			return a.undo(ctx, a.fail(StepSwap, err, text), a.rollback)
		}
	}
	a.recordSwapped()
	return nil
}

func (a *familyApply) recordSwapped() {
	for _, c := range a.changed {
		if c.exists {
			a.res.SetsSwapped = append(a.res.SetsSwapped, c.set.Name)
		} else {
			a.res.SetsCreated = append(a.res.SetsCreated, c.set.Name)
		}
	}
}

// rollback undoes swap, whether it ran completely or in part: a set whose
// initval changed was swapped and is swapped back; a new set is destroyed;
// temporary sets are destroyed.
func (a *familyApply) rollback(ctx context.Context) error {
	if len(a.changed) == 0 {
		return nil
	}
	sets, err := listSets(ctx, a.r)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, c := range a.changed {
		k, ok := sets[c.set.Name]
		_, tmpOK := sets[c.tmp]
		switch {
		case c.exists && ok && k.InitVal != c.initval && tmpOK:
			fmt.Fprintf(&b, "swap %s %s\n", c.tmp, c.set.Name)
		case !c.exists && ok:
			fmt.Fprintf(&b, "destroy %s\n", c.set.Name)
		}
		if tmpOK {
			fmt.Fprintf(&b, "destroy %s\n", c.tmp)
		}
	}
	a.res.SetsCreated, a.res.SetsSwapped = nil, nil
	return a.ipsetScript(ctx, b.Bytes())
}

// rules loads the chains: the plan's text, plus in shared mode the
// deletion of chains that left the plan and the repair of the INPUT jump,
// all in one transaction.
func (a *familyApply) rules(ctx context.Context) error {
	if a.rulesOK && len(a.jumpFix) == 0 {
		return nil
	}
	var text []byte
	args := []string{"--wait"}
	if a.fp.Table == render.TableExclusive {
		text = a.text()
	} else {
		args = append(args, "--noflush")
		var b bytes.Buffer
		if a.rulesOK {
			b.WriteString("*filter\n")
		} else {
			planText := a.text()
			if err := checkSharedText(planText); err != nil {
				return a.fail(StepCheck, err, nil)
			}
			b.Write(bytes.TrimSuffix(planText, []byte("COMMIT\n")))
			for _, c := range a.oldChains {
				fmt.Fprintf(&b, ":%s - [0:0]\n", c)
			}
			for _, c := range a.oldChains {
				fmt.Fprintf(&b, "-X %s\n", c)
			}
		}
		for _, l := range a.jumpFix {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		b.WriteString("COMMIT\n")
		text = b.Bytes()
	}
	if _, err := a.r.Run(ctx, text, a.t.restore, args...); err != nil {
		return a.fail(StepRules, err, text)
	}
	a.res.RulesLoaded = !a.rulesOK
	a.res.JumpRepaired = len(a.jumpFix) > 0
	if !a.rulesOK {
		a.res.ChainsDeleted = a.oldChains
	}
	return nil
}

// cleanup destroys the temporary sets (holding the old members) and the
// sets that left the plan. Failures are logged, not returned: the new
// policy is in force.
func (a *familyApply) cleanup(ctx context.Context) {
	var names []string
	for _, c := range a.changed {
		if c.exists && !a.tmpsDone {
			names = append(names, c.tmp)
		}
	}
	names = append(names, a.stale...)
	if len(names) == 0 {
		return
	}
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "destroy %s\n", n)
	}
	if err := a.ipsetScript(ctx, b.Bytes()); err == nil {
		a.res.SetsDestroyed = a.stale
		return
	}
	// One at a time, to destroy all that can be.
	for _, n := range names {
		if _, err := a.r.Run(ctx, nil, "ipset", "destroy", n); err != nil {
			a.log.Warn("destroying unused set", "set", n, "err", err)
			continue
		}
		if slices.Contains(a.stale, n) {
			a.res.SetsDestroyed = append(a.res.SetsDestroyed, n)
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
		if strings.HasSuffix(name, render.TempSuffix) {
			continue
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
