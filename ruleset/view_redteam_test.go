package ruleset_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/ruleset"
)

// TestRedteamLoadViewAddressIndex: a root whose address index (signed,
// but written by a faulty leader) disagrees with the interface records:
// the host's address listed for an interface that is in no interface
// part, or for a real interface that does not have it. LoadView must
// refuse, not hand back a view in which the host is someone else or no
// one.
func TestRedteamLoadViewAddressIndex(t *testing.T) {
	rs, root, parts := fixture(t)
	ctx := context.Background()
	host := rs.Interfaces[len(rs.Interfaces)/2]
	other := rs.Interfaces[len(rs.Interfaces)/3]
	addr := host.Addrs[0]
	aref, ok := root.Part(ruleset.KindAddrs, addr.String())
	if !ok {
		t.Fatal("no address part")
	}
	for _, tc := range []struct{ name, id string }{
		{"an interface in no part", "eni-0000000000000dead"},
		{"a real interface without the address", other.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ls := lines(parts[aref.Name])
			found := false
			for i, l := range ls {
				if k, _, _ := strings.Cut(l, "\t"); k == addr.String() {
					ls[i] = k + "\t[\"" + tc.id + "\"]"
					found = true
				}
			}
			if !found {
				t.Fatal("address not in its part")
			}
			r, p, _ := replacePart(t, root, parts, aref, join(h, ls))
			v, err := ruleset.LoadView(ctx, r, ruleset.ViewRequest{Addrs: []netip.Addr{addr}}, newStore(p).fetch)
			if !errors.Is(err, ruleset.ErrMalformed) {
				t.Fatalf("LoadView = %v (view with %d interfaces), want ErrMalformed", err, func() int {
					if v == nil {
						return 0
					}
					return len(v.Ruleset.Interfaces)
				}())
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestRedteamRootNamesStayInTheirDirectory: reyesctl unpack writes every
// part of an unverified root under its name into DIR, and the stores put
// names into paths and S3 keys. A root whose names try to leave the
// directory, or carry odd characters, is refused by DecodeRoot.
func TestRedteamRootNamesStayInTheirDirectory(t *testing.T) {
	_, root, _ := fixture(t)
	good, err := ruleset.EncodeRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	ref := root.Parts[0]
	hex := ref.Name[len(ref.Name)-32:]
	for _, bad := range []string{
		"../" + ref.Name,
		ref.Name + "/../../etc/passwd",
		strings.Replace(ref.Name, "-", "/", 1),
		"/" + ref.Name,
		ref.Name + " ",
		ref.Name + "\x00",
		strings.ToUpper(ref.Name[:1]) + ref.Name[1:],
		"vpcs-1-" + hex + "/x",
		"vpcs-01-" + hex,
		".." + ref.Name[2:],
	} {
		b := strings.Replace(string(good), "  "+ref.Name+"\n", "  "+bad+"\n", 1)
		if b == string(good) {
			t.Fatal("no replacement")
		}
		if r, err := ruleset.DecodeRoot([]byte(b), ruleset.Limits{}); err == nil {
			t.Errorf("name %q accepted: parts[0] = %q", bad, r.Parts[0].Name)
		}
	}
}
