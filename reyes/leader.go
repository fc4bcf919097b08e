package reyes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// Leader publishes the estate's security groups: it fetches an inventory,
// builds the canonical ruleset, seals it with the signing key and puts the
// one signed object into the store. Several leaders may run as hot spares
// against one store: each publishes a complete object and the last write
// wins. A Leader is safe for use by one goroutine at a time.
type Leader struct {
	// Source gives the inventory (sgsource.EC2 or sgsource.Dir).
	Source sgsource.Source
	// Store receives the signed object.
	Store Store
	// Signer seals the payload.
	Signer *sign.Signer
	// Build says how the ruleset is built: scope, TTL, excluded groups.
	// GeneratedAt and Serial are set by the Leader from its clock.
	Build ruleset.BuildOptions
	// Refresh: when the store already holds a ruleset with the same
	// content, signed by this leader's key, the leader publishes again
	// only once less than Refresh is left before its not_after. Zero means
	// half the TTL; a negative value publishes every time. Every new
	// serial makes every follower download and decode the whole object,
	// so this divides the fleet's downloads (by 6 with the defaults: a
	// 1 h TTL and a 5 min interval) while a real change is still published
	// at the next run.
	Refresh time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per publish; nil discards.
	Logger *slog.Logger
}

// LeaderResult describes one publish.
type LeaderResult struct {
	Header     ruleset.Header
	Groups     int
	Interfaces int
	// Bytes is the size of the signed object.
	Bytes    int
	Duration time.Duration
	// Skipped: the store already held this content, fresh enough; nothing
	// was written (Header is then the published ruleset's).
	Skipped bool
}

// RunOnce fetches, builds, seals and publishes once. Nothing is written
// unless every step succeeded: a failed fetch never publishes a partial
// inventory.
func (l *Leader) RunOnce(ctx context.Context) (LeaderResult, error) {
	if l.Source == nil || l.Store == nil || l.Signer == nil {
		return LeaderResult{}, errors.New("leader: Source, Store and Signer are required")
	}
	now := l.now()
	start := time.Now()
	inv, err := l.Source.Fetch(ctx)
	if err != nil {
		return LeaderResult{}, fmt.Errorf("fetching inventory: %w", err)
	}
	opts := l.Build
	opts.GeneratedAt = now
	opts.Serial = 0 // GeneratedAt in nanoseconds: increases publish to publish
	rs, err := ruleset.Build(inv, opts)
	if err != nil {
		return LeaderResult{}, err
	}
	payload, err := ruleset.Encode(rs)
	if err != nil {
		return LeaderResult{}, err
	}
	if prev, ok := l.fresh(ctx, rs, now); ok {
		res := LeaderResult{Header: prev, Groups: len(rs.Groups), Interfaces: len(rs.Interfaces), Skipped: true, Duration: time.Since(start)}
		l.logger().Info("ruleset unchanged and still fresh; not republished",
			"store", l.Store.String(), "serial", prev.Serial, "not_after", prev.NotAfter.Format(time.RFC3339),
			"republish_after", prev.NotAfter.Add(-l.refresh(prev)).Format(time.RFC3339))
		return res, nil
	}
	obj, err := sign.Seal(payload, l.Signer, now)
	if err != nil {
		return LeaderResult{}, err
	}
	if err := l.Store.Put(ctx, obj); err != nil {
		return LeaderResult{}, fmt.Errorf("publishing to %s: %w", l.Store, err)
	}
	res := LeaderResult{Header: rs.Header, Groups: len(rs.Groups), Interfaces: len(rs.Interfaces), Bytes: len(obj), Duration: time.Since(start)}
	l.logger().Info("published ruleset",
		"store", l.Store.String(), "scope", rs.Scope, "serial", rs.Serial,
		"not_after", rs.NotAfter.Format(time.RFC3339), "groups", res.Groups,
		"interfaces", res.Interfaces, "bytes", res.Bytes, "duration", res.Duration.Round(time.Millisecond))
	return res, nil
}

// Run publishes every interval (with up to 10% jitter, so hot-spare
// leaders spread out) until ctx ends. A failed publish is logged and
// retried at the next tick; the previous object stays in the store. Run
// returns ctx's error, or the first error when interval is 0 (run once).
func (l *Leader) Run(ctx context.Context, interval time.Duration) error {
	return loop(ctx, interval, l.logger(), "publish", func(ctx context.Context) error {
		_, err := l.RunOnce(ctx)
		return err
	})
}

// fresh reports whether the store holds a ruleset signed by this leader's
// key with the same content as rs and more than the refresh margin left
// before its not_after. Any doubt (no object, another key, another format,
// a read error) means no: publish.
func (l *Leader) fresh(ctx context.Context, rs *ruleset.Ruleset, now time.Time) (ruleset.Header, bool) {
	if l.Refresh < 0 {
		return ruleset.Header{}, false
	}
	body, _, err := l.Store.Get(ctx, "")
	if err != nil {
		return ruleset.Header{}, false
	}
	payload, err := sign.OpenBytes(body, l.Signer.Keyring(), now)
	if err != nil {
		return ruleset.Header{}, false
	}
	prev, err := ruleset.Decode(payload)
	if err != nil || prev.Scope != rs.Scope {
		return ruleset.Header{}, false
	}
	same := *rs
	same.Header = prev.Header
	enc, err := ruleset.Encode(&same)
	if err != nil || !bytes.Equal(enc, payload) {
		return ruleset.Header{}, false
	}
	return prev.Header, now.Before(prev.NotAfter.Add(-l.refresh(prev.Header)))
}

func (l *Leader) refresh(h ruleset.Header) time.Duration {
	if l.Refresh > 0 {
		return l.Refresh
	}
	return h.NotAfter.Sub(h.GeneratedAt) / 2
}

func (l *Leader) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Leader) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}

// loop runs fn once, then, if interval > 0, again after every interval
// with jitter until ctx ends.
func loop(ctx context.Context, interval time.Duration, log *slog.Logger, what string, fn func(context.Context) error) error {
	err := fn(ctx)
	if interval <= 0 {
		return err
	}
	for {
		if err != nil {
			log.Error(what+" failed; will retry", "err", err, "next_in", interval)
		}
		wait := interval + time.Duration(rand.Int64N(int64(interval)/10+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		err = fn(ctx)
	}
}
