package ruleset_test

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/ruleset"
)

// rootLines is a root payload as lines without their newlines.
func rootLines(t *testing.T) []string {
	t.Helper()
	_, root, _ := fixture(t)
	p, err := ruleset.EncodeRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(p), "\n"), "\n")
}

func TestDecodeRootRefuses(t *testing.T) {
	base := rootLines(t)
	hexOf := func(l string) string { return l[:64] }
	nameOf := func(l string) string { return l[66:] }
	fakeHex := strings.Repeat("ab", 32)
	bigSize := func(l string) string {
		// the line of l with a size of 10 GiB in its name
		n := nameOf(l)
		parts := strings.SplitN(n, "-", 3)
		return hexOf(l) + "  " + parts[0] + "-10737418240-" + parts[2]
	}
	with := func(f func(ls []string) []string) string {
		ls := f(slices.Clone(base))
		return strings.Join(ls, "\n") + "\n"
	}
	header := func(old, new string) string {
		return with(func(ls []string) []string {
			if !strings.Contains(ls[1], old) {
				panic(old)
			}
			ls[1] = strings.Replace(ls[1], old, new, 1)
			return ls
		})
	}
	tests := []struct {
		name    string
		payload string
		want    error
		says    string
	}{
		{"empty", "", ruleset.ErrUnknownFormat, "line 1"},
		{"a whole ruleset", `{"format":"reyes.ruleset/v1"}`, ruleset.ErrUnknownFormat, "line 1"},
		{"another version", with(func(ls []string) []string { ls[0] = "# reyes.root/v2"; return ls }), ruleset.ErrUnknownFormat, "reyes.root/v2"},
		{"no header", "# reyes.root/v1\n", ruleset.ErrMalformed, "line 2"},
		{"header without #", with(func(ls []string) []string { ls[1] = ls[1][2:]; return ls }), ruleset.ErrMalformed, "line 2"},
		{"CR LF", strings.ReplaceAll(with(func(ls []string) []string { return ls }), "\n", "\r\n"), ruleset.ErrMalformed, "CR"},
		{"CR LF on a part line", with(func(ls []string) []string { ls[5] += "\r"; return ls }), ruleset.ErrMalformed, "line 6"},
		{"unknown header key", header(`"serial"`, `"x":1,"serial"`), ruleset.ErrMalformed, "/x"},
		{"duplicate header key", header(`"scope":"`, `"scope":"a","scope":"`), ruleset.ErrMalformed, "duplicate"},
		{"mis-cased header key", header(`"scope"`, `"Scope"`), ruleset.ErrMalformed, "Scope"},
		{"escaped header key", header(`"scope"`, `"\u0073cope"`), ruleset.ErrMalformed, "escape"},
		{"serial as a string", header(`"serial":`, `"serial":"1"`+`,"y":`), ruleset.ErrMalformed, "/serial"},
		{"header with spaces", header(`,"scope"`, `, "scope"`), ruleset.ErrMalformed, "canonical"},
		{"header trailing data", header(`}}`, `}} {}`), ruleset.ErrMalformed, "line 2"},
		{"not a time", header(`"generated_at":"`, `"generated_at":"x`), ruleset.ErrInvalid, "generated_at"},
		{"wrong type", header(`"type":"security-groups"`, `"type":"other"`), ruleset.ErrInvalid, "type"},
		{"bad scope", header(`"scope":"default"`, `"scope":"-"`), ruleset.ErrInvalid, "scope"},
		{"not_after before generated_at", header(`"not_after":"2026-11-29T23`, `"not_after":"2026-11-29T21`), ruleset.ErrInvalid, "not_after"},
		{"no bins", header(`,"bins":{"a":16,"g":8,"i":16,"m":32}`, ``), ruleset.ErrMalformed, "bins"},
		{"no member bins", header(`,"m":32`, ``), ruleset.ErrMalformed, "/bins/m"},
		{"member bins not a power of two", header(`"m":32`, `"m":6`), ruleset.ErrMalformed, "/bins/m"},
		{"member bins fewer than the parts", header(`"m":32`, `"m":16`), ruleset.ErrMalformed, ""},
		{"bins not a power of two", header(`"a":16`, `"a":12`), ruleset.ErrMalformed, "/bins/a"},
		{"bins zero", header(`"g":8`, `"g":0`), ruleset.ErrMalformed, "/bins/g"},
		{"bins too many", header(`"i":16`, `"i":8192`), ruleset.ErrMalformed, "/bins/i"},
		{"bins of an unknown kind", header(`"i":16`, `"i":16,"x":1`), ruleset.ErrMalformed, "/bins/x"},
		{"bins fewer than the parts", header(`"i":16`, `"i":8`), ruleset.ErrMalformed, ""},
		{"bins more than the parts", header(`"i":16`, `"i":32`), ruleset.ErrMalformed, "parts of kind i"},
		{"unsorted", with(func(ls []string) []string { ls[3], ls[4] = ls[4], ls[3]; return ls }), ruleset.ErrMalformed, "line 5"},
		{"duplicate name", with(func(ls []string) []string { return slices.Insert(ls, 4, ls[3]) }), ruleset.ErrMalformed, "line 5"},
		{"a second part for a bin", with(func(ls []string) []string {
			n := nameOf(ls[2])
			return slices.Insert(ls, 3, fakeHex+"  "+n[:6]+"9-"+fakeHex[:32])
		}), ruleset.ErrMalformed, "a second part"},
		{"missing part", with(func(ls []string) []string { return slices.Delete(ls, 5, 6) }), ruleset.ErrMalformed, "parts of kind"},
		{"no vpcs", with(func(ls []string) []string { return ls[:len(ls)-1] }), ruleset.ErrMalformed, "vpcs"},
		{"name and digest differ", with(func(ls []string) []string { ls[3] = fakeHex + ls[3][64:]; return ls }), ruleset.ErrMalformed, "line 4"},
		{"upper-case hex", with(func(ls []string) []string { ls[3] = strings.ToUpper(ls[3][:64]) + ls[3][64:]; return ls }), ruleset.ErrMalformed, "line 4"},
		{"one space", with(func(ls []string) []string { ls[3] = ls[3][:64] + " " + ls[3][66:]; return ls }), ruleset.ErrMalformed, "line 4"},
		{"binary mode marker", with(func(ls []string) []string { ls[3] = ls[3][:64] + " *" + ls[3][66:]; return ls }), ruleset.ErrMalformed, "line 4"},
		{"unknown kind", with(func(ls []string) []string {
			return append(ls, fakeHex+"  x0000-10-"+fakeHex[:32])
		}), ruleset.ErrMalformed, "line"},
		{"bin beyond bins", with(func(ls []string) []string {
			return slices.Insert(ls, 2+16, fakeHex+"  a0016-10-"+fakeHex[:32])
		}), ruleset.ErrMalformed, "bin 16 of 16"},
		{"bin not 4 digits", with(func(ls []string) []string { ls[2] = hexOf(ls[2]) + "  a000-" + nameOf(ls[2])[6:]; return ls }), ruleset.ErrMalformed, "line 3"},
		{"size with a leading zero", with(func(ls []string) []string {
			n := nameOf(ls[2])
			ls[2] = hexOf(ls[2]) + "  " + n[:6] + "0" + n[6:]
			return ls
		}), ruleset.ErrMalformed, "line 3"},
		{"huge size", with(func(ls []string) []string { ls[2] = bigSize(ls[2]); return ls }), ruleset.ErrTooLarge, "line 3"},
		{"size beyond int64", with(func(ls []string) []string {
			n := nameOf(ls[2])
			parts := strings.SplitN(n, "-", 3)
			ls[2] = hexOf(ls[2]) + "  " + parts[0] + "-99999999999999999999999-" + parts[2]
			return ls
		}), ruleset.ErrMalformed, "line 3"},
		{"empty line", with(func(ls []string) []string { return slices.Insert(ls, 3, "") }), ruleset.ErrMalformed, "line 4"},
		{"comment line among parts", with(func(ls []string) []string { return slices.Insert(ls, 3, "# x") }), ruleset.ErrMalformed, "line 4"},
		{"no final newline", strings.TrimSuffix(with(func(ls []string) []string { return ls }), "\n"), ruleset.ErrMalformed, "final newline"},
		{"trailing data", with(func(ls []string) []string { return ls }) + "junk", ruleset.ErrMalformed, "final newline"},
		{"too large", "# reyes.root/v1\n" + strings.Repeat("#", ruleset.MaxRootBytes), ruleset.ErrTooLarge, ""},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			r, err := ruleset.DecodeRoot([]byte(c.payload), ruleset.Limits{})
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeRoot = %v, %v; want %v", r, err, c.want)
			}
			if r != nil {
				t.Fatalf("DecodeRoot returned a root with an error")
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
		})
	}
}

func TestDecodeRootLimits(t *testing.T) {
	_, root, _ := fixture(t)
	p, err := ruleset.EncodeRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	var largest, total int64
	for _, r := range root.Parts {
		largest = max(largest, r.Size)
		total += r.Size
	}
	if _, err := ruleset.DecodeRoot(p, ruleset.Limits{MaxPartBytes: largest}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if _, err := ruleset.DecodeRoot(p, ruleset.Limits{MaxPartBytes: largest - 1}); !errors.Is(err, ruleset.ErrTooLarge) {
		t.Fatalf("a part over the limit: %v", err)
	}
	if _, err := ruleset.DecodeRoot(p, ruleset.Limits{MaxTotalPartBytes: total - 1}); !errors.Is(err, ruleset.ErrTooLarge) {
		t.Fatalf("the parts over the limit: %v", err)
	}
}

func TestRootPartAndHas(t *testing.T) {
	rs, root, parts := fixture(t)
	for _, p := range root.Parts {
		if !root.Has(p.Name) {
			t.Fatalf("Has(%s) = false", p.Name)
		}
		if root.Has(p.Name[:len(p.Name)-1]) {
			t.Fatalf("Has(a prefix of %s) = true", p.Name)
		}
	}
	check := func(kind, key string) {
		p, ok := root.Part(kind, key)
		if !ok {
			t.Fatalf("Part(%s, %s): none", kind, key)
		}
		if !strings.Contains(string(parts[p.Name]), "\n"+key+"\t") {
			t.Fatalf("Part(%s, %s) = %s, which does not hold it", kind, key, p.Name)
		}
		if p.Kind != ruleset.KindVPCs && p.Bin != ruleset.BinOf(key, root.Bins[kind]) {
			t.Fatalf("Part(%s, %s) bin %d, BinOf %d", kind, key, p.Bin, ruleset.BinOf(key, root.Bins[kind]))
		}
	}
	x := ruleset.NewIndex(rs)
	for _, g := range rs.Groups {
		check(ruleset.KindGroups, g.ID)
		if len(x.Members(g.ID)) > 0 {
			check(ruleset.KindMembers, g.ID)
		}
	}
	for _, n := range rs.Interfaces {
		check(ruleset.KindInterfaces, n.ID)
		for _, a := range n.Addrs {
			check(ruleset.KindAddrs, a.String())
		}
	}
	check(ruleset.KindVPCs, rs.VPCs[0].ID)
	if _, ok := root.Part("x", "k"); ok {
		t.Fatal("Part of an unknown kind")
	}
	if _, ok := root.Part(ruleset.KindFindings, ""); ok != (len(rs.Findings) > 0) {
		t.Fatalf("Part(findings) = %v with %d findings", ok, len(rs.Findings))
	}
}

// TestBinOf pins the bin function: followers and leaders of different
// releases must agree on it.
func TestBinOf(t *testing.T) {
	for _, c := range []struct {
		key  string
		bins int
		want int
	}{
		// sha256("sg-0123456789abcdef0") and sha256("10.0.0.1"), first 4 bytes.
		{"sg-0123456789abcdef0", 1, 0},
		{"10.0.0.1", 4096, int(mustHex4("10.0.0.1") & 4095)},
		{"sg-0123456789abcdef0", 32, int(mustHex4("sg-0123456789abcdef0") & 31)},
	} {
		if got := ruleset.BinOf(c.key, c.bins); got != c.want {
			t.Errorf("BinOf(%q, %d) = %d, want %d", c.key, c.bins, got, c.want)
		}
	}
	// A fixed value, so that a change of the function is noticed.
	if got := fmt.Sprint(ruleset.BinOf("10.0.0.1", 4096), ruleset.BinOf("eni-0123456789abcdef0", 64)); got != binOfPinned {
		t.Errorf("BinOf changed: %s, was %s", got, binOfPinned)
	}
}

// binOfPinned is BinOf("10.0.0.1", 4096) and BinOf("eni-0123456789abcdef0",
// 64), from `printf %s KEY | sha256sum` (f5047344…, 4f56e484…).
const binOfPinned = "836 4"

func mustHex4(key string) uint32 {
	s := sha256.Sum256([]byte(key))
	return binary.BigEndian.Uint32(s[:4])
}
