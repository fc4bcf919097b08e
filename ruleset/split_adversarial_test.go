package ruleset_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/ruleset"
)

// forge makes the PartRef a root would list for body, as a leader that
// wrote body would: so that the tests below reach the checks after the
// digest.
func forge(kind string, bin, bins int, body []byte) ruleset.PartRef {
	sum := sha256.Sum256(body)
	name := fmt.Sprintf("%s-%d-%x", kind, len(body), sum[:16])
	if kind != ruleset.KindVPCs && kind != ruleset.KindFindings {
		name = fmt.Sprintf("%s%04d-%d-%x", kind, bin, len(body), sum[:16])
	}
	return ruleset.PartRef{Name: name, Kind: kind, Bin: bin, Bins: bins, Size: int64(len(body)), SHA256: sum}
}

// replacePart returns a copy of root and parts in which the part old
// has the bytes body (and a name to match).
func replacePart(t *testing.T, root *ruleset.Root, parts map[string][]byte, old ruleset.PartRef, body []byte) (*ruleset.Root, map[string][]byte, ruleset.PartRef) {
	t.Helper()
	ref := forge(old.Kind, old.Bin, old.Bins, body)
	r := *root
	r.Parts = slices.Clone(root.Parts)
	i := slices.IndexFunc(r.Parts, func(p ruleset.PartRef) bool { return p.Name == old.Name })
	r.Parts[i] = ref
	slices.SortFunc(r.Parts, func(a, b ruleset.PartRef) int { return strings.Compare(a.Name, b.Name) })
	if _, err := ruleset.EncodeRoot(&r); err != nil {
		t.Fatalf("the forged root does not encode: %v", err)
	}
	p := map[string][]byte{}
	for k, v := range parts {
		p[k] = v
	}
	delete(p, old.Name)
	p[ref.Name] = body
	return &r, p, ref
}

// fixture is a small estate split into several bins of each kind.
func fixture(t *testing.T) (*ruleset.Ruleset, *ruleset.Root, map[string][]byte) {
	t.Helper()
	rs := estates(t)["synth-small-prefixes-stale"]
	root, _, parts := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: 512})
	for _, k := range []string{ruleset.KindAddrs, ruleset.KindGroups, ruleset.KindInterfaces, ruleset.KindMembers} {
		if root.Bins[k] < 4 {
			t.Fatalf("fixture: %d bins of %s", root.Bins[k], k)
		}
	}
	return rs, root, parts
}

func firstOf(root *ruleset.Root, kind string) ruleset.PartRef {
	for _, p := range root.Parts {
		if p.Kind == kind && p.Size > 100 {
			return p
		}
	}
	panic("no part of kind " + kind)
}

// lines splits a part into its header line and its lines.
func lines(b []byte) (string, []string) {
	ls := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	return ls[0], ls[1:]
}

func join(head string, ls []string) []byte {
	return []byte(head + "\n" + strings.Join(ls, "\n") + "\n")
}

// TestPartsAdversarial: parts that do not belong to the root, or are not
// what a leader writes, are refused by Join and by LoadView (which reads
// every part when asked for every key), with an error that names the
// part, and the line and key where there is one.
func TestPartsAdversarial(t *testing.T) {
	rs, root, parts := fixture(t)
	ctx := context.Background()
	// Another publish of the same estate, one interface changed.
	other := cloneRuleset(rs)
	other.Interfaces[0].Region = "us-west-2"
	otherRoot, _, otherParts := mustSplit(t, other, ruleset.SplitOptions{TargetBinBytes: 512})

	iref := firstOf(root, ruleset.KindInterfaces)
	gref := firstOf(root, ruleset.KindGroups)
	aref := firstOf(root, ruleset.KindAddrs)
	vref := firstOf(root, ruleset.KindVPCs)

	type tc struct {
		name string
		// mutate returns the root and parts to read.
		mutate func(t *testing.T) (*ruleset.Root, map[string][]byte)
		want   error
		// says are substrings of the error.
		says []string
	}
	edit := func(ref ruleset.PartRef, f func(head string, ls []string) (string, []string)) func(t *testing.T) (*ruleset.Root, map[string][]byte) {
		return func(t *testing.T) (*ruleset.Root, map[string][]byte) {
			h, ls := lines(parts[ref.Name])
			h, ls = f(h, slices.Clone(ls))
			r, p, _ := replacePart(t, root, parts, ref, join(h, ls))
			return r, p
		}
	}
	replaceIn := func(ref ruleset.PartRef, line int, old, new string) func(t *testing.T) (*ruleset.Root, map[string][]byte) {
		return edit(ref, func(h string, ls []string) (string, []string) {
			if !strings.Contains(ls[line], old) {
				panic(fmt.Sprintf("%q not in %q", old, ls[line]))
			}
			ls[line] = strings.Replace(ls[line], old, new, 1)
			return h, ls
		})
	}
	keyOf := func(ref ruleset.PartRef, line int) string {
		_, ls := lines(parts[ref.Name])
		k, _, _ := strings.Cut(ls[line], "\t")
		return k
	}
	// movedIn adds to ref's part, in key order, the first line of another
	// bin of its kind.
	movedIn := func(ref ruleset.PartRef) func(*testing.T) (*ruleset.Root, map[string][]byte) {
		return func(t *testing.T) (*ruleset.Root, map[string][]byte) {
			var moved string
			for _, o := range root.Parts {
				if o.Kind == ref.Kind && o.Name != ref.Name && o.Size > 100 {
					_, ls := lines(parts[o.Name])
					moved = ls[0]
					break
				}
			}
			return edit(ref, func(h string, ls []string) (string, []string) {
				ls = append(ls, moved)
				slices.Sort(ls)
				return h, ls
			})(t)
		}
	}
	changedName := ""
	for _, p := range root.Parts {
		if !otherRoot.Has(p.Name) {
			changedName = p.Name
			break
		}
	}
	tests := []tc{
		{"part of another publish", func(t *testing.T) (*ruleset.Root, map[string][]byte) {
			// The store answers the name of this root's part with the
			// bytes of the other publish's part of that bin.
			p := copyParts(parts)
			for _, o := range otherRoot.Parts {
				if strings.HasPrefix(changedName, o.Name[:6]) && !root.Has(o.Name) {
					p[changedName] = otherParts[o.Name]
				}
			}
			return root, p
		}, ruleset.ErrPartMismatch, []string{changedName, "SHA-256"}},
		{"missing part", func(t *testing.T) (*ruleset.Root, map[string][]byte) {
			p := copyParts(parts)
			delete(p, gref.Name)
			return root, p
		}, ruleset.ErrPartMissing, []string{gref.Name}},
		{"root naming parts that never existed", func(t *testing.T) (*ruleset.Root, map[string][]byte) {
			r, _, _ := replacePart(t, root, parts, iref, []byte("reyes.part/v1 i 0/8\n"))
			return r, parts
		}, ruleset.ErrPartMissing, nil},
		{"flipped byte", func(t *testing.T) (*ruleset.Root, map[string][]byte) {
			p := copyParts(parts)
			b := bytes.Clone(p[iref.Name])
			b[len(b)/2] ^= 1
			p[iref.Name] = b
			return root, p
		}, ruleset.ErrPartMismatch, []string{iref.Name, "SHA-256"}},
		{"truncated", func(t *testing.T) (*ruleset.Root, map[string][]byte) {
			p := copyParts(parts)
			p[iref.Name] = p[iref.Name][:iref.Size-1]
			return root, p
		}, ruleset.ErrPartMismatch, []string{iref.Name, "bytes"}},
		{"longer", func(t *testing.T) (*ruleset.Root, map[string][]byte) {
			p := copyParts(parts)
			p[iref.Name] = append(bytes.Clone(p[iref.Name]), '\n')
			return root, p
		}, ruleset.ErrPartMismatch, []string{iref.Name}},
		{"key in the wrong bin", movedIn(iref), ruleset.ErrMalformed, []string{"belongs in bin"}},
		{"keys out of order", edit(gref, func(h string, ls []string) (string, []string) {
			ls[0], ls[1] = ls[1], ls[0]
			return h, ls
		}), ruleset.ErrMalformed, []string{"line 3", "out of order"}},
		{"key twice", edit(aref, func(h string, ls []string) (string, []string) {
			return h, append(ls[:1], ls...)
		}), ruleset.ErrMalformed, []string{"line 3", keyOf(aref, 0), "listed twice"}},
		{"wrong header kind", edit(iref, func(h string, ls []string) (string, []string) {
			return strings.Replace(h, " i ", " g ", 1), ls
		}), ruleset.ErrMalformed, []string{"line 1", "header"}},
		{"wrong header bin", edit(iref, func(h string, ls []string) (string, []string) {
			return strings.Replace(h, fmt.Sprintf(" %d/", iref.Bin), fmt.Sprintf(" %d/", iref.Bin+1), 1), ls
		}), ruleset.ErrMalformed, []string{"line 1"}},
		{"wrong header format", edit(vref, func(h string, ls []string) (string, []string) {
			return "reyes.part/v2 vpcs 0/1", ls
		}), ruleset.ErrMalformed, []string{"line 1", "reyes.part/v2"}},
		{"no tab", replaceIn(iref, 0, "\t", " "), ruleset.ErrMalformed, []string{"line 2"}},
		{"CR LF", edit(vref, func(h string, ls []string) (string, []string) {
			ls[0] += "\r"
			return h, ls
		}), ruleset.ErrMalformed, []string{"line 2", "CR"}},
		{"trailing data", func(t *testing.T) (*ruleset.Root, map[string][]byte) {
			r, p, _ := replacePart(t, root, parts, vref, append(bytes.Clone(parts[vref.Name]), "junk"...))
			return r, p
		}, ruleset.ErrMalformed, []string{"final newline"}},
		{"unknown field", replaceIn(iref, 0, `{"id"`, `{"x":1,"id"`), ruleset.ErrMalformed, []string{"line 2", keyOf(iref, 0), `/x`, "unknown field"}},
		{"duplicate field", replaceIn(iref, 0, `{"id":"`+keyOf(iref, 0)+`"`, `{"id":"`+keyOf(iref, 0)+`","id":"`+keyOf(iref, 0)+`"`), ruleset.ErrMalformed, []string{"duplicate"}},
		{"mis-cased field", replaceIn(iref, 0, `"region"`, `"Region"`), ruleset.ErrMalformed, []string{"Region"}},
		{"escaped field", replaceIn(iref, 0, `"region"`, `"\u0072egion"`), ruleset.ErrMalformed, []string{"escape"}},
		{"not canonical", replaceIn(iref, 0, `,"region"`, `, "region"`), ruleset.ErrMalformed, []string{"canonical"}},
		{"id differs from key", replaceIn(iref, 0, `"id":"eni-`, `"id":"eni-0`), ruleset.ErrMalformed, []string{"differs from the key"}},
		{"group with members", replaceIn(gref, 0, `}`, `,"members":[]}`), ruleset.ErrMalformed, []string{"line 2", keyOf(gref, 0), "members"}},
		{"invalid value", replaceIn(gref, 0, `"region":"`, `"region":"!`), ruleset.ErrInvalid, []string{"line 2", keyOf(gref, 0), "region"}},
		{"not an address", replaceIn(iref, 0, `"addrs":["`, `"addrs":["x`), ruleset.ErrInvalid, []string{"line 2", keyOf(iref, 0), "addrs[0]", "is not an IP address"}},
		{"invalid address", replaceIn(aref, 0, `["eni-`, `["x-`), ruleset.ErrInvalid, []string{"line 2", "interfaces[0]", "network interface ID"}},
		{"address not canonical", edit(aref, func(h string, ls []string) (string, []string) {
			// the key of an address in another spelling
			k, v, _ := strings.Cut(ls[0], "\t")
			ls[0] = strings.Replace(k, ".", ".0", 1) + "\t" + v
			slices.Sort(ls)
			return h, ls
		}), ruleset.ErrMalformed, nil},
		{"group members not its interfaces", edit(mostMembers(root, parts), func(h string, ls []string) (string, []string) {
			// drop the last member of the group with most members
			_, line := mostMembersLine(ls)
			i := strings.LastIndex(ls[line], `,{"id":"eni-`)
			ls[line] = ls[line][:i] + "]"
			return h, ls
		}), ruleset.ErrMalformed, []string{"members"}},
		{"members differ from the interface record", edit(mostMembers(root, parts), func(h string, ls []string) (string, []string) {
			_, line := mostMembersLine(ls)
			if !strings.Contains(ls[line], `"region":"us-east-1"`) {
				panic("fixture: no member in us-east-1")
			}
			ls[line] = strings.Replace(ls[line], `"region":"us-east-1"`, `"region":"eu-north-1"`, 1)
			return h, ls
		}), ruleset.ErrMalformed, []string{"member", "differs"}},
		{"members of a group that has no group line", func(t *testing.T) (*ruleset.Root, map[string][]byte) {
			// the group of the first members line loses its "g" line
			mref := firstOf(root, ruleset.KindMembers)
			gid := keyOf(mref, 0)
			g, _ := root.Part(ruleset.KindGroups, gid)
			h, ls := lines(parts[g.Name])
			ls = slices.DeleteFunc(slices.Clone(ls), func(l string) bool { return strings.HasPrefix(l, gid+"\t") })
			r, p, _ := replacePart(t, root, parts, g, join(h, ls))
			return r, p
		}, ruleset.ErrMalformed, []string{"members of group", "no group part"}},
		{"members line in the wrong bin", movedIn(firstOf(root, ruleset.KindMembers)), ruleset.ErrMalformed, []string{"belongs in bin"}},
		{"members line with no members", edit(firstOf(root, ruleset.KindMembers), func(h string, ls []string) (string, []string) {
			k, _, _ := strings.Cut(ls[0], "\t")
			ls[0] = k + "\t[]"
			return h, ls
		}), ruleset.ErrMalformed, []string{"line 2", "no members"}},
		{"members line keyed by no group ID", edit(firstOf(root, ruleset.KindMembers), func(h string, ls []string) (string, []string) {
			_, v, _ := strings.Cut(ls[0], "\t")
			ls[0] = "eni-00000001\t" + v
			slices.Sort(ls)
			return h, ls
		}), ruleset.ErrMalformed, []string{"eni-00000001", "security group ID"}},
		{"members line with a group's value", edit(firstOf(root, ruleset.KindMembers), func(h string, ls []string) (string, []string) {
			k, _, _ := strings.Cut(ls[0], "\t")
			ls[0] = k + "\t" + `{"id":"` + k + `"}`
			return h, ls
		}), ruleset.ErrMalformed, []string{"line 2", k0(firstOf(root, ruleset.KindMembers), keyOf)}},
		{"members out of order", edit(mostMembers(root, parts), func(h string, ls []string) (string, []string) {
			k, line := mostMembersLine(ls)
			_, v, _ := strings.Cut(ls[line], "\t")
			ms := strings.Split(strings.TrimSuffix(strings.TrimPrefix(v, "[{"), "}]"), `},{`)
			ms[0], ms[1] = ms[1], ms[0]
			ls[line] = k + "\t[{" + strings.Join(ms, `},{`) + "}]"
			return h, ls
		}), nil, []string{"members"}},
		{"address index not the interfaces'", edit(aref, func(h string, ls []string) (string, []string) {
			return h, ls[1:]
		}), ruleset.ErrMalformed, []string{"address"}},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			r, p := c.mutate(t)
			st := newStore(p)
			_, err := ruleset.Join(ctx, r, st.fetch)
			if err == nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Join = %v, want %v", err, c.want)
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Join's error %q does not say %q", err, s)
				}
			}
			t.Logf("Join: %v", err)
		})
	}
}

// TestLoadViewAdversarial: LoadView refuses what it reads of a bad part,
// and reads nothing of a part before its digest is checked.
func TestLoadViewAdversarial(t *testing.T) {
	rs, root, parts := fixture(t)
	ctx := context.Background()
	host := rs.Interfaces[len(rs.Interfaces)/2]
	req := ruleset.ViewRequest{Addrs: host.Addrs}
	v, err := ruleset.LoadView(ctx, root, req, newStore(parts).fetch)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range v.Parts {
		t.Run(ref.Name, func(t *testing.T) {
			// Missing.
			p := copyParts(parts)
			delete(p, ref.Name)
			if _, err := ruleset.LoadView(ctx, root, req, newStore(p).fetch); !errors.Is(err, ruleset.ErrPartMissing) || !strings.Contains(err.Error(), ref.Name) {
				t.Errorf("missing: %v", err)
			}
			// Corrupt: a flipped bit in the header line, which a parser
			// would notice first; the digest must be what refuses it.
			p = copyParts(parts)
			b := bytes.Clone(p[ref.Name])
			b[0] ^= 0x20
			p[ref.Name] = b
			if _, err := ruleset.LoadView(ctx, root, req, newStore(p).fetch); !errors.Is(err, ruleset.ErrPartMismatch) {
				t.Errorf("corrupt: %v", err)
			}
		})
	}
	// A part of the view with its lines in the wrong order, consistently
	// named: the order is checked across the whole part, also lines the
	// view does not decode.
	for _, ref := range v.Parts {
		h, ls := lines(parts[ref.Name])
		if len(ls) < 3 {
			continue
		}
		ls = slices.Clone(ls)
		ls[len(ls)-1], ls[len(ls)-2] = ls[len(ls)-2], ls[len(ls)-1]
		r, p, _ := replacePart(t, root, parts, ref, join(h, ls))
		if _, err := ruleset.LoadView(ctx, r, req, newStore(p).fetch); !errors.Is(err, ruleset.ErrMalformed) || !strings.Contains(err.Error(), "out of order") {
			t.Errorf("%s out of order: %v", ref.Name, err)
		}
	}
	// A bad request.
	for _, bad := range []ruleset.ViewRequest{{Groups: []string{"sg-x"}}, {InterfaceIDs: []string{"eni-\n"}}, {Addrs: []netip.Addr{{}}}} {
		if _, err := ruleset.LoadView(ctx, root, bad, newStore(parts).fetch); err == nil {
			t.Errorf("LoadView(%v) succeeded", bad)
		}
	}
}

// mostMembers is the "m" part holding the group with most members.
func mostMembers(root *ruleset.Root, parts map[string][]byte) ruleset.PartRef {
	var best ruleset.PartRef
	n := 0
	for _, o := range root.Parts {
		if o.Kind != ruleset.KindMembers {
			continue
		}
		_, ls := lines(parts[o.Name])
		for _, l := range ls {
			if c := strings.Count(l, `{"id":"eni-`); c > n {
				best, n = o, c
			}
		}
	}
	return best
}

// mostMembersLine is the key and index of the line of ls with most
// members.
func mostMembersLine(ls []string) (string, int) {
	line, n := -1, 0
	for i, l := range ls {
		if c := strings.Count(l, `{"id":"eni-`); c > n {
			line, n = i, c
		}
	}
	k, _, _ := strings.Cut(ls[line], "\t")
	return k, line
}

func k0(ref ruleset.PartRef, keyOf func(ruleset.PartRef, int) string) string { return keyOf(ref, 0) }

func copyParts(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestSha256sumChecksParts: in a directory holding the parts, GNU
// sha256sum -c with the root payload as the check file checks every part,
// and fails on a corrupt one.
func TestSha256sumChecksParts(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("no sha256sum")
	}
	_, root, parts := fixture(t)
	payload, err := ruleset.EncodeRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "root"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, b := range parts {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func() (string, error) {
		cmd := exec.Command("sha256sum", "-c", "--strict", "root")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run()
	if err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	if got := strings.Count(out, ": OK\n"); got != len(root.Parts) {
		t.Fatalf("sha256sum -c checked %d parts, want %d:\n%s", got, len(root.Parts), out)
	}
	bad := root.Parts[len(root.Parts)/2].Name
	if err := os.WriteFile(filepath.Join(dir, bad), []byte("reyes.part/v1 x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(); err == nil || !strings.Contains(out, bad+": FAILED") {
		t.Fatalf("sha256sum -c with a corrupt part: %v\n%s", err, out)
	}
}

// TestLoadViewInconsistentParts: a view refuses parts of one root that
// disagree: a member of a referenced group whose interface record is
// missing, an address whose interface does not have it.
func TestLoadViewInconsistentParts(t *testing.T) {
	rs, root, parts := fixture(t)
	ctx := context.Background()
	x := ruleset.NewIndex(rs)
	var host, ref string
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			for _, id := range r.Groups {
				if id != g.ID && x.Group(id) != nil && len(x.Members(id)) > 0 {
					host, ref = g.ID, id
				}
			}
		}
	}
	if host == "" {
		t.Fatal("fixture: no group refers to another with members")
	}
	var member *ruleset.Interface
	for i := range rs.Interfaces {
		if slices.Contains(rs.Interfaces[i].Groups, ref) {
			member = &rs.Interfaces[i]
			break
		}
	}
	iref, _ := root.Part(ruleset.KindInterfaces, member.ID)
	h, ls := lines(parts[iref.Name])
	ls = slices.DeleteFunc(slices.Clone(ls), func(l string) bool { return strings.HasPrefix(l, member.ID+"\t") })
	r, p, _ := replacePart(t, root, parts, iref, join(h, ls))
	_, err := ruleset.LoadView(ctx, r, ruleset.ViewRequest{Groups: []string{host}, InterfaceIDs: []string{member.ID}}, newStore(p).fetch)
	if !errors.Is(err, ruleset.ErrMalformed) || !strings.Contains(err.Error(), member.ID) {
		t.Fatalf("a member without an interface record: %v", err)
	}

	// The members' line of the referenced group disagrees with the
	// interface record of one of its members, or leaves it out.
	mref, _ := root.Part(ruleset.KindMembers, ref)
	for _, c := range []struct {
		name, says string
		edit       func(v string) string
	}{
		{"another region", "differs from its interface record", func(v string) string {
			i := strings.Index(v, `{"id":"`+member.ID+`","region":"`)
			j := i + len(`{"id":"`+member.ID+`","region":"`)
			k := j + strings.IndexByte(v[j:], '"')
			return v[:j] + map[bool]string{true: "eu-north-1", false: "us-east-1"}[v[j:k] != "eu-north-1"] + v[k:]
		}},
		{"left out", "do not list it", func(v string) string {
			i := strings.Index(v, `{"id":"`+member.ID+`"`)
			k := i + strings.IndexByte(v[i:], '}') + 1
			if v[k] == ',' {
				return v[:i] + v[k+1:]
			}
			return strings.TrimSuffix(v[:i], ",") + v[k:]
		}},
	} {
		h, ls := lines(parts[mref.Name])
		ls = slices.Clone(ls)
		for i, l := range ls {
			if k, v, _ := strings.Cut(l, "\t"); k == ref {
				ls[i] = k + "\t" + c.edit(v)
			}
		}
		r, p, _ := replacePart(t, root, parts, mref, join(h, ls))
		_, err := ruleset.LoadView(ctx, r, ruleset.ViewRequest{Groups: []string{host}, InterfaceIDs: []string{member.ID}}, newStore(p).fetch)
		if !errors.Is(err, ruleset.ErrMalformed) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), member.ID) {
			t.Fatalf("members of %s: %s: %v", ref, c.name, err)
		}
	}

	// The address index gives an address to an interface without it.
	a := member.Addrs[0]
	aref, _ := root.Part(ruleset.KindAddrs, a.String())
	other := rs.Interfaces[0].ID
	if other == member.ID {
		other = rs.Interfaces[1].ID
	}
	h, ls = lines(parts[aref.Name])
	ls = slices.Clone(ls)
	for i, l := range ls {
		if strings.HasPrefix(l, a.String()+"\t") {
			ls[i] = a.String() + "\t" + `["` + other + `"]`
		}
	}
	r, p, _ = replacePart(t, root, parts, aref, join(h, ls))
	_, err = ruleset.LoadView(ctx, r, ruleset.ViewRequest{Addrs: []netip.Addr{a}}, newStore(p).fetch)
	if !errors.Is(err, ruleset.ErrMalformed) || !strings.Contains(err.Error(), other) {
		t.Fatalf("an address on the wrong interface: %v", err)
	}
}
