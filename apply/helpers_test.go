package apply

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/netns"
	"github.com/reyes-fw/reyes/render"
)

// allow is one allow rule of a test plan: sources in set (a name without
// the family prefix), protocol (6, 17, 1 = ICMP of the family, -1 all),
// destination port (-1 all).
type allow struct {
	set   string
	proto int
	port  int
}

// planSpec describes a small plan for both families.
type planSpec struct {
	table render.TableMode
	// foreign ranges filtered; others pass untouched.
	foreign []netip.Prefix
	// sets by short name; members of both families, split by family.
	sets     map[string][]string
	allows   []allow
	failSafe []render.FailSafe
	// extra are raw extra chains (name -> rules), e.g. to test chain removal.
	extra []string
}

var defaultForeign = []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16"), netip.MustParsePrefix("fd00:99::/32")}

func anyM() render.Match {
	return render.Match{Protocol: -1, DPortFrom: -1, DPortTo: -1, ICMPType: -1, ICMPCode: -1}
}

// build renders the spec by hand, in the shape render.Render produces:
// REYES-INPUT (established, fail-safe, foreign -> REYES-FILTER),
// REYES-FILTER (set rules -> REYES-ALLOW, rest -> REYES-DROP), REYES-ALLOW,
// REYES-DROP.
func (s planSpec) build() *render.Plan {
	p := &render.Plan{Table: s.table}
	foreign := s.foreign
	if foreign == nil {
		foreign = defaultForeign
	}
	for _, fam := range []render.Family{render.IPv4, render.IPv6} {
		inFam := func(a netip.Addr) bool { return a.Is4() == (fam == render.IPv4) }
		fp := render.FamilyPlan{Family: fam, Table: s.table}
		allowAct := render.Action{Kind: render.Return}
		if s.table == render.TableExclusive {
			allowAct = render.Action{Kind: render.Accept}
		}
		est := anyM()
		est.Established = true
		in := render.Chain{Name: render.InputChain, Rules: []render.Rule{{Match: est, Action: allowAct}}}
		for _, f := range s.failSafe {
			if f.Source.IsValid() && !inFam(f.Source.Addr()) {
				continue
			}
			m := anyM()
			m.Src, m.Protocol = f.Source, f.Protocol
			if f.Port != 0 {
				m.DPortFrom, m.DPortTo = int(f.Port), int(f.Port)
			}
			in.Rules = append(in.Rules, render.Rule{Match: m, Action: allowAct, Comment: "fail-safe"})
		}
		for _, c := range foreign {
			if inFam(c.Addr()) {
				m := anyM()
				m.Src = c
				in.Rules = append(in.Rules, render.Rule{Match: m, Action: render.Action{Kind: render.Goto, Chain: render.FilterChain}, Comment: "foreign range"})
			}
		}
		filter := render.Chain{Name: render.FilterChain}
		prefix := setPrefix(fam)
		for name, members := range s.sets {
			set := render.Set{Name: prefix + name, Group: "sg-" + name, Family: fam}
			for _, m := range members {
				a := netip.MustParseAddr(m)
				if inFam(a) {
					set.Members = append(set.Members, a)
				}
			}
			fp.Sets = append(fp.Sets, set)
		}
		sortSets(fp.Sets)
		for _, al := range s.allows {
			m := anyM()
			m.SrcSet = prefix + al.set
			m.Protocol = al.proto
			if al.proto == 1 && fam == render.IPv6 {
				m.Protocol = 58
			}
			if al.port >= 0 {
				m.DPortFrom, m.DPortTo = al.port, al.port
			}
			filter.Rules = append(filter.Rules, render.Rule{Match: m, Action: render.Action{Kind: render.Goto, Chain: render.AllowChain}, Comment: "sg-" + al.set})
		}
		filter.Rules = append(filter.Rules, render.Rule{Match: anyM(), Action: render.Action{Kind: render.Goto, Chain: render.DropChain}})
		fp.Chains = []render.Chain{in, filter,
			{Name: render.AllowChain, Rules: []render.Rule{{Match: anyM(), Action: allowAct}}},
			{Name: render.DropChain, Rules: []render.Rule{{Match: anyM(), Action: render.Action{Kind: render.Drop}}}},
		}
		for _, e := range s.extra {
			fp.Chains = append(fp.Chains, render.Chain{Name: e, Rules: []render.Rule{{Match: anyM(), Action: render.Action{Kind: render.Return}}}})
		}
		fp.Hooks = []render.Hook{{Builtin: "INPUT", Chain: render.InputChain}}
		seal(&fp)
		if fam == render.IPv4 {
			p.V4 = fp
		} else {
			p.V6 = fp
		}
	}
	return p
}

func sortSets(s []render.Set) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j].Name < s[i].Name {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

// seal writes the plan hash into the first rule's comment, as Render does.
func seal(fp *render.FamilyPlan) { fp.Seal() }

// backends returns the backends whose tools are installed.
func backends(t *testing.T) []Backend {
	var bs []Backend
	for _, b := range []Backend{BackendNFT, BackendLegacy} {
		if _, err := exec.LookPath("iptables-" + string(b) + "-restore"); err == nil {
			bs = append(bs, b)
		}
	}
	if len(bs) == 0 {
		t.Skip("kernel test: neither iptables-nft-restore nor iptables-legacy-restore is installed")
	}
	return bs
}

// env is a kernel test setup: a client namespace and a host namespace
// (where reyes applies) joined by a veth link; the client has extra
// source addresses .11/.12 and ::11/::12 in the link's subnets.
type env struct {
	t       *testing.T
	client  *netns.NS
	host    *netns.NS
	link    *netns.Link
	backend Backend
	opts    Options
	// lockFile is the xtables lock of this env's tools.
	lockFile string
	// allowed and denied sources, per family
	src map[string]netip.Addr
}

// eachBackendAndTable runs f in parallel subtests, one for each installed
// backend and table mode, each with a namespace environment of its own.
func eachBackendAndTable(t *testing.T, f func(t *testing.T, e *env, table render.TableMode)) {
	t.Helper()
	for _, b := range backends(t) {
		for _, table := range []render.TableMode{render.TableShared, render.TableExclusive} {
			t.Run(fmt.Sprintf("%s/%s", b, table), func(t *testing.T) {
				t.Parallel()
				f(t, newEnv(t, b), table)
			})
		}
	}
}

func newEnv(t *testing.T, b Backend) *env {
	t.Helper()
	netns.RequireRoot(t)
	netns.RequireTools(t, "ip", "ipset", "iptables-"+string(b)+"-restore", "ip6tables-"+string(b)+"-restore")
	client := netns.New(t, "apply")
	host := netns.New(t, "apply")
	l := netns.Connect(t, client, host)
	e := &env{t: t, client: client, host: host, link: l, backend: b, src: map[string]netip.Addr{}}
	e.src["v4a"] = netip.AddrFrom4([4]byte{10, 99, 1, 11})
	e.src["v4b"] = netip.AddrFrom4([4]byte{10, 99, 1, 12})
	e.src["v6a"] = netip.MustParseAddr("fd00:99:1::11")
	e.src["v6b"] = netip.MustParseAddr("fd00:99:1::12")
	for _, k := range []string{"v4a", "v4b"} {
		l.A.AddAddr(t, netip.PrefixFrom(e.src[k], 24))
	}
	for _, k := range []string{"v6a", "v6b"} {
		l.A.AddAddr(t, netip.PrefixFrom(e.src[k], 64))
	}
	l.StaticNeighbors(t)
	host.ServeTCP(t, 8080)
	host.ServeTCP(t, 8090)
	host.ServeUDP(t, 8081)
	// A private xtables lock: never the machine's own, which all namespaces share.
	e.lockFile = filepath.Join(t.TempDir(), "xtables.lock")
	e.opts = Options{Runner: ExecRunner{Netns: host.Name, Env: []string{"XTABLES_LOCKFILE=" + e.lockFile}}, Backend: b, StateDir: t.TempDir()}
	return e
}

func (e *env) apply(p *render.Plan) Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Apply(ctx, p, e.opts)
	if err != nil {
		e.t.Fatalf("Apply: %v", err)
	}
	return res
}

func (e *env) ipt(fam render.Family, args ...string) string {
	e.t.Helper()
	bin := "iptables-" + string(e.backend)
	if fam == render.IPv6 {
		bin = "ip6tables-" + string(e.backend)
	}
	return e.host.MustRun(append([]string{bin, "--wait"}, args...)...)
}

var initvalRE = regexp.MustCompile(` initval 0x[0-9a-f]+`)

var countersRE = regexp.MustCompile(`\[\d+:\d+\]`)

var saveNoise = regexp.MustCompile(`(?m)^#.*\n`)

// snapshot is iptables-save of both families (no counters, no comments
// with dates) and ipset save.
func (e *env) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	for _, bin := range []string{"iptables-" + string(e.backend) + "-save", "ip6tables-" + string(e.backend) + "-save"} {
		out := e.host.MustRun(bin)
		out = saveNoise.ReplaceAllString(out, "")
		b.WriteString(countersRE.ReplaceAllString(out, "[0:0]"))
	}
	// initval is random per set; a swap moves it, so only compare it
	// within one namespace (idempotence also checks for restore calls).
	b.WriteString(initvalRE.ReplaceAllString(e.host.MustRun("ipset", "save"), ""))
	return b.String()
}

const probeTimeout = 400 * time.Millisecond

// traffic checks, for each named source, what the host lets through:
// want maps "src/proto" (proto tcp8080, tcp8090, udp8081, icmp) to
// allowed.
func (e *env) traffic(want map[string]bool) {
	e.t.Helper()
	var wg sync.WaitGroup
	for key, w := range want {
		srcName, proto, _ := strings.Cut(key, "/")
		src := e.src[srcName]
		dst := e.link.B.V4
		if src.Is6() {
			dst = e.link.B.V6
		}
		var probe func() error
		switch proto {
		case "tcp8080":
			probe = func() error { return e.client.TCP(src, netip.AddrPortFrom(dst, 8080), probeTimeout) }
		case "tcp8090":
			probe = func() error { return e.client.TCP(src, netip.AddrPortFrom(dst, 8090), probeTimeout) }
		case "udp8081":
			probe = func() error { return e.client.UDP(src, netip.AddrPortFrom(dst, 8081), probeTimeout) }
		case "icmp":
			probe = func() error { return e.client.Ping(src, dst, probeTimeout) }
		default:
			e.t.Fatalf("unknown probe %q", key)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := netns.Expect(w, probe); err != nil {
				e.t.Errorf("%s (%v -> %v): %v", key, src, dst, err)
			}
		}()
	}
	wg.Wait()
}

// expectAll builds a traffic expectation: every probe of every source in
// allowed is allowed, every probe of the others denied.
func expectAll(probes []string, allowed map[string][]string) map[string]bool {
	m := map[string]bool{}
	for _, src := range []string{"v4a", "v4b", "v6a", "v6b"} {
		for _, p := range probes {
			m[src+"/"+p] = false
		}
	}
	for src, ps := range allowed {
		for _, p := range ps {
			m[src+"/"+p] = true
		}
	}
	return m
}

// runner is the env's real runner: in the host namespace, with the env's
// private xtables lock.
func (e *env) runner() ExecRunner {
	return ExecRunner{Netns: e.host.Name, Env: []string{"XTABLES_LOCKFILE=" + e.lockFile}}
}

// liveSet returns the slot of set name that exists in the host namespace:
// name, or name + SlotSuffix after a change that loaded it into its other slot.
func (e *env) liveSet(name string) string {
	e.t.Helper()
	for _, n := range strings.Fields(e.host.MustRun("ipset", "list", "-n")) {
		if n == name || n == name+SlotSuffix {
			return n
		}
	}
	e.t.Fatalf("set %s is in neither slot", name)
	return ""
}
