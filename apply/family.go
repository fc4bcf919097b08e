package apply

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/reyes-fw/reyes/render"
)

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
	setSave    *setSave // one "ipset save" shared by the run's families
	st         *state
	// wasBackend is the backend the record says the previous run loaded
	// into, when it is not this run's: its reyes rules are taken out once
	// this run's are in force (see dropOldBackend).
	wasBackend Backend
	members    map[string][]netip.Addr // read back lazily
	sets       []*setChange
	changed    []*setChange
	inPlace    bool     // changed sets are swapped in place; no rule load
	oldChains  []string // reyes chains in the kernel not in the plan
	jumpFix    []string // restore lines that repair the hooks
	rulesOK    bool     // the kernel's rules are the plan's, on the live slots
	kernelPlan string   // the plan hash on REYES-INPUT's first rule; "" if none
	// builtinLines are the rules ("-A" lines) of the built-in chains
	// read (hooks).
	builtinLines map[string][]string
	// haveInput: REYES-INPUT exists in the kernel.
	haveInput bool
	// saved is the family's filter table as "iptables-save" printed it
	// during read, when there is no record to trust (nil otherwise);
	// savedChains are its chains.
	saved       []byte
	savedChains []string
	tableRead   bool // readTable ran (readTableOnce)
	// unread: the set headers were not read (a first run, see
	// Options.firstRun); kernelSets is empty, and the sets are created
	// without -exist, so that one that exists stops the fill unchanged.
	unread   bool
	planText []byte // the plan's restore text, rendered once (see text)
	loadText []byte // planText with the sets' slots, as loaded

	// foreign are slots of the plan's sets that a rule other than reyes'
	// holds while reyes' rules use the other slot (see read): neither
	// live nor garbage.
	foreign []string

	// waitPrepare waits for the caller's Options.Prepare (safe for
	// concurrent use): a change made during the reads waits for it too.
	waitPrepare func() error

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
	for _, n := range a.foreign {
		keep[n] = true // another's rule holds it: not reyes' to destroy
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
		st.Rules = render.SavedChainHashes(a.kernelText())
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
		st.Entries[c.target] = entryCount(c.set)
		st.Members[c.target] = entriesHash(c.set.Members, c.set.Nets)
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

// read finds out what differs between the kernel and the plan, reading as
// little as possible: set headers (with their references, which say which
// slot is live), the first rule of REYES-INPUT (which carries the plan
// hash) and the built-in chains of the hooks.
func (a *familyApply) read(ctx context.Context) error {
	fp := a.fp
	a.st = readState(a.opts.StateDir, fp.Family)
	// The backend of the last committed record, even one a killed run
	// left distrusted: a kill between a switch's load and its removal of
	// the old backend's rules must not leave those for ever.
	if was := recordedBackend(a.opts.StateDir, fp.Family); was != a.backend && (was == BackendNFT || was == BackendLegacy) {
		a.wasBackend = was
	}
	if a.st != nil && a.st.Backend != a.backend {
		a.st = nil
	}
	err := a.readTableOnce(ctx)
	if err != nil {
		return err
	}
	haveInput := a.haveInput
	a.rulesOK = haveInput && a.kernelPlan == fp.Hash() && !a.opts.Force
	finish := false
	switch {
	case a.wasBackend != "" && a.kernelPlan == fp.Hash():
		// This backend already holds this plan's rules while the record
		// still names the previous one: a run that switched backend to
		// this plan was killed after its load and before it committed.
		// Both backends filter (what both allow passes); taking the old
		// one's rules out leaves this plan: the new policy.
		finish = true
	case a.wasBackend == "" && a.st != nil && a.kernelPlan != "" && a.kernelPlan == a.st.Plan && a.slotsConflict():
		// Both slots of a set in use while this backend runs the
		// recorded plan: the other backend still holds the rules of
		// before a switch (made by a release that left them there).
		// Taking them out leaves the recorded plan.
		a.wasBackend, finish = otherBackend(a.backend), true
	}
	if finish {
		// A kernel change: not before the caller's record is written
		// (Options.Prepare), which a full state directory stops.
		if a.waitPrepare != nil {
			if err := a.waitPrepare(); err != nil {
				return fmt.Errorf("%w: %w", ErrStateNotWritable, err)
			}
		}
		if err := a.dropOldBackend(ctx); err != nil {
			return err
		}
		a.wasBackend = ""
		sets, err := listSets(ctx, a.r)
		if err != nil {
			return err
		}
		// The family's own listing: the map read before is shared with
		// the other family, which reads it concurrently. Dropping this
		// family's rules from the old backend changes the references of
		// this family's sets only (reyes4- or reyes6-).
		a.kernelSets = sets
	}
	for _, s := range fp.Sets {
		c := &setChange{set: s}
		var inUse []string
		for _, n := range []string{s.Name, secondSlot(s)} {
			if k, ok := a.kernelSets[n]; ok && k.Refs > 0 {
				inUse = append(inUse, n)
			}
		}
		if len(inUse) == 2 {
			// A rule that is not reyes' may hold one slot (an operator's
			// rule using reyes' set keeps the slot a change left): reyes'
			// own chains say which one is theirs. The other is then no
			// free slot, and a change of this set stops at it (below).
			mine, err := a.reyesSetUses(ctx)
			if err != nil {
				return err
			}
			switch {
			case mine[inUse[0]] && !mine[inUse[1]]:
				a.foreign = append(a.foreign, inUse[1])
				inUse = inUse[:1]
			case mine[inUse[1]] && !mine[inUse[0]]:
				a.foreign = append(a.foreign, inUse[0])
				inUse = inUse[1:]
			default:
				return fmt.Errorf("sets %s and %s are both in use by rules: cannot tell which one reyes' rules use", inUse[0], inUse[1])
			}
		}
		for _, n := range inUse {
			k := a.kernelSets[n]
			if k.Type != s.Type() || k.Family != fp.Family.String() {
				return fmt.Errorf("set %s exists as %s family %s and is in use, cannot replace it with %s family %s",
					n, k.Type, k.Family, s.Type(), fp.Family)
			}
			c.live, c.initval = n, k.InitVal
		}
		if c.live == "" {
			// No rule refers to the set: the kernel's rules are not the
			// plan's, whatever the hash says.
			a.rulesOK = false
		}
		same := false
		// Force reloads every set, but for one whose other slot another's
		// rule holds: there is no slot to reload it into, and its members
		// are read from the kernel, not taken from the record.
		if c.live != "" && (!a.opts.Force || slices.Contains(a.foreign, other(s, c.live))) {
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
		lines := a.builtinLines[h.Builtin]
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

// readTable reads what the family needs of its filter table: whether
// REYES-INPUT exists and the plan hash on its first rule, the rules of the
// built-in chains of the hooks (builtins) and, without a record, reyes'
// chains.
//
// With a record it trusts, that is "iptables -S REYES-INPUT 1" and one
// "iptables -S <builtin>" per hook, run concurrently: cheap however large
// the table. Without one (a first run, a run after a kill, no StateDir)
// it is one "iptables-save -t filter", which says all of it and more:
// reyes' chains, which such a run needs to delete those that left the
// plan, and the table as it is before the change, which saveOld keeps to
// put IPv4 back if IPv6 fails. Those were three more reads of the same
// table before (the chains with "iptables -S", the table again with
// iptables-save), so at any size the one save costs no more than they did.
func (a *familyApply) readTable(ctx context.Context) error {
	hs := a.builtins()
	var names []string
	for _, h := range hs {
		names = append(names, h.Builtin)
	}
	a.builtinLines = map[string][]string{}
	if a.st == nil {
		out, err := a.r.Run(ctx, nil, a.t.save, "-t", "filter")
		if err != nil {
			return err
		}
		t := parseSavedTable(out, names)
		a.saved = out
		a.haveInput = t.haveInput
		if t.firstIn != "" {
			a.kernelPlan = kernelPlanHash([]string{t.firstIn})
		}
		for _, n := range names {
			a.builtinLines[n] = t.rules[n]
		}
		for _, c := range t.chains {
			if strings.HasPrefix(c, render.ChainPrefix) {
				a.savedChains = append(a.savedChains, c)
			}
		}
		return nil
	}
	var input []string
	var inputErr error
	lines := make([][]string, len(hs))
	fns := []func() error{func() error {
		input, inputErr = listRules(ctx, a.r, a.t.iptables, render.InputChain, 1)
		return nil
	}}
	for i, h := range hs {
		fns = append(fns, func() (err error) {
			lines[i], err = listRules(ctx, a.r, a.t.iptables, h.Builtin, 0)
			return err
		})
	}
	for _, err := range parallel(fns...) {
		if err != nil {
			return err
		}
	}
	if inputErr != nil {
		// No REYES-INPUT (or no table): the rules are not the plan's.
		a.log.Debug("reading plan hash", "err", inputErr)
	} else {
		a.haveInput = true
		a.kernelPlan = kernelPlanHash(input)
	}
	for i, h := range hs {
		a.builtinLines[h.Builtin] = lines[i]
	}
	return nil
}

// readTableOnce is readTable, once per run of the family: a first run
// reads the tables before the rest (see Options.firstRun).
func (a *familyApply) readTableOnce(ctx context.Context) error {
	if a.tableRead {
		return nil
	}
	a.tableRead = true
	return a.readTable(ctx)
}

// reyesSetUses returns the sets that reyes' own chains (REYES-*) refer
// to, in shared mode, from the table as read (the whole table, read here
// if the run read only its first rules). In exclusive mode every rule of
// the table is reyes': it returns none, so that no slot is told apart.
func (a *familyApply) reyesSetUses(ctx context.Context) (map[string]bool, error) {
	if a.fp.Table == render.TableExclusive {
		return nil, nil
	}
	text := a.saved
	if text == nil {
		out, err := a.r.Run(ctx, nil, a.t.save, "-t", "filter")
		if err != nil {
			return nil, err
		}
		text = out
	}
	uses := map[string]bool{}
	for _, l := range strings.Split(string(text), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "-A" || !strings.HasPrefix(f[1], render.ChainPrefix) {
			continue
		}
		for i := 2; i+1 < len(f); i++ {
			if f[i] == "--match-set" {
				uses[f[i+1]] = true
			}
		}
	}
	return uses, nil
}

// slotsConflict reports whether both slots of a set of the plan are in use.
func (a *familyApply) slotsConflict() bool {
	for _, s := range a.fp.Sets {
		if a.kernelSets[s.Name].Refs > 0 && a.kernelSets[secondSlot(s)].Refs > 0 {
			return true
		}
	}
	return false
}

// otherBackend is the backend that is not b.
func otherBackend(b Backend) Backend {
	if b == BackendNFT {
		return BackendLegacy
	}
	return BackendNFT
}

// dropOldBackend takes reyes' jumps and chains out of the family's table
// in the backend the previous run used, after a switch of backend (nft to
// legacy or back): both tables filter every packet, so the old rules would
// keep their policy in force alongside the new one, and their references
// on the old slots would leave both slots of a set in use. It runs only
// once this run's rules are loaded in every family, so that there is no
// instant without reyes' rules.
func (a *familyApply) dropOldBackend(ctx context.Context) error {
	if a.wasBackend == "" || a.wasBackend == a.backend {
		return nil
	}
	tl, err := resolveTools(ctx, a.r, a.wasBackend)
	if err != nil {
		return fmt.Errorf("apply ipv%d: removing reyes' rules from the previous backend %s: %w", a.fp.Family, a.wasBackend, err)
	}
	jumps, chains, err := removeRules(ctx, a.r, tl[a.fp.Family], a.fp.Family)
	if err != nil {
		return fmt.Errorf("removing reyes' rules from the previous backend %s (reyesctl remove --backend %s takes them out): %w", a.wasBackend, a.wasBackend, err)
	}
	if len(jumps)+len(chains) > 0 {
		a.log.Info("removed reyes' rules from the previous backend", "backend", a.wasBackend, "jumps", len(jumps), "chains", len(chains))
	}
	return nil
}
