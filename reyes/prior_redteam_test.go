package reyes_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
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
	ctx := context.Background()
	rs, err := ruleset.Build(e.inv, ruleset.BuildOptions{Scope: "test", GeneratedAt: e.p.now, Serial: reyes.MaxSerial(e.p.now)})
	if err != nil {
		t.Fatal(err)
	}
	root, parts, err := ruleset.Split(rs, ruleset.SplitOptions{TargetBinBytes: target})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range parts {
		if err := e.p.store.Parts().Put(ctx, name, b); err != nil {
			t.Fatal(err)
		}
	}
	payload, err := ruleset.EncodeRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sign.Seal(payload, e.p.signer, e.p.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.store.Put(ctx, obj); err != nil {
		t.Fatal(err)
	}
	e.obj, e.root = obj, root
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
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { priorSequence(t, seed) })
	}
}

func priorSequence(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2026))
	e := newSplitEstate(t)
	p := e.p
	p.follower.DriftCheck = -1
	l := *p.leader
	l.Source = invSource{e}
	l.Refresh = -1
	e.leaderPublish(t, &l)
	first := e.run(t)
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
			switch rng.IntN(9) {
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
			default: // nothing
			}
		}
		// How it is published.
		switch rng.IntN(10) {
		case 0:
			e.publishBins(t, []int64{2 << 10, 16 << 10, 64 << 10}[rng.IntN(3)])
			did = append(did, "other bins")
		case 1:
			e.leaderPublish(t, &l)
			p.now = p.now.Add(time.Minute)
			e.leaderPublish(t, &l)
			did = append(did, "missed a root")
		default:
			e.leaderPublish(t, &l)
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
			if planDigestOf(want) != st.Loaded.PlanDigest {
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

// planDigestOf is reyes' digest of everything a plan loads (its
// LoadedRecord.PlanDigest).
func planDigestOf(plan *render.Plan) string {
	h := sha256.New()
	for _, fp := range plan.Families() {
		for _, b := range [][]byte{fp.IpsetRestore(), fp.IptablesRestore()} {
			fmt.Fprintf(h, "%d\n", len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
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
