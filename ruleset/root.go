package ruleset

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/reyes-fw/reyes/internal/errtext"
	"github.com/reyes-fw/reyes/internal/strictjson"
)

// RootFormat is the first line of a root payload, after "# ".
const RootFormat = "reyes.root/v1"

// PartFormat is the first word of a part's header line.
const PartFormat = "reyes.part/v1"

// The kinds of part. Addresses, groups, interfaces and group members are
// split into bins (a power of two of them, by BinOf of the key); VPCs and
// findings are one part each. A group's rules ("g") and its members ("m")
// are apart because members churn (autoscaling) and rules rarely change: a
// host reads the rules of its own groups and of the groups they refer to,
// but the members of the referenced groups only.
const (
	KindAddrs      = "a"
	KindGroups     = "g"
	KindInterfaces = "i"
	KindMembers    = "m"
	KindVPCs       = "vpcs"
	KindFindings   = "findings"
)

// Bounds of the split format.
const (
	// MaxRootBytes bounds a root payload: 4 × 4,096 bins of ~150 bytes
	// fit with room to spare.
	MaxRootBytes = 4 << 20
	// MaxBins bounds the bins of one kind.
	MaxBins = 4096
)

// Errors of the split format, besides ErrUnknownFormat, ErrMalformed,
// ErrTooLarge and *ValidationError.
var (
	// ErrPartMismatch: a part's bytes do not have the size or SHA-256 its
	// root names (a part of another publish, a corrupt or truncated copy).
	ErrPartMismatch = errors.New("part does not match its root")
	// ErrPartMissing: the store has no part of that name. A FetchFunc
	// wraps it (along with the store's own not-found error).
	ErrPartMissing = errors.New("part missing")
)

// binnedKinds are the kinds split into bins, in the order of their names.
var binnedKinds = [...]string{KindAddrs, KindGroups, KindInterfaces, KindMembers}

// PartRef names one part of a root: what the root says about it.
type PartRef struct {
	// Name is the part's name in the store: the kind and bin, the size
	// and the first 128 bits of the SHA-256 of its bytes (the root line
	// holds all of it; see the package documentation).
	Name string
	// Kind is one of the Kind* constants.
	Kind string
	// Bin is the part's bin, 0 <= Bin < Bins; 0 of 1 for VPCs and
	// findings.
	Bin, Bins int
	// Size is the length of the part's bytes.
	Size int64
	// SHA256 is the digest of the part's bytes.
	SHA256 [32]byte
}

// Root is a decoded root payload: the header of the ruleset it describes,
// the number of bins of each binned kind, and its parts. A Root is a value:
// methods do not modify it and it is safe for concurrent reads.
type Root struct {
	// Header is the ruleset's header; Header.Format is always Format.
	Header
	// Bins maps KindAddrs, KindGroups, KindInterfaces and KindMembers to
	// their number of bins.
	Bins map[string]int
	// Parts are sorted by Name, each once.
	Parts []PartRef
	// Changes, if not nil, says which records changed since the root this
	// one replaced (see Changes).
	Changes *Changes
	// EarlierChanges, if not nil, says which records changed since an
	// earlier root: with hot-spare leaders, the root this root's leader
	// published last, which another leader's root replaced since (Changes
	// is since that one). A follower that accepted the earlier root and
	// missed the one in between uses it (see ChangesSince).
	EarlierChanges *Changes
}

// ChangesSince returns the root's change list since the root whose
// payload has SHA-256 since, or nil if it has none.
func (r *Root) ChangesSince(since [32]byte) *Changes {
	for _, c := range []*Changes{r.Changes, r.EarlierChanges} {
		if c != nil && c.Since == since {
			return c
		}
	}
	return nil
}

// IsRoot reports whether payload is a root payload rather than a whole
// ruleset: whether its first line is "# reyes.root/v1", or it is gzip
// (CompressRoot; a whole ruleset is never compressed).
func IsRoot(payload []byte) bool {
	return bytes.HasPrefix(payload, []byte("# "+RootFormat+"\n")) || isGzip(payload)
}

// gzipMagic starts a gzip stream (RFC 1952: ID1, ID2 and deflate).
var gzipMagic = []byte{0x1f, 0x8b, 0x08}

func isGzip(b []byte) bool { return bytes.HasPrefix(b, gzipMagic) }

// CompressRoot returns a root payload (EncodeRoot's) compressed with gzip,
// for a leader to sign instead: the hex digests of a root are half
// redundant, so it shrinks to ~40 %, and every follower reads the root at
// every publish. DecodeRoot reads both; the signature covers the
// compressed bytes, which are what `gpg --verify` checks ("reyesctl
// unpack" writes both forms).
func CompressRoot(payload []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(payload); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// RootText returns the text of a root payload: the payload itself, or
// what its gzip stream holds (one stream, nothing after it, at most
// MaxRootBytes: a bound checked while decompressing).
func RootText(payload []byte) ([]byte, error) {
	if !isGzip(payload) {
		return payload, nil
	}
	br := bytes.NewReader(payload)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("decoding root: %w: gzip: %w", ErrMalformed, err)
	}
	zr.Multistream(false)
	text, err := io.ReadAll(io.LimitReader(zr, MaxRootBytes+1))
	if err != nil {
		return nil, fmt.Errorf("decoding root: %w: gzip: %w", ErrMalformed, err)
	}
	if len(text) > MaxRootBytes {
		return nil, fmt.Errorf("decoding root: compressed: %w: more than %d bytes", ErrTooLarge, MaxRootBytes)
	}
	// Nothing may follow the stream. (A bytes.Reader is an io.ByteReader,
	// so gzip reads from it unbuffered: Len is what it left.)
	if br.Len() != 0 {
		return nil, fmt.Errorf("decoding root: %w: gzip: %d bytes after the stream", ErrMalformed, br.Len())
	}
	return text, nil
}

// BinOf returns the bin of key among bins (a power of two): the first four
// bytes of the key's SHA-256, big-endian, masked.
func BinOf(key string, bins int) int {
	h := sha256.Sum256([]byte(key))
	return int(binary.BigEndian.Uint32(h[:4]) & uint32(bins-1))
}

// validBins reports whether n is a power of two in [1, MaxBins].
func validBins(n int) bool { return n >= 1 && n <= MaxBins && bits.OnesCount(uint(n)) == 1 }

// Has reports whether the root lists a part of that name.
func (r *Root) Has(name string) bool {
	_, ok := slices.BinarySearchFunc(r.Parts, name, func(p PartRef, n string) int { return strings.Compare(p.Name, n) })
	return ok
}

// Part returns the part that holds key of kind: for a binned kind the
// part of the key's bin, for KindVPCs and KindFindings the one part. It
// returns false if the root has no such part (no findings, or an unknown
// kind).
func (r *Root) Part(kind, key string) (PartRef, bool) {
	switch kind {
	case KindAddrs, KindGroups, KindInterfaces, KindMembers:
		n := r.Bins[kind]
		if !validBins(n) {
			return PartRef{}, false
		}
		return partOfBin(r, kind, BinOf(key, n))
	case KindVPCs, KindFindings:
		return partOfBin(r, kind, 0)
	}
	return PartRef{}, false
}

func binnedPrefix(kind string, bin int) string {
	s := strconv.Itoa(bin)
	return kind + strings.Repeat("0", 4-len(s)) + s + "-"
}

// partName is the name of a part of kind and bin with these bytes.
func partName(kind string, bin int, size int64, sum [32]byte) string {
	var prefix string
	if kind == KindVPCs || kind == KindFindings {
		prefix = kind + "-"
	} else {
		prefix = binnedPrefix(kind, bin)
	}
	return prefix + strconv.FormatInt(size, 10) + "-" + hex.EncodeToString(sum[:nameDigestBytes])
}

// nameDigestBytes is how much of a part's SHA-256 its name holds: half,
// 128 bits, enough to make the name unique to the content (a collision
// would take ~2^64 work, and would only make a part fail its check, as
// the root's line holds the whole digest, which is what is verified),
// and 32 bytes less per line of the root, which every follower reads on
// every change.
const nameDigestBytes = 16

// parseName parses a part name into a PartRef (Bins and SHA256 unset)
// and the digest prefix it holds, checking its grammar strictly.
func parseName(name string, lim Limits) (ref PartRef, prefix [nameDigestBytes]byte, err error) {
	rest := name
	switch {
	case strings.HasPrefix(rest, KindVPCs+"-"):
		ref.Kind, rest = KindVPCs, rest[len(KindVPCs)+1:]
	case strings.HasPrefix(rest, KindFindings+"-"):
		ref.Kind, rest = KindFindings, rest[len(KindFindings)+1:]
	case len(rest) >= 6 && strings.IndexByte("agim", rest[0]) >= 0 && rest[5] == '-':
		ref.Kind = rest[:1]
		bin, ok := digits(rest[1:5])
		if !ok {
			return ref, prefix, fmt.Errorf("part name %q: bin %q is not 4 decimal digits", errtext.Clip(name), rest[1:5])
		}
		ref.Bin, rest = int(bin), rest[6:]
	default:
		return ref, prefix, fmt.Errorf("part name %q: not <kind><bin>-<size>-<sha256>, vpcs-<size>-<sha256> or findings-<size>-<sha256>", errtext.Clip(name))
	}
	sizeStr, sum, ok := strings.Cut(rest, "-")
	if !ok {
		return ref, prefix, fmt.Errorf("part name %q: no size", errtext.Clip(name))
	}
	size, ok := digits(sizeStr)
	if !ok || sizeStr[0] == '0' || len(sizeStr) > 18 {
		return ref, prefix, fmt.Errorf("part name %q: size %q is not a positive decimal number without leading zeros", errtext.Clip(name), errtext.Clip(sizeStr))
	}
	if size > lim.MaxPartBytes {
		return ref, prefix, fmt.Errorf("part name %q: %w: size %d exceeds the limit of %d", errtext.Clip(name), ErrTooLarge, size, lim.MaxPartBytes)
	}
	ref.Size = size
	if !isLowerHex(sum, 2*nameDigestBytes) {
		return ref, prefix, fmt.Errorf("part name %q: the digest is not %d lower-case hex digits", errtext.Clip(name), 2*nameDigestBytes)
	}
	hex.Decode(prefix[:], []byte(sum))
	ref.Name = name
	return ref, prefix, nil
}

// digits parses s, 1 to 18 decimal digits.
func digits(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// rootHeader is line 2 of a root payload, in this field order.
type rootHeader struct {
	Type        string    `json:"type"`
	Scope       string    `json:"scope"`
	Serial      uint64    `json:"serial"`
	GeneratedAt time.Time `json:"generated_at"`
	NotAfter    time.Time `json:"not_after"`
	Bins        rootBins  `json:"bins"`
	// Changes is absent when the leader could not tell what changed (no
	// previous root, other bins, too many changes).
	Changes *rootChanges `json:"changes,omitempty"`
	// EarlierChanges: see Root.EarlierChanges.
	EarlierChanges *rootChanges `json:"earlier_changes,omitempty"`
}

type rootBins struct {
	A int `json:"a"`
	G int `json:"g"`
	I int `json:"i"`
	M int `json:"m"`
}

func (b rootBins) of(kind string) int {
	switch kind {
	case KindAddrs:
		return b.A
	case KindGroups:
		return b.G
	case KindInterfaces:
		return b.I
	case KindMembers:
		return b.M
	}
	return 0
}

// jsonOptions are the options of every JSON value the split format
// writes: those of Encode.
var jsonOptions = json.JoinOptions(jsontext.EscapeForHTML(false), jsontext.EscapeForJS(true))

// EncodeRoot returns the root payload of r: "# reyes.root/v1", "# " and the
// header as compact JSON, then one "<sha256>  <name>" line per part, sorted
// by name, as sha256sum writes them. It checks r as DecodeRoot does and
// encodes nothing invalid.
func EncodeRoot(r *Root) ([]byte, error) {
	if err := r.check(Limits{}.withDefaults()); err != nil {
		return nil, fmt.Errorf("encoding root: %w", err)
	}
	h := rootHeader{Type: r.Type, Scope: r.Scope, Serial: r.Serial, GeneratedAt: r.GeneratedAt, NotAfter: r.NotAfter,
		Bins:    rootBins{A: r.Bins[KindAddrs], G: r.Bins[KindGroups], I: r.Bins[KindInterfaces], M: r.Bins[KindMembers]},
		Changes: r.Changes.header(), EarlierChanges: r.EarlierChanges.header()}
	hj, err := json.Marshal(h, jsonOptions)
	if err != nil {
		return nil, fmt.Errorf("encoding root: %w", err)
	}
	var b bytes.Buffer
	b.Grow(len(hj) + 32 + len(r.Parts)*(64+2+100))
	b.WriteString("# " + RootFormat + "\n# ")
	b.Write(hj)
	b.WriteByte('\n')
	for _, p := range r.Parts {
		b.WriteString(hex.EncodeToString(p.SHA256[:]))
		b.WriteString("  ")
		b.WriteString(p.Name)
		b.WriteByte('\n')
	}
	if b.Len() > MaxRootBytes {
		return nil, fmt.Errorf("encoding root: %d bytes: %w (limit %d)", b.Len(), ErrTooLarge, MaxRootBytes)
	}
	return b.Bytes(), nil
}

// check verifies what DecodeRoot guarantees: a valid header, valid bins,
// every part well named, sorted, once, consistent with its name, and
// exactly the parts the bins call for.
func (r *Root) check(lim Limits) error {
	if err := r.Header.validate(); err != nil {
		return err
	}
	if err := r.checkChanges(); err != nil {
		return err
	}
	if len(r.Bins) != len(binnedKinds) {
		return fmt.Errorf("%w: bins: want exactly the kinds a, g, i and m", ErrMalformed)
	}
	for _, k := range binnedKinds {
		if n, ok := r.Bins[k]; !ok || !validBins(n) {
			return fmt.Errorf("%w: bins: %s: %d is not a power of two in [1, %d]", ErrMalformed, k, n, MaxBins)
		}
	}
	var total int64
	for i, p := range r.Parts {
		ref, prefix, err := parseName(p.Name, lim)
		if err != nil {
			return fmt.Errorf("%w: parts[%d]: %w", ErrMalformed, i, err)
		}
		if [nameDigestBytes]byte(p.SHA256[:nameDigestBytes]) != prefix {
			return fmt.Errorf("%w: parts[%d] (%s): the digest does not start with the one in the name", ErrMalformed, i, p.Name)
		}
		ref.SHA256 = p.SHA256
		ref.Bins = 1
		if n := r.Bins[ref.Kind]; n != 0 {
			ref.Bins = n
		}
		if ref != p {
			return fmt.Errorf("%w: parts[%d] (%s): kind, bin, size or digest differ from the name", ErrMalformed, i, p.Name)
		}
		if i > 0 && r.Parts[i-1].Name >= p.Name {
			return fmt.Errorf("%w: parts[%d] (%s): out of order or listed twice", ErrMalformed, i, p.Name)
		}
		total += p.Size
	}
	return checkPartSet(r.Parts, r.Bins, total, lim, func(i int) string { return "parts[" + strconv.Itoa(i) + "]" })
}

// checkChanges checks the change lists: each well formed, and an earlier
// list only beside a list since the root replaced, since another root.
func (r *Root) checkChanges() error {
	for _, c := range []*Changes{r.Changes, r.EarlierChanges} {
		if err := c.check(); err != nil {
			return err
		}
	}
	if r.EarlierChanges != nil && (r.Changes == nil || r.Changes.Since == r.EarlierChanges.Since) {
		return fmt.Errorf("%w: earlier_changes without changes, or since the same root", ErrMalformed)
	}
	return nil
}

// checkPartSet checks that parts (sorted, well named) are exactly the
// parts of the bins: each bin of each binned kind once, vpcs once,
// findings at most once. where names parts[i] in errors.
func checkPartSet(parts []PartRef, bins map[string]int, total int64, lim Limits, where func(int) string) error {
	if total > lim.MaxTotalPartBytes {
		return fmt.Errorf("%w: the parts hold %d bytes in all, more than the limit of %d", ErrTooLarge, total, lim.MaxTotalPartBytes)
	}
	seen := map[string]int{}
	for i, p := range parts {
		if p.Bin >= p.Bins {
			return fmt.Errorf("%w: %s (%s): bin %d of %d", ErrMalformed, where(i), p.Name, p.Bin, p.Bins)
		}
		if i > 0 && parts[i-1].Kind == p.Kind && parts[i-1].Bin == p.Bin {
			return fmt.Errorf("%w: %s (%s): a second part for %s bin %d", ErrMalformed, where(i), p.Name, p.Kind, p.Bin)
		}
		seen[p.Kind]++
	}
	for _, k := range binnedKinds {
		if seen[k] != bins[k] {
			return fmt.Errorf("%w: %d parts of kind %s for %d bins", ErrMalformed, seen[k], k, bins[k])
		}
	}
	if seen[KindVPCs] != 1 {
		return fmt.Errorf("%w: no part of kind %s", ErrMalformed, KindVPCs)
	}
	return nil
}

// DecodeRoot parses and checks a root payload, compressed (CompressRoot,
// see RootText) or not. It is strict: line 1 must be
// "# reyes.root/v1" (else ErrUnknownFormat), line 2 "# " and the header as
// strict JSON (unknown, duplicate or mis-cased keys are refused; the
// header is validated as a ruleset's), then one line per part in
// sha256sum format, sorted by name, each name once, the digest of the line
// equal to the one in the name, and exactly one part per bin of each kind,
// one "vpcs" part and at most one "findings" part. LF line ends only,
// nothing after the last line. Errors name the line.
func DecodeRoot(b []byte, lim Limits) (*Root, error) {
	lim = lim.withDefaults()
	b, err := RootText(b)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxRootBytes {
		return nil, fmt.Errorf("decoding root: %d bytes: %w (limit %d)", len(b), ErrTooLarge, MaxRootBytes)
	}
	if i := bytes.IndexByte(b, '\r'); i >= 0 {
		return nil, fmt.Errorf("decoding root: %w: line %d holds a CR (want LF line ends only)", ErrMalformed, bytes.Count(b[:i], []byte("\n"))+1)
	}
	line1, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok || string(line1) != "# "+RootFormat {
		got := "none"
		if len(line1) > 0 {
			got = strconv.Quote(errtext.Clip(string(line1)))
		}
		return nil, fmt.Errorf("decoding root: %w: line 1 is %s, want %q", ErrUnknownFormat, got, "# "+RootFormat)
	}
	line2, rest, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("decoding root: %w: line 2: no header line", ErrMalformed)
	}
	hj, ok := bytes.CutPrefix(line2, []byte("# "))
	if !ok {
		return nil, fmt.Errorf("decoding root: %w: line 2: does not start with \"# \"", ErrMalformed)
	}
	var h rootHeader
	if err := strictUnmarshal(hj, &h); err != nil {
		return nil, fmt.Errorf("decoding root: %w: line 2: %w", ErrMalformed, err)
	}
	r := &Root{
		Header: Header{Format: Format, Type: h.Type, Scope: h.Scope, Serial: h.Serial, GeneratedAt: h.GeneratedAt, NotAfter: h.NotAfter},
		Bins:   map[string]int{},
	}
	if err := r.Header.validate(); err != nil {
		return nil, fmt.Errorf("decoding root: line 2: %w", err)
	}
	for _, k := range binnedKinds {
		n := h.Bins.of(k)
		if !validBins(n) {
			return nil, fmt.Errorf("decoding root: %w: line 2: /bins/%s: %d is not a power of two in [1, %d]", ErrMalformed, k, n, MaxBins)
		}
		r.Bins[k] = n
	}
	if r.Changes, err = decodeChanges(h.Changes); err != nil {
		return nil, fmt.Errorf("decoding root: line 2: %w", err)
	}
	if r.EarlierChanges, err = decodeChanges(h.EarlierChanges); err != nil {
		return nil, fmt.Errorf("decoding root: line 2: earlier_changes: %w", err)
	}
	if err := r.checkChanges(); err != nil {
		return nil, fmt.Errorf("decoding root: line 2: %w", err)
	}
	// One header, one encoding: what was signed reads the same to a
	// person as to this decoder (no spaces, no other field order).
	if canon, err := json.Marshal(h, jsonOptions); err != nil || !bytes.Equal(canon, hj) {
		return nil, fmt.Errorf("decoding root: %w: line 2: not the canonical encoding of the header (want %s)", ErrMalformed, errtext.Clip(string(canon)))
	}
	// Parts: sum of bins + vpcs + findings at most.
	maxParts := h.Bins.A + h.Bins.G + h.Bins.I + h.Bins.M + 2
	r.Parts = make([]PartRef, 0, min(maxParts, bytes.Count(rest, []byte("\n"))))
	var total int64
	lineNo := 2
	for len(rest) > 0 {
		lineNo++
		line, tail, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("decoding root: %w: line %d: no final newline", ErrMalformed, lineNo)
		}
		rest = tail
		if len(line) < 64+2+1 || string(line[64:66]) != "  " || !isLowerHex(string(line[:64]), 64) {
			return nil, fmt.Errorf("decoding root: %w: line %d: %q is not \"<64 lower-case hex>  <name>\"", ErrMalformed, lineNo, errtext.Clip(string(line)))
		}
		name := string(line[66:])
		ref, prefix, err := parseName(name, lim)
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return nil, fmt.Errorf("decoding root: line %d: %w", lineNo, err)
			}
			return nil, fmt.Errorf("decoding root: %w: line %d: %w", ErrMalformed, lineNo, err)
		}
		hex.Decode(ref.SHA256[:], line[:64])
		if [nameDigestBytes]byte(ref.SHA256[:nameDigestBytes]) != prefix {
			return nil, fmt.Errorf("decoding root: %w: line %d: the digest does not start with the one in the name %s", ErrMalformed, lineNo, name)
		}
		ref.Bins = 1
		if n := r.Bins[ref.Kind]; n != 0 {
			ref.Bins = n
		}
		if ref.Bin >= ref.Bins {
			return nil, fmt.Errorf("decoding root: %w: line %d: %s: bin %d of %d", ErrMalformed, lineNo, name, ref.Bin, ref.Bins)
		}
		if n := len(r.Parts); n > 0 && r.Parts[n-1].Name >= name {
			return nil, fmt.Errorf("decoding root: %w: line %d: %s: out of order or listed twice (want names sorted, each once)", ErrMalformed, lineNo, name)
		}
		if n := len(r.Parts); n > 0 && r.Parts[n-1].Kind == ref.Kind && r.Parts[n-1].Bin == ref.Bin {
			return nil, fmt.Errorf("decoding root: %w: line %d: %s: a second part for %s bin %d", ErrMalformed, lineNo, name, ref.Kind, ref.Bin)
		}
		if len(r.Parts) == maxParts {
			return nil, fmt.Errorf("decoding root: %w: line %d: more than %d parts for the bins", ErrMalformed, lineNo, maxParts)
		}
		total += ref.Size
		if total > lim.MaxTotalPartBytes {
			return nil, fmt.Errorf("decoding root: line %d: %w: the parts hold more than %d bytes in all", lineNo, ErrTooLarge, lim.MaxTotalPartBytes)
		}
		r.Parts = append(r.Parts, ref)
	}
	if err := checkPartSet(r.Parts, r.Bins, total, lim, func(i int) string { return "line " + strconv.Itoa(i+3) }); err != nil {
		return nil, fmt.Errorf("decoding root: %w", err)
	}
	return r, nil
}

// strictUnmarshal decodes one JSON value with the codec's rules: exact,
// unique names without escapes, no unknown members, valid UTF-8, nothing
// after the value. A string that is not the address, CIDR or time its
// field takes is a *ValidationError naming the field, as in Decode; other
// errors are *strictjson.Error (a JSON pointer and why).
func strictUnmarshal(data []byte, v any) error {
	if err := checkEscapedNames(data); err != nil {
		return strictjson.Explain(err)
	}
	if err := json.Unmarshal(data, v, json.RejectUnknownMembers(true)); err != nil {
		if se, what := badString(err); what != "" {
			return invalid(pointerField(se.JSONPointer), "%q is not %s", errtext.Clip(stringAt(data, se.JSONPointer)), what)
		}
		return strictjson.Explain(err)
	}
	return nil
}

// pointerField writes a JSON pointer as Validate names fields:
// "/members/3/addrs/0" is "members[3].addrs[0]".
func pointerField(ptr jsontext.Pointer) string {
	var b strings.Builder
	for tok := range ptr.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	if b.Len() == 0 {
		return "value"
	}
	return b.String()
}
