package render_test

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/internal/netns"
	"github.com/reyes-fw/reyes/render"
)

// TestRuleHashesReadBack: for every golden case the rule hashes that
// SavedChainHashes reads from the restore text are the plan's; any rule
// removed, added, moved or changed (without its hash) changes its chain's
// digest; hashes forged in an AWS comment or printed without quotes are
// handled.
func TestRuleHashesReadBack(t *testing.T) {
	for _, lc := range allCases(t) {
		for _, fp := range lc.plan.Families() {
			t.Run(fmt.Sprintf("%s/IPv%d", lc.name, fp.Family), func(t *testing.T) {
				text := string(fp.IptablesRestore())
				want := fp.ChainHashes()
				if got := render.SavedChainHashes([]byte(text)); !maps.Equal(got, want) {
					t.Fatalf("from the restore text: %v, want %v", got, want)
				}
				// Without quotes, as another iptables release may print them.
				unquoted := strings.NewReplacer(`"`+render.RuleHashPrefix, render.RuleHashPrefix, `" -j `, " -j ", `" -g `, " -g ").Replace(text)
				if got := render.SavedChainHashes([]byte(unquoted)); !maps.Equal(got, want) {
					t.Errorf("without quotes: %v, want %v", got, want)
				}
				lines := strings.Split(text, "\n")
				for i, l := range lines {
					if !strings.HasPrefix(l, "-A "+render.ChainPrefix) {
						continue
					}
					chain := strings.Fields(l)[1]
					for _, m := range []struct {
						name  string
						lines []string
					}{
						{"removed", del(lines, i)},
						{"doubled", ins(lines, i, l)},
						{"without its hash", repl(lines, i, render.StripRuleHashes(l))},
						{"another rule's hash", otherHash(lines, i, l)},
					} {
						if m.lines == nil {
							continue
						}
						got := render.SavedChainHashes([]byte(strings.Join(m.lines, "\n")))
						if got[chain] == want[chain] {
							t.Errorf("line %d %s: chain %s reads as unchanged", i, m.name, chain)
						}
					}
				}
			})
		}
	}
}

func del(ls []string, i int) []string {
	return append(append([]string{}, ls[:i]...), ls[i+1:]...)
}

func ins(ls []string, i int, l string) []string {
	return append(append(append([]string{}, ls[:i]...), l), ls[i:]...)
}

func repl(ls []string, i int, l string) []string {
	out := append([]string{}, ls...)
	out[i] = l
	return out
}

// otherHash gives line i the rule hash of another rule of the plan, or
// returns nil when there is no other rule.
func otherHash(ls []string, i int, l string) []string {
	for j, o := range ls {
		if j == i || !strings.HasPrefix(o, "-A "+render.ChainPrefix) {
			continue
		}
		k := strings.LastIndex(o, render.RuleHashPrefix)
		h := o[k : k+len(render.RuleHashPrefix)+16]
		m := strings.LastIndex(l, render.RuleHashPrefix)
		if l[m:m+len(h)] == h {
			continue
		}
		return repl(ls, i, l[:m]+h+l[m+len(h):])
	}
	return nil
}

func TestSavedRuleHashParsing(t *testing.T) {
	const h = "0123456789abcdef"
	for _, tc := range []struct {
		name, line string
		hashed     bool
	}{
		{"quoted", `-A REYES-X -j ACCEPT -m comment --comment "reyes:` + h + `" -j ACCEPT`, true},
		{"unquoted", `-A REYES-X -m comment --comment reyes:` + h + ` -j ACCEPT`, true},
		{"at the end", `-A REYES-X -m comment --comment reyes:` + h, true},
		{"none", `-A REYES-X -j ACCEPT`, false},
		{"another comment last", `-A REYES-X -m comment --comment "reyes:` + h + `" -m comment --comment x -j ACCEPT`, false},
		{"forged inside an AWS comment", `-A REYES-X -m comment --comment "sg-1 (x -m comment --comment reyes:` + h + `)" -j ACCEPT`, false},
		{"short", `-A REYES-X -m comment --comment "reyes:0123" -j ACCEPT`, false},
		{"long", `-A REYES-X -m comment --comment "reyes:` + h + `0" -j ACCEPT`, false},
		{"not hex", `-A REYES-X -m comment --comment "reyes:0123456789abcdeg" -j ACCEPT`, false},
		{"open quote", `-A REYES-X -m comment --comment "reyes:` + h + ` -j ACCEPT`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := render.SavedChainHashes([]byte(tc.line))
			hashed := render.SavedChainHashes([]byte(`-A REYES-X -m comment --comment reyes:` + h + ` -j ACCEPT`))
			if (got["REYES-X"] == hashed["REYES-X"]) != tc.hashed {
				t.Errorf("%s: read as hashed %v, want %v", tc.line, !tc.hashed, tc.hashed)
			}
		})
	}
}

// TestRuleHashesBothBackends loads every golden plan with iptables-legacy
// and with iptables-nft in fresh namespaces, reads it back with the same
// backend's save, and checks that the rule hashes read back are the
// plan's (the baseline's LOG, limit, REJECT and tcp-flags rules included),
// and that a rule deleted in the kernel is found.
func TestRuleHashesBothBackends(t *testing.T) {
	netns.RequireRoot(t)
	for _, backend := range []string{"legacy", "nft"} {
		restore4, save4 := "iptables-"+backend+"-restore", "iptables-"+backend+"-save"
		restore6, save6 := "ip6tables-"+backend+"-restore", "ip6tables-"+backend+"-save"
		if _, err := exec.LookPath(restore4); err != nil {
			t.Logf("%s not installed: backend %s not tested", restore4, backend)
			continue
		}
		netns.RequireTools(t, "ip", "ipset", restore4, save4, restore6, save6)
		lock := filepath.Join(t.TempDir(), "xtables.lock")
		for _, lc := range allCases(t) {
			t.Run(backend+"/"+lc.name, func(t *testing.T) {
				t.Parallel()
				host := netns.New(t, "rhash")
				ctx := context.Background()
				// A private xtables lock: never the machine's own.
				xt := func(stdin []byte, tool string, args ...string) (string, error) {
					return host.Exec(ctx, stdin, "env", append([]string{"XTABLES_LOCKFILE=" + lock, tool}, args...)...)
				}
				for _, fp := range lc.plan.Families() {
					if _, err := host.Exec(ctx, fp.IpsetRestore(), "ipset", "restore"); err != nil {
						t.Fatalf("ipset restore: %v", err)
					}
				}
				for _, fp := range lc.plan.Families() {
					restore, save := restore4, save4
					if fp.Family == render.IPv6 {
						restore, save = restore6, save6
					}
					if _, err := xt(fp.IptablesRestore(), restore, "--noflush"); err != nil {
						t.Fatalf("%s: %v\n%s", restore, err, fp.IptablesRestore())
					}
					out, err := xt(nil, save, "-t", "filter")
					if err != nil {
						t.Fatal(err)
					}
					want := fp.ChainHashes()
					if got := render.SavedChainHashes([]byte(out)); !maps.Equal(got, want) {
						t.Fatalf("IPv%d: read back %v, want %v\n%s", fp.Family, got, want, out)
					}
					// Delete the last rule of the first chain with rules.
					for _, c := range fp.Chains {
						if len(c.Rules) == 0 {
							continue
						}
						ipt := strings.TrimSuffix(restore, "-restore")
						if _, err := xt(nil, ipt, "-D", c.Name, fmt.Sprint(len(c.Rules))); err != nil {
							t.Fatal(err)
						}
						out, err := xt(nil, save, "-t", "filter")
						if err != nil {
							t.Fatal(err)
						}
						if got := render.SavedChainHashes([]byte(out)); got[c.Name] == want[c.Name] {
							t.Errorf("IPv%d: rule %d of %s deleted, its chain reads as unchanged", fp.Family, len(c.Rules), c.Name)
						}
						break
					}
				}
			})
		}
	}
}

func TestStripRuleHashes(t *testing.T) {
	const h = "0123456789abcdef"
	for _, tc := range []struct{ name, in, want string }{
		{"quoted", `-A REYES-X -m comment --comment "sg-1 x" -m comment --comment "reyes:` + h + `" -j ACCEPT`, `-A REYES-X -m comment --comment "sg-1 x" -j ACCEPT`},
		{"unquoted", `-A REYES-X -m comment --comment reyes:` + h + ` -j ACCEPT`, `-A REYES-X -j ACCEPT`},
		{"at the end of a line", "-A REYES-X -m comment --comment reyes:" + h + "\n-A REYES-Y -j DROP", "-A REYES-X\n-A REYES-Y -j DROP"},
		{"other comments kept", `-A REYES-X -m comment --comment loopback -j RETURN`, `-A REYES-X -m comment --comment loopback -j RETURN`},
		{"not a hash", `-A REYES-X -m comment --comment "reyes:0123" -j ACCEPT`, `-A REYES-X -m comment --comment "reyes:0123" -j ACCEPT`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render.StripRuleHashes(tc.in); got != tc.want {
				t.Errorf("StripRuleHashes\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
