package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// ErrNoState is returned by Check when apply has no record of a previous
// run to compare the kernel with (no StateDir, or nothing applied yet).
var ErrNoState = errors.New("no record of a previous apply")

// Drift is a difference Check found between the kernel and what the last
// Apply loaded.
type Drift struct {
	Family render.Family
	What   string
}

// String is "IPv4: what".
func (d Drift) String() string { return fmt.Sprintf("IPv%d: %s", d.Family, d.What) }

// Check compares the kernel with what the last Apply recorded in
// opts.StateDir, reading and changing nothing else: every reyes chain rule
// for rule (one iptables-save per family; only the rule-hash comments that
// render writes on every rule are read back, see render.SavedChainHashes,
// so how an iptables release prints a rule does not matter), the hooks
// from the built-in chains (first and only once, in shared mode), and every
// set's members (one ipset save). An empty result means no drift.
//
// Apply's own fast path trusts the plan hash on the first rule of
// REYES-INPUT and the recorded set hashes; Check is what finds a chain
// flushed further down or a set whose members were replaced one for one.
// Repair drift with Apply and Options.Force.
func Check(ctx context.Context, opts Options) ([]Drift, error) {
	if opts.StateDir == "" {
		return nil, ErrNoState
	}
	var sts []*state
	fams := []render.Family{render.IPv4, render.IPv6}
	for _, fam := range fams {
		st := readState(opts.StateDir, fam)
		if st == nil || st.Plan == "" || st.Rules == nil || st.Members == nil {
			return nil, fmt.Errorf("%w (IPv%d)", ErrNoState, fam)
		}
		sts = append(sts, st)
	}
	if opts.Backend == BackendAuto {
		opts.Backend = sts[0].Backend
	}
	_, tl, err := opts.tools(ctx)
	if err != nil {
		return nil, err
	}
	r := opts.runner()
	saved, err := r.Run(ctx, nil, "ipset", "save")
	if err != nil {
		return nil, &StepError{Step: StepRead, Err: err}
	}
	members, err := parseSave(saved, "")
	nets := parseSaveNets(saved, "")
	if err != nil {
		return nil, &StepError{Step: StepRead, Err: err}
	}
	var drift []Drift
	for i, st := range sts {
		fam := fams[i]
		add := func(format string, a ...any) {
			drift = append(drift, Drift{Family: fam, What: fmt.Sprintf(format, a...)})
		}
		out, err := r.Run(ctx, nil, tl[fam].save, "-t", "filter")
		if err != nil {
			return nil, &StepError{Family: fam, Step: StepRead, Err: err}
		}
		kernel := render.SavedChainHashes(out)
		for _, c := range sortedKeys(st.Rules) {
			if kernel[c] != st.Rules[c] {
				add("chain %s is not as loaded (flushed, edited or missing)", c)
			}
		}
		builtin := map[string][]string{}
		for _, l := range strings.Split(string(out), "\n") {
			for _, h := range st.Hooks {
				if strings.HasPrefix(l, "-A "+h.Builtin+" ") {
					builtin[h.Builtin] = append(builtin[h.Builtin], l)
					break
				}
			}
		}
		for _, h := range st.Hooks {
			lines := builtin[h.Builtin]
			if st.Table == render.TableExclusive.String() {
				if !slices.Contains(lines, "-A "+h.Builtin+" -j "+h.Chain) {
					add("%s has no jump to %s", h.Builtin, h.Chain)
				}
				continue
			}
			if len(hookFix(lines, h)) > 0 {
				add("the jump from %s to %s is missing, doubled or not first", h.Builtin, h.Chain)
			}
		}
		for _, n := range sortedKeys(st.Members) {
			m, ok := members[n]
			switch {
			case !ok:
				add("set %s is missing", n)
			case entriesHash(m, nets[n]) != st.Members[n]:
				add("set %s does not hold the members loaded (%d now, %d loaded)", n, len(m), st.Entries[n])
			}
		}
	}
	return drift, nil
}

// entriesHash hashes a set's members and prefixes: memberHash alone for a
// set without prefixes, so records of hash:ip sets keep their hash.
func entriesHash(members []netip.Addr, nets []netip.Prefix) string {
	h := memberHash(members)
	if len(nets) == 0 {
		return h
	}
	n := slices.Clone(nets)
	slices.SortFunc(n, ruleset.ComparePrefix)
	n = slices.Compact(n)
	sum := sha256.New()
	for _, p := range n {
		b, _ := p.MarshalBinary()
		sum.Write(b)
	}
	return h + "+" + hex.EncodeToString(sum.Sum(nil)[:8])
}

// entryCount is how many entries the kernel holds for s: its distinct
// members and its distinct prefixes.
func entryCount(s render.Set) int {
	n := slices.Clone(s.Nets)
	slices.SortFunc(n, ruleset.ComparePrefix)
	return uniqueCount(s.Members) + len(slices.Compact(n))
}

// memberHash hashes a set's sorted, distinct members.
func memberHash(members []netip.Addr) string {
	m := slices.Clone(members)
	slices.SortFunc(m, netip.Addr.Compare)
	m = slices.Compact(m)
	h := sha256.New()
	for _, a := range m {
		b, _ := a.MarshalBinary()
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// slotRE finds a reyes set named by its second slot in a rule.
var slotRE = regexp.MustCompile(`(--match-set reyes[46]-\S*?)` + regexp.QuoteMeta(SlotSuffix) + `(\s)`)

// PlanSetNames rewrites a rule line as iptables-save prints it so that each
// reyes set is named as in the plan: Apply loads a changed set under its
// second slot (name + SlotSuffix, see the package doc), which the kernel's rules
// then name. For comparing the kernel's rules with a plan's text.
func PlanSetNames(line string) string {
	if !strings.Contains(line, SlotSuffix) {
		return line
	}
	return slotRE.ReplaceAllString(line, "$1$2")
}
