package apply

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/reyes-fw/reyes/render"
)

// RemoveResult says what Remove took out of the kernel.
type RemoveResult struct {
	Backend Backend
	// Jumps are the rules removed from built-in chains, per family.
	Jumps map[render.Family][]string
	// Chains and Sets removed, per family.
	Chains map[render.Family][]string
	Sets   map[render.Family][]string
}

// Remove takes every reyes jump (from INPUT, FORWARD, OUTPUT), chain and set out of the kernel, in both
// families, and forgets the recorded state. Rules and chains that are not
// reyes' stay as they are; in exclusive mode that includes the built-in
// chains' policies, which reyes sets to ACCEPT. The jumps and chains of a
// family go in one iptables-restore transaction, so traffic never meets a
// half-removed policy. Remove ignores the flag file: it is an explicit
// request. Calling it again is harmless.
func Remove(ctx context.Context, opts Options) (RemoveResult, error) {
	res := RemoveResult{Jumps: map[render.Family][]string{}, Chains: map[render.Family][]string{}, Sets: map[render.Family][]string{}}
	b, tl, err := opts.tools(ctx)
	if err != nil {
		return res, err
	}
	res.Backend = b
	r := opts.runner()
	for _, fam := range []render.Family{render.IPv4, render.IPv6} {
		jumps, chains, err := removeRules(ctx, r, tl[fam], fam)
		if err != nil {
			return res, err
		}
		res.Jumps[fam], res.Chains[fam] = jumps, chains

		sets, err := listSets(ctx, r)
		if err != nil {
			return res, &StepError{Family: fam, Step: StepRead, Err: err}
		}
		var names []string
		for n := range sets {
			if strings.HasPrefix(n, setPrefix(fam)) {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		var script bytes.Buffer
		for _, n := range names {
			fmt.Fprintf(&script, "destroy %s\n", n)
		}
		if len(names) > 0 {
			if _, err := r.Run(ctx, script.Bytes(), "ipset", "restore"); err != nil {
				e := &StepError{Family: fam, Step: StepCleanup, Err: err}
				if n := failedLine(err.Error()); n > 0 {
					e.Line, e.Input = n, lineOf(script.Bytes(), n)
				}
				return res, e
			}
		}
		res.Sets[fam] = names
		if err := removeState(opts.StateDir, fam); err != nil {
			return res, &StepError{Family: fam, Step: StepState, Err: err}
		}
	}
	return res, nil
}

// removeRules takes reyes' jumps (from INPUT, FORWARD, OUTPUT) and chains
// out of one family's filter table of the backend of t, in one
// iptables-restore transaction, and returns what it removed.
func removeRules(ctx context.Context, r Runner, t tools, fam render.Family) (jumps, chains []string, err error) {
	var input []string
	for _, builtin := range []string{"INPUT", "FORWARD", "OUTPUT"} {
		lines, err := listRules(ctx, r, t.iptables, builtin, 0)
		if err != nil {
			return nil, nil, &StepError{Family: fam, Step: StepRead, Err: err}
		}
		input = append(input, lines...)
	}
	chains, err = listReyesChains(ctx, r, t.iptables)
	if err != nil {
		return nil, nil, &StepError{Family: fam, Step: StepRead, Err: err}
	}
	for _, l := range input {
		if strings.HasPrefix(l, "-A ") && refersToReyes(l) {
			jumps = append(jumps, l)
		}
	}
	if len(jumps)+len(chains) == 0 {
		return nil, nil, nil
	}
	var buf bytes.Buffer
	buf.WriteString("*filter\n")
	for _, j := range jumps {
		buf.WriteString("-D" + strings.TrimPrefix(j, "-A") + "\n")
	}
	for _, c := range chains {
		fmt.Fprintf(&buf, ":%s - [0:0]\n", c)
	}
	for _, c := range chains {
		fmt.Fprintf(&buf, "-X %s\n", c)
	}
	buf.WriteString("COMMIT\n")
	text := buf.Bytes()
	if _, err := r.Run(ctx, text, t.restore, "--wait", "--noflush"); err != nil {
		e := &StepError{Family: fam, Step: StepRules, Err: err}
		if n := failedLine(err.Error()); n > 0 {
			e.Line, e.Input = n, lineOf(text, n)
		}
		return nil, nil, e
	}
	return jumps, chains, nil
}

// refersToReyes reports whether a rule jumps or goes to a reyes chain.
func refersToReyes(l string) bool {
	f := strings.Fields(l)
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && strings.HasPrefix(f[i+1], render.ChainPrefix) {
			return true
		}
	}
	return false
}
