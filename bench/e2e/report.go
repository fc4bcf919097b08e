package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/ruleset"
)

// Goals of issues 8 and 15, reported against, never asserted.
const (
	targetFloorRatio     = 1.3                   // a typical host's first run, × the floor
	targetElsewhereBytes = 0.01                  // a change elsewhere: bytes read, × a first run's
	targetElsewhereTime  = 20 * time.Millisecond // and its time
	targetScale          = 2.0                   // a typical host's first run at 500,000 interfaces, × at 50,000
	targetLeaderCPU      = time.Second
	targetRSS            = 300 << 20
)

// report is everything one invocation prints.
type report struct {
	Machine string
	Command string
	Runs    int
	Backend apply.Backend
	Churn   churnSpec      // -churn
	Seed    uint64         // -seed
	Results []*runResult   // the reported (best) run of each size
	All     [][]*runResult // every run of each size
}

// best returns the run whose followers' first runs took the least time
// in all (the worst case's, when measured, dominates).
func best(rs []*runResult) *runResult {
	b := rs[0]
	for _, r := range rs[1:] {
		if r.firstRuns() < b.firstRuns() {
			b = r
		}
	}
	return b
}

func (r *runResult) firstRuns() time.Duration {
	var t time.Duration
	for _, h := range r.Hosts {
		t += h.Full.Dur
	}
	return t
}

// summary is one line per run, for the progress output.
func (r *runResult) summary() string {
	var s []string
	for _, h := range r.Hosts {
		e := "no change elsewhere"
		if h.HasElsewhere {
			e = fmt.Sprintf("elsewhere %s, %s read", ms(h.Elsewhere.Dur), mb(int(h.Elsewhere.Result.StoreBytes)))
		}
		c := "no churn"
		if h.Churn.ok() {
			c = fmt.Sprintf("churn %s, %s read, %d calls; again %s, %s read", ms(h.Churn.Run.Dur), mb(int(h.Churn.Run.Result.StoreBytes)), h.Churn.Run.Calls.N,
				ms(h.Churn2.Run.Dur), mb(int(h.Churn2.Run.Result.StoreBytes)))
		}
		s = append(s, fmt.Sprintf("%s: first %s (floor %s, %.2f×, %s read), %s, one member %s, %s",
			h.Kind, ms(h.Full.Dur), ms(h.Floor), ratio(h.Full.Dur, h.Floor), mb(int(h.Full.Result.StoreBytes)), e, ms(h.OneMember.Dur), c))
	}
	return fmt.Sprintf("leader %s CPU; %s", ms(r.Leader.CPU), strings.Join(s, "; "))
}

// pct is a/b in per cent, formatted with precision to match.
func pct(a, b int64) string {
	if b == 0 {
		return "–"
	}
	f := 100 * float64(a) / float64(b)
	if f < 10 {
		return fmt.Sprintf("%.2f %%", f)
	}
	return fmt.Sprintf("%.0f %%", f)
}

// markdown renders the section body (without its heading).
func (rep *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("Command (root, from the module root): `%s`\n\n", rep.Command)
	p("Machine: %s.\n\n", rep.Machine)
	p("Each size ran %d time(s) in one invocation; the table shows the run whose followers' first runs took the least time in all. ", rep.Runs)
	p("Load average (1, 5, 15 min) at the start of each run: ")
	var loads []string
	for i, all := range rep.All {
		var ls []string
		for _, r := range all {
			mark := ""
			if r == rep.Results[i] && len(all) > 1 {
				mark = " (reported)"
			}
			ls = append(ls, r.LoadAvg+mark)
		}
		loads = append(loads, rep.Results[i].Size+": "+strings.Join(ls, "; "))
	}
	p("%s.\n\n", strings.Join(loads, "; "))

	cols := func(label string, f func(r *runResult) string, target string) {
		p("| %s |", label)
		for _, r := range rep.Results {
			p(" %s |", f(r))
		}
		p(" %s |\n", target)
	}
	header := func(first string) {
		p("| %s |", first)
		for _, r := range rep.Results {
			p(" %s |", r.Size)
		}
		p(" goal (at the largest size) |\n|---|")
		for range rep.Results {
			p("---|")
		}
		p("---|\n")
	}
	last := rep.Results[len(rep.Results)-1]
	bins := last.LeaderBin != nil

	p("**Estate and leader**\n\n")
	header("")
	cols("interfaces / groups / rules / addresses", func(r *runResult) string {
		c := r.Counts
		return fmt.Sprintf("%s / %s / %s / %s", num(c.ENIs), num(c.Groups), num(c.Rules), num(c.Addresses))
	}, "")
	cols("whole layout (issue 8): payload / signed object / gzipped", func(r *runResult) string {
		if r.WholeErr != "" {
			return "cannot be published: " + r.WholeErr
		}
		return fmt.Sprintf("%s / %s / %s", mb(r.PayloadBytes), mb(r.ObjectBytes), mb(r.GzipBytes))
	}, "")
	cols("parts layout: signed root / parts (bins a, g, i, m) / all parts", func(r *runResult) string {
		return fmt.Sprintf("%s / %s (%d, %d, %d, %d) / %s", mb(r.RootBytes), num(r.Parts),
			r.Bins[ruleset.KindAddrs], r.Bins[ruleset.KindGroups], r.Bins[ruleset.KindInterfaces], r.Bins[ruleset.KindMembers], mb(int(r.PartsBytes)))
	}, "")
	cols("whole layout: a follower's verify + decode of the object, each new serial: wall / CPU", func(r *runResult) string {
		if r.WholeErr != "" {
			return "–"
		}
		return fmt.Sprintf("%s / %s", ms(r.WholeOpen.Wall), ms(r.WholeOpen.CPU))
	}, "")
	cols("leader in process: build + split + seal root, wall", func(r *runResult) string { return ms(r.Leader.Wall) }, "")
	cols("leader in process: build + split + seal root, CPU", func(r *runResult) string {
		return fmt.Sprintf("%s (%s + %s + %s)", ms(r.Leader.CPU), ms(r.Build.CPU), ms(r.Split.CPU), ms(r.Seal.CPU))
	}, verdict(last.Leader.CPU < targetLeaderCPU, "< 1 s CPU"))
	pub := func(label, what, target string) {
		cols(label, func(r *runResult) string {
			pb, ok := r.Publishes[what]
			if !ok {
				return "–"
			}
			return fmt.Sprintf("%s / %s; %d parts put, %s put; %d requests (%s)", ms(pb.Wall), ms(pb.CPU),
				pb.Res.PartsPut, mb(int(pb.Res.BytesPut)), pb.Req.Total(), pb.Req)
		}, target)
	}
	pub("`reyes.Leader` into the file store, first publish (empty store): wall / CPU; what it put; requests", "first", "")
	pub("same, republish of the same estate (new serial)", "republish", "")
	pub("same, a change elsewhere (one interface added to a group)", "elsewhere", "")
	pub("same, a one-member change (one address moved between two interfaces)", "one-member", "")
	pub("same, a churn publish (interfaces added and removed at random outside the first host's plan; below)", "churn", "")
	if bins {
		cols("`reyes-leader` binary (reads the JSON directory too, parts layout): wall / CPU", func(r *runResult) string {
			if r.LeaderBin == nil {
				return "–"
			}
			return fmt.Sprintf("%s / %s", ms(r.LeaderBin.Wall), ms(r.LeaderBin.CPU))
		}, "")
		cols("`reyes-leader` peak RSS (GNU time)", func(r *runResult) string {
			if r.LeaderBin == nil {
				return "–"
			}
			return mb(int(max(r.LeaderBin.MaxRSS, r.LeaderBin.HWM)))
		}, verdict(max(last.LeaderBin.MaxRSS, last.LeaderBin.HWM) < targetRSS, "< 300 MB"))
	}
	p("\n")

	var kinds []string
	for _, k := range allHosts {
		for _, r := range rep.Results {
			if r.host(k) != nil {
				kinds = append(kinds, k)
				break
			}
		}
	}
	for _, kind := range kinds {
		title := map[string]string{
			hostTypical: "Follower on a typical host (the interface with the median plan: set members of the groups its rules refer to, then rules)",
			hostBusiest: "Follower on the busiest real host (the interface whose groups refer to the most members)",
			hostAll:     "Follower on a synthetic worst case (one host in every group: every rule of the estate in its plan)",
		}[kind]
		p("**%s**\n\n", title)
		header("")
		lh := last.host(kind)
		// row prints a row for the runs that measured this host kind.
		row := func(label string, f func(h *hostResult, r *runResult) string, target string) {
			cols(label, func(r *runResult) string {
				h := r.host(kind)
				if h == nil {
					return "–"
				}
				return f(h, r)
			}, target)
		}
		tgt := func(ok func(h *hostResult) bool, s string) string {
			if lh == nil {
				return ""
			}
			return verdict(ok(lh), s)
		}
		row("host", func(h *hostResult, _ *runResult) string { return h.Desc }, "")
		row("plan IPv4: rules / sets / members", func(h *hostResult, _ *runResult) string {
			s := h.Plan
			return fmt.Sprintf("%s / %s / %s", num(s.Rules), num(s.Sets), num(s.Members))
		}, "")
		row("plan IPv6: rules / sets / members", func(h *hostResult, _ *runResult) string {
			s := h.Plan
			return fmt.Sprintf("%s / %s / %s", num(s.Rules6), num(s.Sets6), num(s.Members6))
		}, "")
		row("floor: `ipset restore` + `iptables-restore` per family, same text: wall / CPU", func(h *hostResult, _ *runResult) string {
			return fmt.Sprintf("%s / %s", ms(h.Floor), ms(h.FloorCPU))
		}, "")
		row("floor split: `ipset restore` / `iptables-restore`, wall, both families", func(h *hostResult, _ *runResult) string {
			var ipset, ipt time.Duration
			for _, s := range h.FloorSteps {
				if s.Tool == "ipset" {
					ipset += s.Wall
				} else {
					ipt += s.Wall
				}
			}
			return fmt.Sprintf("%s / %s", ms(ipset), ms(ipt))
		}, "")
		row("read root + open + decode root + read its parts (view) + identify + render, wall", func(h *hostResult, _ *runResult) string {
			return fmt.Sprintf("%s (%s + %s + %s + %s + %s + %s)", ms(h.Get.Wall+h.Open.Wall+h.DecodeRoot.Wall+h.View.Wall+h.Identify.Wall+h.Render.Wall),
				ms(h.Get.Wall), ms(h.Open.Wall), ms(h.DecodeRoot.Wall), ms(h.View.Wall), ms(h.Identify.Wall), ms(h.Render.Wall))
		}, "")
		row("same, CPU", func(h *hostResult, _ *runResult) string {
			return ms(h.Get.CPU + h.Open.CPU + h.DecodeRoot.CPU + h.View.CPU + h.Identify.CPU + h.Render.CPU)
		}, "")
		floorGoal := ""
		if kind == hostTypical {
			floorGoal = tgt(func(h *hostResult) bool { return ratio(h.Full.Dur, h.Floor) <= targetFloorRatio }, "≤ 1.3× floor")
		}
		row("**first run** (store read → applied), into an empty namespace: wall (× floor) / CPU (× floor's)", func(h *hostResult, _ *runResult) string {
			return fmt.Sprintf("%s (**%.2f×**) / %s (%.2f×)", ms(h.Full.Dur), ratio(h.Full.Dur, h.Floor), ms(h.Full.CPU), ratio(h.Full.CPU, h.FloorCPU))
		}, floorGoal)
		if kind == hostTypical && len(rep.Results) > 1 && last.Size == "xlarge" {
			prev := rep.Results[len(rep.Results)-2]
			row("first run, × the previous size's", func(h *hostResult, r *runResult) string {
				for i, x := range rep.Results {
					if x == r && i > 0 && rep.Results[i-1].host(kind) != nil {
						return fmt.Sprintf("%.2f×", ratio(h.Full.Dur, rep.Results[i-1].host(kind).Full.Dur))
					}
				}
				return "–"
			}, tgt(func(h *hostResult) bool {
				ph := prev.host(kind)
				return ph != nil && ratio(h.Full.Dur, ph.Full.Dur) <= targetScale
			}, "≤ 2× at "+num(prev.Counts.ENIs)))
		}
		row("of which kernel commands: count, first to last", func(h *hostResult, _ *runResult) string {
			k := h.Full.Calls
			return fmt.Sprintf("%d, %s", k.N, ms(k.Span))
		}, "")
		row("first run: bytes read from the store (root + parts read of all): % of the whole object (issue 8 layout) / of root + all parts", func(h *hostResult, r *runResult) string {
			fr := h.Full.Result
			all := int64(r.RootBytes) + r.PartsBytes
			return fmt.Sprintf("%s (%d of %s parts): %s / %s", mb(int(fr.StoreBytes)), fr.PartsFetched, num(r.Parts), pct(fr.StoreBytes, int64(r.ObjectBytes)), pct(fr.StoreBytes, all))
		}, "")
		row("first run: parts read by kind (a, g, i, m, other)", func(h *hostResult, r *runResult) string {
			return byKind(h.Full.Result.Parts)
		}, "")
		row("idle poll (store unchanged): requests, bytes read, time, kernel calls", func(h *hostResult, _ *runResult) string {
			u := h.Unchanged
			return fmt.Sprintf("%s, %d B, %s, %d", u.Req, u.Result.StoreBytes, ms(u.Dur), u.Calls.N)
		}, tgt(func(h *hostResult) bool {
			u := h.Unchanged
			return u.Req.Total() == 1 && u.Req.N["root GET (304)"] == 1 && u.Calls.N == 0
		}, "one conditional GET, 0 calls"))
		row("new serial, same estate: bytes read (% of first run), parts read, kernel calls, time", func(h *hostResult, _ *runResult) string {
			x := h.Republish
			return fmt.Sprintf("%s (%s), %d, %d, %s", mb(int(x.Result.StoreBytes)), pct(x.Result.StoreBytes, h.Full.Result.StoreBytes), x.Result.PartsFetched, x.Calls.N, ms(x.Dur))
		}, "")
		elsewhereOK := func(h *hostResult) bool {
			x := h.Elsewhere
			return h.HasElsewhere && x.Calls.N == 0 && x.Dur <= targetElsewhereTime &&
				float64(x.Result.StoreBytes) <= targetElsewhereBytes*float64(h.Full.Result.StoreBytes)
		}
		row("**change elsewhere** in the estate: bytes read (% of first run), parts read, kernel calls, time (CPU)", func(h *hostResult, _ *runResult) string {
			if !h.HasElsewhere {
				return "none possible: the host reads every group part"
			}
			x := h.Elsewhere
			return fmt.Sprintf("%s (**%s**), %d, **%d**, **%s** (%s)", mb(int(x.Result.StoreBytes)), pct(x.Result.StoreBytes, h.Full.Result.StoreBytes), x.Result.PartsFetched, x.Calls.N, ms(x.Dur), ms(x.CPU))
		}, func() string {
			if lh == nil || !lh.HasElsewhere {
				return ""
			}
			return verdict(elsewhereOK(lh), "≤ 1 %, 0 calls, ≤ 20 ms")
		}())
		row("change outside the plan in a part it reads (an address added to its part of the address index): bytes read (% of first run), parts from the store / from the cache, kernel calls (reads), time (CPU)", func(h *hostResult, _ *runResult) string {
			if !h.HasNear {
				return "–"
			}
			x := h.Near
			return fmt.Sprintf("%s (%s), %d / %d, %d, %s (%s)", mb(int(x.Result.StoreBytes)), pct(x.Result.StoreBytes, h.Full.Result.StoreBytes),
				x.Result.PartsFetched, x.Result.PartsCached, x.Calls.N, ms(x.Dur), ms(x.CPU))
		}, "")
		row("change in the plan (one member): time (% of first run; CPU), bytes read (% of first run), parts from the store / from the cache, sets swapped, kernel part", func(h *hostResult, _ *runResult) string {
			x := h.OneMember
			return fmt.Sprintf("%s (%.0f %%; %s), %s (%s), %d / %d, %d, %s", ms(x.Dur), 100*ratio(x.Dur, h.Full.Dur), ms(x.CPU), mb(int(x.Result.StoreBytes)),
				pct(x.Result.StoreBytes, h.Full.Result.StoreBytes), x.Result.PartsFetched, x.Result.PartsCached, x.Swapped, ms(x.Calls.Span))
		}, "")
		churnCell := func(h *hostResult, c *churnRun) string {
			if !c.ok() {
				return "none possible: " + orNone(h.NoChurn)
			}
			x := c.Run
			return fmt.Sprintf("%s + %s; %s (**%s**), %d / %d (changed ones read by kind: %s), **%d**, **%s** (%s); %s parts new, %s", num(c.N), num(c.N), mb(int(x.Result.StoreBytes)), pct(x.Result.StoreBytes, h.Full.Result.StoreBytes),
				x.Result.PartsFetched, x.Result.PartsCached, byKind(c.Reread), x.Calls.N, ms(x.Dur), ms(x.CPU), num(c.PartsChanged), mb(int(c.BytesChanged)))
		}
		churnGoal := func(c func(h *hostResult) *churnRun) string {
			if lh == nil || !c(lh).ok() {
				return ""
			}
			return verdict(churnOK(lh, c(lh).Run), "≤ 1 %, 0 calls, ≤ 20 ms")
		}
		row(fmt.Sprintf("**churn** (-churn %s: that many interfaces removed and as many added, at random in groups the plan does not involve; the plan checked unchanged in process): interfaces removed + added; bytes read (%% of first run), parts from the store / from the cache (the changed ones by kind: a, g, i, m, other), kernel calls, time (CPU); what the publish made new in the estate", &rep.Churn), func(h *hostResult, _ *runResult) string {
			return churnCell(h, &h.Churn)
		}, churnGoal(func(h *hostResult) *churnRun { return &h.Churn }))
		row("**churn again**, a second such publish on top of the first (the steady state): same", func(h *hostResult, _ *runResult) string {
			return churnCell(h, &h.Churn2)
		}, churnGoal(func(h *hostResult) *churnRun { return &h.Churn2 }))
		row("**change in the plan amid churn** (a churn publish as above that also adds one member to a set of the plan): bytes read (% of first run), parts from the store / from the cache, sets swapped, time (CPU)", func(h *hostResult, _ *runResult) string {
			x := h.ChurnMember
			if h.ChurnMemberWhat == "" {
				return "–"
			}
			return fmt.Sprintf("%s (**%s**), %d / %d, %d, %s (%s)", mb(int(x.Result.StoreBytes)), pct(x.Result.StoreBytes, h.Full.Result.StoreBytes),
				x.Result.PartsFetched, x.Result.PartsCached, x.Swapped, ms(x.Dur), ms(x.CPU))
		}, "reads about what changed")
		row("**single random change elsewhere** (one interface added to a group drawn among those the plan does not involve, not chosen to miss its parts), each on top of the last: draws; bytes read, mean (max; % of first run, mean); draws that read a part (that changed one of the host's); kernel calls, all draws; time, mean (max) (CPU, mean)", func(h *hostResult, _ *runResult) string {
			if len(h.Draws) == 0 {
				if h.NoChurn != "" {
					return "none possible: " + h.NoChurn
				}
				return "–"
			}
			d := drawStats(h.Draws)
			return fmt.Sprintf("%d; %s (%s; **%s**); %d (%d); **%d**; **%s** (%s) (%s)", len(h.Draws), mb(int(d.bytes)), mb(int(d.maxBytes)), pct(d.bytes, h.Full.Result.StoreBytes),
				d.reading, d.changing, d.calls, ms(d.dur), ms(d.maxDur), ms(d.cpu))
		}, func() string {
			if lh == nil || len(lh.Draws) == 0 {
				return ""
			}
			d := drawStats(lh.Draws)
			return verdict(d.calls == 0 && d.dur <= targetElsewhereTime && float64(d.bytes) <= targetElsewhereBytes*float64(lh.Full.Result.StoreBytes), "mean ≤ 1 %, 0 calls, mean ≤ 20 ms")
		}())
		if bins {
			row("`reyes-follower` binary in a namespace, first run: wall / CPU", func(h *hostResult, _ *runResult) string {
				if h.BinFull == nil {
					return "–"
				}
				return fmt.Sprintf("%s / %s", ms(h.BinFull.Wall), ms(h.BinFull.CPU))
			}, "")
			row("`reyes-follower` binary, idle poll / change elsewhere: wall (process start included)", func(h *hostResult, _ *runResult) string {
				if h.BinUnchanged == nil {
					return "–"
				}
				e := "–"
				if h.BinElsewhere != nil {
					e = ms(h.BinElsewhere.Wall)
				}
				return fmt.Sprintf("%s / %s", ms(h.BinUnchanged.Wall), e)
			}, "")
			row("`reyes-follower` binary, churn (as above, on top of its change elsewhere): wall / CPU (process start included)", func(h *hostResult, _ *runResult) string {
				if h.BinChurn == nil {
					return "–"
				}
				return fmt.Sprintf("%s / %s", ms(h.BinChurn.Wall), ms(h.BinChurn.CPU))
			}, "")
			row("`reyes-follower` peak RSS: own (VmHWM, sampled) / with the tools it ran (GNU time)", func(h *hostResult, _ *runResult) string {
				if h.BinFull == nil {
					return "–"
				}
				return fmt.Sprintf("%s / %s", mb(int(h.BinFull.HWM)), mb(int(h.BinFull.MaxRSS)))
			}, func() string {
				if lh == nil || lh.BinFull == nil {
					return ""
				}
				return verdict(max(lh.BinFull.HWM, lh.BinFull.MaxRSS) < targetRSS, "< 300 MB")
			}())
			row("floor tools' peak RSS: ipset / iptables-restore (largest family)", func(h *hostResult, _ *runResult) string {
				var ipset, ipt int64
				for _, s := range h.FloorSteps {
					if s.Tool == "ipset" {
						ipset = max(ipset, s.MaxRSS)
					} else {
						ipt = max(ipt, s.MaxRSS)
					}
				}
				return fmt.Sprintf("%s / %s", mb(int(ipset)), mb(int(ipt)))
			}, "")
		}
		p("\n")
	}
	for _, kind := range kinds {
		if h := last.host(kind); h != nil {
			p("At %s, %s host: change elsewhere: %s; outside the plan in a part it reads: %s; one-member change: %s.\n",
				last.Size, kind, orNone(h.ElsewhereWhat), orNone(h.NearWhat), h.Move)
			if h.Churn.ok() {
				var ds []string
				for _, d := range h.Draws {
					ds = append(ds, d.What)
				}
				p("At %s, %s host, churn (-churn %s -seed %d): %s; again: %s; single random changes: %s.\n",
					last.Size, kind, &rep.Churn, rep.Seed, h.Churn.What, h.Churn2.What, orNone(strings.Join(ds, "; ")))
			}
		}
	}
	return b.String()
}

// churnOK says whether a run on a change outside the plan met the goal:
// at most 1 % of the first run's bytes, no kernel call, at most 20 ms.
func churnOK(h *hostResult, x followerRun) bool {
	return x.Calls.N == 0 && x.Dur <= targetElsewhereTime &&
		float64(x.Result.StoreBytes) <= targetElsewhereBytes*float64(h.Full.Result.StoreBytes)
}

// draws sums up the single random changes elsewhere.
type draws struct {
	bytes, maxBytes int64         // read from the store: mean, max
	dur, maxDur     time.Duration // mean, max
	cpu             time.Duration // mean
	calls           int           // kernel calls, all draws
	reading         int           // draws that read a part from the store
	changing        int           // draws that changed a part the host's plan was made from
}

func drawStats(ds []churnRun) draws {
	var d draws
	if len(ds) == 0 {
		return d
	}
	for _, c := range ds {
		x := c.Run
		d.bytes += x.Result.StoreBytes
		d.maxBytes = max(d.maxBytes, x.Result.StoreBytes)
		d.dur += x.Dur
		d.maxDur = max(d.maxDur, x.Dur)
		d.cpu += x.CPU
		d.calls += x.Calls.N
		if x.Result.PartsFetched > 0 {
			d.reading++
		}
		if !c.Listed {
			d.changing++
		}
	}
	n := len(ds)
	d.bytes /= int64(n)
	d.dur /= time.Duration(n)
	d.cpu /= time.Duration(n)
	return d
}

// byKind counts part names by kind: "2, 4, 1, 3, 1" (a, g, i, m, other).
func byKind(names []string) string {
	n := map[string]int{}
	for _, name := range names {
		switch {
		case strings.HasPrefix(name, ruleset.KindAddrs) && !strings.HasPrefix(name, "findings"):
			n["a"]++
		case strings.HasPrefix(name, ruleset.KindGroups):
			n["g"]++
		case strings.HasPrefix(name, ruleset.KindInterfaces):
			n["i"]++
		case strings.HasPrefix(name, ruleset.KindMembers):
			n["m"]++
		default:
			n["other"]++
		}
	}
	return fmt.Sprintf("%d, %d, %d, %d, %d", n["a"], n["g"], n["i"], n["m"], n["other"])
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// verdict says whether a target was met.
func verdict(ok bool, target string) string {
	if ok {
		return target + ": met"
	}
	return target + ": **missed**"
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// ms formats a duration in milliseconds, with precision to match.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f >= 100:
		return fmt.Sprintf("%s ms", num(int(f+0.5)))
	case f >= 10:
		return fmt.Sprintf("%.0f ms", f)
	case f >= 1:
		return fmt.Sprintf("%.1f ms", f)
	}
	return fmt.Sprintf("%.2f ms", f)
}

// mb formats a byte count in MB (10^6) or kB.
func mb(n int) string {
	if n < 1_000_000 {
		return fmt.Sprintf("%.0f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// num formats an integer with thousands separators.
func num(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// machine describes the machine: cores, CPU model, kernel, tools, Go.
func machine(ctx context.Context, b apply.Backend) string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	tool := func(name string, args ...string) string {
		out, err := exec.CommandContext(ctx, name, args...).Output()
		if err != nil {
			return name + " (version unknown)"
		}
		return strings.TrimSpace(string(bytes.SplitN(out, []byte("\n"), 2)[0]))
	}
	return fmt.Sprintf("%d × %s, linux/%s, kernel %s, %s (backend %s), %s, %s; %s",
		runtime.NumCPU(), model, runtime.GOARCH, strings.TrimSpace(string(kernel)),
		tool("iptables", "--version"), b, tool("ipset", "--version"), runtime.Version(),
		time.Now().UTC().Format("2006-01-02"))
}

// Markers around the generated part of the section; notes written by hand
// after the end marker survive a re-run. A named block (-block, e.g. the
// by-hand xlarge run) has markers of its own, so that each command
// replaces only its own figures.
const (
	sectionHeading = "## End to end (issues 8 and 15)"
	beginMarker    = "<!-- bench/e2e: generated by the command below; notes go after the end marker -->"
	endMarker      = "<!-- bench/e2e: end of generated part -->"
)

// markers returns the begin and end markers of a block ("" is the main
// one).
func markers(block string) (begin, end string) {
	if block == "" {
		return beginMarker, endMarker
	}
	return "<!-- bench/e2e " + block + ": generated by the command below -->", "<!-- bench/e2e " + block + ": end of generated part -->"
}

// writeSection puts text into path's end-to-end section: it replaces what
// is between the block's markers; a missing block goes right after the
// main block (or, with no main block either, in a new section at the top).
func writeSection(path, block, text string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	begin, end := markers(block)
	gen := begin + "\n\n" + text + "\n" + end
	s := string(old)
	var out string
	if i := strings.Index(s, begin); i >= 0 {
		j := strings.Index(s[i:], end)
		if j < 0 {
			return fmt.Errorf("updating %s: %q without %q", path, begin, end)
		}
		out = s[:i] + gen + s[i+j+len(end):]
	} else if i := strings.Index(s, endMarker); block != "" && i >= 0 {
		i += len(endMarker)
		out = s[:i] + "\n\n" + gen + s[i:]
	} else {
		out = sectionHeading + "\n\n" + gen + "\n\n" + s
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
