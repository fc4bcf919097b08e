package reyes_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
)

// freshPlan is the plan a follower with the same settings and an empty
// state directory makes of the store's root (a dry run).
func (e *splitEstate) freshPlan(t *testing.T) *render.Plan {
	t.Helper()
	fresh := *e.p.follower
	fresh.StateDir, fresh.DryRun, fresh.Out, fresh.MetricsFile = t.TempDir(), true, io.Discard, ""
	res, err := fresh.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("fresh follower: %v", err)
	}
	return res.Plan
}

// samePlanText reports whether two plans load the same sets and rules.
func samePlanText(a, b *render.Plan) bool {
	fa, fb := a.Families(), b.Families()
	if len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if string(fa[i].IpsetRestore()) != string(fb[i].IpsetRestore()) || string(fa[i].IptablesRestore()) != string(fb[i].IptablesRestore()) {
			return false
		}
	}
	return true
}

// publishBins publishes the inventory as it is with bins of about target
// bytes (another number of bins than the leader's: no change list), as a
// leader whose estate grew or shrank past a threshold does.
func (e *splitEstate) publishBins(t *testing.T, target int64) {
	t.Helper()
	e.publishSplit(t, reyes.MaxSerial(e.p.now), ruleset.SplitOptions{TargetBinBytes: target})
}

// groupOf returns the region index and the group of the estate with id.
func (e *splitEstate) groupOf(id string) (int, *inventory.SecurityGroup) {
	for ri := range e.inv.Regions {
		for gi := range e.inv.Regions[ri].SecurityGroups {
			if g := &e.inv.Regions[ri].SecurityGroups[gi]; g.ID == id {
				return ri, g
			}
		}
	}
	return -1, nil
}

// TestRedteamPriorFollowerSequences: a follower that keeps its parts
// goes through random sequences of publishes and runs of every kind (the
// fast path by parts or by change list, the same-plan path, full applies
// with earlier parts, failed applies, dry runs on its own state
// directory, identity changes, settings changes that change its request,
// missed roots, a publish with other bins, members added and removed,
// rules that refer to groups for the first time, a referenced group
// deleted then created again) and after each its plan is the one a
// fresh follower makes of the same root.
func TestRedteamPriorFollowerSequences(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { priorSequence(t, seed) })
	}
}

func priorSequence(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2026))
	c := newChangesEstate(t)
	e, p, l, first := c.splitEstate, c.p, c.l, c.first
	unrelated := e.unrelatedGroups(first)
	var hosts []inventory.NetworkInterface
	for _, r := range e.inv.Regions {
		for _, n := range r.NetworkInterfaces {
			if len(n.Addresses) > 0 && n.Addresses[0].Is4() && len(n.Groups) > 0 {
				hosts = append(hosts, n)
			}
		}
	}
	n := 50000
	paths := map[string]int{}
	stale := fmt.Sprintf("sg-0dead%012x", seed)
	for step := range 40 {
		p.now = p.now.Add(time.Minute)
		var did []string
		// What the estate does.
		for range 1 + rng.IntN(3) {
			switch rng.IntN(10) {
			case 0, 1: // churn elsewhere
				for range 20 {
					e.addInterface(unrelated[rng.IntN(len(unrelated))], n)
					n++
				}
				did = append(did, "churn")
			case 2: // a member of a group the plan refers to
				refd := slices.Sorted(mapsKeys(setGroups(first.Plan)))
				refd = slices.DeleteFunc(refd, func(g string) bool { _, gr := e.groupOf(g); return gr == nil })
				if len(refd) > 0 {
					g := refd[rng.IntN(len(refd))]
					e.addInterface(g, n)
					n++
					did = append(did, "member of "+g)
				}
			case 3: // an interface terminated (maybe one the plan holds)
				ri := rng.IntN(len(e.inv.Regions))
				ns := e.inv.Regions[ri].NetworkInterfaces
				if len(ns) > 10 {
					i := rng.IntN(len(ns))
					if ns[i].ID != e.host.ID {
						did = append(did, "terminate "+ns[i].ID)
						e.inv.Regions[ri].NetworkInterfaces = slices.Delete(ns, i, i+1)
					}
				}
			case 4: // a rule of the host's group refers to a group (maybe for the first time)
				_, hg := e.groupOf(e.host.Groups[0])
				if hg == nil {
					break
				}
				ri := rng.IntN(len(e.inv.Regions))
				gs := e.inv.Regions[ri].SecurityGroups
				target := gs[rng.IntN(len(gs))]
				port := int32(20000 + rng.IntN(1000))
				hg.Ingress = append(slices.Clone(hg.Ingress), inventory.Permission{Protocol: "tcp", FromPort: &port, ToPort: &port,
					Groups: []inventory.GroupRef{{GroupID: target.ID, UserID: target.OwnerID}}})
				did = append(did, "rule to "+target.ID)
			case 5: // a rule to a group that does not exist yet; later it does
				_, hg := e.groupOf(e.host.Groups[0])
				if hg == nil {
					break
				}
				if _, g := e.groupOf(stale); g == nil && rng.IntN(2) == 0 {
					port := int32(30000 + rng.IntN(1000))
					hg.Ingress = append(slices.Clone(hg.Ingress), inventory.Permission{Protocol: "tcp", FromPort: &port, ToPort: &port,
						Groups: []inventory.GroupRef{{GroupID: stale, UserID: hg.OwnerID}}})
					did = append(did, "rule to missing "+stale)
				} else if g == nil {
					r := &e.inv.Regions[0]
					r.SecurityGroups = append(r.SecurityGroups, inventory.SecurityGroup{ID: stale, Name: "late", OwnerID: hg.OwnerID, VPCID: hg.VPCID})
					e.addInterface(stale, n)
					n++
					did = append(did, "create "+stale)
				} else {
					ri, _ := e.groupOf(stale)
					r := &e.inv.Regions[ri]
					r.SecurityGroups = slices.DeleteFunc(r.SecurityGroups, func(g inventory.SecurityGroup) bool { return g.ID == stale })
					r.NetworkInterfaces = slices.DeleteFunc(r.NetworkInterfaces, func(n inventory.NetworkInterface) bool { return slices.Contains(n.Groups, stale) })
					did = append(did, "delete "+stale)
				}
			case 6: // a member address changes (an address index entry moves)
				ri := rng.IntN(len(e.inv.Regions))
				ns := e.inv.Regions[ri].NetworkInterfaces
				i := rng.IntN(len(ns))
				if ns[i].ID != e.host.ID && len(ns[i].Addresses) > 0 && ns[i].Addresses[0].Is4() {
					ns[i].Addresses = slices.Clone(ns[i].Addresses)
					ns[i].Addresses[0] = netip.AddrFrom4([4]byte{10, 253, byte(n >> 8), byte(n)})
					n++
					did = append(did, "readdress "+ns[i].ID)
				}
			case 7: // the host's own interface joins or leaves a group
				for ri := range e.inv.Regions {
					ns := e.inv.Regions[ri].NetworkInterfaces
					for i := range ns {
						if ns[i].ID != e.host.ID {
							continue
						}
						if len(ns[i].Groups) > 1 && rng.IntN(2) == 0 {
							ns[i].Groups = slices.Clone(ns[i].Groups[:len(ns[i].Groups)-1])
						} else {
							gs := e.inv.Regions[ri].SecurityGroups
							for _, g := range gs[rng.IntN(len(gs)):] {
								if g.VPCID == ns[i].VPCID && !slices.Contains(ns[i].Groups, g.ID) {
									ns[i].Groups = append(slices.Clone(ns[i].Groups), g.ID)
									break
								}
							}
						}
						e.host = ns[i]
						did = append(did, fmt.Sprintf("host groups %v", ns[i].Groups))
					}
				}
			case 8: // a VPC's CIDRs (every view reads the VPCs)
				r := &e.inv.Regions[rng.IntN(len(e.inv.Regions))]
				if len(r.VPCs) > 0 {
					v := &r.VPCs[rng.IntN(len(r.VPCs))]
					v.CIDRs = append(slices.Clone(v.CIDRs), netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(n), 0}), 24))
					n++
					did = append(did, "cidr of "+v.ID)
				}
			default: // nothing
			}
		}
		// How it is published.
		switch rng.IntN(10) {
		case 0:
			e.publishBins(t, []int64{2 << 10, 16 << 10, 64 << 10}[rng.IntN(3)])
			did = append(did, "other bins")
		case 1:
			e.leaderPublish(t, l)
			p.now = p.now.Add(time.Minute)
			e.leaderPublish(t, l)
			did = append(did, "missed a root")
		default:
			e.leaderPublish(t, l)
		}
		// What the host does.
		dry := false
		var fail bool
		switch rng.IntN(10) {
		case 0:
			e.host = hosts[rng.IntN(len(hosts))]
			did = append(did, "host is "+e.host.ID)
		case 1:
			if len(p.follower.Identity.Groups) == 0 {
				_, gs := e.inv.Regions[0], e.inv.Regions[0].SecurityGroups
				p.follower.Identity.Groups = []string{gs[rng.IntN(len(gs))].ID}
			} else {
				p.follower.Identity.Groups = nil
			}
			did = append(did, fmt.Sprintf("groups setting %v", p.follower.Identity.Groups))
		case 2:
			fail = true
		case 3:
			dry = true
		}
		if fail {
			p.kernel.Fail = func(applytest.Call) error { return errors.New("injected failure") }
			_, err := p.follower.RunOnce(context.Background())
			p.kernel.Fail = nil
			if err == nil {
				paths["fail (nothing to apply)"]++
			} else {
				paths["failed"]++
			}
			did = append(did, "failed run")
		}
		if dry {
			f := *p.follower
			f.DryRun, f.Out = true, io.Discard
			if _, err := f.RunOnce(context.Background()); err != nil {
				t.Fatalf("step %d: dry run: %v", step, err)
			}
			did = append(did, "dry run")
		}
		res := e.run(t)
		switch {
		case res.NotModified:
			paths["not modified"]++
		case res.PlanUnchanged && res.PartsFetched+res.PartsCached == 0:
			paths["fast"]++
		case res.PlanUnchanged:
			paths["same plan"]++
		default:
			paths["applied"]++
		}
		if res.PartsCached > 0 && !res.NotModified {
			paths["used the cache"]++
		}
		if res.Plan == nil {
			// A fast path: the plan is the kernel's; compare what a
			// fresh follower makes with what is loaded.
			st, err := reyes.LoadStatus(p.follower.StateDir)
			if err != nil || st.Loaded == nil {
				t.Fatal(err)
			}
			want := e.freshPlan(t)
			if reyes.PlanDigest(want) != st.Loaded.PlanDigest {
				t.Fatalf("step %d (%v): the loaded plan differs from a fresh follower's", step, did)
			}
			continue
		}
		if want := e.freshPlan(t); !samePlanText(res.Plan, want) {
			t.Fatalf("step %d (%v): the plan differs from a fresh follower's (fetched %d, cached %d)", step, did, res.PartsFetched, res.PartsCached)
		}
		first = res
	}
	t.Logf("paths: %v", paths)
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// priorSetup applies a first root, then publishes one that changes a
// record of the plan (a member of a group it refers to) amid churn that
// changes most of the bins the host reads: the next run reads the parts
// of the records that did not change from the parts it kept (the earlier
// parts). It returns the names of those earlier parts (kept, and not
// listed by the new root) and the number of parts kept.
func priorSetup(t *testing.T) (*splitEstate, []string, int) {
	t.Helper()
	c := newChangesEstate(t)
	e, p, l, first := c.splitEstate, c.p, c.l, c.first
	unrelated := e.unrelatedGroups(first)
	for i := range 60 {
		e.addInterface(unrelated[i%len(unrelated)], 40000+i)
	}
	var ref string
	for _, g := range slices.Sorted(mapsKeys(setGroups(first.Plan))) {
		if ruleset.ValidGroupID(g) {
			ref = g
			break
		}
	}
	e.addInterface(ref, 61000)
	p.now = p.now.Add(time.Minute)
	e.leaderPublish(t, l)
	var earlier []string
	for _, n := range first.Parts {
		if !e.root.Has(n) {
			earlier = append(earlier, n)
		}
	}
	if len(earlier) < 3 {
		t.Fatalf("only %d of the kept parts changed: the test shows nothing", len(earlier))
	}
	return e, earlier, len(first.Parts)
}

// TestRedteamPriorCacheTampered: the parts a follower kept from its last
// view, which LoadViewSince reads for the records that did not change,
// are tampered with in every way a file can be: gone, truncated, one
// byte flipped, one byte more, a sparse file of a GiB, a FIFO (no writer),
// a symbolic link (to a good copy), a directory, the bytes of another part
// of the same kind, the part's bytes under another earlier part's name.
// Each is a cache miss: the run ends at once, reads the root's part from
// the store, and its plan is the one a fresh follower makes.
func TestRedteamPriorCacheTampered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string, names []string)
	}{
		{"untampered", func(*testing.T, string, []string) {}},
		{"gone", func(t *testing.T, dir string, names []string) {
			for _, n := range names {
				os.Remove(filepath.Join(dir, n))
			}
		}},
		{"truncated", func(t *testing.T, dir string, names []string) {
			for _, n := range names {
				fi, _ := os.Stat(filepath.Join(dir, n))
				os.Truncate(filepath.Join(dir, n), fi.Size()/2)
			}
		}},
		{"one byte flipped", func(t *testing.T, dir string, names []string) {
			for _, n := range names {
				b, _ := os.ReadFile(filepath.Join(dir, n))
				b[len(b)-2] ^= 1
				os.WriteFile(filepath.Join(dir, n), b, 0o600)
			}
		}},
		{"one byte more", func(t *testing.T, dir string, names []string) {
			for _, n := range names {
				b, _ := os.ReadFile(filepath.Join(dir, n))
				os.WriteFile(filepath.Join(dir, n), append(b, '\n'), 0o600)
			}
		}},
		{"a GiB", func(t *testing.T, dir string, names []string) {
			for _, n := range names {
				os.Truncate(filepath.Join(dir, n), 1<<30)
			}
		}},
		{"FIFO", func(t *testing.T, dir string, names []string) {
			for _, n := range names {
				mkfifo(t, filepath.Join(dir, n))
			}
		}},
		{"symlink to a good copy", func(t *testing.T, dir string, names []string) {
			other := t.TempDir()
			for _, n := range names {
				os.Rename(filepath.Join(dir, n), filepath.Join(other, n))
				os.Symlink(filepath.Join(other, n), filepath.Join(dir, n))
			}
		}},
		{"directory", func(t *testing.T, dir string, names []string) {
			for _, n := range names {
				os.Remove(filepath.Join(dir, n))
				os.Mkdir(filepath.Join(dir, n), 0o700)
			}
		}},
		{"names swapped", func(t *testing.T, dir string, names []string) {
			bs := make([][]byte, len(names))
			for i, n := range names {
				bs[i], _ = os.ReadFile(filepath.Join(dir, n))
			}
			for i, n := range names {
				os.WriteFile(filepath.Join(dir, n), bs[(i+1)%len(bs)], 0o600)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, earlier, kept := priorSetup(t)
			p := e.p
			dir := filepath.Join(p.follower.StateDir, reyes.PartsDir)
			tc.tamper(t, dir, earlier)
			var res reyes.FollowerResult
			err := within(t, 20*time.Second, "a run with tampered earlier parts", func() error {
				var err error
				res, err = p.follower.RunOnce(context.Background())
				return err
			})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if res.Plan == nil || !samePlanText(res.Plan, e.freshPlan(t)) {
				t.Fatalf("the plan differs from a fresh follower's")
			}
			t.Logf("fetched %d, cached %d, %d bytes; %d earlier parts", res.PartsFetched, res.PartsCached, res.StoreBytes, len(earlier))
			if tc.name == "untampered" && res.PartsFetched > 2 {
				t.Fatalf("untampered: fetched %d parts", res.PartsFetched)
			}
			if tc.name != "untampered" && res.PartsFetched < 3 {
				t.Fatalf("fetched only %d parts: a tampered earlier part was used", res.PartsFetched)
			}
			// What the status and the metrics call parts read from the
			// cache (verified) are the good ones: not the tampered copies.
			if tc.name != "untampered" && res.PartsCached > kept-len(earlier) {
				t.Errorf("%d parts counted as read from the cache; only %d cached parts are intact", res.PartsCached, kept-len(earlier))
			}
			// The cache holds what the view read, each a regular file that
			// is the part of its name.
			for _, n := range res.Parts {
				fi, err := os.Lstat(filepath.Join(dir, n))
				if err != nil || !fi.Mode().IsRegular() {
					t.Fatalf("cached %s: %v %v", n, fi, err)
				}
			}
			ents, err := os.ReadDir(dir)
			if err != nil || len(ents) != len(res.Parts) {
				t.Fatalf("the cache holds %d files, the view %d parts (%v)", len(ents), len(res.Parts), err)
			}
		})
	}
}
