package ruleset

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
)

// FetchFunc returns the bytes of a part as the store holds them. LoadView
// and Join verify them against ref (size, then SHA-256) before reading
// anything; a FetchFunc need not, but should read at most ref.Size+1
// bytes. A part the store does not have is an error wrapping
// ErrPartMissing. It is called concurrently.
type FetchFunc func(ctx context.Context, ref PartRef) ([]byte, error)

// maxFetches bounds the concurrent calls of a FetchFunc.
const maxFetches = 8

// ViewRequest says what a host needs to find itself and render its plan:
// the groups it knows it is in, the IDs of its interfaces, and its
// addresses.
type ViewRequest struct {
	// Groups are security groups the host is in: those the operator
	// configured, or those the instance metadata service lists.
	Groups []string
	// InterfaceIDs are the host's interfaces, as the instance metadata
	// service names them.
	InterfaceIDs []string
	// Addrs are addresses to find the host by: its own, or those the
	// operator configured. Every interface that has one is in the view
	// (more than one with overlapping VPCs). IPv4-mapped IPv6 addresses
	// count as IPv4; an invalid or zoned address is an error.
	Addrs []netip.Addr
}

// View is the part of a split ruleset that one host needs.
type View struct {
	// Ruleset is partial: the root's header (Format is Format), every
	// VPC, the groups needed (those requested, those of the interfaces
	// found, and those their rules refer to) and the interfaces needed
	// (those found by ID or address, with all their groups, and the
	// members of the groups referred to, whose Groups are only the
	// groups of the view they are members of). A group or interface that
	// is not in the estate is not in the view either, as in the full
	// ruleset. Findings are left out. render.Render and Identify give
	// the same result on it as on the full ruleset for the request's
	// host.
	Ruleset *Ruleset
	// Parts are every part read, sorted by name, but for an earlier part
	// (LoadViewSince) of a bin whose root part was read too (the root's
	// holds every record of the bin as it is now). If a later root lists
	// all of them, the same request gives the same view (but for the
	// header).
	Parts []PartRef
	// Bytes is the sum of the sizes of Parts.
	Bytes int64
	// Prior counts the parts of Parts that an earlier view read
	// (LoadViewSince): parts of an earlier root, whose records the view
	// used are those of this root.
	Prior int
	// Keys are the records the view was made from, as ViewKey names them,
	// sorted: every key looked up in a part, found or not, and "vpcs:".
	// If a later root's Changes, since the root of this view, holds none
	// of them, the same request gives the same view (but for the header).
	Keys []string
}

// loader fetches, verifies and opens the parts of one root, each once.
type loader struct {
	root  *Root
	fetch FetchFunc
	lim   Limits
	parts map[string]*part
	// keys are the view keys looked up, found or not.
	keys map[string]bool
	// prior, if not nil, holds the parts of an earlier view that this
	// one may use for records that did not change since (LoadViewSince).
	prior *priorParts
}

func newLoader(root *Root, fetch FetchFunc) *loader {
	return &loader{root: root, fetch: fetch, lim: Limits{}.withDefaults(), parts: map[string]*part{}, keys: map[string]bool{}}
}

// load fetches and opens the parts of refs that are not loaded yet, at
// most maxFetches at once.
func (l *loader) load(ctx context.Context, refs []PartRef) error {
	var todo []PartRef
	seen := map[string]bool{}
	for _, r := range refs {
		if l.parts[r.Name] == nil && !seen[r.Name] {
			seen[r.Name] = true
			todo = append(todo, r)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	got := make([]*part, len(todo))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxFetches)
	for i, ref := range todo {
		g.Go(func() error {
			b, err := l.fetch(gctx, ref)
			if err != nil {
				return fmt.Errorf("fetching part %s: %w", ref.Name, err)
			}
			p, err := openPart(ref, b)
			if err != nil {
				return err
			}
			got[i] = p
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, ref := range todo {
		l.parts[ref.Name] = got[i]
	}
	return nil
}

// refFor is the part of the root holding key of kind.
func (l *loader) refFor(kind, key string) (PartRef, error) {
	ref, ok := l.root.Part(kind, key)
	if !ok {
		return PartRef{}, fmt.Errorf("%w: the root has no part of kind %s", ErrMalformed, kind)
	}
	return ref, nil
}

// partOf returns the loaded part holding key of kind: the root's, or an
// earlier view's whose record of key has not changed since. It records
// the key as one the view was made from.
func (l *loader) partOf(kind, key string) (*part, error) {
	l.keys[ViewKey(kind, key)] = true
	ref, err := l.refFor(kind, key)
	if err != nil {
		return nil, err
	}
	if p := l.parts[ref.Name]; p != nil {
		return p, nil
	}
	if p := l.prior.usable(ref, kind, key); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("internal error: part %s not loaded", ref.Name)
}

// keysOf are keys of one kind.
type keysOf struct {
	kind string
	keys []string
}

// loadKeys loads what the lookups of keys need, in one round: for each,
// the earlier view's part of its bin when the record is one that view
// was made from and the root's change list does not hold it, else the
// root's part. An earlier part that cannot be read or checked is no
// error: the root's part is fetched instead.
func (l *loader) loadKeys(ctx context.Context, steps ...keysOf) error {
	var fetch []PartRef
	for _, st := range steps {
		pending := st.keys
		if l.prior != nil {
			var err error
			if pending, err = l.prior.load(ctx, l, st.kind, st.keys); err != nil {
				return err
			}
		}
		for _, k := range pending {
			ref, err := l.refFor(st.kind, k)
			if err != nil {
				return err
			}
			fetch = append(fetch, ref)
		}
	}
	return l.load(ctx, fetch)
}

// lookup returns the loaded part holding key of kind and the key's line
// index in it, or -1 if the key is not there.
func (l *loader) lookup(kind, key string) (*part, int, error) {
	p, err := l.partOf(kind, key)
	if err != nil {
		return nil, 0, err
	}
	i, ok := p.find(key)
	if !ok {
		return p, -1, nil
	}
	return p, i, nil
}

// viewState is what LoadView found so far.
type viewState struct {
	l      *loader
	h      Header
	groups map[string]*Group      // decoded; nil value: not in the estate
	mem    map[string][]Interface // members of the referred groups in the estate
	full   map[string]*Interface  // interfaces found; nil value: not in the estate
}

func (s *viewState) group(id string) error {
	return decodeOnce(s, s.groups, KindGroups, id, nil, func(p *part, i int) (*Group, error) {
		g, err := p.decodeGroup(i, s.h, s.l.lim)
		return &g, err
	})
}

// members decodes the members of group id (decoded and in the estate)
// from its "m" bin: none if the bin has no line for it.
func (s *viewState) members(id string) error {
	return decodeOnce(s, s.mem, KindMembers, id, []Interface{}, func(p *part, i int) ([]Interface, error) {
		_, ms, err := p.decodeMembers(i, s.h, s.l.lim)
		return ms, err
	})
}

func (s *viewState) iface(id string) error {
	return decodeOnce(s, s.full, KindInterfaces, id, nil, func(p *part, i int) (*Interface, error) {
		n, err := p.decodeInterface(i, s.h, s.l.lim)
		return &n, err
	})
}

// decodeOnce fills m[id], unless it is there already, from the line of
// id in its bin of kind: absent if the bin has no line for id, else what
// decode makes of the line (nothing on an error).
func decodeOnce[T any](s *viewState, m map[string]T, kind, id string, absent T, decode func(p *part, i int) (T, error)) error {
	if _, done := m[id]; done {
		return nil
	}
	p, i, err := s.l.lookup(kind, id)
	if err != nil {
		return err
	}
	if i < 0 {
		m[id] = absent
		return nil
	}
	v, err := decode(p, i)
	if err != nil {
		return err
	}
	m[id] = v
	return nil
}

// LoadView reads what one host needs of a split ruleset, in rounds, each
// fetching its parts concurrently (at most 8 at once) and verifying each
// (size and SHA-256 against the root, then the header line and the order
// of the keys) before decoding only the lines needed:
//
//  1. the VPCs, the address bins of req.Addrs, the interface bins of
//     req.InterfaceIDs and the group bins of req.Groups;
//  2. the interface bins of the interfaces found by address;
//  3. the group bins of the groups of every interface found;
//  4. the group bins of every group that the rules of those groups (and
//     of req.Groups) refer to;
//  5. the member bins of the referred groups that are in the estate.
//
// A host reads the rules of its own groups but not their members (unless
// a rule refers to one of them): members churn with autoscaling, and a
// change of a group's members that the host's plan does not hold leaves
// the parts it read in place.
//
// Parts of different roots are never mixed: every part is checked against
// root. Errors name the part, the line and the key.
func LoadView(ctx context.Context, root *Root, req ViewRequest, fetch FetchFunc) (*View, error) {
	v, err := loadView(ctx, root, req, fetch, nil)
	if err != nil {
		return nil, fmt.Errorf("loading the view of serial %d: %w", root.Serial, err)
	}
	return v, nil
}

func loadView(ctx context.Context, root *Root, req ViewRequest, fetch FetchFunc, prior *priorParts) (*View, error) {
	if err := root.check(Limits{}.withDefaults()); err != nil {
		return nil, err
	}
	for _, g := range req.Groups {
		if !isGroupID(g) {
			return nil, fmt.Errorf("request: %q is not a security group ID", g)
		}
	}
	for _, id := range req.InterfaceIDs {
		if !isENIID(id) {
			return nil, fmt.Errorf("request: %q is not a network interface ID", id)
		}
	}
	var addrKeys []string
	for _, a := range req.Addrs {
		a = a.Unmap()
		if !a.IsValid() || a.Zone() != "" {
			return nil, fmt.Errorf("request: %q is not a plain IP address", a)
		}
		addrKeys = append(addrKeys, a.String())
	}
	l := newLoader(root, fetch)
	l.prior = prior
	h := root.Header
	h.Format = Format
	s := &viewState{l: l, h: h, groups: map[string]*Group{}, mem: map[string][]Interface{}, full: map[string]*Interface{}}

	// Round 1.
	if err := l.loadKeys(ctx, keysOf{KindVPCs, []string{""}}, keysOf{KindAddrs, addrKeys},
		keysOf{KindInterfaces, req.InterfaceIDs}, keysOf{KindGroups, req.Groups}); err != nil {
		return nil, err
	}
	vp, err := l.partOf(KindVPCs, "")
	if err != nil {
		return nil, err
	}
	vpcs := make([]VPC, 0, vp.lines())
	if err := decodeLines(vp, &vpcs, vp.decodeVPC, h, l.lim); err != nil {
		return nil, err
	}
	for _, id := range req.InterfaceIDs {
		if err := s.iface(id); err != nil {
			return nil, err
		}
	}
	for _, g := range req.Groups {
		if err := s.group(g); err != nil {
			return nil, err
		}
	}
	var byAddr []string
	addrOf := map[string][]netip.Addr{} // interface ID -> the requested addresses the index gives it
	for _, k := range addrKeys {
		p, i, err := l.lookup(KindAddrs, k)
		if err != nil {
			return nil, err
		}
		if i < 0 {
			continue
		}
		a, ids, err := p.decodeAddr(i)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			addrOf[id] = append(addrOf[id], a)
		}
		byAddr = append(byAddr, ids...)
	}

	// Round 2: the interfaces found by address.
	if byAddr, err = s.round(ctx, KindInterfaces, byAddr, s.iface); err != nil {
		return nil, err
	}
	for _, id := range byAddr {
		n := s.full[id]
		for _, a := range addrOf[id] {
			if n == nil || !slices.Contains(n.Addrs, a) {
				return nil, fmt.Errorf("%w: the address index lists %s for %s, whose interface record does not have it", ErrMalformed, a, id)
			}
		}
	}

	// Round 3: the groups of every interface found.
	hostGroups := slices.Clone(req.Groups)
	for _, n := range s.full {
		if n != nil {
			hostGroups = append(hostGroups, n.Groups...)
		}
	}
	if hostGroups, err = s.round(ctx, KindGroups, hostGroups, s.group); err != nil {
		return nil, err
	}

	// Round 4: the groups the host's groups refer to.
	var refd []string
	for _, id := range hostGroups {
		g := s.groups[id]
		if g == nil {
			continue
		}
		for _, r := range g.Rules {
			refd = append(refd, r.Groups...)
			for _, sr := range r.Scoped {
				refd = append(refd, sr.Group)
			}
		}
	}
	if refd, err = s.round(ctx, KindGroups, refd, s.group); err != nil {
		return nil, err
	}

	// Round 5: the members of the referred groups that exist (a stale
	// reference allows nothing and needs no members).
	var live []string
	for _, id := range refd {
		if s.groups[id] != nil {
			live = append(live, id)
		}
	}
	if _, err := s.round(ctx, KindMembers, live, s.members); err != nil {
		return nil, err
	}

	rs, err := s.ruleset(vpcs, refd)
	if err != nil {
		return nil, err
	}
	v := &View{Ruleset: rs}
	for _, p := range l.parts {
		v.Parts = append(v.Parts, p.ref)
		v.Bytes += p.ref.Size
	}
	// An earlier part is kept only for a bin whose root part was not
	// read: a root part read holds the current record of every key of
	// the bin, while the earlier part holds stale records of the keys
	// that made the root part necessary.
	read := map[binOf]bool{}
	for _, p := range l.parts {
		read[binOf{p.ref.Kind, p.ref.Bin}] = true
	}
	for _, p := range l.prior.used() {
		if read[binOf{p.ref.Kind, p.ref.Bin}] {
			continue
		}
		v.Parts = append(v.Parts, p.ref)
		v.Bytes += p.ref.Size
		v.Prior++
	}
	slices.SortFunc(v.Parts, func(a, b PartRef) int { return strings.Compare(a.Name, b.Name) })
	for k := range l.keys {
		v.Keys = append(v.Keys, k)
	}
	slices.Sort(v.Keys)
	return v, nil
}

// decodeLines appends to *out what decode makes of every line of p, in
// order, up to the first error.
func decodeLines[T any](p *part, out *[]T, decode func(i int, h Header, lim Limits) (T, error), h Header, lim Limits) error {
	for i := range p.lines() {
		v, err := decode(i, h, lim)
		if err != nil {
			return err
		}
		*out = append(*out, v)
	}
	return nil
}

// round sorts ids, drops repeats, loads the parts of kind that hold them,
// then decodes each with decode. It returns the ids sorted, each once.
func (s *viewState) round(ctx context.Context, kind string, ids []string, decode func(id string) error) ([]string, error) {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if err := s.l.loadKeys(ctx, keysOf{kind, ids}); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := decode(id); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// ruleset assembles the partial ruleset: the groups decoded, the
// interfaces found, and the members of the referenced groups refd.
func (s *viewState) ruleset(vpcs []VPC, refd []string) (*Ruleset, error) {
	rs := &Ruleset{Header: s.h, VPCs: vpcs, Groups: []Group{}, Interfaces: []Interface{}}
	for _, g := range s.groups {
		if g != nil {
			rs.Groups = append(rs.Groups, *g)
		}
	}
	slices.SortFunc(rs.Groups, func(a, b Group) int { return strings.Compare(a.ID, b.ID) })
	ifs := map[string]*Interface{}
	for id, n := range s.full {
		if n != nil {
			c := *n
			c.Groups = slices.Clone(n.Groups)
			ifs[id] = &c
		}
	}
	for _, gid := range refd {
		if s.groups[gid] == nil {
			continue
		}
		for _, m := range s.mem[gid] {
			f, looked := s.full[m.ID]
			if looked && f == nil {
				return nil, fmt.Errorf("%w: group %s lists member %s, which has no interface record (part %s)", ErrMalformed, gid, m.ID, partFor(s.l.root, KindInterfaces, m.ID))
			}
			if f != nil {
				if !slices.Contains(f.Groups, gid) || !sameMember(f, &m) {
					return nil, fmt.Errorf("%w: group %s lists member %s, which differs from its interface record", ErrMalformed, gid, m.ID)
				}
				continue
			}
			if n := ifs[m.ID]; n != nil {
				if !sameMember(n, &m) {
					return nil, fmt.Errorf("%w: interface %s is a member of %s and %s with different records", ErrMalformed, m.ID, n.Groups[0], gid)
				}
				n.Groups = append(n.Groups, gid)
				continue
			}
			c := m
			c.Groups = []string{gid}
			ifs[m.ID] = &c
		}
	}
	// A found interface in a referenced group must be among its members.
	for _, gid := range refd {
		if s.groups[gid] == nil {
			continue
		}
		for id, n := range s.full {
			if n != nil && slices.Contains(n.Groups, gid) {
				if _, ok := slices.BinarySearchFunc(s.mem[gid], id, func(m Interface, id string) int { return strings.Compare(m.ID, id) }); !ok {
					return nil, fmt.Errorf("%w: interface %s is in group %s, whose members do not list it", ErrMalformed, id, gid)
				}
			}
		}
	}
	for _, n := range ifs {
		slices.Sort(n.Groups)
		rs.Interfaces = append(rs.Interfaces, *n)
	}
	slices.SortFunc(rs.Interfaces, func(a, b Interface) int { return strings.Compare(a.ID, b.ID) })
	if err := rs.Validate(); err != nil {
		return nil, fmt.Errorf("the view: %w", err)
	}
	return rs, nil
}

// sameMember reports whether a member record m of a group describes the
// interface n.
func sameMember(n, m *Interface) bool {
	return n.ID == m.ID && n.Region == m.Region && n.VPC == m.VPC && slices.Equal(n.Addrs, m.Addrs) && slices.Equal(n.Prefixes, m.Prefixes)
}

// Join reads every part of root and returns the whole ruleset. It checks
// each part (size and SHA-256, header, key order, each key in its bin,
// each value as Validate would), that the parts agree with each other
// (each group's members line lists exactly the interfaces in it, every
// members line is of a group of a "g" part, each address
// line exactly the interfaces that have the address) and validates the
// result. Encode(Join(Split(rs))) is Encode(rs), byte for byte.
func Join(ctx context.Context, root *Root, fetch FetchFunc) (*Ruleset, error) {
	rs, err := join(ctx, root, fetch)
	if err != nil {
		return nil, fmt.Errorf("joining the parts of serial %d: %w", root.Serial, err)
	}
	return rs, nil
}

func join(ctx context.Context, root *Root, fetch FetchFunc) (*Ruleset, error) {
	lim := Limits{}.withDefaults()
	if err := root.check(lim); err != nil {
		return nil, err
	}
	l := newLoader(root, fetch)
	if err := l.load(ctx, root.Parts); err != nil {
		return nil, err
	}
	h := root.Header
	h.Format = Format
	rs := &Ruleset{Header: h, VPCs: []VPC{}, Groups: []Group{}, Interfaces: []Interface{}}
	members := map[string][]Interface{}
	addrs := map[netip.Addr][]string{}
	// Parts decode independently: one goroutine per part, bounded.
	type decoded struct {
		vpcs     []VPC
		groups   []Group
		memberOf []string
		members  [][]Interface
		ifs      []Interface
		addrs    []netip.Addr
		addrIDs  [][]string
		findings []Finding
	}
	memberPart := map[string]string{} // group ID -> the name of its members' part
	addrPart := map[netip.Addr]string{}
	out := make([]decoded, len(root.Parts))
	var g errgroup.Group
	g.SetLimit(maxFetches)
	for pi, ref := range root.Parts {
		p := l.parts[ref.Name]
		d := &out[pi]
		g.Go(func() error {
			switch ref.Kind {
			case KindVPCs:
				return decodeLines(p, &d.vpcs, p.decodeVPC, h, lim)
			case KindFindings:
				return decodeLines(p, &d.findings, p.decodeFinding, h, lim)
			case KindGroups:
				return decodeLines(p, &d.groups, p.decodeGroup, h, lim)
			case KindInterfaces:
				return decodeLines(p, &d.ifs, p.decodeInterface, h, lim)
			case KindMembers:
				for i := range p.lines() {
					gid, m, err := p.decodeMembers(i, h, lim)
					if err != nil {
						return err
					}
					d.memberOf = append(d.memberOf, gid)
					d.members = append(d.members, m)
				}
			case KindAddrs:
				for i := range p.lines() {
					a, ids, err := p.decodeAddr(i)
					if err != nil {
						return err
					}
					d.addrs = append(d.addrs, a)
					d.addrIDs = append(d.addrIDs, ids)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for pi, d := range out {
		rs.VPCs = append(rs.VPCs, d.vpcs...)
		rs.Findings = append(rs.Findings, d.findings...)
		rs.Groups = append(rs.Groups, d.groups...)
		for i, gid := range d.memberOf {
			members[gid] = d.members[i]
			memberPart[gid] = root.Parts[pi].Name
		}
		rs.Interfaces = append(rs.Interfaces, d.ifs...)
		for i, a := range d.addrs {
			addrs[a] = d.addrIDs[i]
			addrPart[a] = root.Parts[pi].Name
		}
	}
	slices.SortFunc(rs.Groups, func(a, b Group) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(rs.Interfaces, func(a, b Interface) int { return strings.Compare(a.ID, b.ID) })
	if len(rs.Findings) == 0 {
		rs.Findings = nil
	}
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	// Cross-part consistency.
	want := map[string][]*Interface{}
	wantAddrs := 0
	for i := range rs.Interfaces {
		n := &rs.Interfaces[i]
		for _, gid := range n.Groups {
			want[gid] = append(want[gid], n)
		}
		for _, a := range n.Addrs {
			wantAddrs++
			ids := addrs[a]
			if _, ok := slices.BinarySearch(ids, n.ID); !ok {
				return nil, fmt.Errorf("%w: interface %s has address %s, which the address index (part %s) does not list for it", ErrMalformed, n.ID, a, partFor(root, KindAddrs, a.String()))
			}
		}
	}
	got := 0
	for _, ids := range addrs {
		got += len(ids)
	}
	if got != wantAddrs {
		for a, ids := range addrs {
			for _, id := range ids {
				if n := findInterface(rs, id); n == nil || !slices.Contains(n.Addrs, a) {
					return nil, fmt.Errorf("%w: part %s: address %s: interface %s does not have it", ErrMalformed, addrPart[a], a, id)
				}
			}
		}
		return nil, fmt.Errorf("%w: the address index lists %d interface addresses, the interfaces have %d", ErrMalformed, got, wantAddrs)
	}
	for gid := range members {
		if findGroup(rs, gid) == nil {
			return nil, fmt.Errorf("%w: part %s: members of group %s, which no group part holds", ErrMalformed, memberPart[gid], gid)
		}
	}
	for _, gr := range rs.Groups {
		m, w := members[gr.ID], want[gr.ID]
		if len(m) != len(w) {
			return nil, fmt.Errorf("%w: part %s: group %s lists %d members, %d interfaces are in it", ErrMalformed, partFor(root, KindMembers, gr.ID), gr.ID, len(m), len(w))
		}
		for i := range m {
			if !sameMember(w[i], &m[i]) {
				return nil, fmt.Errorf("%w: part %s: group %s: member %s differs from interface %s", ErrMalformed, memberPart[gr.ID], gr.ID, m[i].ID, w[i].ID)
			}
		}
	}
	return rs, nil
}

// findGroup returns the group of rs (sorted) with that ID, or nil.
func findGroup(rs *Ruleset, id string) *Group {
	i, ok := slices.BinarySearchFunc(rs.Groups, id, func(g Group, id string) int { return strings.Compare(g.ID, id) })
	if !ok {
		return nil
	}
	return &rs.Groups[i]
}

// findInterface returns the interface of rs (sorted) with that ID, or nil.
func findInterface(rs *Ruleset, id string) *Interface {
	i, ok := slices.BinarySearchFunc(rs.Interfaces, id, func(n Interface, id string) int { return strings.Compare(n.ID, id) })
	if !ok {
		return nil
	}
	return &rs.Interfaces[i]
}

// partFor is the name of the part of root holding key of kind, or "none".
func partFor(root *Root, kind, key string) string {
	if p, ok := root.Part(kind, key); ok {
		return p.Name
	}
	return "none"
}
