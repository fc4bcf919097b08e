package reyes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// ErrEmptyInventory: the inventory has no security groups or no
// interfaces. Publishing it would make every follower drop all filtered
// traffic; it is far more likely a wrong account, region or VPC filter.
var ErrEmptyInventory = errors.New("empty inventory")

// ErrExcludeUnmatched: an excluded group name or ID matches no group of the
// inventory. Publishing anyway could mirror the very group the exclusion
// was meant for.
var ErrExcludeUnmatched = errors.New("excluded group matches no security group")

// ErrTTL: the ruleset's validity (TTL) is one followers would refuse
// (longer than their max_validity) or one that cannot work (too short for
// the leader's schedule).
var ErrTTL = errors.New("ttl not acceptable")

// unmatched returns the exclusions that match no group by name or ID.
func unmatched(rs *ruleset.Ruleset, exclude []string) []string {
	var missing []string
	for _, e := range exclude {
		found := false
		for i := range rs.Groups {
			if rs.Groups[i].ID == e || rs.Groups[i].Name == e {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, e)
		}
	}
	return missing
}

// Leader publishes the estate's security groups: it fetches an inventory,
// builds the canonical ruleset, seals it with the signing key and puts it
// into the store: in the parts layout (the default) as content-addressed
// parts and a signed root naming them, in the whole layout as one signed
// object. Several leaders may run as hot spares against one store: each
// publishes a complete root (or object) and the last write wins. A Leader
// is safe for use by one goroutine at a time.
type Leader struct {
	// Source gives the inventory (sgsource.EC2 or sgsource.Dir).
	Source sgsource.Source
	// Store receives the signed object. The parts layout needs a
	// [PartStore] ([FileStore] and [S3Store] are).
	Store Store
	// Layout is how the ruleset is published; "" means [LayoutParts].
	Layout Layout
	// GCGrace is how old a part that no unexpired root names must be
	// before it is deleted; zero means [DefaultGCGrace]. It must exceed
	// the longest publish of any leader sharing the store.
	GCGrace time.Duration
	// MaxSkew is the followers' max_skew: a root is expired for garbage
	// collection only once its not_after plus MaxSkew has passed. Zero
	// means [DefaultMaxSkew].
	MaxSkew time.Duration
	// Signer seals the payload.
	Signer *sign.Signer
	// Build says how the ruleset is built: scope, TTL, excluded groups.
	// GeneratedAt and Serial are set by the Leader from its clock.
	Build ruleset.BuildOptions
	// Refresh: when the store already holds a ruleset with the same
	// content, signed by this leader's key, the leader publishes again
	// only once less than Refresh is left before its not_after. Zero means
	// half the TTL; a negative value publishes every time. Every new
	// serial makes every follower download the new root (in the whole
	// layout: download and decode the whole object), so this divides the
	// fleet's downloads (by 6 with the defaults: a 1 h TTL and a 5 min
	// interval) while a real change is still published at the next run.
	Refresh time.Duration
	// MaxValidity is the followers' max_validity: a TTL above it is
	// refused before anything is published, as every follower would
	// refuse the ruleset. Zero means DefaultMaxValidity.
	MaxValidity time.Duration
	// Timeout, if positive, bounds each publish of Run (fetch, sign and
	// put): a hung EC2 or S3 endpoint ends the run with an error naming
	// the call instead of holding it for ever.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per publish; nil discards.
	Logger *slog.Logger
	// MetricsFile, if set, is replaced after every run of RunOnce with
	// Prometheus text (node_exporter's textfile collector); the counters
	// in it are read back from the file the previous run wrote.
	MetricsFile string

	// prevReadFailures counts the runs whose read of the published object
	// failed (other than "not found").
	prevReadFailures int
	// gcCache holds the roots of the history read by earlier garbage
	// collections, by name (history copies never change).
	gcCache map[string]historyRoot
	// lastParts holds the bodies of the parts of the root this leader
	// last published (or found in force and left), by name: the next
	// change list compares against them instead of reading back what
	// this leader put itself (under churn, nearly every bin). Every body
	// is verified against the previous root before use; a part it lacks
	// (another leader published since) is read from the store.
	lastParts map[string][]byte
	// lastRoot is the root of lastParts, lastSum the SHA-256 of its
	// signed payload: when another leader's root replaced it since, the
	// next root also lists the changes since it (Root.EarlierChanges),
	// for followers that missed the other leader's root.
	lastRoot *ruleset.Root
	lastSum  [32]byte
}

// LeaderResult describes one publish.
type LeaderResult struct {
	Header     ruleset.Header
	Groups     int
	Interfaces int
	// Bytes is the size of the signed object (the root in the parts
	// layout).
	Bytes    int
	Duration time.Duration
	// Layout is how the ruleset was published.
	Layout Layout
	// Parts is how many parts the root names (parts layout).
	Parts int
	// PartsPut is how many of them this run put: those the previous root
	// did not name.
	PartsPut int
	// BytesPut is every byte this run put: parts, the root's history copy
	// and the root (the object alone in the whole layout).
	BytesPut int64
	// ChangedKeys is how many records the root's Changes says changed
	// since the root it replaced; -1 when the root has no Changes (no
	// previous root of this key, other bins, a previous part unreadable,
	// too many changes): followers then read the parts that changed.
	ChangedKeys int
	// PartsDeleted and RootsDeleted count what garbage collection deleted
	// after the publish; GCError is why it failed (logged as a warning;
	// the publish stands).
	PartsDeleted int
	RootsDeleted int
	GCError      error
	// Skipped: the store already held this content, fresh enough; nothing
	// was written (Header is then the published ruleset's).
	Skipped bool
	// PreviousReadError is why the object in the store could not be read
	// back (nil when it was, or when there was none): the leader then
	// publishes without comparing, and logs a warning.
	PreviousReadError error
	// PreviousReadFailures counts the runs of this Leader whose read of
	// the published object failed.
	PreviousReadFailures int
	// Findings are what the ruleset could not mirror as AWS applies it
	// (references into accounts not read, stale references, members
	// whose traffic arrives from other addresses), each also logged as a
	// warning; FindingCounts counts them by kind.
	Findings      []ruleset.Finding
	FindingCounts FindingCounts
}

// RunOnce fetches, builds, seals and publishes once. Nothing is written
// unless every step succeeded: a failed fetch never publishes a partial
// inventory. The metrics file, if any, is written after the run whatever
// its result.
func (l *Leader) RunOnce(ctx context.Context) (LeaderResult, error) {
	failures := l.prevReadFailures
	res, err := l.runOnce(ctx)
	l.recordLeaderRun(l.now(), res, err, l.prevReadFailures > failures)
	return res, err
}

func (l *Leader) runOnce(ctx context.Context) (LeaderResult, error) {
	if l.Source == nil || l.Store == nil || l.Signer == nil {
		return LeaderResult{}, errors.New("leader: Source, Store and Signer are required")
	}
	layout := l.layout()
	if layout != LayoutParts && layout != LayoutWhole {
		return LeaderResult{}, fmt.Errorf("leader: layout %q: want %s or %s", layout, LayoutParts, LayoutWhole)
	}
	var ps PartStore
	if layout == LayoutParts {
		var err error
		if ps, err = l.partStore(); err != nil {
			return LeaderResult{}, err
		}
	}
	now := l.now()
	start := time.Now()
	ttl := l.Build.TTL
	if ttl == 0 {
		ttl = ruleset.DefaultTTL
	}
	if maxv := l.maxValidity(); ttl > maxv {
		return LeaderResult{}, fmt.Errorf("%w: ttl %s is longer than the followers' max_validity %s: every follower would refuse the ruleset (raise max_validity on followers and leader together)", ErrTTL, ttl, maxv)
	}
	inv, err := l.Source.Fetch(ctx)
	if err != nil {
		return LeaderResult{}, fmt.Errorf("fetching inventory: %w", err)
	}
	// What the store holds, if this leader's key signed it: its serial
	// keeps serials increasing across hot-spare leaders whose clocks
	// differ (a follower refuses a lower serial as a rollback), and its
	// content may make this publish unnecessary.
	prev, prevPayload, prevRoot, havePrev, prevErr := l.published(ctx, now)
	if prevErr != nil {
		l.prevReadFailures++
		l.logger().Warn("could not read the published object back; publishing without comparing (every run will republish until this is fixed)",
			"store", l.Store.String(), "err", prevErr, "failures", l.prevReadFailures)
	}
	opts := l.Build
	opts.GeneratedAt = now
	opts.Serial = MaxSerial(now)
	if havePrev && prev.Serial >= opts.Serial {
		if prev.Serial < MaxSerial(now.Add(ttl)) {
			opts.Serial = prev.Serial + 1
		} else {
			// A serial beyond this ruleset's own time: followers would
			// refuse the next one. Start again from the clock; followers
			// that accepted the bad serial compare generation times.
			l.logger().Warn("the published serial is beyond its time; ignoring it and numbering from the clock",
				"store", l.Store.String(), "published_serial", prev.Serial, "serial", opts.Serial)
		}
	}
	rs, err := ruleset.Build(inv, opts)
	if err != nil {
		return LeaderResult{}, err
	}
	logFindings(l.logger(), rs.Findings)
	if missing := unmatched(rs, opts.Exclude); len(missing) > 0 {
		return LeaderResult{}, fmt.Errorf("%w: %q: a typo here would mirror the group that lets VPN traffic in wholesale", ErrExcludeUnmatched, missing)
	}
	if len(rs.Groups) == 0 || len(rs.Interfaces) == 0 {
		return LeaderResult{}, fmt.Errorf("%w: %d security groups, %d interfaces: refusing to publish a ruleset that would make every follower drop all filtered traffic (wrong account, region or VPC filter?)",
			ErrEmptyInventory, len(rs.Groups), len(rs.Interfaces))
	}
	var payload []byte
	var root *ruleset.Root
	var bodies map[string][]byte
	var same bool
	if layout == LayoutParts {
		var bins map[string]int
		if prevRoot != nil {
			bins = prevRoot.Bins
		}
		if root, bodies, err = ruleset.Split(rs, ruleset.SplitOptions{Previous: bins}); err != nil {
			return LeaderResult{}, err
		}
		same = prevRoot != nil && sameParts(root, prevRoot)
	} else {
		if payload, err = ruleset.Encode(rs); err != nil {
			return LeaderResult{}, err
		}
		same = prevRoot == nil && sameContent(payload, prevPayload)
	}
	if havePrev && l.Refresh >= 0 && prev.Scope == rs.Scope && same &&
		prev.NotAfter.Sub(prev.GeneratedAt) == rs.NotAfter.Sub(rs.GeneratedAt) &&
		!serialAhead(prev.Serial, prev.NotAfter) &&
		now.Before(prev.NotAfter.Add(-l.refresh(prev))) {
		res := LeaderResult{Header: prev, Groups: len(rs.Groups), Interfaces: len(rs.Interfaces), Skipped: true, Duration: time.Since(start),
			Layout: layout, PreviousReadFailures: l.prevReadFailures, Findings: rs.Findings, FindingCounts: countFindings(rs.Findings)}
		if root != nil {
			res.Parts = len(root.Parts)
			// The root in force names these very parts: put back any the
			// store lost, so that followers can read what is published.
			if res.PartsPut, res.BytesPut, err = l.putParts(ctx, ps, root, prevRoot, bodies); err != nil {
				return LeaderResult{}, fmt.Errorf("repairing the parts of the published root in %s: %w", ps.Parts(), err)
			}
			l.keepParts(prevRoot, sha256.Sum256(prevPayload), bodies)
		}
		l.logger().Info("ruleset unchanged and still fresh; not republished",
			"store", l.Store.String(), "serial", prev.Serial, "not_after", prev.NotAfter.Format(time.RFC3339),
			"republish_after", prev.NotAfter.Add(-l.refresh(prev)).Format(time.RFC3339))
		return res, nil
	}
	res := LeaderResult{Header: rs.Header, Groups: len(rs.Groups), Interfaces: len(rs.Interfaces), Layout: layout,
		PreviousReadError: prevErr, PreviousReadFailures: l.prevReadFailures, Findings: rs.Findings, FindingCounts: countFindings(rs.Findings)}
	var obj []byte
	if layout == LayoutParts {
		skip := prevRoot
		if !l.prevUsable(prevRoot, now) {
			skip = nil
		}
		res.ChangedKeys = l.changes(ctx, ps, prevRoot, prevPayload, root, bodies)
		if obj, res.PartsPut, res.BytesPut, err = l.publishParts(ctx, ps, root, skip, bodies, now); err != nil {
			l.keepParts(nil, [32]byte{}, nil)
			return LeaderResult{}, err
		}
		res.Parts = len(root.Parts)
	} else {
		if obj, err = sign.Seal(payload, l.Signer, now); err != nil {
			return LeaderResult{}, err
		}
		if err := l.Store.Put(ctx, obj); err != nil {
			return LeaderResult{}, fmt.Errorf("publishing to %s: %w", l.Store, err)
		}
		res.BytesPut = int64(len(obj))
	}
	res.Bytes = len(obj)
	res.Duration = time.Since(start)
	args := []any{"store", l.Store.String(), "layout", string(layout), "scope", rs.Scope, "serial", rs.Serial,
		"not_after", rs.NotAfter.Format(time.RFC3339), "groups", res.Groups,
		"interfaces", res.Interfaces, "bytes", res.Bytes}
	if layout == LayoutParts {
		args = append(args, "parts", res.Parts, "parts_put", res.PartsPut, "bytes_put", res.BytesPut, "changed_keys", res.ChangedKeys)
	}
	args = append(args, "findings", len(res.Findings), "duration", res.Duration.Round(time.Millisecond))
	l.logger().Info("published ruleset", args...)
	if layout == LayoutParts {
		l.gc(ctx, ps, root, now, &res)
	}
	return res, nil
}

// Run publishes every interval (with up to 10% jitter, so hot-spare
// leaders spread out) until ctx ends. A failed publish is logged and
// retried at the next tick; the previous object stays in the store. Run
// returns ctx's error, or the first error when interval is 0 (run once).
// Each publish is bounded by Timeout.
func (l *Leader) Run(ctx context.Context, interval time.Duration) error {
	return loop(ctx, interval, l.Timeout, l.logger(), "publish", func(ctx context.Context) error {
		_, err := l.RunOnce(ctx)
		return err
	})
}

// published returns the header and payload of the object in the store if
// this leader's key signed it (a hot spare shares the key), and the root
// when it is one (parts layout; nil for a whole ruleset). Any doubt means
// none; err says why when it is more than "there is no object yet" (a read
// error, another key, another format), for the caller to log.
func (l *Leader) published(ctx context.Context, now time.Time) (h ruleset.Header, payload []byte, root *ruleset.Root, ok bool, err error) {
	body, _, err := l.Store.Get(ctx, "")
	if errors.Is(err, ErrNotFound) {
		return ruleset.Header{}, nil, nil, false, nil
	}
	if err != nil {
		return ruleset.Header{}, nil, nil, false, fmt.Errorf("reading the published object: %w", err)
	}
	// The signature time may be ahead of this leader's clock (a hot
	// spare's runs fast): up to the longest validity; an expired object is
	// still a serial to beat.
	payload, err = sign.OpenBytes(body, l.Signer.Keyring(), now, sign.WithMaxSize(int64(len(body))+1), sign.WithMaxSkew(l.maxValidity()))
	if err != nil {
		return ruleset.Header{}, nil, nil, false, fmt.Errorf("verifying the published object with this leader's key: %w", err)
	}
	if ruleset.IsRoot(payload) {
		root, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
		if err != nil {
			return ruleset.Header{}, nil, nil, false, fmt.Errorf("decoding the published root: %w", err)
		}
		return root.Header, payload, root, true, nil
	}
	h, ok = headerOf(payload)
	if !ok {
		return ruleset.Header{}, nil, nil, false, errors.New("the published object is not a ruleset of this format")
	}
	return h, payload, nil, true, nil
}

func (l *Leader) maxValidity() time.Duration {
	if l.MaxValidity <= 0 {
		return DefaultMaxValidity
	}
	return l.MaxValidity
}

// contentStart is where the canonical encoding's content starts, after the header.
var contentStart = []byte(`,"vpcs":`)

// headerOf reads the header of a canonical payload this leader's key
// signed, without decoding the rest (at 50,000 ENIs a full decode is a
// quarter second of every run).
func headerOf(payload []byte) (ruleset.Header, bool) {
	i := bytes.Index(payload, contentStart)
	if i < 0 {
		return ruleset.Header{}, false
	}
	var h ruleset.Header
	dec := json.NewDecoder(bytes.NewReader(append(payload[:i:i], '}')))
	dec.DisallowUnknownFields()
	if dec.Decode(&h) != nil || h.Format != ruleset.Format || h.Type != ruleset.Type {
		return ruleset.Header{}, false
	}
	return h, true
}

// sameContent reports whether two canonical payloads hold the same
// groups, interfaces and VPCs: their bytes after the header are equal.
func sameContent(a, b []byte) bool {
	i, j := bytes.Index(a, contentStart), bytes.Index(b, contentStart)
	return i >= 0 && j >= 0 && bytes.Equal(a[i:], b[j:])
}

func (l *Leader) refresh(h ruleset.Header) time.Duration {
	if l.Refresh > 0 {
		return l.Refresh
	}
	return h.NotAfter.Sub(h.GeneratedAt) / 2
}

func (l *Leader) now() time.Time { return clock(l.Now) }

func (l *Leader) logger() *slog.Logger { return orDiscard(l.Logger) }

// ErrTimeout is wrapped by the error of a run that took longer than its
// timeout (--timeout); the rest of the error names the call that was
// waiting.
var ErrTimeout = errors.New("run timed out")

// ErrInterrupted is wrapped by the error of a one-shot run (interval 0)
// whose context was cancelled (SIGTERM) before it completed: the run did
// not do its job, and says so with a non-zero exit. Stopping an --interval
// loop is no failure.
var ErrInterrupted = errors.New("interrupted before the run completed")

// loop runs fn once, then, if interval > 0, again after every interval
// with jitter until ctx ends. Each run of fn is bounded by timeout when it
// is positive.
func loop(ctx context.Context, interval, timeout time.Duration, log *slog.Logger, what string, fn func(context.Context) error) error {
	run := func() error {
		if timeout <= 0 {
			return fn(ctx)
		}
		rctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %s", ErrTimeout, timeout))
		defer cancel()
		err := fn(rctx)
		if err != nil && ctx.Err() == nil && rctx.Err() != nil {
			return fmt.Errorf("%w: %w", context.Cause(rctx), err)
		}
		return err
	}
	err := run()
	if interval <= 0 {
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
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
		err = run()
	}
}

// clock is now, or time.Now when nil.
func clock(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}

// orDiscard is log, or a logger that discards everything when nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
