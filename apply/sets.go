package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/reyes-fw/reyes/render"
)

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

// readMembers reads the members of the family's sets back from the
// kernel, once per run (one "ipset save" for both families).
func (a *familyApply) readMembers(ctx context.Context) (map[string][]netip.Addr, error) {
	if a.members == nil {
		m, err := a.setSave.members(ctx, a.r, setPrefix(a.fp.Family))
		if err != nil {
			return nil, err
		}
		a.members = m
	}
	return a.members, nil
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
	for _, c := range a.changed {
		if len(c.set.Nets) > 0 {
			// The member analysis below is by address; a prefix leaving
			// one set while it joins another is not seen, so such
			// changes switch with the rules.
			return false, nil
		}
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
		saved, err := parseSave(out, c.live)
		if err != nil {
			return false, err
		}
		old := map[netip.Addr]bool{}
		for _, m := range saved[c.live] {
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
	if a.kernelSets[name].Entries != entryCount(s) {
		return false, nil
	}
	if a.st != nil {
		if h, ok := a.st.Members[name]; ok {
			return h == entriesHash(s.Members, s.Nets), nil
		}
	}
	if len(s.Nets) > 0 {
		return false, nil // no record of its prefixes: load it again
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

// change switches the family to the new policy, its sets already filled
// (fillAll): swap in place or load the rules. On failure it undoes its own
// change and returns the step's error.
func (a *familyApply) change(ctx context.Context) error {
	if !a.changes() {
		return nil
	}
	if a.inPlace {
		return a.swap(ctx)
	}
	return a.rules(ctx)
}

// fillAll creates and fills the fill slot of every changed set of every
// family, in ipset restore sessions of ipsetSession sets: for a small plan
// one call for both families, where the floor takes one per family. This
// is step 1 of the package doc for both families before either switches
// (step 2): no rule refers to a fill slot, of either family, so no verdict
// changes, and a family that fails later destroys the other's fill slots
// with its own (Apply reverts every family that filled). A kill leaves
// unreferenced slots that the next run destroys. On failure every fill
// slot is destroyed again, and the error names the family of the line
// ipset rejected.
func fillAll(ctx context.Context, r Runner, fas []*familyApply) error {
	type fill struct {
		a *familyApply
		c *setChange
	}
	var fills []fill
	for _, a := range fas {
		for _, c := range a.changed {
			fills = append(fills, fill{a, c})
		}
		if len(a.changed) > 0 {
			a.filled = true
		}
	}
	for _, run := range sessions(len(fills)) {
		var b bytes.Buffer
		var lineFam []*familyApply // the family of each line of b
		for _, f := range fills[run[0]:run[1]] {
			for range f.a.writeFill(&b, f.c) {
				lineFam = append(lineFam, f.a)
			}
		}
		text := b.Bytes()
		if _, err := r.Run(ctx, text, "ipset", "restore"); err != nil {
			failed := fills[run[0]].a
			if n := failedLine(err.Error()); n > 0 && n <= len(lineFam) {
				failed = lineFam[n-1]
			}
			errs := []error{failed.fail(StepFill, err, text)}
			for _, a := range fas {
				if rerr := a.revert(ctx); rerr != nil {
					// Its record must not be trusted (see preparedState.keep).
					a.prepared.keep = true
					errs = append(errs, a.fail(StepRollback, rerr, nil))
				}
			}
			return errors.Join(errs...)
		}
	}
	for _, a := range fas {
		if len(a.changed) > 0 {
			a.log.Debug("filled sets", "sets", len(a.changed))
		}
	}
	return nil
}

// writeFill writes the ipset restore lines that create and fill c's fill
// slot and returns how many it wrote.
func (a *familyApply) writeFill(b *bytes.Buffer, c *setChange) int {
	n := 0
	if _, ok := a.kernelSets[c.fill]; ok {
		fmt.Fprintf(b, "destroy %s\n", c.fill) // unreferenced: a leftover
		n++
	}
	tmp := c.set.TempName()
	for _, l := range bytes.SplitAfter(c.set.RestoreText(), []byte("\n")) {
		f := bytes.Fields(l)
		if a.unread && len(f) >= 2 && string(f[0]) == "create" {
			// No headers were read (a first run): the create must fail,
			// before any member is added, if the set exists, whoever
			// uses it; with -exist it would go on to flush and fill it.
			l = bytes.Replace(l, []byte(" -exist\n"), []byte("\n"), 1)
		}
		if len(f) >= 2 && string(f[1]) == tmp &&
			(string(f[0]) == "create" || string(f[0]) == "flush" || string(f[0]) == "add") {
			b.Write(f[0])
			b.WriteByte(' ')
			b.WriteString(c.fill)
			b.Write(l[len(f[0])+1+len(tmp):])
			n++
		}
	}
	return n
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
