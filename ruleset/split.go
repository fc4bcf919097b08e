package ruleset

import (
	"crypto/sha256"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strings"

	"github.com/go-json-experiment/json"
)

// DefaultTargetBinBytes is the SplitOptions.TargetBinBytes of the zero
// value: 16 KiB.
const DefaultTargetBinBytes = 16 << 10

// SplitOptions configure Split.
type SplitOptions struct {
	// Previous are the bins of the last root (Root.Bins), or nil. A
	// kind keeps its previous number of bins while the ideal number is
	// within a factor of 4 of it, so that the bins do not flap as the
	// estate grows and shrinks (every part of a kind changes with its
	// number of bins).
	Previous map[string]int
	// TargetBinBytes scales the number of bins: a kind whose lines hold
	// B bytes gets the next power of two at or above
	// ceil(sqrt(R × B / TargetBinBytes)) bins, clamped to [1, MaxBins],
	// where R is 4 for members and 1 for the other kinds. 0 means
	// DefaultTargetBinBytes.
	//
	// The square root balances the root's bytes (~150 per bin) against a
	// first run's (the bins a host reads): bins ∝ sqrt(bins read × bytes)
	// minimizes their sum. A host reads one bin of addresses and of
	// interfaces, but the members of every group its rules refer to
	// (about four at synth.Large), and members are what autoscaling
	// churns: twice the bins there raise the share of changes elsewhere
	// that leave a host's parts in place from 67 % to 76 % (median host
	// at synth.Large; busiest 26 % to 42 %) and cut its first run by a
	// quarter, with the root under 1 % of that first run. Group rules
	// are read as widely but rarely change; more bins of them add root
	// bytes for no fast-path gain.
	TargetBinBytes int64
}

// Split splits a valid ruleset into a root and its parts (by name). The
// root's Parts name every part; EncodeRoot(root) is the payload to sign.
// Parts are content-addressed: the same lines always give the same part,
// so that a leader puts only the parts the previous root does not list.
func Split(rs *Ruleset, opts SplitOptions) (*Root, map[string][]byte, error) {
	if err := rs.Validate(); err != nil {
		return nil, nil, fmt.Errorf("splitting ruleset: %w", err)
	}
	target := opts.TargetBinBytes
	if target <= 0 {
		target = DefaultTargetBinBytes
	}
	marshal := func(v any) ([]byte, error) { return json.Marshal(v, jsonOptions) }

	// Lines of each kind, in any order.
	kinds := map[string][]partLine{}
	size := map[string]int64{}
	addLine := func(kind, key string, b []byte) {
		kinds[kind] = append(kinds[kind], partLine{key, b})
		size[kind] += int64(len(key) + len(b) + 2)
	}
	add := func(kind, key string, v any) error {
		b, err := marshal(v)
		if err != nil {
			return fmt.Errorf("splitting ruleset: %s %s: %w", kind, key, err)
		}
		addLine(kind, key, b)
		return nil
	}
	for i := range rs.VPCs {
		if err := add(KindVPCs, rs.VPCs[i].ID, &rs.VPCs[i]); err != nil {
			return nil, nil, err
		}
	}
	for i := range rs.Findings {
		if err := add(KindFindings, findingKey(i), &rs.Findings[i]); err != nil {
			return nil, nil, err
		}
	}
	// An "m" line holds a group's members' records: each interface's is
	// marshalled once and spliced into the lines of its interface and of
	// its groups' members (the encoding of Interface is that of
	// partMember with one member more at the end; Join checks every line
	// against the codec's own encoding).
	members := make(map[string][][]byte, len(rs.Groups))
	byAddr := map[netip.Addr][]string{}
	for i := range rs.Interfaces {
		n := &rs.Interfaces[i]
		m, err := marshal(&partMember{ID: n.ID, Region: n.Region, VPC: n.VPC, Addrs: n.Addrs, Prefixes: n.Prefixes})
		if err != nil {
			return nil, nil, fmt.Errorf("splitting ruleset: interface %s: %w", n.ID, err)
		}
		groups, err := marshal(nonNil(n.Groups))
		if err != nil {
			return nil, nil, fmt.Errorf("splitting ruleset: interface %s: %w", n.ID, err)
		}
		line := make([]byte, 0, len(m)+len(groups)+10)
		line = append(append(append(line, m[:len(m)-1]...), `,"groups":`...), groups...)
		addLine(KindInterfaces, n.ID, append(line, '}'))
		for _, g := range n.Groups {
			members[g] = append(members[g], m) // rs.Interfaces is sorted by ID
		}
		for _, a := range n.Addrs {
			byAddr[a] = append(byAddr[a], n.ID) // sorted too
		}
	}
	for i := range rs.Groups {
		g := &rs.Groups[i]
		if err := add(KindGroups, g.ID, g); err != nil {
			return nil, nil, err
		}
		ms := members[g.ID]
		if len(ms) == 0 {
			continue
		}
		n := 2
		for _, m := range ms {
			n += len(m) + 1
		}
		line := make([]byte, 0, n)
		line = append(line, '[')
		for j, m := range ms {
			if j > 0 {
				line = append(line, ',')
			}
			line = append(line, m...)
		}
		addLine(KindMembers, g.ID, append(line, ']'))
	}
	for a, ids := range byAddr {
		if err := add(KindAddrs, a.String(), ids); err != nil {
			return nil, nil, err
		}
	}

	root := &Root{Header: rs.Header, Bins: map[string]int{}}
	parts := map[string][]byte{}
	emit := func(kind string, bin, bins int, lines []partLine) {
		slices.SortFunc(lines, func(a, b partLine) int { return strings.Compare(a.key, b.key) })
		body := encodePart(kind, bin, bins, lines)
		sum := sha256.Sum256(body)
		ref := PartRef{Kind: kind, Bin: bin, Bins: bins, Size: int64(len(body)), SHA256: sum}
		ref.Name = partName(kind, bin, ref.Size, sum)
		root.Parts = append(root.Parts, ref)
		parts[ref.Name] = body
	}
	for _, kind := range binnedKinds {
		n := binsFor(size[kind]*binReads(kind), target, opts.Previous[kind])
		root.Bins[kind] = n
		byBin := make([][]partLine, n)
		for _, l := range kinds[kind] {
			b := BinOf(l.key, n)
			byBin[b] = append(byBin[b], l)
		}
		for b := range byBin {
			emit(kind, b, n, byBin[b])
		}
	}
	emit(KindVPCs, 0, 1, kinds[KindVPCs])
	if len(rs.Findings) > 0 {
		emit(KindFindings, 0, 1, kinds[KindFindings])
	}
	slices.SortFunc(root.Parts, func(a, b PartRef) int { return strings.Compare(a.Name, b.Name) })
	lim := DefaultLimits
	for _, p := range root.Parts {
		if p.Size > lim.MaxPartBytes {
			return nil, nil, fmt.Errorf("splitting ruleset: part %s: %w: %d bytes (limit %d)", p.Name, ErrTooLarge, p.Size, lim.MaxPartBytes)
		}
	}
	if err := root.check(lim); err != nil {
		return nil, nil, fmt.Errorf("splitting ruleset: %w", err)
	}
	return root, parts, nil
}

// binReads is the R of a kind in the bin rule (SplitOptions.TargetBinBytes):
// about how many of its bins one host reads, where that is more than one.
func binReads(kind string) int64 {
	if kind == KindMembers {
		return 4
	}
	return 1
}

// binsFor is the number of bins for a kind of size bytes: the next power
// of two at or above ceil(sqrt(size/target)), in [1, MaxBins]; prev (if a
// valid number of bins) while the ideal is within a factor of 4 of it.
func binsFor(size, target int64, prev int) int {
	ideal := int(math.Ceil(math.Sqrt(float64(size) / float64(target))))
	ideal = max(ideal, 1)
	if ideal > MaxBins {
		ideal = MaxBins
	}
	ideal = 1 << bits.Len(uint(ideal-1)) // next power of two
	if validBins(prev) && ideal <= prev*4 && ideal*4 >= prev {
		return prev
	}
	return ideal
}
