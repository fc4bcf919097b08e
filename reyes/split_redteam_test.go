package reyes_test

import (
	"context"
	"fmt"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/reyes"
)

// mkfifo replaces path with a FIFO (no writer will ever open it).
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
}

// TestRedteamCacheFIFODoesNotHang: a follower whose parts cache was
// tampered with (every cached part replaced by a FIFO, a symbolic link to
// one, or the cache directory itself a FIFO) still finishes its run: the
// cache is an optimisation, and open(2) on a FIFO without a writer used to
// block for ever, where neither the run's timeout nor SIGTERM reach.
func TestRedteamCacheFIFODoesNotHang(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, cache string, parts []string)
	}{
		{"parts are FIFOs", func(t *testing.T, cache string, parts []string) {
			for _, n := range parts {
				mkfifo(t, filepath.Join(cache, n))
			}
		}},
		{"parts are symlinks to a FIFO", func(t *testing.T, cache string, parts []string) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			mkfifo(t, fifo)
			for _, n := range parts {
				os.Remove(filepath.Join(cache, n))
				if err := os.Symlink(fifo, filepath.Join(cache, n)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"cache directory is a FIFO", func(t *testing.T, cache string, parts []string) {
			mkfifo(t, cache)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSplitEstate(t)
			p := e.p
			e.publish(t, 1)
			first := e.run(t)
			tc.tamper(t, filepath.Join(p.follower.StateDir, reyes.PartsDir), first.Parts)
			// A new setting forces a full run, which reads the cache.
			p.follower.Render.LogDrop = true
			err := within(t, 10*time.Second, "follower run with a tampered cache", func() error {
				res, err := p.follower.RunOnce(context.Background())
				if err == nil && res.PartsFetched != len(first.Parts) {
					t.Errorf("fetched %d parts from the store, want %d (the cache holds nothing usable)", res.PartsFetched, len(first.Parts))
				}
				return err
			})
			if err != nil {
				t.Fatalf("run with a tampered cache: %v", err)
			}
		})
	}
}

// TestRedteamStoreDirFIFODoesNotHang: someone who can write the file
// store replaces its parts or roots directory by a FIFO; the leader's
// publish (which lists the parts, and whose garbage collection lists both)
// and the follower end in bounded time.
func TestRedteamStoreDirFIFODoesNotHang(t *testing.T) {
	for _, dir := range []string{".parts", ".roots"} {
		t.Run(dir, func(t *testing.T) {
			p := newPipeline(t)
			ctx := context.Background()
			if _, err := p.leader.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			mkfifo(t, p.store.Path()+dir)
			p.now = p.now.Add(time.Hour) // the next run publishes again
			_ = within(t, 10*time.Second, "leader run with a FIFO for "+dir, func() error {
				_, err := p.leader.RunOnce(ctx)
				return err
			})
			_ = within(t, 10*time.Second, "follower run with a FIFO for "+dir, func() error {
				_, err := p.follower.RunOnce(ctx)
				return err
			})
			_ = within(t, 10*time.Second, "List of "+dir, func() error {
				_, err := p.store.Parts().List(ctx)
				if err == nil && dir == ".parts" {
					t.Error("List of a FIFO: no error")
				}
				_, err = p.store.Roots().List(ctx)
				return err
			})
		})
	}
}

// TestRedteamFastPathIMDSNewInterface: a host found by the metadata
// service gets a second interface, in a group its plan did not involve,
// and the leader publishes it. The new interface and its group live in
// parts the host never read, so the new root still lists every part of
// the last plan; but the host's identity (what IMDS says) changed, and a
// whole ruleset's new object would have made the follower ask IMDS again.
// The fast path must not take "the same parts" for "the same plan" with
// an identity it did not look at.
func TestRedteamFastPathIMDSNewInterface(t *testing.T) {
	e := newSplitEstate(t)
	p := e.p
	h := e.host
	var v4s []string
	for _, a := range h.Addresses {
		if a.Is4() {
			v4s = append(v4s, a.String())
		}
	}
	eni1 := imdsInterface{mac: "02:00:00:00:00:01", id: h.ID, vpc: h.VPCID, groups: h.Groups, v4s: v4s, cidrs4: []string{"10.0.0.0/8"}}
	imds, url := newFakeIMDS(t, eni1)
	p.follower.Identity = reyes.IdentityOptions{IMDSEndpoint: url, DisableAddressLookup: true}
	e.publish(t, 1)
	first := e.run(t)
	if first.Identity.Method != reyes.IdentityIMDS {
		t.Fatalf("identity by %s, want imds", first.Identity.Method)
	}
	// Find a group (and a new interface in it) whose parts the first
	// plan did not read: then the new root lists every part of it.
	read := func(kind, key string) bool {
		ref, ok := e.root.Part(kind, key)
		return !ok || slices.Contains(first.Parts, ref.Name)
	}
	var gid, eniID, addr string
	for _, r := range e.inv.Regions {
		for _, g := range r.SecurityGroups {
			if gid == "" && !slices.Contains(h.Groups, g.ID) && g.VPCID == h.VPCID && !read(ruleset.KindGroups, g.ID) {
				gid = g.ID
			}
		}
	}
	if gid == "" {
		t.Skipf("every group's part was read by the first plan (%d parts of %d)", len(first.Parts), len(e.root.Parts))
	}
	n := 7
	for ; read(ruleset.KindInterfaces, fmt.Sprintf("eni-ffff%013x", n)); n++ {
	}
	e.addInterface(gid, n)
	eniID, addr = fmt.Sprintf("eni-ffff%013x", n), netip.AddrFrom4([4]byte{10, 254, byte(n >> 8), byte(n)}).String()
	e.publish(t, 2)
	if !allListed(e.root, first.Parts) {
		t.Fatalf("the new root does not list every part of the first plan: the attack's setup failed")
	}
	// The instance now has the second interface.
	eni2 := imdsInterface{mac: "02:00:00:00:00:02", id: eniID, vpc: h.VPCID, groups: []string{gid}, v4s: []string{addr}, cidrs4: []string{"10.0.0.0/8"}}
	imds.mu.Lock()
	imds.paths["network/interfaces/macs/"] = "02:00:00:00:00:01/\n02:00:00:00:00:02/"
	pre := "network/interfaces/macs/02:00:00:00:00:02/"
	imds.paths[pre+"interface-id"] = eni2.id
	imds.paths[pre+"vpc-id"] = eni2.vpc
	imds.paths[pre+"security-group-ids"] = gid
	imds.paths[pre+"local-ipv4s"] = addr
	imds.paths[pre+"vpc-ipv4-cidr-blocks"] = "10.0.0.0/8"
	imds.mu.Unlock()
	p.now = p.now.Add(time.Minute)
	res := e.run(t)
	if res.PlanUnchanged {
		t.Fatalf("the host got interface %s in %s, and the follower kept its old plan (fast path, IMDS not asked)", eniID, gid)
	}
	if !slices.ContainsFunc(res.Host.Interfaces, func(n render.HostInterface) bool { return n.ID == eniID }) {
		t.Fatalf("the plan's host lacks the new interface %s: %+v", eniID, res.Host.Interfaces)
	}
}

// TestRedteamCacheSymlinkDoesNotDelete: the parts cache is pruned to the
// parts of the last plan. If <state-dir>/parts is a symbolic link to some
// other directory (tampering, a restore, a careless operator), the
// follower must not write parts into it nor delete what it holds.
func TestRedteamCacheSymlinkDoesNotDelete(t *testing.T) {
	e := newSplitEstate(t)
	p := e.p
	e.publish(t, 1)
	victim := t.TempDir()
	precious := filepath.Join(victim, "precious.conf")
	if err := os.WriteFile(precious, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(p.follower.StateDir, reyes.PartsDir)); err != nil {
		t.Fatal(err)
	}
	res, err := p.follower.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Fatalf("the follower deleted a file of the directory its parts cache links to: %v", err)
	}
	ents, _ := os.ReadDir(victim)
	if len(ents) != 1 {
		t.Fatalf("the follower wrote %d files into the directory its parts cache links to", len(ents)-1)
	}
	_ = res
}

// TestRedteamStoreTamperFailsClosed: someone who can write the store (but
// not sign) tampers with a part that a new root names and that the host
// needs: each attack fails the run, in bounded time, with the kernel and
// the state as they were.
func TestRedteamStoreTamperFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir, victim, other, older string)
	}{
		{"old part under the new name", func(t *testing.T, dir, victim, other, older string) {
			copyFile(t, filepath.Join(dir, older), filepath.Join(dir, victim))
		}},
		{"another part of the same kind under its name", func(t *testing.T, dir, victim, other, older string) {
			copyFile(t, filepath.Join(dir, other), filepath.Join(dir, victim))
		}},
		{"truncated", func(t *testing.T, dir, victim, other, older string) {
			if err := os.Truncate(filepath.Join(dir, victim), 10); err != nil {
				t.Fatal(err)
			}
		}},
		{"same size, one byte changed", func(t *testing.T, dir, victim, other, older string) {
			b, err := os.ReadFile(filepath.Join(dir, victim))
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-2] ^= 1
			if err := os.WriteFile(filepath.Join(dir, victim), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"longer", func(t *testing.T, dir, victim, other, older string) {
			f, err := os.OpenFile(filepath.Join(dir, victim), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("sg-00000000000000000\t{}\n")
			f.Close()
		}},
		{"deleted", func(t *testing.T, dir, victim, other, older string) {
			os.Remove(filepath.Join(dir, victim))
		}},
		{"a FIFO", func(t *testing.T, dir, victim, other, older string) {
			mkfifo(t, filepath.Join(dir, victim))
		}},
		{"a symbolic link to the right bytes", func(t *testing.T, dir, victim, other, older string) {
			keep := filepath.Join(t.TempDir(), "copy")
			copyFile(t, filepath.Join(dir, victim), keep)
			os.Remove(filepath.Join(dir, victim))
			if err := os.Symlink(keep, filepath.Join(dir, victim)); err != nil {
				t.Fatal(err)
			}
		}},
		{"a directory", func(t *testing.T, dir, victim, other, older string) {
			os.Remove(filepath.Join(dir, victim))
			if err := os.Mkdir(filepath.Join(dir, victim), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSplitEstate(t)
			p := e.p
			e.publish(t, 1)
			first := e.run(t)
			dump := p.kernel.Dump()
			// A change in the host's plan: a new member of a group its
			// rules refer to (whose members' part it reads).
			root1 := e.root
			var ref string
			for g := range setGroups(first.Plan) {
				if ruleset.ValidGroupID(g) && (ref == "" || g < ref) {
					ref = g
				}
			}
			e.addInterface(ref, 60001)
			p.now = p.now.Add(time.Minute)
			e.publish(t, 2)
			var victim, other, older string
			for _, ref := range e.root.Parts {
				if ref.Kind == ruleset.KindMembers && !root1.Has(ref.Name) && victim == "" {
					victim = ref.Name
				}
			}
			if victim == "" {
				t.Fatal("no changed members part")
			}
			for _, ref := range e.root.Parts {
				if ref.Kind == ruleset.KindMembers && ref.Name != victim {
					other = ref.Name
				}
			}
			for _, n := range first.Parts {
				if n[:5] == victim[:5] {
					older = n
				}
			}
			if older == "" {
				t.Fatal("no older part of the victim's bin")
			}
			tc.tamper(t, p.store.Path()+".parts", victim, other, older)
			p.kernel.ResetCalls()
			err := within(t, 10*time.Second, "follower run", func() error {
				_, err := p.follower.RunOnce(context.Background())
				return err
			})
			if err == nil {
				t.Fatalf("tampered part %s accepted", victim)
			}
			if p.kernel.Dump() != dump {
				t.Fatal("the kernel changed")
			}
			if st, _ := reyes.LoadState(p.follower.StateDir); st.Serial != 1 {
				t.Fatalf("state advanced to serial %d", st.Serial)
			}
			t.Logf("refused: %v", err)
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(to)
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// unrelatedChange adds to the estate an interface whose group, interface
// bin and address bin none of the parts of the plan read (names) involve,
// and publishes it: the new root lists every part of that plan.
func (e *splitEstate) unrelatedChange(t *testing.T, names []string, serial uint64) {
	t.Helper()
	read := func(kind, key string) bool {
		ref, ok := e.root.Part(kind, key)
		return !ok || slices.Contains(names, ref.Name)
	}
	gid := ""
	for _, r := range e.inv.Regions {
		for _, g := range r.SecurityGroups {
			if gid == "" && !slices.Contains(e.host.Groups, g.ID) && !read(ruleset.KindGroups, g.ID) {
				gid = g.ID
			}
		}
	}
	if gid == "" {
		t.Skip("every group's part is read by the plan")
	}
	n := 100 + int(serial)*500 // a fresh interface for every publish
	for ; read(ruleset.KindInterfaces, fmt.Sprintf("eni-ffff%013x", n)) ||
		read(ruleset.KindAddrs, netip.AddrFrom4([4]byte{10, 254, byte(n >> 8), byte(n)}).String()); n++ {
	}
	e.addInterface(gid, n)
	e.p.now = e.p.now.Add(time.Minute)
	e.publish(t, serial)
	if !allListed(e.root, names) {
		t.Fatal("the new root does not list every part of the plan")
	}
}

// TestRedteamFastPathRechecksTheHostSide: a new root that lists every
// part of the last plan is accepted without reading a part only while
// nothing on the host's side changed. Each change below must send the run
// down the full path (parts read, plan rendered), not the fast one.
func TestRedteamFastPathRechecksTheHostSide(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, e *splitEstate)
	}{
		{"nothing (the fast path is taken)", nil},
		{"a render setting", func(t *testing.T, e *splitEstate) { e.p.follower.Render.LogDrop = true }},
		{"the trusted keys", func(t *testing.T, e *splitEstate) {
			_, pub, err := sign.GenerateKey("another", "", e.p.now.Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			other, err := sign.ParseKeyring(pub)
			if err != nil {
				t.Fatal(err)
			}
			e.p.follower.Trusted = e.p.trusted.Merge(other)
		}},
		{"apply's record of the kernel", func(t *testing.T, e *splitEstate) {
			rec := filepath.Join(e.p.follower.StateDir, "apply-ipv4.json")
			b, err := os.ReadFile(rec)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(rec, append(b, ' '), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"the host's own addresses", func(t *testing.T, e *splitEstate) {
			addrs := append(slices.Clone(e.host.Addresses), netip.MustParseAddr("192.0.2.7"))
			e.p.follower.Identity.InterfaceAddrs = func() ([]netip.Addr, error) { return addrs, nil }
		}},
		{"the scope's freshness settings", func(t *testing.T, e *splitEstate) { e.p.follower.Freshness.MaxSkew = 7 * time.Minute }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSplitEstate(t)
			e.publish(t, 1)
			first := e.run(t)
			e.unrelatedChange(t, first.Parts, 2)
			if tc.change != nil {
				tc.change(t, e)
			}
			res := e.run(t)
			if tc.change == nil {
				if !res.PlanUnchanged {
					t.Fatalf("unrelated change, nothing else: the fast path was not taken")
				}
				return
			}
			if res.PlanUnchanged || res.Plan == nil {
				t.Fatalf("%s changed, and the run took the fast path", tc.name)
			}
		})
	}
}

// TestRedteamAddressMovedBetweenPublishes: the host's address moves to
// another interface (a secondary address reassigned) while the host still
// holds it. The address bin the host read changed, so the fast path is
// not taken, and the host is found as the whole ruleset would find it.
func TestRedteamAddressMovedBetweenPublishes(t *testing.T) {
	e := newSplitEstate(t)
	e.publish(t, 1)
	first := e.run(t)
	moved := e.host.Addresses[0]
	var to string
	for ri := range e.inv.Regions {
		r := &e.inv.Regions[ri]
		for ni := range r.NetworkInterfaces {
			n := &r.NetworkInterfaces[ni]
			if n.ID == e.host.ID {
				n.Addresses = slices.DeleteFunc(slices.Clone(n.Addresses), func(a netip.Addr) bool { return a == moved })
			} else if to == "" && n.VPCID == e.host.VPCID && len(n.Groups) > 0 && !slices.Equal(n.Groups, e.host.Groups) {
				n.Addresses = append(slices.Clone(n.Addresses), moved)
				to = n.ID
			}
		}
	}
	if to == "" {
		t.Skip("no other interface in the host's VPC")
	}
	e.p.now = e.p.now.Add(time.Minute)
	e.publish(t, 2)
	if allListed(e.root, first.Parts) {
		t.Fatal("the new root lists every part of the first plan although the address index changed")
	}
	_, err := e.p.follower.RunOnce(context.Background())
	res, _ := reyes.LoadStatus(e.p.follower.StateDir)
	if err == nil && res.LastRun.Result == reyes.ResultUnchanged {
		t.Fatal("the fast path was taken")
	}
	if err == nil && !slices.ContainsFunc(res.Loaded.Identity.Interfaces, func(n render.HostInterface) bool { return n.ID == to }) {
		t.Fatalf("the host is %+v: not %s, which has its address now", res.Loaded.Identity.Interfaces, to)
	}
	t.Logf("run after the move: %v", err)
}

// TestRedteamStateFileFIFODoesNotHang: an odd state directory, where a
// file the follower reads or writes is a FIFO, ends the run in bounded
// time (an error is fine; waiting in open(2) for ever is not).
func TestRedteamStateFileFIFODoesNotHang(t *testing.T) {
	for _, name := range []string{reyes.StateFile, reyes.StatusFile, "drift-checked", "apply-ipv4.json"} {
		t.Run(name, func(t *testing.T) {
			e := newSplitEstate(t)
			e.publish(t, 1)
			e.run(t)
			mkfifo(t, filepath.Join(e.p.follower.StateDir, name))
			e.p.now = e.p.now.Add(time.Hour)
			e.p.follower.DriftCheck = time.Minute
			_ = within(t, 10*time.Second, "follower run with a FIFO for "+name, func() error {
				_, err := e.p.follower.RunOnce(context.Background())
				return err
			})
		})
	}
}

// TestRedteamFastPathStarvesDriftCheck: the estate changes at every
// leader run (autoscaling), and the follower polls no faster than the
// leader publishes, so every poll finds a new root that lists every part
// of its plan. The drift check used to run only when the store answered
// "not modified", and a whole ruleset's new object meant a full apply; on
// the fast path neither happens, so a chain flushed by hand stayed
// flushed for ever. A drift check that is due must run on the fast path
// too.
func TestRedteamFastPathStarvesDriftCheck(t *testing.T) {
	e := newSplitEstate(t)
	p := e.p
	e.publish(t, 1)
	first := e.run(t)
	chain, good := p.flushReyesChain(t)
	repaired := false
	for i := range 4 {
		e.unrelatedChange(t, first.Parts, uint64(2+i))
		p.now = p.now.Add(reyes.DefaultDriftCheck + time.Second)
		res := e.run(t)
		if len(res.Drift) > 0 || res.DriftChecked {
			repaired = len(res.Drift) > 0 && res.Applied.Changed()
			break
		}
	}
	if !repaired {
		t.Fatalf("four polls, each past the drift interval and each with a new root: chain %s never checked or repaired", chain)
	}
	p.checkRepaired(t, good)
}

// flushReyesChain flushes the first of reyes' chains below REYES-INPUT
// that holds a rule, as an admin's mistake would, and returns it and the
// kernel as it was before.
func (p *pipeline) flushReyesChain(t *testing.T) (chain, good string) {
	t.Helper()
	good = p.kernel.Dump()
	for _, l := range strings.Split(good, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "-A" && strings.HasPrefix(f[1], "REYES-") && f[1] != "REYES-INPUT" {
			chain = f[1]
			break
		}
	}
	if chain == "" {
		t.Fatalf("no REYES chain with rules:\n%s", good)
	}
	if err := p.kernel.Script(4, "*filter\n-F "+chain+"\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	return chain, good
}
