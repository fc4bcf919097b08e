package reyes

import (
	"errors"
	"fmt"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
)

// Errors returned (wrapped) by [FreshnessPolicy.Check]. Test with errors.Is.
var (
	// ErrBadHeader: the header names another format or type, or its times
	// are missing or out of order.
	ErrBadHeader = errors.New("invalid ruleset header")
	// ErrWrongScope: the ruleset is for another scope than the follower's.
	ErrWrongScope = errors.New("ruleset for another scope")
	// ErrExpired: now is after the ruleset's not_after.
	ErrExpired = errors.New("ruleset expired")
	// ErrNotYetValid: the ruleset was generated further in the future than
	// the allowed clock skew.
	ErrNotYetValid = errors.New("ruleset not yet valid")
	// ErrValidityTooLong: not_after is further from generated_at than the
	// policy allows.
	ErrValidityTooLong = errors.New("ruleset validity too long")
	// ErrRollback: the ruleset is older than the last accepted one, or has
	// the same serial but other content.
	ErrRollback = errors.New("ruleset rollback")
)

// Defaults of [FreshnessPolicy].
const (
	DefaultMaxSkew     = 5 * time.Minute
	DefaultMaxValidity = 24 * time.Hour
)

// FreshnessPolicy decides whether a verified ruleset may replace the last
// accepted one. The zero durations mean the defaults. A FreshnessPolicy is a
// value and safe for concurrent use.
type FreshnessPolicy struct {
	// Scope is the scope the follower expects; required.
	Scope string
	// MaxSkew is how far in the future generated_at may be (the leader's
	// clock running ahead). Default [DefaultMaxSkew].
	MaxSkew time.Duration
	// MaxValidity caps not_after - generated_at, so that a stolen signing
	// key or a misconfigured leader cannot publish a ruleset that stays
	// valid for ever. Default [DefaultMaxValidity].
	MaxValidity time.Duration
}

// Check decides on the header h of a verified payload whose SHA-256 is
// digest, at time now, given last, the state of the last accepted ruleset
// (the zero State if none). It returns changed=true when the ruleset is
// new and may be applied, changed=false with a nil error when it is the very
// ruleset accepted last (a no-op, not an error), and an error otherwise.
//
// Check is pure: it records nothing. The caller saves the new [State] once
// it has applied the ruleset, so that a failed apply is retried.
func (p FreshnessPolicy) Check(h ruleset.Header, digest Digest, now time.Time, last State) (changed bool, err error) {
	if err := p.checkHeader(h, now); err != nil {
		return false, err
	}
	if last.IsZero() || last.Scope != p.Scope {
		// Nothing accepted yet, or only for another scope (the follower
		// was moved): serials of different scopes do not compare.
		return true, nil
	}
	switch {
	case h.Serial < last.Serial:
		return false, fmt.Errorf("%w: serial %d is older than the last accepted serial %d", ErrRollback, h.Serial, last.Serial)
	case h.Serial == last.Serial && digest != last.Digest:
		return false, fmt.Errorf("%w: serial %d was accepted before with other content (sha256 %s, now %s)",
			ErrRollback, h.Serial, last.Digest, digest)
	case h.Serial == last.Serial:
		return false, nil
	}
	return true, nil
}

// checkHeader checks everything that does not depend on the last state.
func (p FreshnessPolicy) checkHeader(h ruleset.Header, now time.Time) error {
	skew, validity := p.MaxSkew, p.MaxValidity
	if skew <= 0 {
		skew = DefaultMaxSkew
	}
	if validity <= 0 {
		validity = DefaultMaxValidity
	}
	switch {
	case h.Format != ruleset.Format:
		return fmt.Errorf("%w: format %q, want %q", ErrBadHeader, h.Format, ruleset.Format)
	case h.Type != ruleset.Type:
		return fmt.Errorf("%w: type %q, want %q", ErrBadHeader, h.Type, ruleset.Type)
	case p.Scope == "":
		return fmt.Errorf("%w: the follower has no scope configured", ErrWrongScope)
	case h.Scope != p.Scope:
		return fmt.Errorf("%w: ruleset scope %q, this follower expects %q", ErrWrongScope, h.Scope, p.Scope)
	case h.GeneratedAt.IsZero() || h.NotAfter.IsZero():
		return fmt.Errorf("%w: generated_at or not_after missing", ErrBadHeader)
	case !h.NotAfter.After(h.GeneratedAt):
		return fmt.Errorf("%w: not_after %s is not after generated_at %s", ErrBadHeader, stamp(h.NotAfter), stamp(h.GeneratedAt))
	case h.NotAfter.Sub(h.GeneratedAt) > validity:
		return fmt.Errorf("%w: valid for %s, at most %s allowed", ErrValidityTooLong, h.NotAfter.Sub(h.GeneratedAt), validity)
	case h.GeneratedAt.Sub(now) > skew:
		return fmt.Errorf("%w: generated at %s, now is %s (allowed skew %s)", ErrNotYetValid, stamp(h.GeneratedAt), stamp(now), skew)
	case now.After(h.NotAfter):
		return fmt.Errorf("%w: not_after %s, now is %s", ErrExpired, stamp(h.NotAfter), stamp(now))
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
