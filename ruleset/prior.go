package ruleset

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
)

// Prior is what a follower kept of the view it made from an earlier root,
// for LoadViewSince.
type Prior struct {
	// Since is the SHA-256 of the root payload accepted last. Its records
	// of Keys are those the earlier view was made from: every root
	// accepted since that view was made left them as they were.
	Since [32]byte
	// Parts are the names of the parts the earlier view read (View.Parts).
	Parts []string
	// Keys are the earlier view's View.Keys.
	Keys []string
	// Fetch reads an earlier part by name (its PartRef has the Name,
	// Kind, Bin, Bins and Size of the name, and no SHA256: LoadViewSince
	// checks the size and the 128-bit digest prefix the name holds, then
	// the header). It should read at most ref.Size+1 bytes, and never
	// from the store: a part it cannot give is read from the root.
	Fetch FetchFunc
}

// LoadViewSince is LoadView for a follower that kept the parts of an
// earlier view: when root's change list is since prior.Since, a record
// the earlier view was made from that the list does not hold is read
// from the earlier view's part of its bin (through prior.Fetch) rather
// than from the root's, which is not fetched if no other record needs it.
// Under churn that touches every bin but few of a host's records, a
// change of one of them then costs the bins of the records that changed,
// not every bin the churn touched. The view is the one LoadView gives:
// the records used are this root's (the change list is signed with it).
// Without a matching change list it is LoadView.
func LoadViewSince(ctx context.Context, root *Root, req ViewRequest, fetch FetchFunc, prior Prior) (*View, error) {
	var p *priorParts
	if c := root.ChangesSince(prior.Since); c != nil && prior.Fetch != nil && len(prior.Parts) > 0 {
		p = &priorParts{fetch: prior.Fetch, changes: c, byBin: map[binOf]string{}, keys: map[string]bool{},
			parts: map[string]*part{}, failed: map[string]bool{}}
		for _, name := range prior.Parts {
			ref, _, err := parseName(name, Limits{}.withDefaults())
			if err != nil {
				continue
			}
			p.byBin[binOf{ref.Kind, ref.Bin}] = name
		}
		for _, k := range prior.Keys {
			p.keys[k] = true
		}
	}
	v, err := loadView(ctx, root, req, fetch, p)
	if err != nil {
		return nil, fmt.Errorf("loading the view of serial %d: %w", root.Serial, err)
	}
	return v, nil
}

// priorParts are the parts of an earlier view a loader may use. The
// loader's rounds are sequential: only open runs concurrently, and its
// results are stored after the wait, so nothing here needs a lock.
type priorParts struct {
	fetch   FetchFunc
	changes *Changes
	byBin   map[binOf]string // the earlier part's name of each bin
	keys    map[string]bool  // the earlier view's keys

	parts  map[string]*part // loaded, by earlier name
	failed map[string]bool  // earlier parts that could not be read or checked
}

// binOf names a bin of a kind.
type binOf struct {
	kind string
	bin  int
}

// candidate is the earlier part that may hold the record of key (of kind,
// in the bin of ref) as it is in the root: "" if the record is not one the
// earlier view was made from, or the change list may hold it.
func (p *priorParts) candidate(ref PartRef, kind, key string) string {
	vk := ViewKey(kind, key)
	if p == nil || !p.keys[vk] || p.changes.MayHave(vk) {
		return ""
	}
	return p.byBin[binOf{ref.Kind, ref.Bin}]
}

// usable returns the loaded earlier part for key's record, or nil.
func (p *priorParts) usable(ref PartRef, kind, key string) *part {
	if name := p.candidate(ref, kind, key); name != "" {
		return p.parts[name]
	}
	return nil
}

// load reads the earlier parts that keys of kind may use (concurrently,
// from the follower's own copies), and returns the keys that need the
// root's part: those with no usable earlier part (a root part already
// loaded serves them too).
func (p *priorParts) load(ctx context.Context, l *loader, kind string, keys []string) ([]string, error) {
	names := make([]string, len(keys)) // the earlier part each key may use, or ""
	want := map[string]PartRef{}       // earlier parts to open, with this root's bins
	for i, k := range keys {
		ref, err := l.refFor(kind, k)
		if err != nil {
			return nil, err
		}
		if l.parts[ref.Name] != nil {
			continue
		}
		names[i] = p.candidate(ref, kind, k)
		if n := names[i]; n != "" && p.parts[n] == nil && !p.failed[n] {
			want[n] = PartRef{Name: n, Kind: ref.Kind, Bin: ref.Bin, Bins: ref.Bins}
		}
	}
	refs := slices.Collect(maps.Values(want))
	opened := make([]*part, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxFetches)
	for i, ref := range refs {
		g.Go(func() error {
			opened[i] = p.open(gctx, ref)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, ref := range refs {
		if opened[i] == nil {
			p.failed[ref.Name] = true
		} else {
			p.parts[ref.Name] = opened[i]
		}
	}
	var pending []string
	for i, k := range keys {
		if names[i] == "" || p.failed[names[i]] {
			pending = append(pending, k)
		}
	}
	return pending, nil
}

// open reads and checks an earlier part: its size and digest prefix
// against its name, then its header against this root's bins (an earlier
// root with other bins had other parts). nil if any of it fails.
func (p *priorParts) open(ctx context.Context, want PartRef) *part {
	ref, prefix, err := parseName(want.Name, Limits{}.withDefaults())
	if err != nil {
		return nil
	}
	ref.Bins = want.Bins
	b, err := p.fetch(ctx, ref)
	if err != nil || int64(len(b)) != ref.Size {
		return nil
	}
	ref.SHA256 = sha256.Sum256(b)
	if [nameDigestBytes]byte(ref.SHA256[:nameDigestBytes]) != prefix {
		return nil
	}
	pt, err := openPart(ref, b)
	if err != nil {
		return nil
	}
	return pt
}

// used returns the earlier parts loaded, sorted by name.
func (p *priorParts) used() []*part {
	if p == nil {
		return nil
	}
	var out []*part
	for _, pt := range p.parts {
		out = append(out, pt)
	}
	slices.SortFunc(out, func(a, b *part) int { return strings.Compare(a.ref.Name, b.ref.Name) })
	return out
}
