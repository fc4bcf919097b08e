package reyes_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// changesEstate is a split estate published by a real leader (so roots
// carry change lists) and applied once by the follower.
type changesEstate struct {
	*splitEstate
	l     *reyes.Leader
	first reyes.FollowerResult
	n     int // the next fresh interface number
}

func newChangesEstate(t *testing.T) *changesEstate {
	t.Helper()
	e := newSplitEstate(t)
	e.p.follower.DriftCheck = -1
	l := *e.p.leader
	l.Source = invSource{e}
	l.Refresh = -1
	e.leaderPublish(t, &l)
	c := &changesEstate{splitEstate: e, l: &l, n: 30000}
	c.first = e.run(t)
	if !c.first.Applied.Changed() || len(c.first.Keys) == 0 {
		t.Fatalf("first run: changed=%v keys=%d", c.first.Applied.Changed(), len(c.first.Keys))
	}
	return c
}

// churn adds interfaces to groups this host's plan does not involve and
// publishes: a root whose change list holds none of the plan's records.
func (c *changesEstate) churn(t *testing.T) *ruleset.Root {
	t.Helper()
	unrelated := c.unrelatedGroups(c.first)
	for range 20 {
		c.addInterface(unrelated[c.n%len(unrelated)], c.n)
		c.n++
	}
	return c.publishNow(t)
}

func (c *changesEstate) publishNow(t *testing.T) *ruleset.Root {
	t.Helper()
	c.p.now = c.p.now.Add(time.Minute)
	_, root := c.leaderPublish(t, c.l)
	return root
}

// refGroup is a group the host's rules refer to (its members are in a
// set of the plan).
func (c *changesEstate) refGroup(t *testing.T) string {
	t.Helper()
	var ids []string
	for g := range setGroups(c.first.Plan) {
		if ruleset.ValidGroupID(g) {
			ids = append(ids, g)
		}
	}
	if len(ids) == 0 {
		t.Fatal("the host's plan refers to no group")
	}
	slices.Sort(ids)
	return ids[0]
}

// TestRedteamChangesFailedApplyDoesNotChain: a root that changes the
// plan fails to apply (the kernel refuses); the next root's change list,
// since that failed root, holds none of the plan's records. The follower
// never accepted the failed root, so the list is not from its last root:
// it must read and apply the change it missed, not keep the old plan.
func TestRedteamChangesFailedApplyDoesNotChain(t *testing.T) {
	c := newChangesEstate(t)
	ref := c.refGroup(t)
	c.addInterface(ref, 61001)
	newMember := netip.AddrFrom4([4]byte{10, 254, 61001 >> 8 & 0xff, 61001 & 0xff})
	c.publishNow(t)
	c.p.kernel.Fail = func(applytest.Call) error { return errors.New("injected: the kernel refuses") }
	if _, err := c.p.follower.RunOnce(context.Background()); err == nil {
		t.Fatal("the apply did not fail")
	}
	c.p.kernel.Fail = nil
	root := c.churn(t)
	if root.Changes == nil {
		t.Fatal("the churn's root has no change list: the test shows nothing")
	}
	res := c.run(t)
	if res.PlanUnchanged || !containsMember(res.Plan, ref, newMember) || !res.Applied.Changed() {
		t.Fatalf("after a failed apply: PlanUnchanged=%v, new member in plan=%v, applied=%v; want the missed change applied",
			res.PlanUnchanged, res.Plan != nil && containsMember(res.Plan, ref, newMember), res.Applied.Changed())
	}
}

// TestRedteamChangesGroupCreatedLater: the host's group gets a rule that
// refers to a group which does not exist yet (a stale reference: it
// allows nothing); a later publish creates that group with a member. The
// follower looked the absent group up, so its creation is in the change
// list and the member must reach the plan.
func TestRedteamChangesGroupCreatedLater(t *testing.T) {
	c := newChangesEstate(t)
	const future = "sg-0fee1fee1fee1fee1"
	hostGroup := c.host.Groups[0]
	var region, vpc, owner string
	for ri := range c.inv.Regions {
		r := &c.inv.Regions[ri]
		for gi := range r.SecurityGroups {
			g := &r.SecurityGroups[gi]
			if g.ID == hostGroup {
				port := int32(7443)
				g.Ingress = append(slices.Clone(g.Ingress), inventory.Permission{Protocol: "tcp", FromPort: &port, ToPort: &port,
					Groups: []inventory.GroupRef{{GroupID: future, UserID: g.OwnerID}}})
				region, vpc, owner = r.Name, g.VPCID, g.OwnerID
			}
		}
	}
	if vpc == "" {
		t.Fatal("the host's group is not in the inventory")
	}
	c.publishNow(t)
	res := c.run(t)
	if !slices.Contains(res.Keys, ruleset.ViewKey(ruleset.KindGroups, future)) {
		t.Fatalf("the follower did not record the absent group it looked up: keys %v", res.Keys)
	}
	// Churn elsewhere, taken by the change list.
	c.churn(t)
	if res := c.run(t); !res.PlanUnchanged || res.PartsFetched+res.PartsCached != 0 {
		t.Fatalf("unrelated churn: PlanUnchanged=%v fetched=%d cached=%d", res.PlanUnchanged, res.PartsFetched, res.PartsCached)
	}
	// The group is created, with a member.
	for ri := range c.inv.Regions {
		r := &c.inv.Regions[ri]
		if r.Name == region {
			r.SecurityGroups = append(slices.Clone(r.SecurityGroups), inventory.SecurityGroup{ID: future, Name: "future", OwnerID: owner, VPCID: vpc})
			break
		}
	}
	c.addInterface(future, 61002)
	c.churn(t) // and churn elsewhere in the same publish
	res = c.run(t)
	want := netip.AddrFrom4([4]byte{10, 254, 61002 >> 8 & 0xff, 61002 & 0xff})
	if res.PlanUnchanged || !containsMember(res.Plan, future, want) {
		t.Fatalf("group created: PlanUnchanged=%v, member in the plan=%v; want it applied", res.PlanUnchanged, res.Plan != nil && containsMember(res.Plan, future, want))
	}
}

// TestRedteamChangesAddressOnAnotherVPC: an interface of another VPC
// (overlapping CIDRs) is given the address the host is found by. The
// whole ruleset makes that an ambiguous host, an error; the change list
// must not let the follower accept the root as unchanged.
func TestRedteamChangesAddressOnAnotherVPC(t *testing.T) {
	c := newChangesEstate(t)
	hostVPC := c.host.VPCID
	done := false
	for ri := range c.inv.Regions {
		r := &c.inv.Regions[ri]
		for _, g := range r.SecurityGroups {
			if done || g.VPCID == hostVPC || c.first.Plan == nil {
				continue
			}
			r.NetworkInterfaces = append(r.NetworkInterfaces, inventory.NetworkInterface{
				ID: "eni-0dddddddddddddddd", VPCID: g.VPCID, OwnerID: g.OwnerID, InterfaceType: "interface",
				Addresses: []netip.Addr{c.host.Addresses[0]}, Groups: []string{g.ID},
			})
			done = true
		}
	}
	if !done {
		t.Skip("the synthetic estate has one VPC")
	}
	c.churn(t)
	res, err := c.p.follower.RunOnce(context.Background())
	if err == nil || res.PlanUnchanged {
		t.Fatalf("the host's address on an interface of another VPC: err=%v PlanUnchanged=%v; want an ambiguous host", err, res.PlanUnchanged)
	}
	if !errors.Is(err, reyes.ErrAmbiguousHost) {
		t.Fatalf("err = %v; want ErrAmbiguousHost", err)
	}
}

// TestRedteamChangesStatusWithoutKeys: a status file written by a
// follower that predates change lists (no "keys") never lets a change
// list decide; once the plan's parts are read again the keys are
// recorded and the next change list is used.
func TestRedteamChangesStatusWithoutKeys(t *testing.T) {
	c := newChangesEstate(t)
	path := filepath.Join(c.p.follower.StateDir, reyes.StatusFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	delete(st["loaded"].(map[string]any), "keys")
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c.churn(t)
	res := c.run(t)
	if !res.PlanUnchanged || res.PartsFetched+res.PartsCached == 0 || len(res.Keys) == 0 {
		t.Fatalf("no keys recorded: PlanUnchanged=%v read=%d keys=%d; want the parts read, the same plan, keys recorded", res.PlanUnchanged, res.PartsFetched+res.PartsCached, len(res.Keys))
	}
	c.churn(t)
	if res := c.run(t); !res.PlanUnchanged || res.PartsFetched+res.PartsCached != 0 {
		t.Fatalf("keys recorded again: PlanUnchanged=%v read=%d", res.PlanUnchanged, res.PartsFetched+res.PartsCached)
	}
}

// TestRedteamChangesStatusLagsState: a crash after the state recorded a
// root accepted by its change list but before the status did: the state
// is one root ahead of the keys. The status no longer describes the
// accepted root, so the next change list (since the state's root) must
// not be checked against it.
func TestRedteamChangesStatusLagsState(t *testing.T) {
	c := newChangesEstate(t)
	path := filepath.Join(c.p.follower.StateDir, reyes.StatusFile)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c.churn(t)
	if res := c.run(t); !res.PlanUnchanged || res.PartsFetched+res.PartsCached != 0 {
		t.Fatalf("churn: PlanUnchanged=%v", res.PlanUnchanged)
	}
	if err := os.WriteFile(path, before, 0o644); err != nil { // the status write lost
		t.Fatal(err)
	}
	ref := c.refGroup(t)
	c.addInterface(ref, 61003)
	c.publishNow(t)
	res := c.run(t)
	want := netip.AddrFrom4([4]byte{10, 254, 61003 >> 8 & 0xff, 61003 & 0xff})
	if res.PlanUnchanged || !containsMember(res.Plan, ref, want) {
		t.Fatalf("status behind state: PlanUnchanged=%v; want the change applied", res.PlanUnchanged)
	}
}

// TestRedteamChangesDryRunLeavesTheChain: a dry run in between reads and
// prints, but accepts nothing: the change list of the next root is since
// a root the follower never accepted, so it reads.
func TestRedteamChangesDryRunLeavesTheChain(t *testing.T) {
	c := newChangesEstate(t)
	c.churn(t)
	dry := *c.p.follower
	dry.DryRun = true
	if _, err := dry.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := reyes.LoadState(c.p.follower.StateDir)
	if err != nil || st.Serial != c.first.Header.Serial {
		t.Fatalf("a dry run moved the state to serial %d (first %d): %v", st.Serial, c.first.Header.Serial, err)
	}
	if res := c.run(t); !res.PlanUnchanged || res.PartsFetched+res.PartsCached != 0 {
		t.Fatalf("after a dry run: PlanUnchanged=%v read=%d; the root is since the one accepted, so its list holds", res.PlanUnchanged, res.PartsFetched+res.PartsCached)
	}
}

// TestRedteamChangesReplayedRoot: someone with write access to the store
// (no key) puts back an older signed root before the leader's run. The
// leader's next root is then since that old root; a follower that had
// accepted a later one must not take that list for its own.
func TestRedteamChangesReplayedRoot(t *testing.T) {
	c := newChangesEstate(t)
	old := slices.Clone(c.obj)
	ref := c.refGroup(t)
	c.addInterface(ref, 61004)
	c.publishNow(t)
	res := c.run(t)
	want := netip.AddrFrom4([4]byte{10, 254, 61004 >> 8 & 0xff, 61004 & 0xff})
	if !containsMember(res.Plan, ref, want) {
		t.Fatal("the change was not applied")
	}
	// The replay, then the member leaves again and unrelated churn.
	if err := c.p.store.Put(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	for ri := range c.inv.Regions {
		r := &c.inv.Regions[ri]
		r.NetworkInterfaces = slices.DeleteFunc(r.NetworkInterfaces, func(n inventory.NetworkInterface) bool {
			return slices.Contains(n.Addresses, want)
		})
	}
	root := c.churn(t)
	res = c.run(t)
	if root.Changes != nil && res.PlanUnchanged && res.PartsFetched+res.PartsCached == 0 {
		t.Fatal("the follower took a change list since a root it had left behind")
	}
	if containsMember(res.Plan, ref, want) {
		t.Fatalf("the member that left is still in the plan (PlanUnchanged=%v)", res.PlanUnchanged)
	}
}

// TestRedteamChangesHotSpareOtherKey: two leaders with different keys,
// both trusted by the follower, alternate. Whatever each puts in its
// roots, the follower ends every run with the current root's plan.
func TestRedteamChangesHotSpareOtherKey(t *testing.T) {
	c := newChangesEstate(t)
	signer2, _, pub2 := sealtest.Key(t, "reyes spare", c.p.now.Add(-time.Hour))
	k2, err := sign.ParseKeyring(pub2)
	if err != nil {
		t.Fatal(err)
	}
	c.p.follower.Trusted = c.p.trusted.Merge(k2)
	spare := *c.l
	spare.Signer = signer2
	ref := c.refGroup(t)
	leaders := []*reyes.Leader{&spare, c.l}
	var withChanges int
	for i := range 6 {
		l := leaders[i%2]
		c.p.now = c.p.now.Add(time.Minute)
		if i == 3 {
			c.addInterface(ref, 61005)
		} else {
			unrelated := c.unrelatedGroups(c.first)
			c.addInterface(unrelated[i%len(unrelated)], 62000+i)
		}
		_, root := c.leaderPublishTrusting(t, l, c.p.trusted.Merge(k2))
		if root.Changes != nil {
			withChanges++
		}
		res := c.run(t)
		want := netip.AddrFrom4([4]byte{10, 254, 61005 >> 8 & 0xff, 61005 & 0xff})
		t.Logf("publish %d by leader %d: changes=%v PlanUnchanged=%v read=%d", i, i%2, root.Changes != nil, res.PlanUnchanged, res.PartsFetched+res.PartsCached)
		if i >= 3 {
			if got := currentPlanHas(t, c, ref, want); !got {
				t.Fatalf("publish %d (leader %d, changes %v): the kernel's plan lacks the member", i, i%2, root.Changes != nil)
			}
		}
	}
	t.Logf("%d of 6 alternating publishes carried a change list", withChanges)
}

// currentPlanHas reports whether the plan the status file says is loaded
// matches a fresh dry run's, and that plan has member a in group's set.
func currentPlanHas(t *testing.T, c *changesEstate, group string, a netip.Addr) bool {
	t.Helper()
	dry := *c.p.follower
	dry.DryRun = true
	res, err := dry.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !containsMember(res.Plan, group, a) {
		return false
	}
	st, err := reyes.LoadStatus(c.p.follower.StateDir)
	if err != nil || st.Loaded == nil {
		t.Fatalf("status: %v", err)
	}
	for _, fp := range res.Plan.Families() {
		want := fp.Hash()
		got := st.Loaded.PlanIPv4
		if fp.Family == 6 {
			got = st.Loaded.PlanIPv6
		}
		if got != want {
			t.Logf("IPv%d: loaded plan %s, current root's %s", fp.Family, got, want)
			return false
		}
	}
	return true
}

// partGets counts the parts a leader reads from its store.
type partGets struct {
	reyes.Objects
	mu    sync.Mutex
	gets  int
	bytes int64
}

func (p *partGets) Get(ctx context.Context, name string, max int64) ([]byte, error) {
	b, err := p.Objects.Get(ctx, name, max)
	p.mu.Lock()
	p.gets++
	p.bytes += int64(len(b))
	p.mu.Unlock()
	return b, err
}

type partGetStore struct {
	*reyes.FileStore
	parts *partGets
}

func (s partGetStore) Parts() reyes.Objects { return s.parts }

// TestRedteamChangesLeaderReadsBack counts what the leader reads from the
// store to write the change list: the previous root's parts of every bin
// that changed, which it put itself one run earlier. Under churn that
// touches most bins, that is about the whole estate per publish.
func TestRedteamChangesLeaderReadsBack(t *testing.T) {
	e := newSplitEstate(t)
	st := partGetStore{FileStore: e.p.store, parts: &partGets{Objects: e.p.store.Parts()}}
	l := *e.p.leader
	l.Source = invSource{e}
	l.Store = st
	l.Refresh = -1
	ctx := context.Background()
	if _, err := l.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	groups := []string{}
	for _, r := range e.inv.Regions {
		for _, g := range r.SecurityGroups {
			groups = append(groups, g.ID)
		}
	}
	for i := range 200 {
		e.addInterface(groups[i%len(groups)], 50000+i)
	}
	e.p.now = e.p.now.Add(time.Minute)
	st.parts.gets, st.parts.bytes = 0, 0
	res, err := l.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("publish of %d parts put %d parts; the leader read back %d parts, %d bytes, changed keys %d",
		res.Parts, res.PartsPut, st.parts.gets, st.parts.bytes, res.ChangedKeys)
	if st.parts.gets > 0 {
		t.Errorf("the leader read %d parts (%d bytes) it had put itself in its previous run", st.parts.gets, st.parts.bytes)
	}
}

// TestRedteamChangesSameKeyHotSpares: two leaders with the same key
// alternate, each remembering the parts it put last, which are then not
// those of the root in force. Every root's change list must be what the
// two roots' parts in the store give, and a leader that published last
// reads nothing back.
func TestRedteamChangesSameKeyHotSpares(t *testing.T) {
	e := newSplitEstate(t)
	st := partGetStore{FileStore: e.p.store, parts: &partGets{Objects: e.p.store.Parts()}}
	a := *e.p.leader
	a.Source, a.Store, a.Refresh = invSource{e}, st, -1
	b := a
	ctx := context.Background()
	groups := []string{}
	for _, r := range e.inv.Regions {
		for _, g := range r.SecurityGroups {
			groups = append(groups, g.ID)
		}
	}
	var prev *ruleset.Root
	var prevPayload []byte
	var last *reyes.Leader
	for i, l := range []*reyes.Leader{&a, &a, &b, &a, &b, &b} {
		for j := range 5 {
			e.addInterface(groups[(i*5+j)%len(groups)], 52000+i*5+j)
		}
		e.p.now = e.p.now.Add(time.Minute)
		st.parts.gets = 0
		if _, err := l.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		gets := st.parts.gets
		body, _, err := e.p.store.Get(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		payload, err := sign.OpenBytes(body, e.p.trusted, e.p.now)
		if err != nil {
			t.Fatal(err)
		}
		root, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if prev != nil {
			keys, ok, err := ruleset.ChangedKeys(ctx, prev, root, reyes.FetchParts(e.p.store.Parts()))
			if err != nil || !ok {
				t.Fatalf("publish %d: ChangedKeys: %v %v", i, ok, err)
			}
			want := ruleset.NewChanges(sha256Sum(prevPayload), keys)
			if root.Changes == nil || root.Changes.Since != want.Since || string(root.Changes.Bits) != string(want.Bits) {
				t.Fatalf("publish %d: the root's change list differs from the one its store gives", i)
			}
			t.Logf("publish %d: %d changed keys, %d parts read back", i, len(keys), gets)
			if last == l && gets != 0 {
				t.Errorf("publish %d: the leader that published last read back %d parts", i, gets)
			}
		}
		prev, prevPayload, last = root, payload, l
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// TestRedteamChangesTamperedPreviousPart: someone with write access to
// the store (no key) corrupts or deletes a part of the root in force.
// A leader that must read it for the change list (it did not put it: a
// restart, a hot spare) publishes anyway, without a change list, rather
// than trust it or fail the publish.
func TestRedteamChangesTamperedPreviousPart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, path string)
	}{
		{"corrupted", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-2] ^= 1
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChangesEstate(t)
			ref := c.refGroup(t)
			old, ok := c.root.Part(ruleset.KindMembers, ref)
			if !ok {
				t.Fatal("no member part")
			}
			tc.tamper(t, filepath.Join(c.p.store.Parts().String(), old.Name))
			// A restarted leader: it remembers no parts.
			c.l = &reyes.Leader{Source: invSource{c.splitEstate}, Store: c.l.Store, Signer: c.l.Signer, Build: c.l.Build, Now: c.l.Now, Refresh: -1}
			c.addInterface(ref, 61006)
			c.p.now = c.p.now.Add(time.Minute)
			res, root := c.leaderPublish(t, c.l)
			if root.Changes != nil || res.ChangedKeys != -1 {
				t.Fatalf("the previous part %s was %s, and the root has a change list (%d keys)", old.Name, tc.name, res.ChangedKeys)
			}
			run := c.run(t)
			want := netip.AddrFrom4([4]byte{10, 254, 61006 >> 8 & 0xff, 61006 & 0xff})
			if run.PlanUnchanged || !containsMember(run.Plan, ref, want) {
				t.Fatalf("PlanUnchanged=%v; want the change applied", run.PlanUnchanged)
			}
		})
	}
}
