package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
)

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
