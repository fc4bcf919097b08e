package apply

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/render"
)

var webRules = []allow{{"web", 6, 8080}, {"db", 6, 5432}}

func specA(table render.TableMode) planSpec {
	return planSpec{table: table, allows: webRules, sets: map[string][]string{
		"web": {"10.99.1.11", "fd00:99:1::11"},
		"db":  {"10.99.1.20", "10.99.1.21"},
	}}
}

func specB(table render.TableMode) planSpec {
	return planSpec{table: table, allows: webRules, sets: map[string][]string{
		"web": {"10.99.1.12", "fd00:99:1::12"},
		"db":  {"10.99.1.20", "10.99.1.22"},
	}}
}

// specBNewChain is specB with a chain more: going there reloads the
// rules.
func specBNewChain(table render.TableMode) planSpec {
	s := specB(table)
	s.extra = []string{"REYES-NEW"}
	return s
}

// fakeApplied is a fake kernel with specA (shared) applied, and the
// options that applied it.
func fakeApplied(t *testing.T) (*applytest.Kernel, Options) {
	t.Helper()
	k := applytest.New("nft")
	opts := fakeOpts(t, k)
	if _, err := Apply(context.Background(), specA(render.TableShared).build(), opts); err != nil {
		t.Fatal(err)
	}
	return k, opts
}

func fakeOpts(t *testing.T, k *applytest.Kernel) Options {
	return Options{Runner: k, StateDir: t.TempDir()}
}

// restoreCalls returns the restore commands among calls.
func restoreCalls(calls []applytest.Call) []string {
	var out []string
	for _, c := range calls {
		if strings.HasSuffix(c.Name, "-restore") || (c.Name == "ipset" && len(c.Args) > 0 && c.Args[0] == "restore") {
			out = append(out, c.String())
		}
	}
	return out
}

func TestFakeApplySequence(t *testing.T) {
	for _, table := range []render.TableMode{render.TableShared, render.TableExclusive} {
		t.Run(table.String(), func(t *testing.T) {
			ctx := context.Background()
			k := applytest.New("nft")
			if table == render.TableShared {
				setupAdmin(t, k)
			}
			opts := fakeOpts(t, k)
			res, err := Apply(ctx, specA(table).build(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Backend != BackendNFT || len(res.Families) != 2 {
				t.Fatalf("result %+v", res)
			}
			for _, f := range res.Families {
				if !f.RulesLoaded || len(f.SetsCreated) == 0 {
					t.Errorf("first apply %+v", f)
				}
			}
			dump := k.Dump()
			if !strings.Contains(dump, "-A INPUT -j REYES-INPUT\n") {
				t.Errorf("no jump:\n%s", dump)
			}
			if table == render.TableShared && !strings.Contains(dump, "-A DOCKER-USER -j RETURN") {
				t.Errorf("admin chain lost:\n%s", dump)
			}

			// Same plan again: no restore call, nothing changes.
			k.ResetCalls()
			res, err = Apply(ctx, specA(table).build(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed() {
				t.Errorf("unchanged plan: %+v", res)
			}
			if rc := restoreCalls(k.Calls()); len(rc) > 0 {
				t.Errorf("unchanged plan made restore calls: %v", rc)
			}
			if k.Dump() != dump {
				t.Errorf("unchanged plan changed the kernel")
			}

			// Member change: only the changed sets are filled, no rule load.
			k.ResetCalls()
			res, err = Apply(ctx, specB(table).build(), opts)
			if err != nil {
				t.Fatal(err)
			}
			rc := restoreCalls(k.Calls())
			// One fill for both families, a swap per family, then one
			// destroy of the swapped-out sets once both are through.
			if len(rc) != 4 {
				t.Errorf("member change made %d restore calls, want 4: %v", len(rc), rc)
			}
			for _, c := range k.Calls() {
				if strings.Contains(c.Stdin, "reyes6-db") {
					t.Errorf("unchanged (empty) ipv6 db set was touched: %s", c.Stdin)
				}
			}
			if got := res.Families[0].SetsSwapped; !slices.Equal(got, []string{"reyes4-db", "reyes4-web"}) {
				t.Errorf("ipv4 swapped %v", got)
			}
			if got := res.Families[1].SetsSwapped; !slices.Equal(got, []string{"reyes6-web"}) {
				t.Errorf("ipv6 swapped %v", got)
			}
			if strings.Contains(k.Dump(), "-n ") || strings.Contains(k.Dump(), "10.99.1.21") {
				t.Errorf("temporary sets or old members left:\n%s", k.Dump())
			}
		})
	}
}

// setupAdmin puts rules reyes does not own into the fake: an admin rule in
// INPUT and a DOCKER-USER chain.
func setupAdmin(t *testing.T, k *applytest.Kernel) {
	t.Helper()
	for _, fam := range []int{4, 6} {
		if err := k.Script(fam, "*filter\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFakeFaults(t *testing.T) {
	bad := specB(render.TableShared)
	bad.allows = append(slices.Clone(bad.allows), allow{"ghost", 6, 1}) // set not in the plan
	badSet := specB(render.TableShared).build()
	// An IPv6 member in an IPv4 set: ipset rejects it.
	badSet.V4.Sets[0].Members = append(badSet.V4.Sets[0].Members, netip.MustParseAddr("fd00:99::bad"))
	for _, c := range []struct {
		name     string
		plan     *render.Plan
		failLine func(applytest.Call, string) bool
		step     Step
		input    string
		// sameRules: the previous plan has the same rules, so that only
		// members change and sets are swapped in place.
		sameRules bool
		// fam, if set, is the family the error must name.
		fam render.Family
	}{
		{"invalid rule line", bad.build(), nil, StepRules, "--match-set reyes4-ghost src", false, 0},
		{"bad set member", badSet, nil, StepFill, "add reyes4-db-b fd00:99::bad", false, 0},
		{"ipset fails mid-way", specB(render.TableShared).build(),
			func(_ applytest.Call, l string) bool { return l == "add reyes4-web-b 10.99.1.12" }, StepFill, "add reyes4-web-b 10.99.1.12", false, render.IPv4},
		// Both families fill in one ipset restore: IPv4's slots, filled
		// before the failing IPv6 line, go too.
		{"ipv6 fill fails after ipv4's", specB(render.TableShared).build(),
			func(_ applytest.Call, l string) bool { return l == "add reyes6-web-b fd00:99:1::12" }, StepFill, "add reyes6-web-b fd00:99:1::12", false, render.IPv6},
		{"ipv6 swap fails after ipv4's", specB(render.TableShared).build(),
			func(_ applytest.Call, l string) bool { return l == "swap reyes6-web-b reyes6-web" }, StepSwap, "swap reyes6-web-b reyes6-web", true, render.IPv6},
		{"ipv6 restore fails after ipv4's", specB(render.TableShared).build(),
			func(c applytest.Call, l string) bool { return c.Name == "ip6tables-nft-restore" }, StepRules, "", false, render.IPv6},
		{"swap fails mid-way", specB(render.TableShared).build(),
			func(_ applytest.Call, l string) bool { return l == "swap reyes4-web-b reyes4-web" }, StepSwap, "swap reyes4-web-b reyes4-web", true, 0},
		{"restore fails", specB(render.TableShared).build(),
			func(c applytest.Call, l string) bool { return c.Name == "iptables-nft-restore" }, StepRules, "", false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			k := applytest.New("nft")
			setupAdmin(t, k)
			opts := fakeOpts(t, k)
			// A plan whose rules differ, so that the restore runs.
			prev := specA(render.TableShared)
			if !c.sameRules {
				prev.extra = []string{"REYES-OLD"}
			}
			if _, err := Apply(ctx, prev.build(), opts); err != nil {
				t.Fatal(err)
			}
			before := k.Dump()
			k.FailLine = c.failLine
			_, err := Apply(ctx, c.plan, opts)
			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("Apply = %v, want a StepError", err)
			}
			if se.Step != c.step || !strings.Contains(se.Input, c.input) || c.fam != 0 && se.Family != c.fam {
				t.Errorf("error %v: step %q input %q family %d, want %q %q %d", err, se.Step, se.Input, se.Family, c.step, c.input, c.fam)
			}
			if after := k.Dump(); after != before {
				t.Errorf("kernel changed by a failed apply:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			// The next run converges.
			k.FailLine = nil
			if _, err := Apply(ctx, specB(render.TableShared).build(), opts); err != nil {
				t.Fatal(err)
			}
			ref := applytest.New("nft")
			setupAdmin(t, ref)
			if _, err := Apply(ctx, specB(render.TableShared).build(), fakeOpts(t, ref)); err != nil {
				t.Fatal(err)
			}
			if applytest.Unslotted(k.Dump()) != applytest.Unslotted(ref.Dump()) {
				t.Errorf("did not converge:\n%s\nwant:\n%s", k.Dump(), ref.Dump())
			}
		})
	}
}

// TestFakeKilled simulates a process killed after every possible number
// of commands (every later command fails, so no rollback runs), then
// checks that the next run converges to what a clean apply gives.
func TestFakeKilled(t *testing.T) {
	ctx := context.Background()
	prev := specA(render.TableShared)
	prev.extra = []string{"REYES-OLD"}
	next := specB(render.TableShared)
	next.sets["new"] = []string{"10.99.1.30"}
	next.allows = append(slices.Clone(next.allows), allow{"new", 17, 53})

	ref := applytest.New("nft")
	setupAdmin(t, ref)
	refOpts := fakeOpts(t, ref)
	if _, err := Apply(ctx, prev.build(), refOpts); err != nil {
		t.Fatal(err)
	}
	ref.ResetCalls()
	if _, err := Apply(ctx, next.build(), refOpts); err != nil {
		t.Fatal(err)
	}
	total := len(ref.Calls())
	want := ref.Dump()
	for _, withState := range []bool{true, false} {
		for n := 0; n < total; n++ {
			k := applytest.New("nft")
			setupAdmin(t, k)
			opts := fakeOpts(t, k)
			if !withState {
				opts.StateDir = ""
			}
			if _, err := Apply(ctx, prev.build(), opts); err != nil {
				t.Fatal(err)
			}
			calls := 0
			k.Fail = func(c applytest.Call) error {
				calls++
				if calls > n {
					return errors.New("killed")
				}
				return nil
			}
			// A run killed while cleaning up (after the new policy is in
			// force) only logs; any earlier death is an error.
			Apply(ctx, next.build(), opts)
			k.Fail = nil
			if _, err := Apply(ctx, next.build(), opts); err != nil {
				t.Fatalf("state %v, killed after %d calls: next run: %v", withState, n, err)
			}
			if got := k.Dump(); got != want {
				t.Errorf("state %v, killed after %d calls: did not converge:\n%s\nwant:\n%s", withState, n, got, want)
			}
		}
	}
}

func TestFakeDrift(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name      string
		drift     string // restore --noflush text
		wantRules bool
		wantJump  bool
	}{
		{"chain flushed", "*filter\n-F REYES-INPUT\nCOMMIT\n", true, false},
		{"jump removed", "*filter\n-D INPUT -j REYES-INPUT\nCOMMIT\n", false, true},
		{"jump duplicated", "*filter\n-A INPUT -j REYES-INPUT\nCOMMIT\n", false, true},
		{"rule inserted above jump", "*filter\n-I INPUT 1 -p udp -j DROP\nCOMMIT\n", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := applytest.New("legacy")
			setupAdmin(t, k)
			opts := fakeOpts(t, k)
			p := specA(render.TableShared).build()
			if _, err := Apply(ctx, p, opts); err != nil {
				t.Fatal(err)
			}
			want := k.Dump()
			if err := k.Script(4, c.drift); err != nil {
				t.Fatal(err)
			}
			res, err := Apply(ctx, p, opts)
			if err != nil {
				t.Fatal(err)
			}
			f := res.Families[0]
			if f.RulesLoaded != c.wantRules || f.JumpRepaired != c.wantJump {
				t.Errorf("result %+v, want rules %v jump %v", f, c.wantRules, c.wantJump)
			}
			got := k.Dump()
			if c.name == "rule inserted above jump" {
				want = strings.Replace(want, "-A INPUT -p tcp", "-A INPUT -p udp -j DROP\n-A INPUT -p tcp", 1)
			}
			if got != want {
				t.Errorf("not repaired:\n%s\nwant:\n%s", got, want)
			}
			for _, call := range k.Calls() {
				if strings.Contains(call.Name, "-nft") {
					t.Errorf("legacy host, nft tool used: %s", call)
				}
			}
		})
	}
}

func TestFakeChainsSetsRemoveAndCoexistence(t *testing.T) {
	ctx := context.Background()
	k := applytest.New("nft")
	setupAdmin(t, k)
	admin := k.Dump()
	opts := fakeOpts(t, k)
	withOld := specA(render.TableShared)
	withOld.extra = []string{"REYES-OLD"}
	withOld.sets["gone"] = []string{"10.99.1.40"}
	if _, err := Apply(ctx, withOld.build(), opts); err != nil {
		t.Fatal(err)
	}
	res, err := Apply(ctx, specA(render.TableShared).build(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Families[0]; !slices.Equal(f.ChainsDeleted, []string{"REYES-OLD"}) || !slices.Equal(f.SetsDestroyed, []string{"reyes4-gone"}) {
		t.Errorf("result %+v", f)
	}
	if d := k.Dump(); strings.Contains(d, "REYES-OLD") || strings.Contains(d, "gone") {
		t.Errorf("old chain or set left:\n%s", d)
	}
	rr, err := Remove(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Chains[render.IPv4]) != 4 || len(rr.Sets[render.IPv4]) != 2 {
		t.Errorf("remove result %+v", rr)
	}
	if d := k.Dump(); d != admin {
		t.Errorf("after Remove:\n%s\nwant what the admin had:\n%s", d, admin)
	}
	if _, err := os.Stat(filepath.Join(opts.StateDir, "apply-ipv4.json")); err == nil {
		t.Errorf("state left after Remove")
	}
	if _, err := Remove(ctx, opts); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func TestFakeNoStateReadsBack(t *testing.T) {
	ctx := context.Background()
	k := applytest.New("nft")
	opts := Options{Runner: k}
	if _, err := Apply(ctx, specA(render.TableShared).build(), opts); err != nil {
		t.Fatal(err)
	}
	k.ResetCalls()
	res, err := Apply(ctx, specA(render.TableShared).build(), opts)
	if err != nil || res.Changed() {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if rc := restoreCalls(k.Calls()); len(rc) > 0 {
		t.Errorf("restore calls without state: %v", rc)
	}
}

func TestFakeDisabledFailSafeAndPlanChecks(t *testing.T) {
	ctx := context.Background()
	admin := render.FailSafe{Source: netip.MustParsePrefix("192.0.2.0/24"), Protocol: 6, Port: 22}
	good := specA(render.TableShared)
	good.failSafe = []render.FailSafe{admin}
	badChain := specA(render.TableShared).build()
	badChain.V4.Chains = append(badChain.V4.Chains, render.Chain{Name: "INPUT"})
	badSet := specA(render.TableShared).build()
	badSet.V4.Sets[0].Name = "other-db"
	flag := filepath.Join(t.TempDir(), "disable")
	for _, c := range []struct {
		name    string
		plan    *render.Plan
		opts    func(*Options)
		wantErr error
	}{
		{"fail-safe present", good.build(), func(o *Options) { o.FailSafe = []render.FailSafe{admin} }, nil},
		{"fail-safe missing", specA(render.TableShared).build(), func(o *Options) { o.FailSafe = []render.FailSafe{admin} }, ErrFailSafe},
		{"fail-safe of other family ignored", specA(render.TableShared).build(), func(o *Options) {
			o.FailSafe = []render.FailSafe{{Source: netip.MustParsePrefix("2001:db8::/32"), Protocol: 6, Port: 22}}
		}, ErrFailSafe},
		{"foreign chain in shared mode", badChain, nil, ErrPlan},
		{"foreign set name", badSet, nil, ErrPlan},
		{"flag file", good.build(), func(o *Options) {
			os.WriteFile(flag, nil, 0o600)
			o.DisableFile = flag
		}, ErrDisabled},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := applytest.New("nft")
			opts := fakeOpts(t, k)
			if c.opts != nil {
				c.opts(&opts)
			}
			res, err := Apply(ctx, c.plan, opts)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("Apply = %v, want %v", err, c.wantErr)
			}
			if c.wantErr != nil && len(k.Calls()) > 0 && !strings.Contains(c.name, "other family") {
				t.Errorf("refused plan still ran %v", k.Calls())
			}
			if c.wantErr == ErrDisabled && !res.Disabled {
				t.Errorf("result does not say disabled: %+v", res)
			}
		})
	}
}

func TestFakeConntrackFlush(t *testing.T) {
	ctx := context.Background()
	k := applytest.New("nft")
	opts := fakeOpts(t, k)
	opts.FlushConntrack = true
	if _, err := Apply(ctx, specA(render.TableShared).build(), opts); err != nil {
		t.Fatal(err)
	}
	k.ResetCalls()
	res, err := Apply(ctx, specB(render.TableShared).build(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range k.Calls() {
		if c.Name == "conntrack" {
			got = append(got, c.String())
		}
	}
	want := []string{"conntrack -D -s 10.99.1.11", "conntrack -D -s 10.99.1.21", "conntrack -D -s fd00:99:1::11 -f ipv6"}
	if !slices.Equal(got, want) {
		t.Errorf("conntrack calls %v, want %v (result %+v)", got, want, res)
	}
}
