package ruleset

import (
	"bytes"
	"crypto/sha256"
	"net/netip"
	"strings"
	"testing"
)

// splitSample is a small ruleset with every kind of part and line:
// delegated prefixes, scoped references, findings, an excluded group.
func splitSample(f *testing.F) (*Root, map[string][]byte) {
	f.Helper()
	rich := validRuleset()
	rich.Interfaces[0].Prefixes = []netip.Prefix{pfx("10.0.0.16/28"), pfx("fd00:0:0:1:2::/80")}
	rich.Groups[1].Rules[0].Scoped = []ScopedRef{{Group: "sg-0000000e", VPC: "vpc-00000001", From: []string{"vpc-00000002"}}}
	rich.Findings = []Finding{{Kind: FindingUnreadAccount, Group: "sg-0000000b", Ref: "sg-0000000c", Account: "999999999999", Detail: "not read"}}
	root, parts, err := Split(rich, SplitOptions{TargetBinBytes: 64})
	if err != nil {
		f.Fatal(err)
	}
	return root, parts
}

// FuzzDecodeRoot: DecodeRoot never panics, and what it accepts is the
// canonical encoding of what it returns: EncodeRoot gives the same bytes.
func FuzzDecodeRoot(f *testing.F) {
	root, _ := splitSample(f)
	payload, err := EncodeRoot(root)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(payload)
	withChanges := *root
	withChanges.Changes = NewChanges(sha256.Sum256(payload), []string{ViewKey(KindGroups, "sg-1"), ViewKey(KindVPCs, "")})
	if p, err := EncodeRoot(&withChanges); err == nil {
		f.Add(p)
		both := withChanges
		both.EarlierChanges = NewChanges([32]byte{9}, []string{ViewKey(KindMembers, "sg-2")})
		if p2, err := EncodeRoot(&both); err == nil {
			f.Add(p2)
		}
		ps := string(p)
		for _, m := range [][2]string{{`"k":10`, `"k":0`}, {`"k":10`, `"k":33`}, {`=="}`, `="}`}, {`"since":"`, `"since":"A`}} {
			f.Add([]byte(strings.Replace(ps, m[0], m[1], 1)))
		}
	} else {
		f.Fatal(err)
	}
	s := string(payload)
	for _, m := range [][2]string{
		{`"serial":`, `"x":1,"serial":`},
		{`"a":`, `"a":3,"a":`},
		{"\n", "\r\n"},
		{`"g":`, `"G":`},
		{`,"m":`, `,"m":0,"x":`},
		{`,"m":`, `}`},
		{"  ", " *"},
		{`"bins":{`, `"bins":{"x":1,`},
	} {
		f.Add([]byte(strings.Replace(s, m[0], m[1], 1)))
	}
	f.Add(payload[:len(payload)/2])
	if z, err := CompressRoot(payload); err == nil {
		f.Add(z)
		f.Add(z[:len(z)-8])
		f.Add(append(z, 0))
	}
	f.Add([]byte("# reyes.root/v1\n# {}\n"))
	f.Add([]byte("# reyes.root/v1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRoot(data, Limits{})
		if err != nil {
			if r != nil {
				t.Fatalf("DecodeRoot returned a root with error %v", err)
			}
			return
		}
		if !IsRoot(data) {
			t.Fatalf("DecodeRoot accepted what IsRoot refuses: %q", data)
		}
		again, err := EncodeRoot(r)
		if err != nil {
			t.Fatalf("EncodeRoot of a decoded root: %v", err)
		}
		text, err := RootText(data)
		if err != nil {
			t.Fatalf("RootText of a root DecodeRoot accepts: %v", err)
		}
		if !bytes.Equal(again, text) {
			t.Fatalf("EncodeRoot(DecodeRoot(x)) != RootText(x)\n%q\n%q", text, again)
		}
	})
}

// FuzzPart: the part reader never panics on any bytes (named by their own
// digest, so that the fuzzer reaches the parser), and a part whose every
// line it accepts re-encodes to the same bytes.
func FuzzPart(f *testing.F) {
	root, parts := splitSample(f)
	kinds := []string{KindAddrs, KindGroups, KindInterfaces, KindVPCs, KindFindings, KindMembers}
	kindIndex := func(k string) uint8 {
		for i, x := range kinds {
			if x == k {
				return uint8(i)
			}
		}
		panic(k)
	}
	for _, p := range root.Parts {
		b := parts[p.Name]
		f.Add(b, kindIndex(p.Kind), uint16(p.Bin), uint16(p.Bins))
		f.Add(bytes.Replace(b, []byte("\t"), []byte("\t "), 1), kindIndex(p.Kind), uint16(p.Bin), uint16(p.Bins))
		f.Add(bytes.Replace(b, []byte(`"id":"`), []byte(`"id":"x`), 1), kindIndex(p.Kind), uint16(p.Bin), uint16(p.Bins))
		f.Add(bytes.Replace(b, []byte("\t["), []byte("\t[]\n"), 1), kindIndex(p.Kind), uint16(p.Bin), uint16(p.Bins))
	}
	h := root.Header
	h.Format = Format
	lim := Limits{}.withDefaults()
	f.Fuzz(func(t *testing.T, data []byte, k uint8, bin, bins uint16) {
		kind := kinds[int(k)%len(kinds)]
		n := max(1, int(bins)%MaxBins)
		ref := PartRef{Kind: kind, Bin: int(bin) % n, Bins: n, Size: int64(len(data)), SHA256: sha256.Sum256(data)}
		ref.Name = partName(kind, ref.Bin, ref.Size, ref.SHA256)
		p, err := openPart(ref, data)
		if err != nil {
			return
		}
		var lines []partLine
		for i := range p.lines() {
			key, val, _ := p.line(i)
			var err error
			switch kind {
			case KindAddrs:
				_, _, err = p.decodeAddr(i)
			case KindGroups:
				_, err = p.decodeGroup(i, h, lim)
			case KindMembers:
				_, _, err = p.decodeMembers(i, h, lim)
			case KindInterfaces:
				_, err = p.decodeInterface(i, h, lim)
			case KindVPCs:
				_, err = p.decodeVPC(i, h, lim)
			case KindFindings:
				_, err = p.decodeFinding(i, h, lim)
			}
			if err != nil {
				return
			}
			if j, ok := p.find(key); !ok || j != i {
				t.Fatalf("find(%q) = %d, %v; want %d", key, j, ok, i)
			}
			lines = append(lines, partLine{key, bytes.Clone(val)})
		}
		if again := encodePart(kind, ref.Bin, ref.Bins, lines); !bytes.Equal(again, data) {
			t.Fatalf("re-encoding an accepted part differs\n%q\n%q", data, again)
		}
	})
}
