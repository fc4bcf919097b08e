package reyes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// Layout is how a leader publishes the ruleset in the store.
type Layout string

const (
	// LayoutParts (the default) publishes a small signed root naming
	// content-addressed parts ("<key>.parts/"): followers read only the
	// parts their plan needs, and the leader puts only the parts that
	// changed. Followers older than this layout cannot read it.
	LayoutParts Layout = "parts"
	// LayoutWhole publishes the whole ruleset as one signed object, as
	// reyes did before the parts layout: for fleets with followers not yet
	// upgraded (upgrade the followers first, then switch).
	LayoutWhole Layout = "whole"
)

// ParseLayout reads a layout's name: "parts" or "whole".
func ParseLayout(s string) (Layout, error) {
	switch Layout(s) {
	case LayoutParts, LayoutWhole:
		return Layout(s), nil
	}
	return "", fmt.Errorf("layout %q: want parts or whole", s)
}

// DefaultGCGrace is how old a part no root names must be before the
// leader's garbage collection deletes it: longer than any leader's publish,
// so that the fresh parts of a leader still publishing (a hot spare) are
// never deleted before its root lands.
const DefaultGCGrace = 15 * time.Minute

// maxConcurrentPuts bounds the part puts (and the deletes of garbage
// collection) in flight during one publish.
const maxConcurrentPuts = 8

// maxKeptParts bounds the bytes of parts a Leader keeps from one publish
// to the next for its change list (~30 MB at 50,000 interfaces); beyond,
// the previous parts whose bins changed are read back from the store.
const maxKeptParts = 256 << 20

// historyName is the name of a root's copy in "<key>.roots/": its serial,
// then the first 16 hex digits of the signed object's SHA-256.
func historyName(serial uint64, obj []byte) string {
	sum := sha256.Sum256(obj)
	return strconv.FormatUint(serial, 10) + "-" + hex.EncodeToString(sum[:8])
}

// partStore is the store as a PartStore, or an error saying why the parts
// layout cannot be used with it.
func (l *Leader) partStore() (PartStore, error) {
	ps, ok := l.Store.(PartStore)
	if !ok {
		return nil, fmt.Errorf("leader: the store %s cannot hold parts (layout %s); use layout %s", l.Store, LayoutParts, LayoutWhole)
	}
	return ps, nil
}

func (l *Leader) layout() Layout {
	if l.Layout == "" {
		return LayoutParts
	}
	return l.Layout
}

func (l *Leader) gcGrace() time.Duration {
	if l.GCGrace <= 0 {
		return DefaultGCGrace
	}
	return l.GCGrace
}

func (l *Leader) maxSkew() time.Duration {
	if l.MaxSkew <= 0 {
		return DefaultMaxSkew
	}
	return l.MaxSkew
}

// sameParts reports whether two roots name the same parts in the same bins:
// part names hold sizes and digests, so the same names are the same
// content.
func sameParts(a, b *ruleset.Root) bool {
	if !maps.Equal(a.Bins, b.Bins) || len(a.Parts) != len(b.Parts) {
		return false
	}
	for i := range a.Parts {
		if a.Parts[i].Name != b.Parts[i].Name {
			return false
		}
	}
	return true
}

// putParts puts the parts of root that prev does not name, at most
// maxConcurrentPuts at once; the first failure cancels the others. A part
// prev names is put all the same when the store's listing does not have it
// (deleted by hand, by a lifecycle rule, or by a collection that raced a
// publish) or lists it with another size than its name says (truncated):
// the next publish repairs the store. It returns how many parts
// and bytes it put.
func (l *Leader) putParts(ctx context.Context, ps PartStore, root, prev *ruleset.Root, bodies map[string][]byte) (n int, bytes int64, err error) {
	var have map[string]int64 // listed name -> listed size
	if prev != nil {
		list, err := ps.Parts().List(ctx)
		if err != nil {
			// The previous root's parts are there unless something
			// other than reyes removed them.
			l.logger().Warn("could not list the parts; taking those the previous root names to exist", "store", ps.Parts().String(), "err", err)
		} else {
			have = make(map[string]int64, len(list))
			for _, o := range list {
				have[o.Name] = o.Size
			}
		}
	}
	var todo []string
	for _, p := range root.Parts {
		if prev != nil && prev.Has(p.Name) {
			size, listed := have[p.Name]
			if have == nil || listed && size == p.Size {
				continue
			}
			// Missing, or not the size its name says (truncated by
			// something other than reyes): every later root would name
			// the broken part.
			l.logger().Warn("a part the previous root names is missing from the store or has the wrong size; putting it again",
				"part", objectPath(ps.Parts(), p.Name), "listed", listed, "size", size)
		}
		if _, ok := bodies[p.Name]; !ok {
			return 0, 0, fmt.Errorf("splitting the ruleset: no bytes for part %s", p.Name)
		}
		todo = append(todo, p.Name)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxConcurrentPuts)
	parts := ps.Parts()
	for _, name := range todo {
		g.Go(func() error {
			err := parts.Put(gctx, name, bodies[name])
			if errors.Is(err, ErrNotRegular) {
				// A FIFO or a symbolic link where this part goes (the
				// listing left it out): not an object reyes wrote, and
				// refused by Put, it would fail every publish from now
				// on. Its name says what belongs there: remove it (not
				// what a link points to) and put the part.
				l.logger().Warn("replacing what is not a part where a part goes", "part", objectPath(parts, name), "err", err)
				if err = parts.Delete(gctx, name); err == nil {
					err = parts.Put(gctx, name, bodies[name])
				}
			}
			if err != nil {
				return fmt.Errorf("putting part %s: %w", name, err)
			}
			return nil
		})
		bytes += int64(len(bodies[name]))
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	return len(todo), bytes, nil
}

// publishParts seals and publishes rs in the parts layout: the parts prev
// does not name, then the root's history copy, then the root. prev is the
// previous root if its parts may be taken to exist (nil otherwise: every
// part is put).
func (l *Leader) publishParts(ctx context.Context, ps PartStore, root, prev *ruleset.Root, bodies map[string][]byte, now time.Time) (obj []byte, n int, bytes int64, err error) {
	n, bytes, err = l.putParts(ctx, ps, root, prev, bodies)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("publishing to %s: %w", ps.Parts(), err)
	}
	text, err := ruleset.EncodeRoot(root)
	if err != nil {
		return nil, 0, 0, err
	}
	// Compressed: every follower reads the root at every publish, and
	// its hex digests are half redundant (~40 % of the text).
	payload, err := ruleset.CompressRoot(text)
	if err != nil {
		return nil, 0, 0, err
	}
	obj, err = sign.Seal(payload, l.Signer, now)
	if err != nil {
		return nil, 0, 0, err
	}
	// The history copy first: garbage collection (of any leader) keeps
	// the parts of every unexpired root it finds there, and the root
	// must never be in force without it.
	hist := historyName(root.Serial, obj)
	if err := ps.Roots().Put(ctx, hist, obj); err != nil {
		return nil, 0, 0, fmt.Errorf("publishing to %s: putting the root's history copy %s: %w", ps.Roots(), hist, err)
	}
	// The collection after this publish need not read the copy back.
	if l.gcCache == nil {
		l.gcCache = map[string]historyRoot{}
	}
	l.gcCache[hist] = historyRootOf(root)
	if err := ps.Put(ctx, obj); err != nil {
		return nil, 0, 0, fmt.Errorf("publishing to %s: %w", ps, err)
	}
	l.keepParts(root, sha256.Sum256(payload), bodies)
	return obj, n, bytes + 2*int64(len(obj)), nil
}

// keepParts remembers the root in force (root, the SHA-256 of its signed
// payload, and its parts) for the next change lists, unless its parts are
// more than maxKeptParts bytes.
func (l *Leader) keepParts(root *ruleset.Root, sum [32]byte, bodies map[string][]byte) {
	l.lastRoot, l.lastSum, l.lastParts = root, sum, nil
	var total int64
	for _, b := range bodies {
		total += int64(len(b))
	}
	if total <= maxKeptParts {
		l.lastParts = bodies
	}
}

// changes sets root.Changes to what changed since prev, the root in the
// store (its verified payload prevPayload), and, when another leader's
// root replaced the one this leader published last, root.EarlierChanges
// to what changed since that one. It returns how many records changed
// since prev, or -1 if it could not tell: no previous root, other bins, a
// previous part unreadable (logged), or too many changes for the filter.
// Only the bins whose parts differ are compared; the previous ones come
// from what this leader last put (l.lastParts) or else the store, each
// verified against its root.
func (l *Leader) changes(ctx context.Context, ps PartStore, prev *ruleset.Root, prevPayload []byte, root *ruleset.Root, bodies map[string][]byte) int {
	root.Changes, root.EarlierChanges = nil, nil
	if prev == nil || len(prevPayload) == 0 {
		return -1
	}
	store := FetchParts(ps.Parts())
	fetch := func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
		if b, ok := bodies[ref.Name]; ok {
			return b, nil
		}
		if b, ok := l.lastParts[ref.Name]; ok {
			return b, nil // verified by ChangedKeys as any other
		}
		return store(ctx, ref)
	}
	list := func(from *ruleset.Root, sum [32]byte, what string) (*ruleset.Changes, int) {
		keys, ok, err := ruleset.ChangedKeys(ctx, from, root, fetch)
		if err != nil {
			l.logger().Warn("could not tell what changed since "+what+"; publishing without that change list (followers read the parts that changed)",
				"store", ps.Parts().String(), "serial", from.Serial, "err", err)
			return nil, -1
		}
		if !ok {
			return nil, -1
		}
		c := ruleset.NewChanges(sum, keys)
		if c == nil {
			return nil, -1
		}
		return c, len(keys)
	}
	prevSum := sha256.Sum256(prevPayload)
	var n int
	if root.Changes, n = list(prev, prevSum, "the published root"); root.Changes == nil {
		return -1
	}
	if l.lastRoot != nil && l.lastSum != prevSum {
		root.EarlierChanges, _ = list(l.lastRoot, l.lastSum, "the root this leader published last")
	}
	return n
}

// prevUsable reports whether the parts the previous root names may be
// skipped: the garbage collection of another leader deletes them only once
// that root has expired (not_after + max skew), so they are certain to
// exist until then. With less than the grace (the bound on a publish) left,
// they are put again, which renews them.
func (l *Leader) prevUsable(prev *ruleset.Root, now time.Time) bool {
	return prev != nil && now.Add(l.gcGrace()).Before(prev.NotAfter.Add(l.maxSkew()))
}

// gcResult says what one garbage collection did.
type gcResult struct {
	partsDeleted, rootsDeleted int
}

// historyRoot is what garbage collection needs of a root in the history:
// when it expires and the parts it names. History copies never change, so
// a Leader keeps them between runs.
type historyRoot struct {
	notAfter time.Time
	parts    []string
	// undecodable: the object is no root; it keeps no part alive but
	// blocks every deletion until it is old enough to be expired whatever
	// it says.
	undecodable error
}

// collectGarbage deletes the parts no unexpired root names, once they are
// older than the grace, then the expired roots of the history. current is
// the root just published. Failures are returned for the caller to log and
// count; what was deleted before a failure is counted.
func (l *Leader) collectGarbage(ctx context.Context, ps PartStore, current *ruleset.Root, now time.Time) (gcResult, error) {
	var res gcResult
	roots := ps.Roots()
	hist, err := roots.List(ctx)
	if err != nil {
		return res, fmt.Errorf("garbage collection: %w", err)
	}
	live := map[string]bool{}
	if current != nil {
		for _, p := range current.Parts {
			live[p.Name] = true
		}
	}
	skew := l.maxSkew()
	cache := map[string]historyRoot{}
	var expired []string
	var blocked error
	for _, h := range hist {
		hr, ok := l.gcCache[h.Name]
		if !ok {
			hr, err = readHistoryRoot(ctx, roots, h.Name)
			if errors.Is(err, ErrNotFound) {
				continue // deleted by another leader's collection
			}
			if err != nil {
				return res, fmt.Errorf("garbage collection: %w", err)
			}
		}
		cache[h.Name] = hr
		if hr.undecodable != nil {
			// Its expiry is unknown, but no root is valid longer than
			// max_validity after it was signed, hence put.
			if now.After(h.Modified.Add(l.maxValidity() + skew)) {
				expired = append(expired, h.Name)
			} else if blocked == nil {
				blocked = fmt.Errorf("garbage collection: %s is not a root (%w): no part is deleted until it is older than max_validity %s", objectPath(roots, h.Name), hr.undecodable, l.maxValidity())
			}
			continue
		}
		if now.After(hr.notAfter.Add(skew)) {
			expired = append(expired, h.Name)
			continue
		}
		for _, p := range hr.parts {
			live[p] = true
		}
	}
	l.gcCache = cache
	if blocked == nil {
		parts, err := ps.Parts().List(ctx)
		if err != nil {
			return res, fmt.Errorf("garbage collection: %w", err)
		}
		grace := l.gcGrace()
		var deleted atomic.Int64
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(maxConcurrentPuts)
		for _, p := range parts {
			if live[p.Name] || now.Sub(p.Modified) <= grace {
				continue
			}
			g.Go(func() error {
				if err := ps.Parts().Delete(gctx, p.Name); err != nil {
					return err
				}
				deleted.Add(1)
				return nil
			})
		}
		err = g.Wait()
		res.partsDeleted = int(deleted.Load())
		if err != nil {
			return res, fmt.Errorf("garbage collection: %w", err)
		}
	}
	slices.Sort(expired)
	for _, name := range expired {
		if err := roots.Delete(ctx, name); err != nil {
			return res, fmt.Errorf("garbage collection: %w", err)
		}
		delete(l.gcCache, name)
		res.rootsDeleted++
	}
	return res, blocked
}

// maxHistoryObject bounds a root's copy in the history: a root payload and
// its signed object's header and detached signature, with room to spare.
const maxHistoryObject = ruleset.MaxRootBytes + 64<<10

// readHistoryRoot reads a root's copy from the history. No signature is
// checked: the copy is only read to keep parts, never to delete them
// early (an expiry is trusted only to delete the copy and what no other
// root names).
func readHistoryRoot(ctx context.Context, roots Objects, name string) (historyRoot, error) {
	obj, err := roots.Get(ctx, name, maxHistoryObject)
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrNotRegular) {
		// No root: read no further (someone who can write the store
		// must not make every collection read, or fail on, a huge
		// object), and let it age out as any other object that is no root.
		return historyRoot{undecodable: err}, nil
	}
	if err != nil {
		return historyRoot{}, err
	}
	payload, _, err := sign.Unpack(obj)
	if err != nil {
		return historyRoot{undecodable: err}, nil
	}
	if !ruleset.IsRoot(payload) {
		return historyRoot{undecodable: errors.New("not a " + ruleset.RootFormat + " payload")}, nil
	}
	r, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
	if err != nil {
		return historyRoot{undecodable: err}, nil
	}
	return historyRootOf(r), nil
}

// historyRootOf is what garbage collection keeps of root.
func historyRootOf(r *ruleset.Root) historyRoot {
	hr := historyRoot{notAfter: r.NotAfter, parts: make([]string, len(r.Parts))}
	for i, p := range r.Parts {
		hr.parts[i] = p.Name
	}
	return hr
}

// gc runs garbage collection after a publish in the parts layout (the
// whole layout touches nothing but its object, and needs no more
// permissions than before). current is the root just published. A failure
// is logged and recorded in res, never returned: the publish stands.
func (l *Leader) gc(ctx context.Context, ps PartStore, current *ruleset.Root, now time.Time, res *LeaderResult) {
	g, err := l.collectGarbage(ctx, ps, current, now)
	res.PartsDeleted, res.RootsDeleted, res.GCError = g.partsDeleted, g.rootsDeleted, err
	if err != nil {
		l.logger().Warn("garbage collection failed; the ruleset is published, unreferenced parts stay until a later run",
			"store", l.Store.String(), "err", err, "parts_deleted", g.partsDeleted, "roots_deleted", g.rootsDeleted)
		return
	}
	if g.partsDeleted > 0 || g.rootsDeleted > 0 {
		l.logger().Info("garbage collected", "store", l.Store.String(), "parts_deleted", g.partsDeleted, "roots_deleted", g.rootsDeleted)
	}
}

// objectPath names an object of dir for messages: s3://b/k.parts/name or
// /path.parts/name.
func objectPath(dir Objects, name string) string {
	s := dir.String()
	if strings.HasSuffix(s, "/") {
		return s + name
	}
	return s + "/" + name
}
