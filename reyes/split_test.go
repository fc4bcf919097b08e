package reyes_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// splitEstate is a synthetic estate published in the parts layout into a
// pipeline's file store, and the host the follower plays.
type splitEstate struct {
	p    *pipeline
	inv  *inventory.Inventory
	host inventory.NetworkInterface
	// obj is the last signed root published, root its decoded form.
	obj  []byte
	root *ruleset.Root
}

func newSplitEstate(t *testing.T) *splitEstate {
	t.Helper()
	p := newPipeline(t)
	inv := synth.Generate(synth.Medium())
	e := &splitEstate{p: p, inv: inv}
	// The host: an interface with one IPv4 address in the middle of the
	// estate (any would do).
	for _, r := range inv.Regions {
		ns := r.NetworkInterfaces
		for _, n := range ns[len(ns)/2:] {
			if len(n.Addresses) > 0 && n.Addresses[0].Is4() && len(n.Groups) > 0 && e.host.ID == "" {
				e.host = n
			}
		}
	}
	if e.host.ID == "" {
		t.Fatal("no host in the synthetic estate")
	}
	p.follower.Identity.InterfaceAddrs = func() ([]netip.Addr, error) { return slices.Clone(e.host.Addresses), nil }
	p.follower.Render.ForeignCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	return e
}

// publish builds the inventory as it is now, splits it and puts the parts
// and then the signed root, as a leader in the parts layout does.
func (e *splitEstate) publish(t *testing.T, serial uint64) {
	t.Helper()
	var prev map[string]int
	if e.root != nil {
		prev = e.root.Bins
	}
	e.publishSplit(t, serial, ruleset.SplitOptions{Previous: prev})
}

// publishSplit is publish with the split options given.
func (e *splitEstate) publishSplit(t *testing.T, serial uint64, opts ruleset.SplitOptions) {
	t.Helper()
	ctx := context.Background()
	rs, err := ruleset.Build(e.inv, ruleset.BuildOptions{Scope: "test", GeneratedAt: e.p.now, Serial: serial})
	if err != nil {
		t.Fatal(err)
	}
	root, parts, err := ruleset.Split(rs, opts)
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

// addInterface adds a new interface with one fresh address to group gid.
func (e *splitEstate) addInterface(gid string, n int) {
	for ri := range e.inv.Regions {
		r := &e.inv.Regions[ri]
		for _, g := range r.SecurityGroups {
			if g.ID != gid {
				continue
			}
			r.NetworkInterfaces = append(r.NetworkInterfaces, inventory.NetworkInterface{
				ID: fmt.Sprintf("eni-ffff%013x", n), VPCID: g.VPCID, OwnerID: g.OwnerID, InterfaceType: "interface",
				Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, 254, byte(n >> 8), byte(n)})}, Groups: []string{gid},
			})
			return
		}
	}
	panic("no group " + gid)
}

func (e *splitEstate) run(t *testing.T) reyes.FollowerResult {
	t.Helper()
	e.p.kernel.ResetCalls()
	res, err := e.p.follower.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestSplitFollowerReadsItsOwnParts: a follower reads the root and only
// the parts its plan needs; a change elsewhere in the estate costs it the
// root alone, no part and no kernel call; a change in its plan reads the
// changed parts (the others come from its cache) and applies.
func TestSplitFollowerReadsItsOwnParts(t *testing.T) {
	e := newSplitEstate(t)
	p := e.p
	// The clock moves a minute per publish below: no drift check (its
	// kernel reads) in the way of counting kernel calls.
	p.follower.DriftCheck = -1
	e.publish(t, 1)
	older := e.obj
	first := e.run(t)
	if !first.Applied.Changed() || len(first.Parts) == 0 || first.PartsFetched != len(first.Parts) || first.PartsCached != 0 {
		t.Fatalf("first run: changed=%v parts=%d fetched=%d cached=%d", first.Applied.Changed(), len(first.Parts), first.PartsFetched, first.PartsCached)
	}
	var all int64
	for _, r := range e.root.Parts {
		all += r.Size
	}
	if first.StoreBytes >= int64(len(e.obj))+all {
		t.Fatalf("first run read %d bytes: the whole estate is %d", first.StoreBytes, int64(len(e.obj))+all)
	}
	t.Logf("first run: %d parts of %d, %d bytes (root %d, estate %d)", len(first.Parts), len(e.root.Parts), first.StoreBytes, len(e.obj), all)
	dump := p.kernel.Dump()

	// A change elsewhere: a new interface in a group whose parts this
	// host does not read (found by trying groups in order).
	var groups []string
	for _, r := range e.inv.Regions {
		for _, g := range r.SecurityGroups {
			groups = append(groups, g.ID)
		}
	}
	found := false
	for i, gid := range groups {
		saved := cloneInventory(e.inv)
		e.addInterface(gid, i)
		p.now = p.now.Add(time.Minute)
		e.publish(t, uint64(2+i))
		if !allListed(e.root, first.Parts) {
			e.inv = saved
			continue
		}
		found = true
		res := e.run(t)
		if !res.PlanUnchanged || res.NotModified || res.Applied.Changed() || len(p.kernel.Calls()) != 0 {
			t.Fatalf("unrelated change: PlanUnchanged=%v NotModified=%v changed=%v calls=%v", res.PlanUnchanged, res.NotModified, res.Applied.Changed(), p.kernel.Calls())
		}
		if res.StoreBytes != int64(len(e.obj)) || res.PartsFetched != 0 {
			t.Fatalf("unrelated change read %d bytes and %d parts; the root alone is %d bytes", res.StoreBytes, res.PartsFetched, len(e.obj))
		}
		if pct := float64(res.StoreBytes) / float64(first.StoreBytes) * 100; pct > 5 {
			t.Errorf("unrelated change read %.1f %% of a first run's bytes", pct)
		}
		st, err := reyes.LoadState(p.follower.StateDir)
		if err != nil || st.Serial != e.root.Serial {
			t.Fatalf("state after the unrelated change: serial %d, want %d (%v)", st.Serial, e.root.Serial, err)
		}
		if got := p.kernel.Dump(); got != dump {
			t.Fatal("the kernel changed on an unrelated change")
		}
		// The store unchanged since: one conditional GET, nothing else.
		if res := e.run(t); !res.NotModified || len(p.kernel.Calls()) != 0 {
			t.Fatalf("unchanged store after the fast path: NotModified=%v calls=%v", res.NotModified, p.kernel.Calls())
		}
		// The older root again (a rollback) is refused even though this
		// host's parts are the same in it.
		if err := p.store.Put(context.Background(), older); err != nil {
			t.Fatal(err)
		}
		p.kernel.ResetCalls()
		if _, err := p.follower.RunOnce(context.Background()); !errors.Is(err, reyes.ErrRollback) || len(p.kernel.Calls()) != 0 {
			t.Fatalf("older root after the fast path: %v, calls %v; want ErrRollback and no kernel call", err, p.kernel.Calls())
		}
		break
	}
	if !found {
		t.Fatal("no group of the estate changes only parts this host does not read")
	}

	// A change elsewhere that lands in a part this host reads (a bin it
	// shares with the changed group): the changed parts are read, the
	// plan is the same, and the kernel is left alone.
	found = false
	for i, gid := range groups {
		if setGroups(first.Plan)[gid] {
			continue
		}
		saved := cloneInventory(e.inv)
		e.addInterface(gid, 20000+i)
		p.now = p.now.Add(time.Minute)
		e.publish(t, uint64(20000+i))
		if allListed(e.root, first.Parts) {
			e.inv = saved
			continue
		}
		res := e.run(t)
		if res.Applied.Changed() {
			// gid is a host group (its rules, not its members, are in
			// the plan): a member there can change the plan. Try another.
			continue
		}
		found = true
		if !res.PlanUnchanged || len(p.kernel.Calls()) != 0 || res.PartsFetched == 0 || res.PartsCached == 0 {
			t.Fatalf("change elsewhere in a shared part: PlanUnchanged=%v calls=%v fetched=%d cached=%d", res.PlanUnchanged, p.kernel.Calls(), res.PartsFetched, res.PartsCached)
		}
		t.Logf("change elsewhere in a shared part: read %d bytes in %d parts (%.1f %% of the first run)", res.StoreBytes, res.PartsFetched, float64(res.StoreBytes)/float64(first.StoreBytes)*100)
		break
	}
	if !found {
		t.Fatal("no change elsewhere lands in a part this host reads")
	}

	// A change in the plan: a new member of a group the host's rules
	// refer to.
	plan := first.Plan
	var ref string
	for _, fp := range plan.Families() {
		for _, s := range fp.Sets {
			if s.Group != "" && ruleset.ValidGroupID(s.Group) && len(s.Members) > 0 {
				ref = s.Group
			}
		}
	}
	if ref == "" {
		t.Fatal("the host's plan has no group set")
	}
	e.addInterface(ref, 60000)
	p.now = p.now.Add(time.Minute)
	e.publish(t, 1_000_000)
	res := e.run(t)
	if res.PlanUnchanged || !res.Applied.Changed() || res.PartsCached == 0 || res.PartsFetched == 0 {
		t.Fatalf("related change: PlanUnchanged=%v changed=%v fetched=%d cached=%d", res.PlanUnchanged, res.Applied.Changed(), res.PartsFetched, res.PartsCached)
	}
	if res.StoreBytes >= first.StoreBytes {
		t.Errorf("related change read %d bytes, a first run %d", res.StoreBytes, first.StoreBytes)
	}
	if !containsMember(res.Plan, ref, netip.AddrFrom4([4]byte{10, 254, 60000 >> 8 & 0xff, 60000 & 0xff})) {
		t.Fatalf("the new member of %s is not in the plan", ref)
	}
	cached, err := os.ReadDir(filepath.Join(p.follower.StateDir, reyes.PartsDir))
	if err != nil || len(cached) != len(res.Parts) {
		t.Fatalf("cache holds %d files, the plan %d parts (%v)", len(cached), len(res.Parts), err)
	}
}

// TestSplitFollowerDistrustsItsCache: a cached part that no longer matches
// the root is read from the store again; a part missing from the store
// fails the run before the kernel is touched.
func TestSplitFollowerDistrustsItsCache(t *testing.T) {
	e := newSplitEstate(t)
	p := e.p
	e.publish(t, 1)
	first := e.run(t)
	// Corrupt every cached part, then force a full run (a new setting).
	for _, name := range first.Parts {
		if err := os.WriteFile(filepath.Join(p.follower.StateDir, reyes.PartsDir, name), []byte("reyes.part/v1 g 0/1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.follower.Render.LogDrop = true
	res := e.run(t)
	if res.PartsCached != 0 || res.PartsFetched != len(first.Parts) || !res.Applied.Changed() {
		t.Fatalf("corrupt cache: fetched=%d cached=%d changed=%v", res.PartsFetched, res.PartsCached, res.Applied.Changed())
	}

	// A part gone from the store (and the cache): the run fails naming
	// it, and the kernel keeps what it had.
	dump := p.kernel.Dump()
	victim := first.Parts[len(first.Parts)/2]
	for _, dir := range []string{filepath.Join(p.follower.StateDir, reyes.PartsDir), p.store.Path() + ".parts"} {
		if err := os.Remove(filepath.Join(dir, victim)); err != nil {
			t.Fatal(err)
		}
	}
	p.follower.Render.LogDrop = false
	p.kernel.ResetCalls()
	_, err := p.follower.RunOnce(context.Background())
	if !errors.Is(err, ruleset.ErrPartMissing) {
		t.Fatalf("missing part: %v, want ErrPartMissing", err)
	}
	if p.kernel.Dump() != dump {
		t.Fatal("the kernel changed although a part was missing")
	}
	st, _ := reyes.LoadStatus(p.follower.StateDir)
	if st.LastRun == nil || st.LastRun.Stage != reyes.StageStore {
		t.Fatalf("missing part recorded as %+v, want stage store", st.LastRun)
	}
}

func allListed(root *ruleset.Root, names []string) bool {
	for _, n := range names {
		if !root.Has(n) {
			return false
		}
	}
	return true
}

func containsMember(p *render.Plan, group string, a netip.Addr) bool {
	for _, fp := range p.Families() {
		for _, s := range fp.Sets {
			if s.Group == group && slices.Contains(s.Members, a) {
				return true
			}
		}
	}
	return false
}

// cloneInventory copies the slices addInterface appends to.
func cloneInventory(inv *inventory.Inventory) *inventory.Inventory {
	c := *inv
	c.Regions = slices.Clone(inv.Regions)
	for i := range c.Regions {
		c.Regions[i].NetworkInterfaces = slices.Clone(inv.Regions[i].NetworkInterfaces)
	}
	return &c
}

// setGroups returns the groups whose members are in a set of the plan.
func setGroups(p *render.Plan) map[string]bool {
	out := map[string]bool{}
	for _, fp := range p.Families() {
		for _, s := range fp.Sets {
			out[s.Group] = true
		}
	}
	return out
}

// TestSplitSamePlanRunsDueDriftCheck: every publish lands in a part this
// host reads (an address added to its bin of the address index) without
// changing its plan, so every run takes the same-plan path, which leaves
// the kernel alone; a drift check that is due must still run there, and a
// flushed chain be reloaded.
func TestSplitSamePlanRunsDueDriftCheck(t *testing.T) {
	e := newSplitEstate(t)
	p := e.p
	e.publish(t, 1)
	first := e.run(t)
	hostBin := func(a netip.Addr) bool {
		ref, ok := e.root.Part(ruleset.KindAddrs, a.String())
		return ok && slices.Contains(first.Parts, ref.Name)
	}
	gid := ""
	for _, r := range e.inv.Regions {
		for _, g := range r.SecurityGroups {
			if gid == "" && !slices.Contains(e.host.Groups, g.ID) && !setGroups(first.Plan)[g.ID] {
				gid = g.ID
			}
		}
	}
	// A publish that changes the host's address bin but not its plan.
	publishShared := func(serial uint64) {
		n := int(serial) * 300
		for ; !hostBin(netip.AddrFrom4([4]byte{10, 254, byte(n >> 8), byte(n)})); n++ {
		}
		e.addInterface(gid, n)
		p.now = p.now.Add(time.Minute)
		e.publish(t, serial)
	}
	publishShared(2)
	if res := e.run(t); !res.PlanUnchanged || res.PartsFetched == 0 || len(p.kernel.Calls()) != 0 {
		t.Fatalf("same plan from changed parts: PlanUnchanged=%v fetched=%d calls=%v", res.PlanUnchanged, res.PartsFetched, p.kernel.Calls())
	}
	chain, good := p.flushReyesChain(t)
	publishShared(3)
	p.now = p.now.Add(reyes.DefaultDriftCheck + time.Second)
	res := e.run(t)
	if len(res.Drift) == 0 || !res.Applied.Changed() || res.PlanUnchanged {
		t.Fatalf("same plan, drift check due, chain %s flushed: drift=%v changed=%v PlanUnchanged=%v", chain, res.Drift, res.Applied.Changed(), res.PlanUnchanged)
	}
	p.checkRepaired(t, good)
}
