package ruleset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Changes is what a root says changed since the root it replaced: the
// SHA-256 of that root's payload (Since) and a Bloom filter of the view
// keys (see View.Keys) whose records differ between the two. A follower
// that accepted the root Since names, and whose view keys the filter does
// not hold, knows without reading a part that the new root gives it the
// same view: under autoscaling, every bin changes at nearly every
// publish, but the records one host's plan is made from rarely do.
//
// The filter has no false negatives: every changed key is in it. A false
// positive (about 1 in 1,000 keys) only makes a follower read its parts
// as it would without Changes. The filter is signed with the root, so it
// is as trusted as the parts' digests; its hashes are salted with Since,
// so that the keys of one host that collide in one publish do not collide
// in the next.
type Changes struct {
	// Since is the SHA-256 of the root payload these changes are from.
	Since [32]byte
	// K is the number of bits set per key, 1 to MaxChangesK.
	K int
	// Bits is the filter: len(Bits) × 8 bits, bit i of the filter is bit
	// i%8 (least significant first) of Bits[i/8].
	Bits []byte
}

// Bounds and parameters of Changes.
const (
	// MaxChangesK bounds Changes.K.
	MaxChangesK = 32
	// MaxChangesBytes bounds Changes.Bits: a filter for ~75,000 changed
	// keys. A publish that changes more leaves Changes out; a follower
	// then reads the bins that changed, as it would anyway.
	MaxChangesBytes = 128 << 10
	// changesBitsPerKey and changesK give a false-positive rate of about
	// 0.1 % per key looked up: a host with 40 view keys reads its parts
	// needlessly after ~4 % of the publishes that change none of them.
	changesBitsPerKey = 14.4
	changesK          = 10
)

// ViewKey is how View.Keys and Changes name a record: the kind, ":" and
// the key of a line of a binned part, or "vpcs:" for the VPC part (read
// whole by every view).
func ViewKey(kind, key string) string { return kind + ":" + key }

// NewChanges returns the filter of keys (view keys, see ViewKey) for a
// root that replaces the root whose payload has SHA-256 since. It returns
// nil if there are too many keys for MaxChangesBytes.
func NewChanges(since [32]byte, keys []string) *Changes {
	n := int((float64(len(keys))*changesBitsPerKey + 63) / 64)
	// At least 128 bits: with 3 keys in 64, 1 key in 170 would pass.
	n = max(n, 2)
	if n*8 > MaxChangesBytes {
		return nil
	}
	c := &Changes{Since: since, K: changesK, Bits: make([]byte, n*8)}
	for _, k := range keys {
		c.each(k, func(i uint64) bool {
			c.Bits[i/8] |= 1 << (i % 8)
			return true
		})
	}
	return c
}

// each calls f with the K bit positions of key until f returns false. The
// positions come from one SHA-256 of the salt (Since) and the key, by
// double hashing (Kirsch and Mitzenmacher): h1 + i×h2 mod m.
func (c *Changes) each(key string, f func(uint64) bool) {
	h := sha256.New()
	h.Write([]byte("reyes.changes/v1\x00"))
	h.Write(c.Since[:])
	h.Write([]byte(key))
	var sum [32]byte
	h.Sum(sum[:0])
	m := uint64(len(c.Bits)) * 8
	h1, h2 := binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])|1
	for i := range uint64(c.K) {
		if !f((h1 + i*h2) % m) {
			return
		}
	}
}

// MayHave reports whether key (a view key) may have changed: false means
// it certainly did not.
func (c *Changes) MayHave(key string) bool {
	all := true
	c.each(key, func(i uint64) bool {
		all = c.Bits[i/8]&(1<<(i%8)) != 0
		return all
	})
	return all
}

// Estimate is about how many keys the filter holds, from the share of
// its bits set (Swamidass and Baldi): for operators, not for decisions.
func (c *Changes) Estimate() int {
	set := 0
	for _, b := range c.Bits {
		set += bits.OnesCount8(b)
	}
	m := float64(len(c.Bits) * 8)
	if set == int(m) {
		return int(m) // saturated: at least this many
	}
	return int(math.Round(-m / float64(c.K) * math.Log1p(-float64(set)/m)))
}

// Unchanged reports whether c, the changes of a root since the root whose
// payload has SHA-256 since, certainly leaves every one of keys as it was.
// It is false if c is nil, is from another root, or keys is empty (a view
// has at least its VPCs).
func (c *Changes) Unchanged(since [32]byte, keys []string) bool {
	if c == nil || c.Since != since || len(keys) == 0 {
		return false
	}
	for _, k := range keys {
		if c.MayHave(k) {
			return false
		}
	}
	return true
}

// rootChanges is Changes in a root's header.
type rootChanges struct {
	Since string `json:"since"`
	K     int    `json:"k"`
	Bloom string `json:"bloom"`
}

func (c *Changes) header() *rootChanges {
	if c == nil {
		return nil
	}
	return &rootChanges{Since: hex.EncodeToString(c.Since[:]), K: c.K, Bloom: base64.StdEncoding.EncodeToString(c.Bits)}
}

// check verifies what decoding guarantees.
func (c *Changes) check() error {
	if c == nil {
		return nil
	}
	if c.K < 1 || c.K > MaxChangesK {
		return fmt.Errorf("%w: changes: k %d is not in [1, %d]", ErrMalformed, c.K, MaxChangesK)
	}
	if len(c.Bits) == 0 || len(c.Bits)%8 != 0 || len(c.Bits) > MaxChangesBytes {
		return fmt.Errorf("%w: changes: a filter of %d bytes (want a multiple of 8, from 8 to %d)", ErrMalformed, len(c.Bits), MaxChangesBytes)
	}
	return nil
}

// decodeChanges reads the changes of a root's header, strictly: a
// lower-case hex digest, k in range, canonical padded base64.
func decodeChanges(h *rootChanges) (*Changes, error) {
	if h == nil {
		return nil, nil
	}
	c := &Changes{K: h.K}
	if !isLowerHex(h.Since, 64) {
		return nil, fmt.Errorf("%w: changes: since %q is not 64 lower-case hex digits", ErrMalformed, h.Since)
	}
	hex.Decode(c.Since[:], []byte(h.Since))
	if base64.StdEncoding.DecodedLen(len(h.Bloom)) > MaxChangesBytes+2 {
		return nil, fmt.Errorf("%w: changes: a filter of more than %d bytes", ErrMalformed, MaxChangesBytes)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(h.Bloom)
	if err != nil || base64.StdEncoding.EncodeToString(b) != h.Bloom {
		return nil, fmt.Errorf("%w: changes: bloom is not canonical padded base64", ErrMalformed)
	}
	c.Bits = b
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// ChangedKeys returns the view keys (see ViewKey) whose records differ
// between the roots old and cur, for cur's Changes: a key of a binned kind
// whose line differs, is new or is gone, and "vpcs:" if the VPCs differ.
// Only the bins whose parts differ are read (through fetch, verified as
// LoadView verifies them). ok is false when the two cannot be compared
// line by line (another number of bins of some kind: the keys moved).
// Findings are left out: no view reads them.
func ChangedKeys(ctx context.Context, old, cur *Root, fetch FetchFunc) (keys []string, ok bool, err error) {
	lim := Limits{}.withDefaults()
	for _, r := range []*Root{old, cur} {
		if err := r.check(lim); err != nil {
			return nil, false, err
		}
	}
	for _, k := range binnedKinds {
		if old.Bins[k] != cur.Bins[k] {
			return nil, false, nil
		}
	}
	// The parts of both roots are sorted by name, and the names start
	// with the kind and the bin: walk both, pairing each bin's parts.
	type pair struct{ a, b PartRef }
	var pairs []pair
	for _, kind := range append(binnedKinds[:], KindVPCs) {
		for bin := range max(1, cur.Bins[kind]) {
			a, aok := partOfBin(old, kind, bin)
			b, bok := partOfBin(cur, kind, bin)
			if !aok || !bok {
				return nil, false, fmt.Errorf("%w: no %s part for bin %d", ErrMalformed, kind, bin)
			}
			if a.Name != b.Name {
				pairs = append(pairs, pair{a, b})
			}
		}
	}
	lo, lc := newLoader(old, fetch), newLoader(cur, fetch)
	var refsOld, refsCur []PartRef
	for _, p := range pairs {
		if p.a.Kind != KindVPCs {
			refsOld = append(refsOld, p.a)
			refsCur = append(refsCur, p.b)
		}
	}
	if err := lo.load(ctx, refsOld); err != nil {
		return nil, false, fmt.Errorf("reading the previous root's parts: %w", err)
	}
	if err := lc.load(ctx, refsCur); err != nil {
		return nil, false, err
	}
	for _, p := range pairs {
		if p.a.Kind == KindVPCs {
			keys = append(keys, ViewKey(KindVPCs, ""))
			continue
		}
		keys = diffLines(keys, p.a.Kind, lo.parts[p.a.Name], lc.parts[p.b.Name])
	}
	slices.Sort(keys)
	return slices.Compact(keys), true, nil
}

// partOfBin is the part of root for bin of kind.
func partOfBin(root *Root, kind string, bin int) (PartRef, bool) {
	prefix := kind + "-"
	if slices.Contains(binnedKinds[:], kind) {
		prefix = binnedPrefix(kind, bin)
	}
	i, _ := slices.BinarySearchFunc(root.Parts, prefix, func(p PartRef, n string) int { return strings.Compare(p.Name, n) })
	if i < len(root.Parts) && strings.HasPrefix(root.Parts[i].Name, prefix) {
		return root.Parts[i], true
	}
	return PartRef{}, false
}

// diffLines appends to keys the view keys of kind whose lines differ
// between the parts a and b (keys sorted in both): added, removed or
// changed.
func diffLines(keys []string, kind string, a, b *part) []string {
	i, j := 0, 0
	for i < a.lines() || j < b.lines() {
		switch {
		case j == b.lines():
			ka, _, _ := a.line(i)
			keys = append(keys, ViewKey(kind, ka))
			i++
		case i == a.lines():
			kb, _, _ := b.line(j)
			keys = append(keys, ViewKey(kind, kb))
			j++
		default:
			ka, va, _ := a.line(i)
			kb, vb, _ := b.line(j)
			switch {
			case ka < kb:
				keys = append(keys, ViewKey(kind, ka))
				i++
			case ka > kb:
				keys = append(keys, ViewKey(kind, kb))
				j++
			default:
				if !bytes.Equal(va, vb) {
					keys = append(keys, ViewKey(kind, ka))
				}
				i++
				j++
			}
		}
	}
	return keys
}
