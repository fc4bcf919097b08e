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
)

// Targets of issue 8, reported against, never asserted.
const (
	targetFloorRatio = 1.3
	targetUnchanged  = 50 * time.Millisecond
	targetOneMember  = 0.10
	targetLeaderCPU  = time.Second
	targetRSS        = 300 << 20
)

// report is everything one invocation prints.
type report struct {
	Machine string
	Command string
	Runs    int
	Backend apply.Backend
	Results []*runResult   // the reported (best) run of each size
	All     [][]*runResult // every run of each size
}

// best returns the run whose worst-case follower was fastest end to end.
func best(rs []*runResult) *runResult {
	b := rs[0]
	for _, r := range rs[1:] {
		if r.worst().Full.Dur < b.worst().Full.Dur {
			b = r
		}
	}
	return b
}

func (r *runResult) worst() *hostResult { return &r.Hosts[len(r.Hosts)-1] }

// summary is one line per run, for the progress output.
func (r *runResult) summary() string {
	w := r.worst()
	return fmt.Sprintf("leader %s CPU; worst-case follower %s (floor %s, %.2f×), unchanged %s, one member %s",
		ms(r.Leader.CPU), ms(w.Full.Dur), ms(w.Floor), ratio(w.Full.Dur, w.Floor), ms(w.Unchanged.Dur), ms(w.OneMember.Dur))
}

// markdown renders the section body (without its heading).
func (rep *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("Command (root, from the module root): `%s`\n\n", rep.Command)
	p("Machine: %s.\n\n", rep.Machine)
	p("Each size ran %d time(s) in one invocation; the table shows the run whose worst-case follower was fastest. ", rep.Runs)
	p("Load average (1, 5, 15 min) at the start of each run: ")
	var loads []string
	for i, all := range rep.All {
		var ls []string
		for _, r := range all {
			mark := ""
			if r == rep.Results[i] {
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
		p(" target (at the largest size) |\n|---|")
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
	cols("payload / signed object / object gzipped", func(r *runResult) string {
		return fmt.Sprintf("%s / %s / %s", mb(r.PayloadBytes), mb(r.ObjectBytes), mb(r.GzipBytes))
	}, "")
	cols("leader in process: build + encode + seal, wall", func(r *runResult) string { return ms(r.Leader.Wall) }, "")
	cols("leader in process: build + encode + seal, CPU", func(r *runResult) string {
		return fmt.Sprintf("%s (%s + %s + %s)", ms(r.Leader.CPU), ms(r.Build.CPU), ms(r.Encode.CPU), ms(r.Seal.CPU))
	}, verdict(last.Leader.CPU < targetLeaderCPU, "< 1 s CPU"))
	if bins {
		cols("`reyes-leader` binary (reads the JSON directory too): wall / CPU", func(r *runResult) string {
			return fmt.Sprintf("%s / %s", ms(r.LeaderBin.Wall), ms(r.LeaderBin.CPU))
		}, "")
		cols("`reyes-leader` peak RSS (GNU time)", func(r *runResult) string { return mb(int(max(r.LeaderBin.MaxRSS, r.LeaderBin.HWM))) },
			verdict(max(last.LeaderBin.MaxRSS, last.LeaderBin.HWM) < targetRSS, "< 300 MB"))
	}
	p("\n")

	for hi, h := range last.Hosts {
		title := map[string]string{
			"busiest":    "Follower on the busiest real host (the interface whose groups refer to the most members)",
			"all-groups": "Follower on a synthetic worst case (one host in every group: every rule of the estate in its plan)",
		}[h.Kind]
		p("**%s**\n\n", title)
		header("")
		host := func(r *runResult) *hostResult { return &r.Hosts[hi] }
		isWorst := h.Kind == "all-groups"
		tgt := func(ok bool, s string) string {
			if !isWorst {
				return ""
			}
			return verdict(ok, s)
		}
		lh := host(last)
		cols("host", func(r *runResult) string { return host(r).Desc }, "")
		cols("plan IPv4: rules / sets / members", func(r *runResult) string {
			s := host(r).Plan
			return fmt.Sprintf("%s / %s / %s", num(s.Rules), num(s.Sets), num(s.Members))
		}, "")
		cols("plan IPv6: rules / sets / members", func(r *runResult) string {
			s := host(r).Plan
			return fmt.Sprintf("%s / %s / %s", num(s.Rules6), num(s.Sets6), num(s.Members6))
		}, "")
		cols("floor: `ipset restore` + `iptables-restore` per family, same text: wall / CPU", func(r *runResult) string {
			h := host(r)
			return fmt.Sprintf("%s / %s", ms(h.Floor), ms(h.FloorCPU))
		}, "")
		cols("floor split: `ipset restore` / `iptables-restore`, wall, both families", func(r *runResult) string {
			var ipset, ipt time.Duration
			for _, s := range host(r).FloorSteps {
				if s.Tool == "ipset" {
					ipset += s.Wall
				} else {
					ipt += s.Wall
				}
			}
			return fmt.Sprintf("%s / %s", ms(ipset), ms(ipt))
		}, "")
		cols("read + open + decode + identify + render, wall", func(r *runResult) string {
			h := host(r)
			return fmt.Sprintf("%s (%s + %s + %s + %s + %s)", ms(h.Get.Wall+h.Open.Wall+h.Decode.Wall+h.Identify.Wall+h.Render.Wall),
				ms(h.Get.Wall), ms(h.Open.Wall), ms(h.Decode.Wall), ms(h.Identify.Wall), ms(h.Render.Wall))
		}, "")
		cols("same, CPU", func(r *runResult) string {
			h := host(r)
			return ms(h.Get.CPU + h.Open.CPU + h.Decode.CPU + h.Identify.CPU + h.Render.CPU)
		}, "")
		cols("**follower end to end** (store read → applied), into an empty namespace: wall (× floor) / CPU (× floor's)", func(r *runResult) string {
			h := host(r)
			return fmt.Sprintf("%s (**%.2f×**) / %s (%.2f×)", ms(h.Full.Dur), ratio(h.Full.Dur, h.Floor), ms(h.Full.CPU), ratio(h.Full.CPU, h.FloorCPU))
		}, tgt(ratio(lh.Full.Dur, lh.Floor) <= targetFloorRatio, "≤ 1.3× floor"))
		cols("of which kernel commands: count, first to last", func(r *runResult) string {
			k := host(r).Full.Calls
			return fmt.Sprintf("%d, %s", k.N, ms(k.Span))
		}, "")
		cols("store unchanged (conditional read): time, kernel calls", func(r *runResult) string {
			h := host(r)
			return fmt.Sprintf("%s, %d", ms(h.Unchanged.Dur), h.Unchanged.Calls.N)
		}, verdict(lh.Unchanged.Dur < targetUnchanged && lh.Unchanged.Calls.N == 0, "< 50 ms, 0 calls"))
		cols("republished, same estate (new serial): time, kernel calls (reads)", func(r *runResult) string {
			h := host(r)
			return fmt.Sprintf("%s, %d", ms(h.Republish.Dur), h.Republish.Calls.N)
		}, "")
		cols("one-member change: time (% of full run), sets swapped; kernel part (% of full)", func(r *runResult) string {
			h := host(r)
			return fmt.Sprintf("%s (%.0f %%), %d; %s (%.0f %%)", ms(h.OneMember.Dur), 100*ratio(h.OneMember.Dur, h.Full.Dur), h.OneMember.Swapped,
				ms(h.OneMember.Calls.Span), 100*ratio(h.OneMember.Calls.Span, h.Full.Calls.Span))
		}, tgt(ratio(lh.OneMember.Dur, lh.Full.Dur) < targetOneMember, "< 10 % of full"))
		if bins {
			cols("`reyes-follower` binary in a namespace, full: wall / CPU", func(r *runResult) string {
				h := host(r)
				return fmt.Sprintf("%s / %s", ms(h.BinFull.Wall), ms(h.BinFull.CPU))
			}, "")
			cols("`reyes-follower` binary, store unchanged: wall", func(r *runResult) string { return ms(host(r).BinUnchanged.Wall) }, "")
			cols("`reyes-follower` peak RSS: own (VmHWM, sampled) / with the tools it ran (GNU time)", func(r *runResult) string {
				h := host(r)
				return fmt.Sprintf("%s / %s", mb(int(h.BinFull.HWM)), mb(int(h.BinFull.MaxRSS)))
			}, tgt(max(lh.BinFull.HWM, lh.BinFull.MaxRSS) < targetRSS, "< 300 MB"))
			cols("floor tools' peak RSS: ipset / iptables-restore (largest family)", func(r *runResult) string {
				var ipset, ipt int64
				for _, s := range host(r).FloorSteps {
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
	p("One-member change: %s.\n", last.worst().Move)
	return b.String()
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
// after the end marker survive a re-run.
const (
	sectionHeading = "## End to end (issue 8)"
	beginMarker    = "<!-- bench/e2e: generated by the command below; notes go after the end marker -->"
	endMarker      = "<!-- bench/e2e: end of generated part -->"
)

// writeSection puts text into path's "End to end (issue 8)" section: it
// replaces what is between the markers, or adds the section at the top.
func writeSection(path, text string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	gen := beginMarker + "\n\n" + text + "\n" + endMarker
	s := string(old)
	var out string
	if i := strings.Index(s, beginMarker); i >= 0 {
		j := strings.Index(s[i:], endMarker)
		if j < 0 {
			return fmt.Errorf("updating %s: %q without %q", path, beginMarker, endMarker)
		}
		out = s[:i] + gen + s[i+j+len(endMarker):]
	} else {
		out = sectionHeading + "\n\n" + gen + "\n\n" + s
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
