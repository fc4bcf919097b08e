package reyes

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
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
	// ErrSerialAhead: the serial is beyond not_after in nanoseconds since
	// the Unix epoch. Leaders make serials from their clock (generated_at
	// in nanoseconds, or one more than a hot spare's), so an honest serial
	// never passes not_after; a serial far ahead would make every later
	// ruleset look like a rollback.
	ErrSerialAhead = errors.New("ruleset serial ahead of its time")
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
	if lastPoisoned(last) {
		// The last accepted serial is beyond its own not_after (accepted
		// by a reyes without the serial bound): serials cannot be compared
		// with it, generation times can.
		if !h.GeneratedAt.After(last.GeneratedAt) {
			return false, fmt.Errorf("%w: generated at %s, not after the last accepted ruleset's %s (whose serial %d was beyond its time and is ignored)",
				ErrRollback, stamp(h.GeneratedAt), stamp(last.GeneratedAt), last.Serial)
		}
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
	skew, validity := p.maxSkew(), p.MaxValidity
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
	case serialAhead(h.Serial, h.NotAfter):
		return fmt.Errorf("%w: serial %d is beyond not_after %s in nanoseconds (%d)", ErrSerialAhead, h.Serial, stamp(h.NotAfter), h.NotAfter.UnixNano())
	}
	return nil
}

// MaxSerial is the highest serial a ruleset valid until notAfter may have:
// notAfter in nanoseconds since the Unix epoch (0 before the epoch).
func MaxSerial(notAfter time.Time) uint64 {
	if notAfter.Before(time.Unix(0, 0)) {
		return 0
	}
	if notAfter.After(time.Unix(0, math.MaxInt64)) {
		return math.MaxInt64
	}
	return uint64(notAfter.UnixNano())
}

func serialAhead(serial uint64, notAfter time.Time) bool { return serial > MaxSerial(notAfter) }

// lastPoisoned reports whether the last accepted state holds a serial
// beyond its own not_after.
func lastPoisoned(last State) bool {
	return !last.NotAfter.IsZero() && serialAhead(last.Serial, last.NotAfter)
}

// SkewOption is the sign option that lets signatures be dated as far in
// the future as the policy lets generated_at be, so that --max-skew means
// one thing for both checks.
func (p FreshnessPolicy) SkewOption() sign.Option {
	return sign.WithMaxSkew(p.maxSkew())
}

func (p FreshnessPolicy) maxSkew() time.Duration {
	if p.MaxSkew <= 0 {
		return DefaultMaxSkew
	}
	return p.MaxSkew
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
