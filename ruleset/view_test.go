package ruleset_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// The helpers below do what reyes.Identify does with a ruleset (package
// reyes imports ruleset, so the test cannot call it): the host of some
// addresses, of some interface IDs (as IMDS describes them), or of groups
// the operator gave.

// hostByAddrs is reyes' lookupAddrs: every interface with one of addrs,
// all in one VPC (or in vpcID), or no host.
func hostByAddrs(rs *ruleset.Ruleset, addrs []netip.Addr, vpcID string) (render.Host, bool) {
	found := rs.InterfacesWith(addrs, vpcID)
	if len(found) == 0 {
		return render.Host{}, false
	}
	for _, n := range found {
		if n.VPC != found[0].VPC || n.Region != found[0].Region {
			return render.Host{}, false // ambiguous
		}
	}
	h := render.Host{VPCCIDRs: rs.VPCCIDRs([]string{found[0].VPC})}
	for _, n := range found {
		h.Interfaces = append(h.Interfaces, render.HostInterface{ID: n.ID, Addrs: slices.Clone(n.Addrs), Groups: slices.Clone(n.Groups)})
	}
	return h, true
}

// hostByIDs is a host as IMDS describes it: its interfaces with their
// groups and addresses (taken from the full ruleset here: IMDS is not the
// ruleset), the CIDRs of the VPC from the ruleset given.
func hostByIDs(full, rs *ruleset.Ruleset, ids []string) render.Host {
	var h render.Host
	for _, id := range ids {
		n := ruleset.NewIndex(full).Interface(id)
		h.Interfaces = append(h.Interfaces, render.HostInterface{ID: n.ID, Addrs: slices.Clone(n.Addrs), Groups: slices.Clone(n.Groups)})
		h.VPCCIDRs = rs.VPCCIDRs([]string{n.VPC})
	}
	return h
}

// hostByGroups is reyes' explicitHost.
func hostByGroups(rs *ruleset.Ruleset, groups []string) render.Host {
	groups = slices.Clone(groups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	var vpcs []string
	x := ruleset.NewIndex(rs)
	for _, g := range groups {
		if gr := x.Group(g); gr != nil {
			vpcs = append(vpcs, gr.VPC)
		}
	}
	return render.Host{Interfaces: []render.HostInterface{{ID: "explicit", Groups: groups}}, VPCCIDRs: rs.VPCCIDRs(vpcs)}
}

// restoreText is everything a plan would load into the kernel.
func restoreText(t testing.TB, rs *ruleset.Ruleset, h render.Host) string {
	t.Helper()
	p, err := render.Render(rs, h, render.Options{})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var b bytes.Buffer
	for _, fp := range p.Families() {
		b.Write(fp.IpsetRestore())
		b.Write(fp.IptablesRestore())
	}
	return b.String()
}

// viewCase is one host to load a view for.
type viewCase struct {
	name string
	req  ruleset.ViewRequest
	// host finds the host in a ruleset (the full one or the view).
	host func(rs *ruleset.Ruleset) (render.Host, bool)
}

// randomHosts picks hosts of rs: by address (one interface's, all of a
// random interface's, an address in no interface), by interface IDs, and
// by explicit groups (including unknown ones).
func randomHosts(rs *ruleset.Ruleset, rng *rand.Rand, n int) []viewCase {
	var out []viewCase
	if len(rs.Interfaces) == 0 {
		return nil
	}
	pick := func() *ruleset.Interface { return &rs.Interfaces[rng.IntN(len(rs.Interfaces))] }
	for range n {
		a := pick()
		addrs := slices.Clone(a.Addrs)
		if rng.IntN(3) == 0 {
			addrs = addrs[:1]
		}
		if rng.IntN(4) == 0 {
			addrs = append(addrs, netip.MustParseAddr("192.0.2.77")) // in no interface
		}
		if rng.IntN(4) == 0 {
			// a second interface of the same VPC: a host with two ENIs
			for range 10 {
				b := pick()
				if b.VPC == a.VPC && b.ID != a.ID && len(b.Addrs) > 0 {
					addrs = append(addrs, b.Addrs[0])
					break
				}
			}
		}
		out = append(out, viewCase{
			name: "addrs " + a.ID,
			req:  ruleset.ViewRequest{Addrs: addrs},
			host: func(rs *ruleset.Ruleset) (render.Host, bool) { return hostByAddrs(rs, addrs, "") },
		})
		vpc := a.VPC
		out = append(out, viewCase{
			name: "addrs in vpc " + a.ID,
			req:  ruleset.ViewRequest{Addrs: addrs},
			host: func(rs *ruleset.Ruleset) (render.Host, bool) { return hostByAddrs(rs, addrs, vpc) },
		})
		ids := []string{a.ID}
		var groups []string
		groups = append(groups, a.Groups...)
		full := rs
		out = append(out, viewCase{
			name: "imds " + a.ID,
			req:  ruleset.ViewRequest{InterfaceIDs: ids, Groups: groups, Addrs: a.Addrs},
			host: func(rs *ruleset.Ruleset) (render.Host, bool) {
				h := hostByIDs(full, rs, ids)
				return h, len(h.Interfaces[0].Groups) > 0
			},
		})
		g := []string{rs.Groups[rng.IntN(len(rs.Groups))].ID}
		if rng.IntN(2) == 0 {
			g = append(g, rs.Groups[rng.IntN(len(rs.Groups))].ID)
		}
		if rng.IntN(4) == 0 {
			g = append(g, "sg-0123456789abcdef0") // unknown to the estate
		}
		out = append(out, viewCase{
			name: "groups " + strings.Join(g, ","),
			req:  ruleset.ViewRequest{Groups: g},
			host: func(rs *ruleset.Ruleset) (render.Host, bool) { return hostByGroups(rs, g), true },
		})
	}
	return out
}

// TestLoadViewRendersAsFull is the invariant of LoadView: for every host
// that can be found, the host found in the view and its plan are those of
// the full ruleset, and View.Parts is exactly what was fetched.
func TestLoadViewRendersAsFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 15))
	for name, rs := range estates(t) {
		t.Run(name, func(t *testing.T) {
			root, _, parts := mustSplit(t, rs, ruleset.SplitOptions{TargetBinBytes: 256})
			for _, c := range randomHosts(rs, rng, 12) {
				st := newStore(parts)
				v, err := ruleset.LoadView(context.Background(), root, c.req, st.fetch)
				if err != nil {
					t.Fatalf("%s: LoadView: %v", c.name, err)
				}
				checkFetched(t, c.name, v, st)
				hf, okf := c.host(rs)
				hv, okv := c.host(v.Ruleset)
				if okf != okv || !reflect.DeepEqual(hf, hv) {
					t.Fatalf("%s: host in the view %v (%v), in the full ruleset %v (%v)", c.name, hv, okv, hf, okf)
				}
				if !okf {
					continue
				}
				if got, want := restoreText(t, v.Ruleset, hv), restoreText(t, rs, hf); got != want {
					t.Fatalf("%s: the view renders\n%s\nthe full ruleset\n%s", c.name, got, want)
				}
			}
		})
	}
}

func checkFetched(t *testing.T, name string, v *ruleset.View, st *store) {
	t.Helper()
	var names []string
	var size int64
	for _, p := range v.Parts {
		names = append(names, p.Name)
		size += p.Size
	}
	var fetched []string
	for n, c := range st.fetched {
		if c != 1 {
			t.Errorf("%s: part %s fetched %d times", name, n, c)
		}
		fetched = append(fetched, n)
	}
	slices.Sort(fetched)
	if !slices.Equal(names, fetched) {
		t.Fatalf("%s: View.Parts %v, fetched %v", name, names, fetched)
	}
	if size != v.Bytes {
		t.Fatalf("%s: View.Bytes %d, parts hold %d", name, v.Bytes, size)
	}
}

// TestFetchConcurrency: parts are fetched concurrently, at most 8 at
// once, and the first failure cancels the fetches still running.
func TestFetchConcurrency(t *testing.T) {
	_, root, parts := fixture(t)
	var mu sync.Mutex
	inFlight, most := 0, 0
	release := make(chan struct{})
	var once sync.Once
	fetch := func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		n := inFlight
		mu.Unlock()
		defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		if n == 8 {
			once.Do(func() { close(release) }) // all 8 slots taken at once
		}
		select {
		case <-release:
		case <-time.After(5 * time.Second):
			return nil, errors.New("never 8 fetches at once")
		}
		return parts[ref.Name], nil
	}
	if _, err := ruleset.Join(context.Background(), root, fetch); err != nil {
		t.Fatal(err)
	}
	if most != 8 {
		t.Fatalf("at most %d fetches at once, want 8", most)
	}

	// A failure cancels the others: they see their context done.
	boom := errors.New("boom")
	var cancelled atomic.Int32
	fetch = func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
		if ref.Name == root.Parts[0].Name {
			return nil, boom
		}
		select {
		case <-ctx.Done():
			cancelled.Add(1)
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			return parts[ref.Name], nil
		}
	}
	start := time.Now()
	_, err := ruleset.Join(context.Background(), root, fetch)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), root.Parts[0].Name) {
		t.Fatalf("Join = %v, want boom naming %s", err, root.Parts[0].Name)
	}
	if time.Since(start) > 5*time.Second || cancelled.Load() == 0 {
		t.Fatalf("the other fetches were not cancelled (%d cancelled, %s)", cancelled.Load(), time.Since(start))
	}
}
