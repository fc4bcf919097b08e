package reyes_test

import (
	"context"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// invSource serves the estate's inventory as it is when fetched.
type invSource struct{ e *splitEstate }

func (s invSource) Fetch(context.Context) (*inventory.Inventory, error) {
	return cloneInventory(s.e.inv), nil
}

// leaderPublish runs a real leader over the estate and returns its result
// and the root it published, verified with the pipeline's key.
func (e *splitEstate) leaderPublish(t *testing.T, l *reyes.Leader) (reyes.LeaderResult, *ruleset.Root) {
	t.Helper()
	return e.leaderPublishTrusting(t, l, e.p.trusted)
}

// leaderPublishTrusting is leaderPublish for roots signed by any key of
// trusted.
func (e *splitEstate) leaderPublishTrusting(t *testing.T, l *reyes.Leader, trusted *sign.Keyring) (reyes.LeaderResult, *ruleset.Root) {
	t.Helper()
	res, err := l.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := e.p.store.Get(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	payload, err := sign.OpenBytes(body, trusted, e.p.now)
	if err != nil {
		t.Fatal(err)
	}
	root, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	e.obj, e.root = body, root
	return res, root
}

// unrelatedGroups are the groups of the estate that neither hold the host
// nor are in its plan's sets, in order.
func (e *splitEstate) unrelatedGroups(first reyes.FollowerResult) []string {
	inPlan := setGroups(first.Plan)
	var out []string
	for _, r := range e.inv.Regions {
		for _, g := range r.SecurityGroups {
			if !inPlan[g.ID] && !slices.Contains(e.host.Groups, g.ID) {
				out = append(out, g.ID)
			}
		}
	}
	return out
}

// TestSplitFollowerChangeList: under churn that changes parts this host
// reads but none of its plan's records (autoscaling in unrelated groups),
// the leader's change list lets the follower accept each new root reading
// the root alone: no part, no kernel call. The list chains from root to
// root; a follower that missed a root reads its changed parts instead; a
// change in the plan is read and applied.
func TestSplitFollowerChangeList(t *testing.T) {
	e := newSplitEstate(t)
	p := e.p
	p.follower.DriftCheck = -1
	l := *p.leader
	l.Source = invSource{e}
	l.Refresh = -1
	res0, _ := e.leaderPublish(t, &l)
	if res0.ChangedKeys != -1 || e.root.Changes != nil {
		t.Fatalf("first publish: changed keys %d, changes %v; want none", res0.ChangedKeys, e.root.Changes)
	}
	first := e.run(t)
	if !first.Applied.Changed() || len(first.Keys) == 0 {
		t.Fatalf("first run: changed=%v keys=%v", first.Applied.Changed(), first.Keys)
	}
	dump := p.kernel.Dump()
	unrelated := e.unrelatedGroups(first)
	if len(unrelated) < 10 {
		t.Fatalf("only %d unrelated groups", len(unrelated))
	}
	n := 0
	churn := func() {
		for range 30 {
			e.addInterface(unrelated[n%len(unrelated)], 40000+n)
			n++
		}
		p.now = p.now.Add(time.Minute)
	}
	for round := range 3 {
		churn()
		lres, root := e.leaderPublish(t, &l)
		if root.Changes == nil || lres.ChangedKeys < 30 {
			t.Fatalf("round %d: changed keys %d, changes %v; want the churn listed", round, lres.ChangedKeys, root.Changes)
		}
		if allListed(root, first.Parts) {
			t.Fatalf("round %d: the churn left every part of the plan in place: the test shows nothing", round)
		}
		res := e.run(t)
		if !res.PlanUnchanged || res.PartsFetched != 0 || res.PartsCached != 0 || len(p.kernel.Calls()) != 0 {
			t.Fatalf("round %d: PlanUnchanged=%v fetched=%d cached=%d calls=%v; want the root alone", round, res.PlanUnchanged, res.PartsFetched, res.PartsCached, p.kernel.Calls())
		}
		if res.StoreBytes != int64(len(e.obj)) {
			t.Fatalf("round %d: read %d bytes, the root is %d", round, res.StoreBytes, len(e.obj))
		}
		if st, err := reyes.LoadState(p.follower.StateDir); err != nil || st.Serial != root.Serial {
			t.Fatalf("round %d: state serial %d, want %d (%v)", round, st.Serial, root.Serial, err)
		}
		if p.kernel.Dump() != dump {
			t.Fatalf("round %d: the kernel changed", round)
		}
		t.Logf("round %d: %d changed keys, root %d bytes = %.2f %% of the first run (%d bytes)", round, lres.ChangedKeys, len(e.obj), float64(len(e.obj))/float64(first.StoreBytes)*100, first.StoreBytes)
	}

	// A follower that missed a root: the list is from a root it never
	// accepted, so it reads the parts that changed; the plan is the same.
	churn()
	e.leaderPublish(t, &l)
	churn()
	e.leaderPublish(t, &l)
	res := e.run(t)
	if !res.PlanUnchanged || res.PartsFetched == 0 || len(p.kernel.Calls()) != 0 {
		t.Fatalf("missed root: PlanUnchanged=%v fetched=%d calls=%v; want the changed parts read, no kernel call", res.PlanUnchanged, res.PartsFetched, p.kernel.Calls())
	}
	// And the chain holds again from there.
	churn()
	e.leaderPublish(t, &l)
	if res := e.run(t); !res.PlanUnchanged || res.PartsFetched+res.PartsCached != 0 {
		t.Fatalf("after catching up: PlanUnchanged=%v fetched=%d cached=%d", res.PlanUnchanged, res.PartsFetched, res.PartsCached)
	}

	// A change in the plan: a member of a group its rules refer to.
	var ref string
	for g := range setGroups(first.Plan) {
		if ruleset.ValidGroupID(g) {
			ref = g
			break
		}
	}
	// Amid churn that touched most of its bins, the follower reads the
	// parts of the records that changed (the member part of ref), and
	// the other records from the parts it kept; the plan is the one a
	// fresh follower makes.
	churn()
	e.addInterface(ref, 61000)
	_, root := e.leaderPublish(t, &l)
	res = e.run(t)
	if res.PlanUnchanged || !res.Applied.Changed() {
		t.Fatalf("change in the plan: PlanUnchanged=%v changed=%v", res.PlanUnchanged, res.Applied.Changed())
	}
	if !containsMember(res.Plan, ref, netip.AddrFrom4([4]byte{10, 254, 61000 >> 8 & 0xff, 61000 & 0xff})) {
		t.Fatalf("the new member of %s is not in the plan", ref)
	}
	unlisted := 0
	for _, name := range first.Parts {
		if !root.Has(name) {
			unlisted++
		}
	}
	if res.PartsFetched > 2 || unlisted < 4 {
		t.Fatalf("change in the plan amid churn: fetched %d parts (%d bytes); %d of the first view's parts changed", res.PartsFetched, res.StoreBytes, unlisted)
	}
	t.Logf("change in the plan amid churn: fetched %d parts, %d bytes (%.1f %% of the first run); %d of the view's parts had changed",
		res.PartsFetched, res.StoreBytes, float64(res.StoreBytes)/float64(first.StoreBytes)*100, unlisted)
	fresh := *p.follower
	fresh.StateDir, fresh.DryRun, fresh.Out = t.TempDir(), true, io.Discard
	want, err := fresh.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, fp := range res.Plan.Families() {
		wfp := want.Plan.Families()[i]
		if string(fp.IpsetRestore()) != string(wfp.IpsetRestore()) || string(fp.IptablesRestore()) != string(wfp.IptablesRestore()) {
			t.Fatalf("the plan made with kept parts differs from a fresh follower's")
		}
	}
}

// TestLeaderChangeListKeepsItsParts: a leader lists the changes since the
// root it published last from the parts it kept in memory, so it does not
// read them back; a leader without them (a hot spare, a restart) reads the
// previous parts whose bins changed from the store, and publishes without
// a list (logged) when they are gone, rather than guess.
func TestLeaderChangeListKeepsItsParts(t *testing.T) {
	e := newSplitEstate(t)
	p := e.p
	newLeader := func() *reyes.Leader {
		return &reyes.Leader{Source: invSource{e}, Store: p.store, Signer: p.signer, Build: p.leader.Build, Now: p.leader.Now, Refresh: -1}
	}
	l := newLeader()
	e.leaderPublish(t, l)
	wipe := func() {
		names, err := p.store.Parts().List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range names {
			if err := p.store.Parts().Delete(context.Background(), o.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	groups := e.unrelatedGroupsAll()
	e.addInterface(groups[0], 50001)
	p.now = p.now.Add(time.Minute)
	wipe()
	res, root := e.leaderPublish(t, l)
	if res.ChangedKeys <= 0 || root.Changes == nil {
		t.Fatalf("same leader, parts gone from the store: changed keys %d; want the list from its memory", res.ChangedKeys)
	}
	// A hot spare reads the previous parts from the store.
	e.addInterface(groups[1], 50002)
	p.now = p.now.Add(time.Minute)
	res, root = e.leaderPublish(t, newLeader())
	if res.ChangedKeys <= 0 || root.Changes == nil {
		t.Fatalf("another leader: changed keys %d; want the list from the store's parts", res.ChangedKeys)
	}
	// With them gone, it publishes without a list.
	e.addInterface(groups[2], 50003)
	p.now = p.now.Add(time.Minute)
	wipe()
	res, root = e.leaderPublish(t, newLeader())
	if res.ChangedKeys != -1 || root.Changes != nil {
		t.Fatalf("another leader, previous parts gone: changed keys %d; want no list", res.ChangedKeys)
	}
}

// unrelatedGroupsAll are all groups of the estate but the host's.
func (e *splitEstate) unrelatedGroupsAll() []string {
	var out []string
	for _, r := range e.inv.Regions {
		for _, g := range r.SecurityGroups {
			if !slices.Contains(e.host.Groups, g.ID) {
				out = append(out, g.ID)
			}
		}
	}
	return out
}

// TestSplitHotSparesEarlierChanges: two hot-spare leaders under churn. A
// follower that accepted leader A's root and missed leader B's (two
// publishes between its polls) finds, in A's next root, the changes since
// A's own last root (EarlierChanges), and reads the root alone.
func TestSplitHotSparesEarlierChanges(t *testing.T) {
	e := newSplitEstate(t)
	p := e.p
	p.follower.DriftCheck = -1
	newLeader := func() *reyes.Leader {
		return &reyes.Leader{Source: invSource{e}, Store: p.store, Signer: p.signer, Build: p.leader.Build, Now: p.leader.Now, Refresh: -1}
	}
	a, b := newLeader(), newLeader()
	e.leaderPublish(t, a)
	first := e.run(t)
	unrelated := e.unrelatedGroups(first)
	n := 0
	churn := func() {
		for range 20 {
			e.addInterface(unrelated[n%len(unrelated)], 30000+n)
			n++
		}
		p.now = p.now.Add(time.Minute)
	}
	churn()
	_, rb := e.leaderPublish(t, b)
	if rb.EarlierChanges != nil {
		t.Fatalf("B's first root lists changes since an earlier root of its own: %+v", rb.EarlierChanges)
	}
	churn()
	_, ra := e.leaderPublish(t, a)
	if ra.Changes == nil || ra.EarlierChanges == nil {
		t.Fatalf("A's root after B's: changes %v, earlier changes %v; want both", ra.Changes != nil, ra.EarlierChanges != nil)
	}
	res := e.run(t)
	if !res.PlanUnchanged || res.PartsFetched+res.PartsCached != 0 || len(p.kernel.Calls()) != 0 {
		t.Fatalf("missed B's root: PlanUnchanged=%v fetched=%d cached=%d calls=%v; want the root alone", res.PlanUnchanged, res.PartsFetched, res.PartsCached, p.kernel.Calls())
	}
	// And amid churn a change in its plan, after missing B's next root:
	// the parts of the changed records only.
	churn()
	e.leaderPublish(t, b)
	churn()
	var ref string
	for g := range setGroups(first.Plan) {
		if ruleset.ValidGroupID(g) {
			ref = g
			break
		}
	}
	e.addInterface(ref, 62000)
	e.leaderPublish(t, a)
	res = e.run(t)
	if !res.Applied.Changed() || res.PartsFetched == 0 || res.PartsFetched > 2 {
		t.Fatalf("change in the plan after a missed root: changed=%v fetched=%d", res.Applied.Changed(), res.PartsFetched)
	}
}
