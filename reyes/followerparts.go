package reyes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/internal/regfile"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// PartsDir is the directory of the state directory that keeps the parts
// the last applied plan was made from, so that the next change reads from
// the store only the parts that changed. A part of the root read from it
// is verified against the root, as one read from the store; an earlier
// part (ruleset.LoadViewSince) against its name (size and 128-bit digest
// prefix: the bytes a root verified when it was fetched), and only for
// records the root's change list says did not change since.
const PartsDir = "parts"

// parts returns where the parts of the store's root are.
func (f *Follower) parts() (Objects, error) {
	if f.Parts != nil {
		return f.Parts, nil
	}
	if ps, ok := f.Store.(interface{ Parts() Objects }); ok {
		return ps.Parts(), nil
	}
	return nil, fmt.Errorf("the store %s holds a split ruleset (a root and its parts), but cannot read parts; set Follower.Parts", f.Store)
}

// samePlanInputs says why root gives this host the records the last
// apply's plan (applied) was made from, for the same scope: "parts" when
// root still lists every part the plan read (the same request reads the
// same bytes), "changes" when root's change list is from the root
// accepted last (last) and holds none of the plan's records, or "" when
// neither holds. Changes chain: a root accepted either way leaves the
// plan's records as they were, so the next root's list (since that one)
// is checked against the same records.
func samePlanInputs(applied *LoadedRecord, last State, root *ruleset.Root) string {
	if root == nil || applied == nil || len(applied.Parts) == 0 || applied.Scope != root.Scope {
		return ""
	}
	if !slices.ContainsFunc(applied.Parts, func(name string) bool { return !root.Has(name) }) {
		return "parts"
	}
	if root.ChangesSince(last.Digest).Unchanged(last.Digest, applied.Keys) {
		return "changes"
	}
	return ""
}

// planDigest hashes everything apply loads for plan: both families' ipset
// and iptables-restore text (FamilyPlan.Hash covers the rules only).
func planDigest(plan *render.Plan) string {
	h := sha256.New()
	for _, fp := range plan.Families() {
		for _, b := range [][]byte{fp.IpsetRestore(), fp.IptablesRestore()} {
			fmt.Fprintf(h, "%d\n", len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// identityUnchanged says whether the host is still what the last apply
// found, for the fast path. changedSince already compared the host's own
// addresses (every run) and the explicit settings; the metadata service's
// view it compares only when a drift check is due. A new object used to
// mean asking IMDS again (a whole ruleset is always identified anew), and
// an interface attached since (in parts the plan never read) would
// otherwise go unnoticed behind "the same parts": ask it now.
func (f *Follower) identityUnchanged(ctx context.Context, applied *LoadedRecord) bool {
	if applied.Identity.Method != IdentityIMDS {
		return true
	}
	probe := f.identityProbe(ctx, IdentityIMDS, true)
	return probe != "" && probe == applied.IdentityDigest
}

// kernelStillHolds runs the drift check on the fast path when one is due:
// an estate that changes at every leader run gives a follower polling no
// faster a new root at every poll, so the check that runs when the store
// answers "not modified" would never run, and a flushed chain would stay
// flushed. It reports whether the fast path may go on; on drift (or a
// check that could not tell) it sets *force, for a full reload.
func (f *Follower) kernelStillHolds(ctx context.Context, now time.Time, res *FollowerResult, force *bool) bool {
	drift, due, err := f.checkDrift(ctx, now)
	res.DriftChecked, res.DriftErr = due, err
	if !due || (err == nil && len(drift) == 0) {
		return true
	}
	res.Drift = drift
	*force = true
	f.logger().Warn("kernel drifted from the applied ruleset; reloading", "drift", fmt.Sprint(drift), "err", err)
	return false
}

// acceptSamePlan records st, a new ruleset whose plan for this host is
// the one applied, as accepted without touching the kernel, and keeps the
// parts of res for the next run (those in fetched came from the store).
func (f *Follower) acceptSamePlan(res *FollowerResult, st State, fetched map[string][]byte) error {
	if err := SaveState(f.StateDir, st); err != nil {
		return fmt.Errorf("%w: %w", apply.ErrStateNotWritable, err)
	}
	res.PlanUnchanged, res.accepted = true, st.Digest
	f.keepParts(res.Parts, fetched)
	return nil
}

func partNames(refs []ruleset.PartRef) []string {
	names := make([]string, 0, len(refs))
	for _, r := range refs {
		names = append(names, r.Name)
	}
	return names
}

// viewFetch reads the parts of one view: from the cache when a verified
// copy is there, else from the store. It counts what it read.
type viewFetch struct {
	store Objects
	cache string // "" in a dry run: nothing cached is trusted or written

	mu      sync.Mutex
	fetched map[string][]byte // read from the store, to cache after the apply
	bytes   int64
	cached  int
}

func (v *viewFetch) fetch(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
	if v.cache != "" {
		if b, err := readCacheFile(filepath.Join(v.cache, ref.Name), ref.Size); err == nil && ruleset.VerifyPart(ref, b) == nil {
			v.mu.Lock()
			v.cached++
			v.mu.Unlock()
			return b, nil
		}
	}
	b, err := FetchParts(v.store)(ctx, ref)
	if errors.Is(err, ruleset.ErrPartMissing) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("fetching part %s from %s: %w", ref.Name, v.store, err)
	}
	v.mu.Lock()
	v.bytes += int64(len(b))
	v.fetched[ref.Name] = b
	v.mu.Unlock()
	return b, nil
}

// priorFetch reads a part the last view read from the cache only (never
// the store): ruleset.LoadViewSince checks it against its name (size and
// digest prefix) and its header against the root, and counts in
// View.Prior those it used, which loadView adds to PartsCached.
func (v *viewFetch) priorFetch(_ context.Context, ref ruleset.PartRef) ([]byte, error) {
	return readCacheFile(filepath.Join(v.cache, ref.Name), ref.Size)
}

// loadView reads what the host needs of root: the parts req needs, each
// verified against the root before it is parsed. With the record of the
// last plan (applied) and the state of the root accepted last (last), the
// records of that plan that root's change list does not hold are read
// from the cached parts they came from (ruleset.LoadViewSince), so that a
// change in the plan costs the parts of the records that changed.
func (f *Follower) loadView(ctx context.Context, root *ruleset.Root, req ruleset.ViewRequest, applied *LoadedRecord, last State, res *FollowerResult) (*ruleset.View, map[string][]byte, error) {
	store, err := f.parts()
	if err != nil {
		return nil, nil, err
	}
	v := &viewFetch{store: store, fetched: map[string][]byte{}}
	if !f.DryRun {
		v.cache = filepath.Join(f.StateDir, PartsDir)
	}
	var prior ruleset.Prior
	if v.cache != "" && applied != nil && applied.Scope == root.Scope {
		prior = ruleset.Prior{Since: last.Digest, Parts: applied.Parts, Keys: applied.Keys, Fetch: v.priorFetch}
	}
	view, err := ruleset.LoadViewSince(ctx, root, req, v.fetch, prior)
	res.StoreBytes += v.bytes
	res.PartsFetched += len(v.fetched)
	res.PartsCached += v.cached
	if err != nil {
		return nil, nil, fmt.Errorf("reading the parts of serial %d from %s: %w", root.Serial, store, err)
	}
	res.PartsCached += view.Prior
	return view, v.fetched, nil
}

// keepParts makes the cache hold exactly the parts named: those fetched
// are written, the others removed. The cache is an optimisation, verified
// on every read: a failure is logged, and a torn write is a cache miss,
// so the files are not fsynced (that would cost every first run).
func (f *Follower) keepParts(names []string, fetched map[string][]byte) {
	if f.writeParts(names, fetched) {
		f.pruneParts(names)
	}
}

// cacheDir returns the cache directory, created if names is not empty,
// or "" (logged) if it cannot be used.
func (f *Follower) cacheDir(names []string) string {
	if f.DryRun {
		return ""
	}
	log := f.logger()
	dir := filepath.Join(f.StateDir, PartsDir)
	if len(names) > 0 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			log.Warn("keeping the parts for the next run", "err", err)
			return ""
		}
	}
	// The cache must be the state directory's own directory: through a
	// symbolic link the writes and the pruning would land in (and empty)
	// whatever directory it points at.
	if fi, err := os.Lstat(dir); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("keeping the parts for the next run", "err", err)
		}
		return ""
	} else if !fi.IsDir() {
		log.Warn("keeping the parts for the next run: not a directory; nothing cached or pruned", "path", dir, "type", fileKind(fi.Mode()))
		return ""
	}
	return dir
}

// writeParts writes the parts of names that were fetched into the cache
// (the others came from it). It reports whether the cache can be used.
// The follower runs it while apply runs (it touches no kernel state), and
// prunes only once the new plan is recorded: until then the cache still
// holds the parts of the plan in force, which the next run may need.
func (f *Follower) writeParts(names []string, fetched map[string][]byte) bool {
	dir := f.cacheDir(names)
	if dir == "" {
		return false
	}
	for _, name := range names {
		b, ok := fetched[name]
		if !ok {
			continue // it came from the cache
		}
		if err := writeCacheFile(dir, name, b); err != nil {
			f.logger().Warn("keeping a part for the next run", "part", name, "err", err)
		}
	}
	return true
}

// pruneParts removes from the cache every file that names does not name.
func (f *Follower) pruneParts(names []string) {
	dir := filepath.Join(f.StateDir, PartsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			f.logger().Warn("pruning the parts kept for the next run", "err", err)
		}
		return
	}
	for _, e := range ents {
		if !slices.Contains(names, e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				f.logger().Warn("pruning the parts kept for the next run", "err", err)
			}
		}
	}
}

// readCacheFile reads a cached part of at most max bytes. Only a regular
// file is read: a FIFO, a device or a symbolic link in the cache is not a
// part this follower wrote, and is a miss.
func readCacheFile(path string, max int64) ([]byte, error) {
	return regfile.Read(path, max, syscall.O_NOFOLLOW)
}

// writeCacheFile writes a cached part under a temporary name and renames
// it, so that a reader never sees a part half written.
func writeCacheFile(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
