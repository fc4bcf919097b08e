package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/reyes-fw/reyes/render"
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

// Check compares the kernel with what the last Apply recorded in
// opts.StateDir, with a few reads and no change: the plan hash on the
// first rule of REYES-INPUT, the hooks from the built-in chains (first and
// only once, in shared mode), and every set's presence, type and number of
// members. An empty result means no drift. It lets a caller whose ruleset
// did not change (the follower's conditional GET answered 304) find out
// cheaply whether someone flushed reyes' chains, removed a jump or emptied
// a set, and only then load the plan again.
func Check(ctx context.Context, opts Options) ([]Drift, error) {
	if opts.StateDir == "" {
		return nil, ErrNoState
	}
	var sts []*state
	var fams []render.Family
	for _, fam := range []render.Family{render.IPv4, render.IPv6} {
		st := readState(opts.StateDir, fam)
		if st == nil || st.Plan == "" {
			return nil, fmt.Errorf("%w (IPv%d)", ErrNoState, fam)
		}
		sts, fams = append(sts, st), append(fams, fam)
	}
	if opts.Backend == BackendAuto {
		opts.Backend = sts[0].Backend
	}
	_, tl, err := opts.tools(ctx)
	if err != nil {
		return nil, err
	}
	r := opts.runner()
	sets, err := listSets(ctx, r)
	if err != nil {
		return nil, &StepError{Step: StepRead, Err: err}
	}
	var drift []Drift
	for i, st := range sts {
		fam, ipt := fams[i], tl[fams[i]].iptables
		add := func(format string, a ...any) { drift = append(drift, Drift{Family: fam, What: fmt.Sprintf(format, a...)}) }
		rules, err := listRules(ctx, r, ipt, render.InputChain, 1)
		switch {
		case err != nil:
			add("%s is missing", render.InputChain)
		case kernelPlanHash(rules) != st.Plan:
			add("%s does not start with plan %s", render.InputChain, st.Plan)
		}
		for _, h := range st.Hooks {
			lines, err := listRules(ctx, r, ipt, h.Builtin, 0)
			if err != nil {
				return nil, &StepError{Family: fam, Step: StepRead, Err: err}
			}
			if st.Table == render.TableExclusive.String() {
				if !slices.Contains(lines, "-A "+h.Builtin+" -j "+h.Chain) {
					add("%s has no jump to %s", h.Builtin, h.Chain)
				}
				continue
			}
			if fix := hookFix(lines, h); len(fix) > 0 {
				add("the jump from %s to %s is missing, doubled or not first", h.Builtin, h.Chain)
			}
		}
		names := make([]string, 0, len(st.Entries))
		for n := range st.Entries {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			k, ok := sets[n]
			switch {
			case !ok:
				add("set %s is missing", n)
			case k.Type != "hash:ip" || !strings.HasPrefix(k.Family, "inet"):
				add("set %s is %s family %s", n, k.Type, k.Family)
			case k.Entries != st.Entries[n]:
				add("set %s has %d members, %d were loaded", n, k.Entries, st.Entries[n])
			}
		}
	}
	return drift, nil
}

// String is "IPv4: what".
func (d Drift) String() string { return fmt.Sprintf("IPv%d: %s", d.Family, d.What) }
