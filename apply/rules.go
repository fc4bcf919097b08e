package apply

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/reyes-fw/reyes/render"
)

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

// kernelChains returns reyes' chains in the kernel: from the state when
// there is one (chains only apply creates), else from the table read
// (readTable saved it whole when there is no state), else from
// "iptables -S".
func (a *familyApply) kernelChains(ctx context.Context) ([]string, error) {
	if a.st != nil {
		return a.st.Chains, nil
	}
	if a.saved != nil {
		return a.savedChains, nil
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
	if a.st != nil && a.st.Text != "" && (a.fp.Table != render.TableExclusive || a.st.Table == render.TableExclusive.String()) && a.kernelAsRecorded() {
		if b, err := readFile(rulesPath(a.opts.StateDir, a.fp.Family)); err == nil && textHash(b) == a.st.Text {
			a.oldSave = b
			a.oldExclusive = a.st.Table == render.TableExclusive.String()
			for _, h := range a.st.Hooks {
				a.oldJumps = append(a.oldJumps, "-A "+h.Builtin+" -j "+h.Chain)
			}
			return nil
		}
	}
	out := a.saved
	if out == nil {
		var err error
		if out, err = a.r.Run(ctx, nil, a.t.save, "-t", "filter"); err != nil {
			return err
		}
	}
	// The table read (here, or by readTable when there was no record)
	// before this run changed the kernel: prepare writes only files, and
	// the other family's reads change no table of this backend and family.
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

// kernelAsRecorded reports whether the kernel still runs what the record
// says the previous run loaded: its plan hash on REYES-INPUT, each recorded
// set's slot in use by a rule, and each recorded hook in place. Only then
// is the recorded text the old policy. A record outlives the rules: after
// a reboot, or a flush of the filter table by someone else, the old policy
// is "no reyes rules", and loading the recorded text back would put rules
// in force that the kernel did not have, over sets that this run may have
// filled with the new members.
func (a *familyApply) kernelAsRecorded() bool {
	if a.st == nil || a.st.Plan == "" || a.kernelPlan != a.st.Plan {
		return false
	}
	for _, slot := range a.st.Sets {
		if k, ok := a.kernelSets[slot]; !ok || k.Refs == 0 {
			return false
		}
	}
	for _, h := range a.st.Hooks {
		lines, ok := a.builtinLines[h.Builtin]
		if !ok || hookFix(lines, h) != nil {
			return false
		}
	}
	return true
}
