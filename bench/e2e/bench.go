package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/internal/netns"
	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// scope is the scope every ruleset of the benchmark is published for.
const scope = "bench"

// foreignCIDRs are the ranges the follower filters: the synthetic estate's
// IPv4 space and its IPv6 space (synth gives VPCs 2600:1f18:0:xx00::/56),
// so that both families carry rules and sets.
var foreignCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2600:1f18::/32")}

// size is one estate size of the benchmark.
type size struct {
	Name   string
	Config synth.Config
	// Hosts are the host kinds measured at this size, in report order.
	Hosts []string
}

// Host kinds: the interface whose plan is the median of the estate's, the
// one whose plan is the largest, and one host in every group.
const (
	hostTypical = "typical"
	hostBusiest = "busiest"
	hostAll     = "all-groups"
)

var allHosts = []string{hostTypical, hostBusiest, hostAll}

// sizes are the presets by name.
var sizes = map[string]size{
	"small":  {"small", synth.Small(), allHosts},
	"medium": {"medium", synth.Medium(), allHosts},
	"large":  {"large", synth.Large(), allHosts},
	// xlarge is ten times large, by hand only (about 10 GB of memory at
	// its peak and several minutes): its worst case (one host in all
	// 50,000 groups) is left out, as ipset alone would take hours.
	"xlarge": {"xlarge", xlarge(), []string{hostTypical, hostBusiest}},
}

// xlarge is 500,000 interfaces: 8 regions of 8 VPCs, 50,000 groups,
// 1,000,000 addresses, 200,000 rules.
func xlarge() synth.Config {
	return synth.Config{Seed: 1, Regions: 8, VPCsPerRegion: 8, Groups: 50_000, ENIs: 500_000, AddrsPerENI: 2, RulesPerGroup: 4, IPv6: 0.5, PrefixLists: 8}
}

// config is what one invocation measures.
type config struct {
	Sizes    []size
	Runs     int    // runs per size; the best is reported
	BinDir   string // built reyes-leader and reyes-follower; "" skips the binaries
	Backend  apply.Backend
	Log      *slog.Logger // progress
	KeepTemp bool
	// Churn is how many interfaces each churn publish adds and removes
	// (zero: defaultChurn of the estate's); Draws is how many single
	// random changes elsewhere are measured (zero: none); Seed seeds
	// every random choice of both.
	Churn churnSpec
	Draws int
	Seed  uint64
}

// runResult is one run of one size.
type runResult struct {
	Size    string
	Run     int
	LoadAvg string // /proc/loadavg at the start of the run
	Counts  synth.Counts

	// The whole layout (issue 8): one signed object.
	PayloadBytes, ObjectBytes, GzipBytes int
	// WholeErr says why the whole layout could not be encoded (too
	// large), if it could not.
	WholeErr string
	// WholeOpen is a follower's sign.OpenVerified and ruleset.Decode of
	// the whole object: its cost of every new serial in that layout.
	WholeOpen phase
	// The parts layout: the signed root and its parts.
	RootBytes  int
	Parts      int
	PartsBytes int64
	Bins       map[string]int
	// Leader in process: ruleset.Build, Split, EncodeRoot and sign.Seal.
	Build, Split, Seal phase
	Leader             phase // the three together
	// Publishes through reyes.Leader into the file store, by what they
	// published: "first" (an empty store), "republish" (the same estate,
	// a new serial), "elsewhere" and "one-member" (the changes of the
	// first host that had them).
	Publishes map[string]publish
	LeaderBin *procStats

	Hosts []hostResult
}

// publish is one Leader.RunOnce.
type publish struct {
	Res       reyes.LeaderResult
	Req       reqCount
	Wall, CPU time.Duration
}

// host returns the result of a host kind, nil if it was not measured.
func (r *runResult) host(kind string) *hostResult {
	for i := range r.Hosts {
		if r.Hosts[i].Kind == kind {
			return &r.Hosts[i]
		}
	}
	return nil
}

// phase is the wall and CPU time of one step.
type phase struct {
	Wall, CPU time.Duration
}

func (p *phase) add(q phase) { p.Wall += q.Wall; p.CPU += q.CPU }

// hostResult is the follower side for one host of a run.
type hostResult struct {
	Kind string // hostTypical, hostBusiest or hostAll
	Desc string
	Plan planStats

	Floor, FloorCPU time.Duration
	// FloorSteps are the floor's commands: ipset, then iptables per family.
	FloorSteps []floorStep
	// Follower steps in process, without the kernel: read the root, open
	// it, decode it, load the view (read and verify the parts), identify,
	// render.
	Get, Open, DecodeRoot, View, Identify, Render phase
	// Follower.RunOnce in process, each into the namespace of the full
	// run: the first run, an idle poll, a new serial of the same estate, a
	// change elsewhere in the estate, a change in the host's plan.
	Full, Unchanged, Republish, Elsewhere, OneMember followerRun
	// Near is a change outside the host's plan in a part it reads (an
	// address added to its bin of the address index).
	Near     followerRun
	HasNear  bool
	NearWhat string
	// HasElsewhere: a change was found whose parts this host does not
	// read (none for a host that reads every group part).
	HasElsewhere  bool
	ElsewhereWhat string
	Move          string // what the one-member change moved
	// ChurnMember is a churn publish that also added a member to a set of
	// the plan (ChurnMemberWhat says what); zero if the plan has no set.
	ChurnMember     followerRun
	ChurnMemberWhat string
	// Churn and Churn2 are two consecutive churn publishes (interfaces
	// added and removed at random in groups the plan does not involve;
	// see churn), each on top of the one before, the follower having
	// accepted it; NoChurn says why there is none.
	Churn, Churn2 churnRun
	NoChurn       string
	// Draws are single random changes elsewhere, one after the other: an
	// interface added to a random group the plan does not involve,
	// whatever parts that touches.
	Draws []churnRun
	// The follower binary inside a fresh namespace.
	BinFull, BinUnchanged, BinElsewhere *procStats
	// BinChurn: the binary after a churn publish (the first's size).
	BinChurn *procStats
}

// churnRun is a publish of a change that misses the host's plan, and the
// follower's run on it.
type churnRun struct {
	What string
	N    int // interfaces removed, and added (1 added for a single change)
	Run  followerRun
	// PartsChanged and BytesChanged are the parts of the new root that
	// the one before did not list, and their size: what the change made
	// new in the estate.
	PartsChanged int
	BytesChanged int64
	// PlanSame: the plan rendered in process from the whole new estate
	// is, byte for byte, the one the follower last applied.
	PlanSame bool
	// Reread are the parts the follower's plan was made from that its
	// run before did not list: the changed parts it read again.
	Reread []string
	// Listed: the new root still lists every part the follower's run
	// before listed (its plan's parts did not change).
	Listed bool
}

// ok says whether a churn run was measured.
func (c *churnRun) ok() bool { return c.What != "" }

// floorStep is one command of the floor.
type floorStep struct {
	Tool string
	procStats
}

// followerRun is one Follower.RunOnce.
type followerRun struct {
	Dur     time.Duration // RunOnce's own Duration (store read to applied)
	CPU     time.Duration // this process and the commands it ran
	Calls   kernelCalls
	Req     reqCount // requests to the store
	Result  reyes.FollowerResult
	Changed bool
	Swapped int // sets swapped, both families
	Rules   bool
}

// keptKernel is the check of a run that must leave the kernel as it was:
// what, the change published, is named in the error.
func keptKernel(what string) func(*followerRun) error {
	return func(r *followerRun) error {
		if r.Changed {
			return fmt.Errorf("%s changed the kernel: %+v", what, r.Result.Applied)
		}
		return nil
	}
}

// planStats measures a plan.
type planStats struct {
	Rules, Rules6     int
	Sets, Sets6       int
	Members, Members6 int
	TextBytes         int // ipset + iptables restore text, both families
}

func statsOf(p *render.Plan) planStats {
	var s planStats
	for _, fp := range p.Families() {
		rules, members := 0, 0
		for _, c := range fp.Chains {
			rules += len(c.Rules)
		}
		for _, set := range fp.Sets {
			members += len(set.Members)
		}
		if fp.Family == render.IPv4 {
			s.Rules, s.Sets, s.Members = rules, len(fp.Sets), members
		} else {
			s.Rules6, s.Sets6, s.Members6 = rules, len(fp.Sets), members
		}
		if len(fp.Chains) > 0 {
			s.TextBytes += len(fp.IpsetRestore()) + len(fp.IptablesRestore())
		}
	}
	return s
}

// bench holds what one run of one size shares between its steps.
type bench struct {
	cfg    config
	dir    string
	inv    *inventory.Inventory
	signer *sign.Signer
	keys   *sign.Keyring
	secret string // key file paths for the binaries
	public string
	fs     *reyes.FileStore
	path   string         // the store's file (the root)
	lstore *countingStore // the store as the leader sees it
	fstore *countingStore // the store as the in-process follower sees it
	leader *reyes.Leader
	rs     *ruleset.Ruleset // the estate's ruleset, for choosing hosts and changes
	// current is the inventory last published.
	current *inventory.Inventory
	res     *runResult
}

// runSize runs every measurement of one size once.
func runSize(ctx context.Context, cfg config, sz size, run int) (*runResult, error) {
	dir, err := os.MkdirTemp("", "reyes-bench-")
	if err != nil {
		return nil, fmt.Errorf("making a work directory: %w", err)
	}
	if cfg.KeepTemp {
		cfg.Log.Info("keeping the work directory", "dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	res := &runResult{Size: sz.Name, Run: run, LoadAvg: loadAvg(), Publishes: map[string]publish{}}
	b := &bench{cfg: cfg, dir: dir, res: res, path: filepath.Join(dir, "ruleset.signed")}
	b.fs = reyes.NewFileStore(b.path, reyes.StoreOptions{})
	b.lstore, b.fstore = newCountingStore(b.fs), newCountingStore(b.fs)
	cfg.Log.Info("generating", "size", sz.Name, "run", run)
	b.inv = synth.Generate(sz.Config)
	res.Counts = synth.Count(b.inv)
	if err := b.keygen(); err != nil {
		return nil, err
	}
	b.leader = &reyes.Leader{
		Source: &staticSource{b.inv}, Store: b.lstore, Signer: b.signer,
		Build: ruleset.BuildOptions{Scope: scope},
		// Every run publishes, even the same estate: a new serial is
		// what followers see at every leader run of a changing estate.
		Refresh: -1,
		Logger:  slog.New(slog.DiscardHandler),
	}
	cfg.Log.Info("leader", "size", sz.Name, "run", run, "load", res.LoadAvg)
	if err := b.leaderInProcess(); err != nil {
		return nil, err
	}
	for _, what := range []string{"first", "republish"} {
		if err := b.publish(ctx, b.inv, what); err != nil {
			return nil, err
		}
	}
	if cfg.BinDir != "" {
		if res.LeaderBin, err = b.leaderBinary(ctx); err != nil {
			return nil, err
		}
	}
	for _, kind := range sz.Hosts {
		cfg.Log.Info("follower", "size", sz.Name, "run", run, "host", kind)
		h, err := b.host(ctx, kind)
		if err != nil {
			return nil, fmt.Errorf("%s host: %w", kind, err)
		}
		res.Hosts = append(res.Hosts, *h)
	}
	return res, nil
}

// keygen makes a signing key and writes both halves for the binaries.
func (b *bench) keygen() error {
	secret, public, err := sign.GenerateKey("reyes bench", "bench@example.invalid", time.Now().Add(-time.Hour))
	if err != nil {
		return err
	}
	if b.signer, err = sign.ParseSigner(secret); err != nil {
		return err
	}
	if b.keys, err = sign.ParseKeyring(public); err != nil {
		return err
	}
	b.secret, b.public = filepath.Join(b.dir, "leader.key"), filepath.Join(b.dir, "leader.pub")
	if err := os.WriteFile(b.secret, secret, 0o600); err != nil {
		return fmt.Errorf("writing key: %w", err)
	}
	if err := os.WriteFile(b.public, public, 0o644); err != nil {
		return fmt.Errorf("writing key: %w", err)
	}
	return nil
}

// leaderInProcess builds, splits and seals the inventory in process,
// measuring each step, and measures the whole layout's object (issue 8)
// for comparison. It publishes nothing.
func (b *bench) leaderInProcess() error {
	runtime.GC()
	var rs *ruleset.Ruleset
	var root *ruleset.Root
	var parts map[string][]byte
	var obj []byte
	now := time.Now()
	var err error
	r := b.res
	if r.Build.Wall, r.Build.CPU, err = measure(func() (err error) {
		rs, err = ruleset.Build(b.inv, ruleset.BuildOptions{Scope: scope, GeneratedAt: now})
		return err
	}); err != nil {
		return err
	}
	if r.Split.Wall, r.Split.CPU, err = measure(func() (err error) {
		root, parts, err = ruleset.Split(rs, ruleset.SplitOptions{})
		return err
	}); err != nil {
		return err
	}
	if r.Seal.Wall, r.Seal.CPU, err = measure(func() error {
		text, err := ruleset.EncodeRoot(root)
		if err != nil {
			return err
		}
		// As reyes.Leader signs it: compressed.
		payload, err := ruleset.CompressRoot(text)
		if err != nil {
			return err
		}
		obj, err = sign.Seal(payload, b.signer, now)
		return err
	}); err != nil {
		return err
	}
	r.Leader = r.Build
	r.Leader.add(r.Split)
	r.Leader.add(r.Seal)
	r.RootBytes, r.Parts, r.Bins = len(obj), len(root.Parts), root.Bins
	for _, p := range parts {
		r.PartsBytes += int64(len(p))
	}
	b.rs = rs
	whole, err := ruleset.Encode(rs)
	if errors.Is(err, ruleset.ErrTooLarge) {
		// Past the whole layout's cap (500,000 interfaces): it could
		// not be published at all.
		r.WholeErr = err.Error()
		return nil
	}
	if err != nil {
		return err
	}
	wobj, err := sign.Seal(whole, b.signer, now)
	if err != nil {
		return err
	}
	r.PayloadBytes, r.ObjectBytes, r.GzipBytes = len(whole), len(wobj), gzipLen(wobj)
	// What every follower paid for each new serial in the whole layout:
	// verify and decode the whole object.
	runtime.GC()
	if r.WholeOpen.Wall, r.WholeOpen.CPU, err = measure(func() error {
		ver, err := sign.OpenVerified(bytes.NewReader(wobj), b.keys, now, sign.WithMaxSize(reyes.DefaultMaxObjectSize))
		if err != nil {
			return err
		}
		_, err = ruleset.DecodeLimits(ver.Payload, ruleset.Limits{MaxBytes: reyes.DefaultMaxObjectSize})
		return err
	}); err != nil {
		return err
	}
	b.rs = rs
	return nil
}

// publish runs the leader once on inv (a new serial even if nothing
// changed). what, if not empty and not yet recorded, names the publish in
// the run's results.
func (b *bench) publish(ctx context.Context, inv *inventory.Inventory, what string) error {
	b.leader.Source = &staticSource{inv}
	runtime.GC()
	b.lstore.c.take()
	var lr reyes.LeaderResult
	wall, cpu, err := measure(func() (err error) {
		lr, err = b.leader.RunOnce(ctx)
		return err
	})
	req := b.lstore.c.take()
	if err != nil {
		return fmt.Errorf("leader: %w", err)
	}
	if lr.Skipped || lr.GCError != nil {
		return fmt.Errorf("leader: skipped %v, garbage collection: %v", lr.Skipped, lr.GCError)
	}
	if _, ok := b.res.Publishes[what]; what != "" && !ok {
		b.res.Publishes[what] = publish{Res: lr, Req: req, Wall: wall, CPU: cpu}
	}
	b.current = inv
	b.cfg.Log.Info("published", "what", what, "serial", lr.Header.Serial, "parts_put", lr.PartsPut, "bytes_put", lr.BytesPut, "requests", req.String())
	return nil
}

// root reads the store's current root.
func (b *bench) root(ctx context.Context) (*ruleset.Root, error) {
	body, _, err := b.fs.Get(ctx, "")
	if err != nil {
		return nil, err
	}
	ver, err := sign.OpenVerified(bytes.NewReader(body), b.keys, time.Now())
	if err != nil {
		return nil, err
	}
	return ruleset.DecodeRoot(ver.Payload, ruleset.Limits{MaxBytes: reyes.DefaultMaxObjectSize})
}

// leaderBinary runs reyes-leader on the inventory written as a directory
// of AWS CLI JSON: what a leader pays with an offline source (reading
// the directory included), publishing in its default layout (parts) into
// a store of its own.
func (b *bench) leaderBinary(ctx context.Context) (*procStats, error) {
	invDir := filepath.Join(b.dir, "inventory")
	if err := sgsource.WriteDir(invDir, b.inv); err != nil {
		return nil, err
	}
	st, err := runProc(ctx, nil, filepath.Join(b.cfg.BinDir, "reyes-leader"), "--source", invDir,
		"--store", filepath.Join(b.dir, "leader-binary.signed"), "--signing-key", b.secret, "--scope", scope)
	if err != nil {
		return nil, err
	}
	return &st, os.RemoveAll(invDir)
}

// identity returns the identity options of a host kind and says which host
// it is.
func (b *bench) identity(rs *ruleset.Ruleset, kind string) (reyes.IdentityOptions, string, error) {
	id := reyes.IdentityOptions{DisableIMDS: true, Logger: slog.New(slog.DiscardHandler)}
	switch kind {
	case hostAll:
		for _, g := range rs.Groups {
			id.Groups = append(id.Groups, g.ID)
		}
		// Its own VPC is the first: the others' traffic is filtered.
		id.VPCCIDRs = rs.VPCs[0].CIDRs
		return id, fmt.Sprintf("one host in all %s groups (synthetic worst case)", num(len(id.Groups))), nil
	case hostBusiest, hostTypical:
		ranked := rankPlans(rs)
		if len(ranked) == 0 {
			return id, "", errors.New("the ruleset has no interfaces")
		}
		n, what := ranked[len(ranked)-1], "largest plan"
		if kind == hostTypical {
			n, what = ranked[len(ranked)/2], "median plan"
		}
		id.Addrs = n.Addrs
		return id, fmt.Sprintf("%s, %d groups, %d addresses (%s)", n.ID, len(n.Groups), len(n.Addrs), what), nil
	}
	return id, "", fmt.Errorf("unknown host kind %q", kind)
}

// rankPlans returns the interfaces ordered by the size of their plans:
// the set members in the groups their rules refer to, then the rules,
// then the ID.
func rankPlans(rs *ruleset.Ruleset) []*ruleset.Interface {
	x := ruleset.NewIndex(rs)
	members := map[string]int{}
	for _, g := range rs.Groups {
		members[g.ID] = len(x.Members(g.ID))
	}
	type score struct{ members, rules int }
	cache := map[string]score{}
	scores := make(map[*ruleset.Interface]score, len(rs.Interfaces))
	out := make([]*ruleset.Interface, 0, len(rs.Interfaces))
	for i := range rs.Interfaces {
		n := &rs.Interfaces[i]
		key := strings.Join(n.Groups, ",")
		sc, ok := cache[key]
		if !ok {
			refs := map[string]bool{}
			for _, gid := range n.Groups {
				g := x.Group(gid)
				if g == nil {
					continue
				}
				sc.rules += len(g.Rules)
				for _, r := range g.Rules {
					for _, ref := range r.Groups {
						refs[ref] = true
					}
				}
			}
			for ref := range refs {
				sc.members += members[ref]
			}
			cache[key] = sc
		}
		scores[n] = sc
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *ruleset.Interface) int {
		sa, sb := scores[a], scores[b]
		if sa.members != sb.members {
			return sa.members - sb.members
		}
		if sa.rules != sb.rules {
			return sa.rules - sb.rules
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// follower returns an in-process follower like the binary's, for a host
// kind, whose kernel calls go through a counting runner into ns.
func (b *bench) follower(id reyes.IdentityOptions, stateDir string, ns *netns.NS) (*reyes.Follower, *countingRunner) {
	cr := &countingRunner{r: apply.ExecRunner{Netns: ns.Name}}
	return &reyes.Follower{
		Store: b.fstore, Trusted: b.keys, StateDir: stateDir,
		Freshness: reyes.FreshnessPolicy{Scope: scope},
		Identity:  id,
		Render:    render.Options{ForeignCIDRs: foreignCIDRs},
		Apply:     apply.Options{Runner: cr, Backend: b.cfg.Backend},
		Logger:    slog.New(slog.DiscardHandler),
	}, cr
}

// host measures the follower side for one host kind.
func (b *bench) host(ctx context.Context, kind string) (*hostResult, error) {
	h := &hostResult{Kind: kind}
	// Every host starts from the original estate.
	if b.current != b.inv {
		if err := b.publish(ctx, b.inv, ""); err != nil {
			return nil, err
		}
	}
	rs := b.rs
	id, desc, err := b.identity(rs, kind)
	if err != nil {
		return nil, err
	}
	h.Desc = desc
	plan, err := b.steps(ctx, h, id)
	if err != nil {
		return nil, err
	}
	h.Plan = statsOf(plan)
	b.cfg.Log.Info("plan", "host", kind, "desc", desc, "stats", fmt.Sprintf("%+v", h.Plan))

	if h.FloorSteps, err = b.floor(ctx, plan); err != nil {
		return nil, err
	}
	for _, s := range h.FloorSteps {
		h.Floor += s.Wall
		h.FloorCPU += s.CPU
		b.cfg.Log.Info("floor", "tool", s.Tool, "wall", s.Wall, "cpu", s.CPU, "maxrss_mb", s.MaxRSS>>20)
	}

	ns, err := newNamespace(ctx)
	if err != nil {
		return nil, err
	}
	defer ns.Delete()
	stateDir := filepath.Join(b.dir, "state-"+kind)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("making state directory: %w", err)
	}
	f, cr := b.follower(id, stateDir, ns)
	var once onceFunc = func(what string, want func(*followerRun) error) (followerRun, error) {
		runtime.GC()
		b.fstore.c.take()
		c0 := cpuTime() + childCPU()
		fr, err := f.RunOnce(ctx)
		r := followerRun{Dur: fr.Duration, CPU: cpuTime() + childCPU() - c0, Calls: cr.take(), Req: b.fstore.c.take(), Result: fr, Changed: fr.Applied.Changed()}
		b.cfg.Log.Info("follower run", "host", kind, "what", what, "dur", r.Dur, "bytes", fr.StoreBytes,
			"fetched", fr.PartsFetched, "cached", fr.PartsCached, "requests", r.Req.String(), "calls", strings.Join(r.Calls.Calls, "; "))
		for _, fam := range fr.Applied.Families {
			r.Swapped += len(fam.SetsSwapped)
			r.Rules = r.Rules || fam.RulesLoaded
		}
		if err != nil {
			return r, fmt.Errorf("follower, %s: %w", what, err)
		}
		if err := want(&r); err != nil {
			return r, fmt.Errorf("follower, %s: %w", what, err)
		}
		return r, nil
	}
	any := func(*followerRun) error { return nil }
	if h.Full, err = once("first run", func(r *followerRun) error {
		if !r.Changed {
			return errors.New("nothing was loaded into an empty namespace")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if h.Unchanged, err = once("unchanged store", func(r *followerRun) error {
		if !r.Result.NotModified || r.Calls.N != 0 {
			return fmt.Errorf("not a no-op: not modified %v, %d kernel calls %q", r.Result.NotModified, r.Calls.N, r.Calls.Calls)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := b.publish(ctx, b.inv, ""); err != nil {
		return nil, err
	}
	if h.Republish, err = once("republished, same estate", keptKernel("a new serial of the same estate")); err != nil {
		return nil, err
	}
	// A change elsewhere in the estate: a new interface in a group whose
	// parts this host does not read.
	root, err := b.root(ctx)
	if err != nil {
		return nil, err
	}
	// Each change below is made on top of the one before, so that the
	// leader publishes once per change (a publish at 500,000 interfaces
	// takes a minute on a busy 2-core machine).
	inv, parts := b.inv, h.Full.Result.Parts
	if other, what, ok := elsewhere(inv, root, parts, true); ok {
		// Outside the plan, but in the part of the address index that
		// the host reads: it reads that part again and renders, and
		// apply finds nothing to change.
		h.HasNear, h.NearWhat = true, what
		if err := b.publish(ctx, other, ""); err != nil {
			return nil, err
		}
		if h.Near, err = once("change outside the plan, in a part the host reads", keptKernel("a change outside the plan")); err != nil {
			return nil, err
		}
		inv, parts = other, h.Near.Result.Parts
	}
	// For the binary, which starts from the original estate: the same
	// change elsewhere without the one above.
	binOther, _, _ := elsewhere(b.inv, root, h.Full.Result.Parts, false)
	if other, what, ok := elsewhere(inv, root, parts, false); ok {
		h.HasElsewhere, h.ElsewhereWhat = true, what
		before, err := b.root(ctx)
		if err != nil {
			return nil, err
		}
		if err := b.publish(ctx, other, "elsewhere"); err != nil {
			return nil, err
		}
		after, err := b.root(ctx)
		if err != nil {
			return nil, err
		}
		// By bin: a run that took the root's change list reports the
		// parts of the root its plan was made from, which may be older
		// than the root before this publish.
		for _, name := range parts {
			bin, _, _ := strings.Cut(name, "-")
			if was, now := partOfBin(before, bin), partOfBin(after, bin); was != now {
				return nil, fmt.Errorf("change elsewhere (%s): the part of bin %s that the host reads changed from %s to %s", what, bin, was, now)
			}
		}
		if h.Elsewhere, err = once("change elsewhere", any); err != nil {
			return nil, err
		}
		inv = other
	}
	moved, move, err := moveOne(inv, rs, plan, id)
	if err != nil {
		return nil, err
	}
	h.Move = move
	if err := b.publish(ctx, moved, "one-member"); err != nil {
		return nil, err
	}
	if h.OneMember, err = once("one-member change", func(r *followerRun) error {
		if r.Swapped != 1 || r.Rules {
			return fmt.Errorf("want one set swapped and no rules loaded, got %+v", r.Result.Applied)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if h.OneMember.Result.Plan == nil {
		return nil, errors.New("one-member change: the follower returned no plan")
	}
	if err := b.churns(ctx, h, once, moved, id, planText(h.OneMember.Result.Plan)); err != nil {
		return nil, err
	}
	if b.cfg.BinDir != "" {
		if binOther == nil {
			binOther = b.inv
		}
		// The binary's churn, on top of its change elsewhere.
		var binChurn *inventory.Inventory
		if h.Churn.ok() {
			binChurn, _, err = churn(binOther, involvedGroups(b.rs, id), id.Addrs, b.cfg.Churn.count(b.res.Counts.ENIs), seedFor(b.cfg.Seed, kind, "binary churn"))
			if err != nil {
				return nil, fmt.Errorf("churn for the binary: %w", err)
			}
		}
		if err := b.followerBinary(ctx, h, id, kind, binOther, binChurn); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// onceFunc runs the follower once, named what, and checks its run.
type onceFunc func(what string, want func(*followerRun) error) (followerRun, error)

// churns measures, from inv (the estate last published, whose plan for
// the host, want, the follower applied), two consecutive churn publishes
// and then b.cfg.Draws single random changes elsewhere, each on top of the
// one before: what a follower of an autoscaling estate sees at every
// leader run, none of it chosen to miss the parts the host reads.
func (b *bench) churns(ctx context.Context, h *hostResult, once onceFunc, inv *inventory.Inventory, id reyes.IdentityOptions, want []byte) error {
	involved := involvedGroups(b.rs, id)
	n := b.cfg.Churn.count(b.res.Counts.ENIs)
	rng := seedFor(b.cfg.Seed, h.Kind, "churn")
	prev := h.OneMember.Result.Parts
	for i, dst := range []*churnRun{&h.Churn, &h.Churn2} {
		other, what, err := churn(inv, involved, id.Addrs, n, rng)
		if errors.Is(err, errNoChurn) {
			h.NoChurn = err.Error()
			return nil
		}
		if err != nil {
			return fmt.Errorf("churn: %w", err)
		}
		name := ""
		if i == 0 {
			name = "churn"
		}
		dst.N = n
		if err := b.change(ctx, dst, once, other, what, name, id, want, prev); err != nil {
			return err
		}
		inv, prev = other, dst.Run.Result.Parts
	}
	rng = seedFor(b.cfg.Seed, h.Kind, "draws")
	for range b.cfg.Draws {
		other, what, err := addOne(inv, involved, rng)
		if err != nil {
			return fmt.Errorf("single change elsewhere: %w", err)
		}
		c := churnRun{N: 1}
		if err := b.change(ctx, &c, once, other, what, "", id, want, prev); err != nil {
			return err
		}
		h.Draws = append(h.Draws, c)
		inv, prev = other, c.Run.Result.Parts
	}
	// A change in the plan amid churn: a churn publish that also adds a
	// member to a group whose set the plan holds. The follower reads the
	// parts of the records that changed, the others from its cache.
	inSets := map[string]bool{}
	for _, fp := range h.OneMember.Result.Plan.Families() {
		for _, st := range fp.Sets {
			inSets[st.Group] = true
		}
	}
	other, what, err := churn(inv, involved, id.Addrs, n, seedFor(b.cfg.Seed, h.Kind, "churn and member"))
	if err != nil {
		return fmt.Errorf("churn: %w", err)
	}
	other, added, err := addOneIn(other, func(g string) bool { return inSets[g] }, seedFor(b.cfg.Seed, h.Kind, "member"))
	if errors.Is(err, errNoChurn) {
		return nil // no group set in the plan
	}
	if err != nil {
		return fmt.Errorf("member amid churn: %w", err)
	}
	h.ChurnMemberWhat = what + "; " + added
	if err := b.publish(ctx, other, "churn-member"); err != nil {
		return err
	}
	h.ChurnMember, err = once("one member amid churn", func(r *followerRun) error {
		if r.Swapped != 1 || r.Rules {
			return fmt.Errorf("want one set swapped and no rules loaded, got %+v", r.Result.Applied)
		}
		return nil
	})
	return err
}

// change publishes inv, a change that must miss the host's plan (want,
// the plan applied), checks in process that it does, and runs the
// follower on it, whose last run listed the parts prev.
func (b *bench) change(ctx context.Context, dst *churnRun, once onceFunc, inv *inventory.Inventory, what, name string, id reyes.IdentityOptions, want []byte, prev []string) error {
	before, err := b.root(ctx)
	if err != nil {
		return err
	}
	if err := b.publish(ctx, inv, name); err != nil {
		return err
	}
	after, err := b.root(ctx)
	if err != nil {
		return err
	}
	for _, p := range after.Parts {
		if !before.Has(p.Name) {
			dst.PartsChanged++
			dst.BytesChanged += p.Size
		}
	}
	dst.Listed = !slices.ContainsFunc(prev, func(name string) bool { return !after.Has(name) })
	got, err := planFor(ctx, inv, id)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if dst.PlanSame = bytes.Equal(got, want); !dst.PlanSame {
		return fmt.Errorf("%s: the host's plan, rendered from the whole estate, is not the one applied: the change is not outside it", what)
	}
	dst.What = what
	dst.Run, err = once(what, keptKernel(what))
	for _, name := range dst.Run.Result.Parts {
		if !slices.Contains(prev, name) {
			dst.Reread = append(dst.Reread, name)
		}
	}
	return err
}

// planFor renders, in process from the whole of inv, the plan of the host
// id finds, as the text planText gives.
func planFor(ctx context.Context, inv *inventory.Inventory, id reyes.IdentityOptions) ([]byte, error) {
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{Scope: scope, GeneratedAt: time.Now()})
	if err != nil {
		return nil, fmt.Errorf("building the ruleset: %w", err)
	}
	host, _, err := reyes.Identify(ctx, rs, id)
	if err != nil {
		return nil, err
	}
	plan, err := render.Render(rs, host, render.Options{ForeignCIDRs: foreignCIDRs})
	if err != nil {
		return nil, fmt.Errorf("rendering: %w", err)
	}
	return planText(plan), nil
}

// planText is a plan's restore texts, both families: equal texts are the
// same kernel state.
func planText(p *render.Plan) []byte {
	var b bytes.Buffer
	for _, fp := range p.Families() {
		for _, t := range [][]byte{fp.IpsetRestore(), fp.IptablesRestore()} {
			fmt.Fprintf(&b, "%d\n", len(t))
			b.Write(t)
		}
	}
	return b.Bytes()
}

// partOfBin is the name of root's part of bin ("g0017", "vpcs"), or "".
func partOfBin(root *ruleset.Root, bin string) string {
	for _, p := range root.Parts {
		if strings.HasPrefix(p.Name, bin+"-") {
			return p.Name
		}
	}
	return ""
}

// elsewhere returns inv with one interface added, in a group whose part
// the host (which read the parts named read) does not read, with an ID and
// an address whose parts it does not read either: a change in the estate
// that leaves every part of the host's plan as it was. With sameAddrBin,
// the address is chosen instead in a part of the addresses that the host
// reads (the index it finds itself in): a change outside its plan that
// still changes one of its parts. It returns false when there is none (a
// host that reads every group part).
func elsewhere(inv *inventory.Inventory, root *ruleset.Root, read []string, sameAddrBin bool) (*inventory.Inventory, string, bool) {
	// By bin ("g0017"), not by name: a part read since root was
	// published may have changed (and its name with it).
	bin := func(name string) string { b, _, _ := strings.Cut(name, "-"); return b }
	reads := map[string]bool{}
	for _, n := range read {
		reads[bin(n)] = true
	}
	unread := func(kind, key string) bool {
		ref, ok := root.Part(kind, key)
		return ok && !reads[bin(ref.Name)]
	}
	for ri, r := range inv.Regions {
		for _, g := range r.SecurityGroups {
			// A new member changes the group's members part (not its
			// rules part).
			if !unread(ruleset.KindMembers, g.ID) {
				continue
			}
			for n := range 1 << 16 {
				eni := fmt.Sprintf("eni-ffff%013x", n)
				addr := netip.AddrFrom4([4]byte{10, 254, byte(n >> 8), byte(n)})
				if !unread(ruleset.KindInterfaces, eni) || unread(ruleset.KindAddrs, addr.String()) == sameAddrBin {
					continue
				}
				out := &inventory.Inventory{Regions: slices.Clone(inv.Regions)}
				out.Regions[ri].NetworkInterfaces = append(slices.Clip(out.Regions[ri].NetworkInterfaces), inventory.NetworkInterface{
					ID: eni, VPCID: g.VPCID, OwnerID: g.OwnerID, InterfaceType: "interface",
					Addresses: []netip.Addr{addr}, Groups: []string{g.ID},
				})
				return out, fmt.Sprintf("interface %s (%s) added to %s", eni, addr, g.ID), true
			}
		}
	}
	return nil, "", false
}

// steps times the follower's steps that do not touch the kernel, on the
// root and parts in the store, and returns the plan.
func (b *bench) steps(ctx context.Context, h *hostResult, id reyes.IdentityOptions) (*render.Plan, error) {
	runtime.GC()
	var body []byte
	var ver *sign.Verified
	var root *ruleset.Root
	var view *ruleset.View
	var host render.Host
	var plan *render.Plan
	var err error
	now := time.Now()
	req := ruleset.ViewRequest{Groups: id.Groups, Addrs: id.Addrs}
	parts := b.fs.Parts()
	fetch := func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
		return parts.Get(ctx, ref.Name, ref.Size)
	}
	for _, s := range []struct {
		p  *phase
		fn func() error
	}{
		{&h.Get, func() (err error) { body, _, err = b.fs.Get(ctx, ""); return err }},
		{&h.Open, func() (err error) {
			ver, err = sign.OpenVerified(bytes.NewReader(body), b.keys, now, sign.WithMaxSize(reyes.DefaultMaxObjectSize))
			return err
		}},
		{&h.DecodeRoot, func() (err error) {
			root, err = ruleset.DecodeRoot(ver.Payload, ruleset.Limits{MaxBytes: reyes.DefaultMaxObjectSize})
			return err
		}},
		{&h.View, func() (err error) { view, err = ruleset.LoadView(ctx, root, req, fetch); return err }},
		{&h.Identify, func() (err error) { host, _, err = reyes.Identify(ctx, view.Ruleset, id); return err }},
		{&h.Render, func() (err error) {
			plan, err = render.Render(view.Ruleset, host, render.Options{ForeignCIDRs: foreignCIDRs})
			return err
		}},
	} {
		if s.p.Wall, s.p.CPU, err = measure(s.fn); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// floor loads the plan's own restore texts into a fresh namespace with the
// tools alone, family by family as apply does: ipset restore of the sets,
// then iptables-restore --noflush of the chains with the jump from INPUT
// added. Like apply, every command runs through "ip netns exec".
func (b *bench) floor(ctx context.Context, plan *render.Plan) ([]floorStep, error) {
	ns, err := newNamespace(ctx)
	if err != nil {
		return nil, err
	}
	defer ns.Delete()
	var steps []floorStep
	step := func(stdin []byte, tool string, args ...string) error {
		st, err := runProc(ctx, stdin, "ip", append([]string{"netns", "exec", ns.Name, tool}, args...)...)
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		steps = append(steps, floorStep{tool, st})
		return nil
	}
	for _, fp := range plan.Families() {
		if len(fp.Chains) == 0 {
			continue
		}
		if len(fp.Sets) > 0 {
			if err := step(fp.IpsetRestore(), "ipset", "restore"); err != nil {
				return nil, err
			}
		}
		tool := "iptables-" + string(b.cfg.Backend) + "-restore"
		if fp.Family == render.IPv6 {
			tool = "ip6tables-" + string(b.cfg.Backend) + "-restore"
		}
		text := bytes.TrimSuffix(fp.IptablesRestore(), []byte("COMMIT\n"))
		text = append(slices.Clip(text), "-I INPUT 1 -j "+render.InputChain+"\nCOMMIT\n"...)
		if err := step(text, tool, "--wait", "--noflush"); err != nil {
			return nil, err
		}
	}
	return steps, nil
}

// followerBinary runs reyes-follower inside a fresh namespace: into the
// empty namespace, again with the store unchanged, and, if there is one
// (other is not the original inventory), after a change elsewhere; then,
// if churned is not nil, after a churn publish on top of that.
func (b *bench) followerBinary(ctx context.Context, h *hostResult, id reyes.IdentityOptions, kind string, other, churned *inventory.Inventory) error {
	if b.current != b.inv {
		if err := b.publish(ctx, b.inv, ""); err != nil {
			return err
		}
	}
	ns, err := newNamespace(ctx)
	if err != nil {
		return err
	}
	defer ns.Delete()
	// A configuration file: 5,000 group IDs do not fit one argument.
	var c strings.Builder
	fmt.Fprintf(&c, "store: %s\nstate_dir: %s\nscope: %s\nno_imds: true\nbackend: %s\ndisable_file: %s\n",
		b.path, filepath.Join(b.dir, "state-binary-"+kind), scope, b.cfg.Backend, filepath.Join(b.dir, "no-such-flag-file"))
	list := func(key string, vs []string) {
		fmt.Fprintf(&c, "%s:\n", key)
		for _, v := range vs {
			fmt.Fprintf(&c, "  - %s\n", v)
		}
	}
	list("trusted_key", []string{b.public})
	list("foreign_cidr", strs(foreignCIDRs))
	if len(id.Groups) > 0 {
		list("groups", id.Groups)
	}
	if len(id.Addrs) > 0 {
		list("addrs", strs(id.Addrs))
	}
	if len(id.VPCCIDRs) > 0 {
		list("vpc_cidr", strs(id.VPCCIDRs))
	}
	conf := filepath.Join(b.dir, "follower-"+kind+".yaml")
	if err := os.WriteFile(conf, []byte(c.String()), 0o600); err != nil {
		return fmt.Errorf("writing follower config: %w", err)
	}
	bin := filepath.Join(b.cfg.BinDir, "reyes-follower")
	type step struct {
		dst     **procStats
		publish *inventory.Inventory // published first, if not nil
		want    []string             // it logs one of these
	}
	steps := []step{{&h.BinFull, nil, []string{"ruleset applied"}}, {&h.BinUnchanged, nil, []string{"ruleset unchanged"}}}
	if other != b.inv {
		steps = append(steps, step{&h.BinElsewhere, other, []string{"ruleset changed elsewhere"}})
	}
	if churned != nil {
		// Today the follower reads the changed parts it needs and finds
		// the same plan; with a change list it reads the root alone.
		steps = append(steps, step{&h.BinChurn, churned, []string{"ruleset changed elsewhere", "same plan for this host"}})
	}
	for i, s := range steps {
		if s.publish != nil {
			if err := b.publish(ctx, s.publish, ""); err != nil {
				return err
			}
		}
		st, err := runProc(ctx, nil, "ip", "netns", "exec", ns.Name, bin, "--config", conf)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(s.want, func(w string) bool { return strings.Contains(st.Stderr, w) }) {
			return fmt.Errorf("reyes-follower run %d did not log any of %q:\n%s", i+1, s.want, st.Stderr)
		}
		*s.dst = &st
	}
	return nil
}

func strs[T fmt.Stringer](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

// moveOne returns a copy of inv with one IPv4 address moved from one
// interface to another of the same VPC, chosen so that exactly one of the
// plan's IPv4 sets changes: the two interfaces' groups, restricted to the
// groups the plan has sets for, differ by exactly one group. Neither
// interface is the host's.
func moveOne(inv *inventory.Inventory, rs *ruleset.Ruleset, plan *render.Plan, id reyes.IdentityOptions) (*inventory.Inventory, string, error) {
	inSets := map[string]bool{}
	for _, s := range plan.V4.Sets {
		inSets[s.Group] = true
	}
	own := map[netip.Addr]bool{}
	for _, a := range id.Addrs {
		own[a] = true
	}
	// Interfaces of the inventory with at least two IPv4 addresses can
	// give one away (never the first: the primary).
	type where struct{ r, n int }
	loc := map[string]where{}
	for ri, r := range inv.Regions {
		for ni, n := range r.NetworkInterfaces {
			loc[n.ID] = where{ri, ni}
		}
	}
	spare := func(eni string) (netip.Addr, bool) {
		w, ok := loc[eni]
		if !ok {
			return netip.Addr{}, false
		}
		as := inv.Regions[w.r].NetworkInterfaces[w.n].Addresses
		var v4 []netip.Addr
		for _, a := range as {
			if a.Is4() {
				v4 = append(v4, a)
			}
		}
		if len(v4) < 2 {
			return netip.Addr{}, false
		}
		return v4[len(v4)-1], true
	}
	// Key: VPC and the interface's groups that have sets.
	key := func(vpc string, gs []string) string { return vpc + "|" + strings.Join(gs, ",") }
	byKey := map[string][]*ruleset.Interface{}
	proj := map[string][]string{}
	for i := range rs.Interfaces {
		n := &rs.Interfaces[i]
		if slices.ContainsFunc(n.Addrs, func(a netip.Addr) bool { return own[a] }) {
			continue
		}
		var gs []string
		for _, g := range n.Groups {
			if inSets[g] {
				gs = append(gs, g)
			}
		}
		slices.Sort(gs)
		proj[n.ID] = gs
		k := key(n.VPC, gs)
		byKey[k] = append(byKey[k], n)
	}
	for i := range rs.Interfaces {
		e := &rs.Interfaces[i]
		gs, ok := proj[e.ID]
		if !ok {
			continue
		}
		for j, g := range gs {
			less := append(slices.Clone(gs[:j]), gs[j+1:]...)
			for _, f := range byKey[key(e.VPC, less)] {
				// e has g, f has not: an address moving either way
				// changes set g alone.
				from, to := e, f
				a, ok := spare(from.ID)
				if !ok {
					from, to = f, e
					if a, ok = spare(from.ID); !ok {
						continue
					}
				}
				return moved(inv, loc[from.ID].r, loc[from.ID].n, loc[to.ID].n, a),
					fmt.Sprintf("%s moved from %s to %s (set of %s)", a, from.ID, to.ID, g), nil
			}
		}
	}
	return nil, "", errors.New("no pair of interfaces whose groups differ in exactly one set")
}

// moved returns inv with address a moved from interface from to interface
// to of region r; inv itself is not changed.
func moved(inv *inventory.Inventory, r, from, to int, a netip.Addr) *inventory.Inventory {
	out := &inventory.Inventory{Regions: slices.Clone(inv.Regions)}
	nis := slices.Clone(out.Regions[r].NetworkInterfaces)
	nis[from].Addresses = slices.DeleteFunc(slices.Clone(nis[from].Addresses), func(x netip.Addr) bool { return x == a })
	nis[to].Addresses = append(slices.Clone(nis[to].Addresses), a)
	out.Regions[r].NetworkInterfaces = nis
	return out
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// gzipLen is the size of b compressed with gzip at the default level: what
// a store that compresses in transit would send.
func gzipLen(b []byte) int {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Len()
}
