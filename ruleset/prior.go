package ruleset

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"

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
		p = &priorParts{fetch: prior.Fetch, changes: c, byBin: map[string]string{}, keys: map[string]bool{},
			parts: map[string]*part{}, failed: map[string]bool{}}
		for _, name := range prior.Parts {
			ref, _, err := parseName(name, Limits{}.withDefaults())
			if err != nil {
				continue
			}
			p.byBin[binKey(ref.Kind, ref.Bin)] = name
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

// priorParts are the parts of an earlier view a loader may use.
type priorParts struct {
	fetch   FetchFunc
	changes *Changes
	byBin   map[string]string // binKey -> the earlier part's name
	keys    map[string]bool   // the earlier view's keys

	mu     sync.Mutex
	parts  map[string]*part // loaded, by earlier name
	failed map[string]bool  // earlier parts that could not be read or checked
}

// binKey names a kind's bin.
func binKey(kind string, bin int) string { return fmt.Sprintf("%s/%d", kind, bin) }

// candidate is the earlier part that may hold the record of key (of kind,
// in the bin of ref) as it is in the root: "" if the record is not one the
// earlier view was made from, or the change list may hold it.
func (p *priorParts) candidate(ref PartRef, kind, key string) string {
	vk := ViewKey(kind, key)
	if p == nil || !p.keys[vk] || p.changes.MayHave(vk) {
		return ""
	}
	return p.byBin[binKey(ref.Kind, ref.Bin)]
}

// usable returns the loaded earlier part for key's record, or nil.
func (p *priorParts) usable(ref PartRef, kind, key string) *part {
	name := p.candidate(ref, kind, key)
	if name == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.parts[name]
}

// load reads the earlier parts that keys of kind may use (concurrently,
// from the follower's own copies), and returns the keys that need the
// root's part: those with no usable earlier part.
func (p *priorParts) load(ctx context.Context, l *loader, kind string, keys []string) ([]string, error) {
	want := map[string]PartRef{} // earlier name -> its ref, with this root's bins
	var pending []string
	for _, k := range keys {
		ref, err := l.refFor(kind, k)
		if err != nil {
			return nil, err
		}
		name := p.candidate(ref, kind, k)
		p.mu.Lock()
		failed, loaded := p.failed[name], p.parts[name] != nil
		p.mu.Unlock()
		if name == "" || failed || l.parts[ref.Name] != nil {
			pending = append(pending, k)
			continue
		}
		if !loaded {
			want[name] = PartRef{Name: name, Kind: ref.Kind, Bin: ref.Bin, Bins: ref.Bins}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxFetches)
	for name, ref := range want {
		g.Go(func() error {
			pt := p.open(gctx, ref)
			p.mu.Lock()
			defer p.mu.Unlock()
			if pt == nil {
				p.failed[name] = true
			} else {
				p.parts[name] = pt
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The keys whose earlier part failed need the root's.
	for _, k := range keys {
		ref, _ := l.refFor(kind, k)
		name := p.candidate(ref, kind, k)
		if name == "" || l.parts[ref.Name] != nil {
			continue
		}
		p.mu.Lock()
		failed := p.failed[name]
		p.mu.Unlock()
		if failed {
			pending = append(pending, k)
		}
	}
	slices.Sort(pending)
	return slices.Compact(pending), nil
}

// open reads and checks an earlier part: its size and digest prefix
// against its name, then its header against this root's bins (an earlier
// root with other bins had other parts). nil if any of it fails.
func (p *priorParts) open(ctx context.Context, want PartRef) *part {
	ref, prefix, err := parseName(want.Name, Limits{}.withDefaults())
	if err != nil || ref.Kind != want.Kind || ref.Bin != want.Bin {
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
