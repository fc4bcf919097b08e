package ctl

import (
	"bytes"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/render"
)

// followerRules runs reyes-follower's dry run with the plan flags and
// returns the IPv4 iptables-restore rules it would load, by chain.
func followerRules(t *testing.T, f *fixture, plan []string) map[string][]string {
	t.Helper()
	args := append([]string{"--store", f.good, "--trusted-key", f.public, "--scope", "quickstart",
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--no-imds", "--dry-run"}, plan...)
	var out bytes.Buffer
	if err := cli.RunFollower(t.Context(), args, nil, &out, io.Discard); err != nil {
		t.Fatalf("reyes-follower %s: %v", strings.Join(args, " "), err)
	}
	text := out.String()
	start := strings.Index(text, "# ---- IPv4: iptables-restore ----")
	if start < 0 {
		t.Fatalf("no IPv4 restore text in the dry run:\n%s", text)
	}
	text = text[start:]
	if end := strings.Index(text[1:], "# ----"); end > 0 {
		text = text[:end+1]
	}
	rules := map[string][]string{}
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "-A" {
			rules[f[1]] = append(rules[f[1]], l)
		}
	}
	return rules
}

var whereRE = regexp.MustCompile(`(?m)^where: +rule (\d+) of chain (\S+), as the host loads it`)
var ruleRE = regexp.MustCompile(`(?m)^rule: +(-A .*)$`)

// TestExplainNumbersRulesAsTheFollowerLoadsThem: explain named "rule 7
// of REYES-FILTER" where the host loads the rule in REYES-eni-..., and had
// no --fail-safe or the follower's other plan flags. With the follower's
// own flags, the chain and number explain gives hold, in the follower's
// plan, exactly the rule explain prints.
func TestExplainNumbersRulesAsTheFollowerLoadsThem(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	for _, tc := range []struct {
		name     string
		plan     []string // flags both take
		follower []string // how the follower finds the same host
		packet   []string
		chain    string // the deciding chain
	}{
		{"host by --dst", nil, []string{"--addrs", "10.20.1.10"},
			[]string{"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443"}, "REYES-FILTER"},
		{"host with two interfaces", []string{"--addrs", "10.20.1.10,10.20.1.11"}, nil,
			[]string{"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443"}, "REYES-eni-f9d642e9aab729078"},
		{"second interface", []string{"--addrs", "10.20.1.10", "--addrs", "10.20.1.11"}, nil,
			[]string{"--src", "10.30.0.5", "--dst", "10.20.1.11", "--proto", "tcp", "--port", "5432"}, "REYES-eni-f105372af0061d156"},
		{"fail-safe and logging", []string{"--addrs", "10.20.1.10,10.20.1.11", "--fail-safe", "10.30.0.0/16/tcp/22", "--fail-safe", "10.40.0.0/16", "--log-drop", "--log-accept"}, nil,
			[]string{"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"}, "REYES-INPUT"},
		{"dropped with logging", []string{"--addrs", "10.20.1.10,10.20.1.11", "--fail-safe", "10.40.0.0/16/tcp/22", "--log-drop"}, nil,
			[]string{"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "23"}, "REYES-eni-f9d642e9aab729078"},
		{"groups given", []string{"--groups", "sg-b238c182ba23a5210", "--vpc-cidr", "10.20.0.0/16"}, nil,
			[]string{"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443"}, "REYES-FILTER"},
		{"ipsec mode", []string{"--addrs", "10.20.1.10,10.20.1.11", "--mode", "ipsec"}, nil,
			[]string{"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443", "--ipsec"}, "REYES-eni-f9d642e9aab729078"},
		{"exclusive table", []string{"--addrs", "10.20.1.10,10.20.1.11", "--table", "exclusive"}, nil,
			[]string{"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443"}, "REYES-eni-f9d642e9aab729078"},
		{"baseline", []string{"--addrs", "10.20.1.10,10.20.1.11", "--baseline", "--baseline-interface", "lo", "--baseline-tcp-ports", "443"}, nil,
			[]string{"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"explain", "--store", f.good, "--trusted-key", f.public}, tc.packet...), tc.plan...)
			out, _, err := runCLI(t, now, args...)
			if err != nil {
				t.Fatalf("reyesctl %s: %v", strings.Join(args, " "), err)
			}
			w, r := whereRE.FindStringSubmatch(out), ruleRE.FindStringSubmatch(out)
			if w == nil || r == nil {
				t.Fatalf("no rule and place in:\n%s", out)
			}
			n, _ := strconv.Atoi(w[1])
			chain := w[2]
			if tc.chain != "" && chain != tc.chain {
				t.Errorf("decided in %s, want %s:\n%s", chain, tc.chain, out)
			}
			loaded := followerRules(t, f, append(append([]string{}, tc.plan...), tc.follower...))[chain]
			if n < 1 || n > len(loaded) {
				t.Fatalf("rule %d of %s, the follower loads %d rules there:\n%s", n, chain, len(loaded), out)
			}
			if render.StripRuleHashes(loaded[n-1]) != r[1] {
				t.Errorf("rule %d of %s:\n explain:  %s\n follower: %s", n, chain, r[1], loaded[n-1])
			}
		})
	}
}

// TestExplainTakesTheFollowersFlagChecks: the follower's checks, with the
// flag named.
func TestExplainTakesTheFollowersFlagChecks(t *testing.T) {
	f := newFixture(t)
	ex := func(extra ...string) []string {
		return append([]string{"explain", "--store", f.good, "--trusted-key", f.public, "--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"}, extra...)
	}
	for _, tc := range []runCase{
		{name: "fail-safe everything", args: ex("--fail-safe", "0.0.0.0/0"), code: ExitUsage, errHas: "--fail-safe"},
		{name: "bad fail-safe", args: ex("--fail-safe", "10.0.0.0/8/sctp/1"), code: ExitUsage, errHas: "--fail-safe"},
		{name: "vpc cidr covering the foreign range", args: ex("--vpc-cidr", "10.0.0.0/8"), code: ExitUsage, errHas: "--vpc-cidr"},
		{name: "bad baseline port", args: ex("--baseline", "--baseline-tcp-ports", "0"), code: ExitUsage, errHas: "--baseline-tcp-ports"},
		{name: "dst not among addrs", args: ex("--addrs", "10.20.1.11"), code: ExitUsage, errHas: "--addrs"},
		{name: "fail-safe shown", args: ex("--fail-safe", "10.30.0.0/16/tcp/22"), out: []string{"fail-safe 10.30.0.0/16/tcp/22", "verdict: allow", "rule 3 of chain REYES-INPUT"}},
		{name: "host view note", args: ex(), out: []string{"host view:", "--addrs"}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, time.Now()) })
	}
}
