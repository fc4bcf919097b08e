package ruleset

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"

	"github.com/reyes-fw/reyes/internal/errtext"
)

// partMember is a group's member in an "m" part: an Interface without
// its groups.
type partMember struct {
	ID       string         `json:"id"`
	Region   string         `json:"region"`
	VPC      string         `json:"vpc"`
	Addrs    []netip.Addr   `json:"addrs"`
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
}

// partHeader is the first line of a part, without its newline.
func partHeader(kind string, bin, bins int) string {
	return PartFormat + " " + kind + " " + strconv.Itoa(bin) + "/" + strconv.Itoa(bins)
}

// VerifyPart checks body against ref: its size, then its SHA-256. The
// error wraps ErrPartMismatch and names the part.
func VerifyPart(ref PartRef, body []byte) error {
	if int64(len(body)) != ref.Size {
		return fmt.Errorf("part %s: %w: %d bytes, the root says %d", ref.Name, ErrPartMismatch, len(body), ref.Size)
	}
	if sha256.Sum256(body) != ref.SHA256 {
		return fmt.Errorf("part %s: %w: the SHA-256 of its bytes differs from the root's", ref.Name, ErrPartMismatch)
	}
	return nil
}

// part is a verified part whose lines were scanned: the header line is
// right and the keys strictly ascending. Values are decoded on demand.
type part struct {
	ref  PartRef
	data []byte
	// starts are the offsets of the lines after the header; line n (1 is
	// the header) starts at starts[n-2].
	starts []int32
}

// errorf is an error about the part, naming it, and the line and key if
// given (a key that is not plain printable ASCII is quoted).
func (p *part) errorf(line int, key string, format string, args ...any) error {
	where := "part " + p.ref.Name
	if line > 0 {
		where += ": line " + strconv.Itoa(line)
	}
	if key != "" {
		k := errtext.Clip(key)
		if strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '(' || r == ')' }) {
			k = strconv.Quote(k)
		}
		where += " (" + k + ")"
	}
	return fmt.Errorf("%s: "+format, append([]any{where}, args...)...)
}

// openPart verifies body against ref (size and SHA-256) before anything
// else, then checks the header line and that every line is "<key>\t..."
// with keys strictly ascending. It decodes no value.
func openPart(ref PartRef, body []byte) (*part, error) {
	if err := VerifyPart(ref, body); err != nil {
		return nil, err
	}
	p := &part{ref: ref, data: body}
	head := partHeader(ref.Kind, ref.Bin, ref.Bins) + "\n"
	if !bytes.HasPrefix(body, []byte(head)) {
		first, _, _ := bytes.Cut(body, []byte("\n"))
		return nil, p.errorf(1, "", "%w: header %q, want %q", ErrMalformed, errtext.Clip(string(first)), head[:len(head)-1])
	}
	if i := bytes.IndexByte(body, '\r'); i >= 0 {
		return nil, p.errorf(bytes.Count(body[:i], []byte("\n"))+1, "", "%w: a CR (want LF line ends and compact JSON)", ErrMalformed)
	}
	if len(body) > 1<<31-1 {
		return nil, p.errorf(0, "", "%w: %d bytes", ErrTooLarge, len(body))
	}
	p.starts = make([]int32, 0, bytes.Count(body, []byte("\n"))-1)
	var prev []byte
	for off := len(head); off < len(body); {
		line := len(p.starts) + 2
		end := bytes.IndexByte(body[off:], '\n')
		if end < 0 {
			return nil, p.errorf(line, "", "%w: no final newline", ErrMalformed)
		}
		l := body[off : off+end]
		tab := bytes.IndexByte(l, '\t')
		if tab <= 0 {
			return nil, p.errorf(line, "", "%w: %q is not <key><tab><value>", ErrMalformed, errtext.Clip(string(l)))
		}
		key := l[:tab]
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			return nil, p.errorf(line, string(key), "%w: key out of order or listed twice (want keys strictly ascending)", ErrMalformed)
		}
		prev = key
		p.starts = append(p.starts, int32(off))
		off += end + 1
	}
	return p, nil
}

// lines is the number of lines after the header.
func (p *part) lines() int { return len(p.starts) }

// line returns the key and value of line i (0-based, after the header)
// and its line number in the part.
func (p *part) line(i int) (key string, val []byte, lineNo int) {
	off := int(p.starts[i])
	end := len(p.data)
	if i+1 < len(p.starts) {
		end = int(p.starts[i+1])
	}
	l := p.data[off : end-1]
	tab := bytes.IndexByte(l, '\t')
	return string(l[:tab]), l[tab+1:], i + 2
}

// find returns the index of the line with key, by binary search over the
// sorted keys.
func (p *part) find(key string) (int, bool) {
	return slices.BinarySearchFunc(p.starts, []byte(key), func(off int32, k []byte) int {
		l := p.data[off:]
		return bytes.Compare(l[:bytes.IndexByte(l, '\t')], k)
	})
}

// checkBin checks that key belongs to this part's bin.
func (p *part) checkBin(key string, lineNo int) error {
	if p.ref.Kind == KindVPCs || p.ref.Kind == KindFindings {
		return nil
	}
	if b := BinOf(key, p.ref.Bins); b != p.ref.Bin {
		return p.errorf(lineNo, key, "%w: the key belongs in bin %d of %d, not %d", ErrMalformed, b, p.ref.Bins, p.ref.Bin)
	}
	return nil
}

// valueError wraps err, about the value of line lineNo, naming the part,
// the line and the key.
func (p *part) valueError(lineNo int, key string, err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return p.errorf(lineNo, key, "%w", ve)
	}
	return p.errorf(lineNo, key, "%w: %w", ErrMalformed, err)
}

// relField turns a field path of a one-element ruleset that Validate
// named ("groups[0](sg-1).rules[2]", "interfaces[3](eni-1).addrs[0]") into
// one relative to a part's line ("rules[2]", "members[3](eni-1).addrs[0]").
func relField(ve *ValidationError, members bool) *ValidationError {
	f := ve.Field
	for _, top := range []string{"vpcs[0]", "groups[0]", "findings[0]"} {
		if rest, ok := strings.CutPrefix(f, top); ok {
			return &ValidationError{Field: afterID(rest), Reason: ve.Reason}
		}
	}
	if rest, ok := strings.CutPrefix(f, "interfaces"); ok {
		if members {
			f = "members" + rest
		} else {
			_, rest, _ = strings.Cut(rest, "]")
			f = afterID(rest)
		}
	}
	return &ValidationError{Field: f, Reason: ve.Reason}
}

// afterID returns what follows a field path's top element, rest, without
// the element's "(id)" and the dot: "value" when nothing follows.
func afterID(rest string) string {
	if i := strings.IndexByte(rest, ')'); strings.HasPrefix(rest, "(") && i > 0 {
		rest = rest[i+1:]
	}
	if f := strings.TrimPrefix(rest, "."); f != "" {
		return f
	}
	return "value"
}

// validateOne normalizes (as Decode does) and validates a ruleset of one
// element (and a group's members) with Validate's rules, naming fields
// relative to the line. The elements of rs's slices are normalized in
// place.
func validateOne(h Header, rs Ruleset, members bool, lim Limits) error {
	rs.Header = h
	rs.normalize()
	if err := rs.ValidateLimits(lim); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return relField(ve, members)
		}
		return err
	}
	return nil
}

// decodeGroup decodes and validates line i of a "g" part: the group
// (its rules; its members are in an "m" part).
func (p *part) decodeGroup(i int, h Header, lim Limits) (Group, error) {
	return decodeKeyed(p, i, h, lim, true, func(g *Group) string { return g.ID },
		func(rs *Ruleset, g Group) *Group { rs.Groups = []Group{g}; return &rs.Groups[0] })
}

// decodeKeyed decodes and validates line i of a part whose values carry
// their key as ID (id reads it): strict, the ID the key, valid alone as
// the one element put reads into a Ruleset (normalize and Validate work on
// that element, which put returns), canonical. binned parts also check
// the key belongs in the bin.
func decodeKeyed[T any](p *part, i int, h Header, lim Limits, binned bool, id func(*T) string, put func(*Ruleset, T) *T) (T, error) {
	var zero T
	key, val, lineNo := p.line(i)
	if binned {
		if err := p.checkBin(key, lineNo); err != nil {
			return zero, err
		}
	}
	var v T
	if err := strictUnmarshal(val, &v); err != nil {
		return zero, p.valueError(lineNo, key, err)
	}
	if got := id(&v); got != key {
		return zero, p.errorf(lineNo, key, "%w: id %q differs from the key", ErrMalformed, errtext.Clip(got))
	}
	var rs Ruleset
	elem := put(&rs, v)
	if err := validateOne(h, rs, false, lim); err != nil {
		return zero, p.valueError(lineNo, key, err)
	}
	if err := p.canonical(lineNo, key, val, elem); err != nil {
		return zero, err
	}
	return *elem, nil
}

// decodeMembers decodes and validates line i of an "m" part: the group
// (the key) and its members, sorted by ID, at least one, as interfaces
// whose Groups are the group alone.
func (p *part) decodeMembers(i int, h Header, lim Limits) (string, []Interface, error) {
	key, val, lineNo := p.line(i)
	if !isGroupID(key) {
		return "", nil, p.errorf(lineNo, key, "%w: the key is not a security group ID", ErrMalformed)
	}
	if err := p.checkBin(key, lineNo); err != nil {
		return "", nil, err
	}
	var ms []partMember
	if err := strictUnmarshal(val, &ms); err != nil {
		return "", nil, p.valueError(lineNo, key, err)
	}
	if len(ms) == 0 {
		return "", nil, p.errorf(lineNo, key, "%w: no members (a group without members has no line)", ErrMalformed)
	}
	ifs := make([]Interface, len(ms))
	for j, m := range ms {
		ifs[j] = Interface{ID: m.ID, Region: m.Region, VPC: m.VPC, Addrs: m.Addrs, Prefixes: m.Prefixes, Groups: []string{key}}
	}
	// normalize and Validate work on the elements of this slice; Validate
	// checks the IDs are sorted and unique.
	rs := Ruleset{Interfaces: ifs}
	if err := validateOne(h, rs, true, lim); err != nil {
		return "", nil, p.valueError(lineNo, key, err)
	}
	for j, n := range ifs {
		ms[j] = partMember{ID: n.ID, Region: n.Region, VPC: n.VPC, Addrs: n.Addrs, Prefixes: n.Prefixes}
	}
	if err := p.canonical(lineNo, key, val, ms); err != nil {
		return "", nil, err
	}
	return key, ifs, nil
}

// decodeInterface decodes and validates line i of an "i" part.
func (p *part) decodeInterface(i int, h Header, lim Limits) (Interface, error) {
	return decodeKeyed(p, i, h, lim, true, func(n *Interface) string { return n.ID },
		func(rs *Ruleset, n Interface) *Interface { rs.Interfaces = []Interface{n}; return &rs.Interfaces[0] })
}

// decodeVPC decodes and validates line i of the "vpcs" part.
func (p *part) decodeVPC(i int, h Header, lim Limits) (VPC, error) {
	return decodeKeyed(p, i, h, lim, false, func(v *VPC) string { return v.ID },
		func(rs *Ruleset, v VPC) *VPC { rs.VPCs = []VPC{v}; return &rs.VPCs[0] })
}

// decodeFinding decodes and validates line i of the "findings" part,
// whose key must be i as 6 digits.
func (p *part) decodeFinding(i int, h Header, lim Limits) (Finding, error) {
	key, val, lineNo := p.line(i)
	if want := findingKey(i); key != want {
		return Finding{}, p.errorf(lineNo, key, "%w: want key %s (the findings numbered from 000000 on)", ErrMalformed, want)
	}
	var f Finding
	if err := strictUnmarshal(val, &f); err != nil {
		return Finding{}, p.valueError(lineNo, key, err)
	}
	if err := validateOne(h, Ruleset{Findings: []Finding{f}}, false, lim); err != nil {
		return Finding{}, p.valueError(lineNo, key, err)
	}
	if err := p.canonical(lineNo, key, val, &f); err != nil {
		return Finding{}, err
	}
	return f, nil
}

// findingKey is the key of the i-th finding.
func findingKey(i int) string {
	s := strconv.Itoa(i)
	return strings.Repeat("0", max(0, 6-len(s))) + s
}

// decodeAddr decodes and validates line i of an "a" part: the address
// and the IDs of the interfaces that have it.
func (p *part) decodeAddr(i int) (netip.Addr, []string, error) {
	key, val, lineNo := p.line(i)
	a, err := netip.ParseAddr(key)
	if err != nil || a.String() != key {
		return netip.Addr{}, nil, p.errorf(lineNo, key, "%w: the key is not an IP address in canonical form", ErrMalformed)
	}
	if err := p.checkBin(key, lineNo); err != nil {
		return netip.Addr{}, nil, err
	}
	if err := checkAddr("key", a); err != nil {
		return netip.Addr{}, nil, p.valueError(lineNo, key, err)
	}
	var ids []string
	if err := strictUnmarshal(val, &ids); err != nil {
		return netip.Addr{}, nil, p.valueError(lineNo, key, err)
	}
	if len(ids) == 0 {
		return netip.Addr{}, nil, p.errorf(lineNo, key, "%w: no interfaces", ErrMalformed)
	}
	for j, id := range ids {
		if !isENIID(id) {
			return netip.Addr{}, nil, p.valueError(lineNo, key, invalid(at("", "interfaces", j), "%q is not a network interface ID", errtext.Clip(id)))
		}
		if j > 0 && ids[j-1] >= id {
			return netip.Addr{}, nil, p.valueError(lineNo, key, invalid(at("", "interfaces", j), "%s is out of order or listed twice", id))
		}
	}
	if err := p.canonical(lineNo, key, val, ids); err != nil {
		return netip.Addr{}, nil, err
	}
	return a, ids, nil
}

// canonical checks that val, which decoded to v, is v's canonical
// encoding (what Split writes): one content has one encoding, so the
// digest of a part stands for its content and a person reads what a
// follower decodes.
func (p *part) canonical(lineNo int, key string, val []byte, v any) error {
	b, err := json.Marshal(v, jsonOptions)
	if err != nil {
		return p.errorf(lineNo, key, "%w: %w", ErrMalformed, err)
	}
	if !bytes.Equal(b, val) {
		return p.errorf(lineNo, key, "%w: the value is not in canonical form (compact JSON, fields in order, lists sorted, no null for an empty list)", ErrMalformed)
	}
	return nil
}

// encodePart writes a part: the header line, then "<key>\t<value>\n" for
// each line, which must be sorted by key.
func encodePart(kind string, bin, bins int, lines []partLine) []byte {
	n := len(PartFormat) + 32
	for _, l := range lines {
		n += len(l.key) + len(l.val) + 2
	}
	b := make([]byte, 0, n)
	b = append(b, partHeader(kind, bin, bins)...)
	b = append(b, '\n')
	for _, l := range lines {
		b = append(b, l.key...)
		b = append(b, '\t')
		b = append(b, l.val...)
		b = append(b, '\n')
	}
	return b
}

// partLine is one line of a part being written.
type partLine struct {
	key string
	val []byte
}
