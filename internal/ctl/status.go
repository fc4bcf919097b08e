package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/internal/version"
	"github.com/reyes-fw/reyes/reyes"
)

type statusFlags struct {
	stateDir string
	backend  string
	netns    string
	json     bool
	noKernel bool
}

func statusCommand() command {
	return command{
		name:     "status",
		synopsis: "what the follower loaded, how its last run ended, whether the kernel still holds it",
		usage:    "[--state-dir DIR] [--json] [--no-kernel] [--backend auto|nft|legacy] [--netns NAME]",
		help: `
Reads the follower's state directory and says what is loaded (scope,
serial, generated_at, not_after, when it was applied and by which version,
the host's identity and groups, the plan hashes, rules and set members),
how the last run ended (applied, unchanged, paused or failed, with the
stage and error), the last drift check, and, with one read-only
comparison (iptables-save, ipset save), whether the kernel still holds
the rules as they were applied. It changes nothing. Reading the kernel
needs root; --no-kernel skips it. --json prints the same as one JSON
object.`,
		flags: func(c *invocation, fl *flag.FlagSet) func(context.Context, []string) error {
			var f statusFlags
			fl.StringVar(&f.stateDir, "state-dir", "/var/lib/reyes", "the follower's state `DIR`")
			fl.StringVar(&f.backend, "backend", "auto", "iptables backend `B`: auto (as last applied), nft or legacy")
			fl.StringVar(&f.netns, "netns", "", "read the kernel inside network namespace `NAME` (ip netns exec)")
			fl.BoolVar(&f.json, "json", false, "print JSON")
			fl.BoolVar(&f.noKernel, "no-kernel", false, "do not compare the kernel with the applied rules")
			return func(ctx context.Context, _ []string) error { return c.status(ctx, f) }
		},
	}
}

// StatusReport is what "reyesctl status" prints (--json: this object).
type StatusReport struct {
	StateDir string `json:"state_dir"`
	// Loaded is the ruleset the last completed apply loaded; nil when
	// nothing was applied yet.
	Loaded *reyes.LoadedRecord `json:"loaded"`
	// LastRun, LastSuccess and LastFailure come from the follower's status
	// file.
	LastRun     *reyes.RunRecord `json:"last_run"`
	LastSuccess *time.Time       `json:"last_success"`
	LastFailure *time.Time       `json:"last_failure"`
	// DriftCheck is the follower's last comparison of the kernel.
	DriftCheck *reyes.DriftRecord `json:"drift_check"`
	// Kernel is this command's own read-only comparison.
	Kernel KernelStatus `json:"kernel"`
	// Reyesctl is this binary's version.
	Reyesctl version.Info `json:"reyesctl"`
}

// KernelStatus says whether the kernel holds the rules as applied.
type KernelStatus struct {
	// Checked: the comparison ran (not --no-kernel, and it did not fail).
	Checked bool `json:"checked"`
	// Holds: the kernel holds every reyes chain, jump and set as applied.
	Holds bool `json:"holds"`
	// Drift lists the differences.
	Drift []string `json:"drift,omitempty"`
	// Error says why the comparison did not run.
	Error string `json:"error,omitempty"`
}

func (c *invocation) status(ctx context.Context, f statusFlags) error {
	backend, err := apply.ParseBackend(f.backend)
	if err != nil {
		return &UsageError{Cmd: "status", Err: err}
	}
	r, err := c.statusReport(ctx, f, backend)
	if err != nil {
		return err
	}
	if f.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printStatus(c.stdout, r, c.now())
	return nil
}

func (c *invocation) statusReport(ctx context.Context, f statusFlags, backend apply.Backend) (*StatusReport, error) {
	r := &StatusReport{StateDir: f.stateDir, Reyesctl: version.Get()}
	if fi, err := os.Stat(f.stateDir); err != nil {
		return nil, fmt.Errorf("reading the follower's state: %w (no follower has run with this --state-dir)", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("reading the follower's state: %s is not a directory", f.stateDir)
	}
	state, err := reyes.LoadState(f.stateDir)
	if err != nil {
		return nil, fmt.Errorf("reading the follower's state: %w", err)
	}
	st, err := reyes.LoadStatus(f.stateDir)
	if err != nil {
		return nil, fmt.Errorf("reading the follower's status: %w", err)
	}
	r.LastRun, r.DriftCheck = st.LastRun, st.DriftCheck
	if !st.LastSuccess.IsZero() {
		r.LastSuccess = &st.LastSuccess
	}
	if !st.LastFailure.IsZero() {
		r.LastFailure = &st.LastFailure
	}
	// The state is what the follower's rollback protection trusts; the
	// status adds what it knows of the same apply.
	switch {
	case state.IsZero():
	case st.Loaded != nil && st.Loaded.Serial == state.Serial && st.Loaded.Scope == state.Scope:
		r.Loaded = st.Loaded
	default:
		r.Loaded = &reyes.LoadedRecord{Scope: state.Scope, Serial: state.Serial, GeneratedAt: state.GeneratedAt,
			NotAfter: state.NotAfter, AppliedAt: state.AcceptedAt, Digest: state.Digest}
	}
	if r.Loaded != nil && r.Loaded.Digest.IsZero() {
		r.Loaded.Digest = state.Digest
	}
	switch {
	case f.noKernel:
		r.Kernel.Error = "not checked (--no-kernel)"
	case state.IsZero():
		r.Kernel.Error = "not checked: nothing applied yet"
	default:
		runner := c.runner
		if runner == nil {
			runner = apply.ExecRunner{Netns: f.netns}
		}
		drift, err := apply.Check(ctx, apply.Options{Runner: runner, Backend: backend, StateDir: f.stateDir})
		if err != nil {
			r.Kernel.Error = "not checked: " + err.Error()
			switch {
			case errors.Is(err, apply.ErrNoState):
				r.Kernel.Error = "not checked: apply recorded nothing in the state directory"
			case os.Geteuid() != 0 && c.runner == nil:
				r.Kernel.Error += " (reading the kernel's rules needs root; --no-kernel skips it)"
			}
			break
		}
		r.Kernel.Checked, r.Kernel.Holds = true, len(drift) == 0
		for _, d := range drift {
			r.Kernel.Drift = append(r.Kernel.Drift, d.String())
		}
	}
	return r, nil
}

func printStatus(w io.Writer, r *StatusReport, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := now.Sub(t).Round(time.Second)
		if d >= 0 {
			return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), d)
		}
		return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), -d)
	}
	line("state dir:", "%s", r.StateDir)
	if l := r.Loaded; l == nil {
		line("loaded:", "nothing applied yet")
	} else {
		line("loaded:", "scope %s, serial %d", l.Scope, l.Serial)
		line("generated at:", "%s", stamp(l.GeneratedAt))
		na := stamp(l.NotAfter)
		if now.After(l.NotAfter) {
			na += ": EXPIRED, the leaders have stopped publishing or this host cannot fetch"
		}
		line("not after:", "%s", na)
		by := ""
		if l.Version != "" {
			by = " by reyes-follower " + l.Version
		}
		line("applied at:", "%s%s", stamp(l.AppliedAt), by)
		line("sha256:", "%s", l.Digest)
		id := l.Identity
		if id.Method != "" {
			line("host found by:", "%s", id.Method)
		}
		for _, i := range id.Interfaces {
			addrs := make([]string, 0, len(i.Addrs))
			for _, a := range i.Addrs {
				addrs = append(addrs, a.String())
			}
			line("interface:", "%s [%s]: %s", i.ID, strings.Join(addrs, " "), strings.Join(i.Groups, ", "))
		}
		if g := id.Groups(); len(g) > 0 {
			line("groups:", "%s", strings.Join(g, ", "))
		}
		if len(id.UnknownGroups) > 0 {
			line("unknown groups:", "%s (not in the ruleset: they allow nothing)", strings.Join(id.UnknownGroups, ", "))
		}
		if len(id.VPCCIDRs) > 0 {
			cidrs := make([]string, 0, len(id.VPCCIDRs))
			for _, p := range id.VPCCIDRs {
				cidrs = append(cidrs, p.String())
			}
			line("vpc cidrs:", "%s", strings.Join(cidrs, ", "))
		}
		if l.PlanIPv4 != "" {
			line("plan:", "IPv4 %s, IPv6 %s; %s and %s mode; %d rules, %d set members", l.PlanIPv4, l.PlanIPv6, l.Table, l.Mode, l.Rules, l.Members)
		}
	}
	if run := r.LastRun; run == nil {
		line("last run:", "none recorded")
	} else {
		s := fmt.Sprintf("%s, %s in %s", stamp(run.At), run.Result, time.Duration(run.Duration*float64(time.Second)).Round(time.Millisecond))
		if run.Stage != "" {
			s += ", at stage " + string(run.Stage)
		}
		if run.Version != "" {
			s += " (reyes-follower " + run.Version + ")"
		}
		line("last run:", "%s", s)
		if run.Error != "" {
			line("last error:", "%s", run.Error)
		}
	}
	if r.LastSuccess != nil {
		line("last success:", "%s", stamp(*r.LastSuccess))
	}
	if r.LastFailure != nil {
		line("last failure:", "%s", stamp(*r.LastFailure))
	}
	if d := r.DriftCheck; d != nil {
		s := fmt.Sprintf("%s, %s", stamp(d.At), d.Result)
		if d.Error != "" {
			s += ": " + d.Error
		}
		if len(d.Drift) > 0 {
			s += ": " + strings.Join(d.Drift, "; ")
		}
		line("drift check:", "%s", s)
	}
	switch k := r.Kernel; {
	case !k.Checked:
		line("kernel:", "%s", k.Error)
	case k.Holds:
		line("kernel:", "holds reyes' rules as applied")
	default:
		line("kernel:", "DRIFTED from what was applied: %s", strings.Join(k.Drift, "; "))
	}
	line("reyesctl:", "%s", r.Reyesctl.Short())
	tw.Flush()
}
