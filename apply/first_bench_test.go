package apply

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/render"
)

// smallPlan is a typical host's plan (issue 15): three groups, about 270
// set members and 20 rules per family, both families, INPUT hooked.
func smallPlan() *render.Plan {
	s := planSpec{table: render.TableShared, sets: map[string][]string{}}
	groups := []struct {
		name   string
		v4, v6 int
	}{{"web", 150, 6}, {"app", 80, 4}, {"ops", 30, 2}}
	for gi, g := range groups {
		var ms []string
		for i := 0; i < g.v4; i++ {
			ms = append(ms, fmt.Sprintf("10.%d.%d.%d", 10+gi, i/250, 1+i%250))
		}
		for i := 0; i < g.v6; i++ {
			ms = append(ms, fmt.Sprintf("fd00:%x::%x", 10+gi, 1+i))
		}
		s.sets[g.name] = ms
		for p := 0; p < 5; p++ {
			s.allows = append(s.allows, allow{g.name, 6, 8000 + 10*gi + p})
		}
	}
	s.allows = append(s.allows, allow{"ops", 1, -1}, allow{"ops", 17, 161})
	return s.build()
}

// timedRunner records each command and its wall time.
type timedRunner struct {
	r     Runner
	mu    sync.Mutex
	calls []string
	t0    time.Time // offsets are from here
}

func (t *timedRunner) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	start := time.Now()
	out, err := t.r.Run(ctx, stdin, name, args...)
	d := time.Since(start)
	t.mu.Lock()
	t.calls = append(t.calls, fmt.Sprintf("%s (%.1f ms, at %.1f-%.1f ms)", strings.Join(append([]string{name}, args...), " "),
		float64(d.Microseconds())/1000, float64(start.Sub(t.t0).Microseconds())/1000, float64(time.Since(t.t0).Microseconds())/1000))
	t.mu.Unlock()
	return out, err
}

// ResolvePath passes the question on, so that the backend is found as
// with the runner wrapped (apply.PathResolver).
func (t *timedRunner) ResolvePath(name string) (string, error) {
	if pr, ok := t.r.(PathResolver); ok {
		return pr.ResolvePath(name)
	}
	return "", exec.ErrNotFound
}

func (t *timedRunner) take() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.calls
	t.calls = nil
	return c
}

// emptyDir removes everything in dir: the state of a first run is none.
func emptyDir(tb testing.TB, dir string) {
	es, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range es {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkFirstApplySmall times a first Apply of a typical host's plan
// (smallPlan) into an empty namespace with an empty state directory, next
// to its floor: ipset restore + iptables-restore per family of exactly the
// plan's text (4 commands), run in the same namespace in the same
// iteration, so that both meet the same load. It reports, over the
// iterations, the median and the minimum of each (ms), the median of
// Apply/floor per iteration (x-floor) and the number of commands Apply ran
// (cmds); -v logs the commands of the last iteration with their times.
//
//	go test ./apply -run '^$' -bench FirstApplySmall -benchtime 40x -count 3
func BenchmarkFirstApplySmall(b *testing.B) {
	ctx := context.Background()
	p := smallPlan()
	for _, be := range []Backend{BackendNFT, BackendLegacy} {
		b.Run(string(be), func(b *testing.B) {
			_, opts := benchNS(b, be)
			type cmd struct {
				stdin []byte
				name  string
				args  []string
			}
			var floor []cmd
			for _, fp := range []*render.FamilyPlan{&p.V4, &p.V6} {
				tool := "iptables-" + string(be) + "-restore"
				if fp.Family == render.IPv6 {
					tool = "ip6tables-" + string(be) + "-restore"
				}
				ipt := slices.Concat([]byte(strings.TrimSuffix(string(fp.IptablesRestore()), "COMMIT\n")), []byte("-I INPUT 1 -j REYES-INPUT\nCOMMIT\n"))
				floor = append(floor, cmd{fp.IpsetRestore(), "ipset", []string{"restore"}}, cmd{ipt, tool, []string{"--wait", "--noflush"}})
			}
			tr := &timedRunner{r: opts.Runner}
			aopts := opts
			aopts.Runner = tr
			empty := func() {
				if _, err := Remove(ctx, opts); err != nil {
					b.Fatal(err)
				}
				emptyDir(b, opts.StateDir)
			}
			var floors, firsts, ratios []float64
			var last []string
			for b.Loop() {
				empty()
				start := time.Now()
				for _, c := range floor {
					if _, err := opts.Runner.Run(ctx, c.stdin, c.name, c.args...); err != nil {
						b.Fatal(err)
					}
				}
				f := time.Since(start)
				empty()
				tr.take()
				tr.t0 = time.Now()
				res, err := Apply(ctx, p, aopts)
				a := time.Since(tr.t0)
				if err != nil {
					b.Fatal(err)
				}
				last = append(tr.take(), fmt.Sprintf("Apply returned at %.1f ms", float64(a.Microseconds())/1000))
				if len(res.Families) != 2 || !res.Families[0].RulesLoaded || !res.Families[1].RulesLoaded {
					b.Fatalf("first apply did %+v", res)
				}
				floors = append(floors, f.Seconds()*1000)
				firsts = append(firsts, a.Seconds()*1000)
				ratios = append(ratios, a.Seconds()/f.Seconds())
			}
			med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(med(floors), "floor-ms")
			b.ReportMetric(med(firsts), "apply-ms")
			b.ReportMetric(slices.Min(floors), "floor-min-ms")
			b.ReportMetric(slices.Min(firsts), "apply-min-ms")
			b.ReportMetric(med(ratios), "x-floor")
			b.ReportMetric(float64(len(last)-1), "cmds")
			b.Logf("%d commands:\n%s", len(last)-1, strings.Join(last, "\n"))
		})
	}
}

// TestFakeFirstApplyCommands: a first apply of a small plan into an empty
// kernel, with an empty state directory, runs 6 commands: 3 reads (the
// backend's tools, each family's table once; no set headers, as nothing
// recorded a set: Options.firstRun) and 3 changes (both families' sets in
// one ipset restore, then each family's rules); an unchanged plan then
// runs reads only, and no restore.
func TestFakeFirstApplyCommands(t *testing.T) {
	ctx := context.Background()
	k := applytest.New("nft")
	opts := fakeOpts(t, k)
	opts.Backend = BackendNFT // as the follower's -backend gives it; auto adds "iptables --version"
	got := firstApplyCalls(t, ctx, opts, k, 3)
	want := []string{
		"ip6tables-nft-save -t filter",
		"iptables-nft --version",
		"iptables-nft-save -t filter",
		"ipset restore",
		"iptables-nft-restore --wait --noflush",
		"ip6tables-nft-restore --wait --noflush",
	}
	if !slices.Equal(got, want) {
		t.Errorf("first apply ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	k.ResetCalls()
	res, err := Apply(ctx, smallPlan(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed() || len(restoreCalls(k.Calls())) > 0 {
		t.Errorf("unchanged plan: %+v, calls %v", res, k.Calls())
	}
	// With a record: the tools, the set headers, and per family the plan
	// hash and the one hooked built-in chain.
	if n := len(k.Calls()); n != 6 {
		t.Errorf("unchanged plan ran %d commands, want 6: %v", n, k.Calls())
	}
}

func TestParseSavedTable(t *testing.T) {
	save := `# Generated by iptables-nft-save v1.8.9 (nf_tables) on Sun Nov 29 22:52:36 2026
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j REYES-INPUT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
:REYES-INPUT - [0:0]
:REYES-OLD - [0:0]
-A INPUT -j REYES-INPUT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A OUTPUT -j REYES-OUTPUT
-A DOCKER-USER -j RETURN
-A REYES-INPUT -m comment --comment "reyes plan=abc123" -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A REYES-INPUT -j REYES-OLD
COMMIT
# Completed on Sun Nov 29 22:52:36 2026
`
	for _, c := range []struct {
		name      string
		out       string
		keep      []string
		chains    []string
		rules     map[string][]string
		haveInput bool
		plan      string
	}{
		{"empty table", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", []string{"INPUT"},
			[]string{"INPUT", "FORWARD", "OUTPUT"}, map[string][]string{}, false, ""},
		{"reyes and others", save, []string{"INPUT", "FORWARD", "OUTPUT"},
			[]string{"INPUT", "FORWARD", "OUTPUT", "DOCKER-USER", "REYES-INPUT", "REYES-OLD"},
			map[string][]string{
				"INPUT":  {"-A INPUT -j REYES-INPUT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"},
				"OUTPUT": {"-A OUTPUT -j REYES-OUTPUT"},
			}, true, "abc123"},
		{"nothing but comments", "# nothing\n", nil, nil, map[string][]string{}, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := parseSavedTable([]byte(c.out), c.keep)
			if !slices.Equal(got.chains, c.chains) {
				t.Errorf("chains %v, want %v", got.chains, c.chains)
			}
			if len(got.rules) != len(c.rules) {
				t.Errorf("rules %v, want %v", got.rules, c.rules)
			}
			for k, v := range c.rules {
				if !slices.Equal(got.rules[k], v) {
					t.Errorf("rules of %s %v, want %v", k, got.rules[k], v)
				}
			}
			if got.haveInput != c.haveInput || kernelPlanHash([]string{got.firstIn}) != c.plan {
				t.Errorf("REYES-INPUT %v %q, want %v plan %q", got.haveInput, got.firstIn, c.haveInput, c.plan)
			}
		})
	}
}

// firstApplyCalls applies smallPlan with opts into k and returns the
// commands k ran, the first reads of them (concurrent, in any order)
// sorted; the changes after them keep their order.
func firstApplyCalls(t *testing.T, ctx context.Context, opts Options, k *applytest.Kernel, reads int) []string {
	t.Helper()
	if _, err := Apply(ctx, smallPlan(), opts); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range k.Calls() {
		got = append(got, c.String())
	}
	slices.Sort(got[:min(reads, len(got))])
	return got
}
