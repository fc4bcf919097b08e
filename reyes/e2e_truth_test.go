package reyes_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/internal/netns"
	"github.com/reyes-fw/reyes/reyes"
)

// TestEndToEndTellsTheTruth runs the real binaries as the README deploys
// them (one-shot follower runs, a metrics file for node_exporter) inside a
// namespace: a setting changed while the object is not is applied at the
// next run; every run's metrics say what is loaded; failures are counted
// by stage, configuration failures too; reyesctl status says what is
// loaded and that the kernel still holds it; every binary has --version.
func TestEndToEndTellsTheTruth(t *testing.T) {
	t.Parallel()
	p := publishEstate(t)
	reyesctl := filepath.Join(p.dir, "reyesctl")
	if out, err := exec.Command("go", "build", "-o", reyesctl, "../cmd/reyesctl").CombinedOutput(); err != nil {
		t.Fatalf("building reyesctl: %v\n%s", err, out)
	}
	for name, bin := range map[string]string{"reyes-leader": p.leader, "reyes-follower": p.follower, "reyesctl": reyesctl} {
		r := run(t, nil, nil, bin, "--version")
		if r.code != 0 || !strings.HasPrefix(r.stdout, name+" ") || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("%s --version: %v", name, r)
		}
	}

	ns := netns.New(t, "truth")
	store, stateDir := p.store, p.stateDir
	disable := filepath.Join(p.dir, "disabled")
	metricsFile := filepath.Join(p.dir, "reyes.prom")
	follow := func(extra ...string) result {
		t.Helper()
		return p.follow(t, ns, append([]string{"--metrics-file", metricsFile}, extra...)...)
	}

	mustCode(t, "first run", follow(), 0)
	st, err := reyes.LoadState(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	serial := strconv.FormatUint(st.Serial, 10)
	m := readMetrics(t, metricsFile)
	if !strings.Contains(m.text, "\nreyes_ruleset_serial "+serial+"\n") {
		t.Fatalf("serial %s not exact:\n%s", serial, m.text)
	}
	loaded := map[string]float64{}
	for _, n := range []string{"reyes_ruleset_generated_timestamp_seconds", "reyes_ruleset_not_after_timestamp_seconds", "reyes_rules_loaded", "reyes_set_members_loaded"} {
		if loaded[n] = m.value(t, n); loaded[n] == 0 {
			t.Errorf("%s is 0 after an apply", n)
		}
	}
	sameLoaded := func(stage, result string) promFile {
		t.Helper()
		m := readMetrics(t, metricsFile)
		for n, v := range loaded {
			if got := m.value(t, n); got != v {
				t.Errorf("%s: %s = %v, want %v", stage, n, got, v)
			}
		}
		if !strings.Contains(m.text, "\nreyes_ruleset_serial "+serial+"\n") {
			t.Errorf("%s: serial changed:\n%s", stage, m.text)
		}
		if m.value(t, "reyes_follower_last_run_result", "result="+result) != 1 {
			t.Errorf("%s: last run is not %s", stage, result)
		}
		if m.value(t, "reyes_follower_last_success_timestamp_seconds") == 0 {
			t.Errorf("%s: last success is 0", stage)
		}
		return m
	}

	r := follow()
	mustCode(t, "unchanged run", r, 0)
	if !strings.Contains(r.stderr, "ruleset unchanged") {
		t.Errorf("second run was not 'unchanged':\n%v", r)
	}
	sameLoaded("unchanged", "unchanged")

	// Settings changed, object not: applied at once.
	mustCode(t, "--log-drop", follow("--log-drop"), 0)
	if k := ns.MustRun("iptables-save", "-t", "filter"); !strings.Contains(k, "reyes drop: ") {
		t.Errorf("--log-drop with the object unchanged did not reach the kernel:\n%s", k)
	}
	mustCode(t, "--fail-safe", follow("--log-drop", "--fail-safe", "192.0.2.0/24/tcp/22"), 0)
	if k := ns.MustRun("iptables-save", "-t", "filter"); !strings.Contains(k, "192.0.2.0/24") {
		t.Errorf("--fail-safe with the object unchanged did not reach the kernel:\n%s", k)
	}
	r = follow("--log-drop", "--fail-safe", "192.0.2.0/24/tcp/22")
	mustCode(t, "same settings again", r, 0)
	if !strings.Contains(r.stderr, "ruleset unchanged") {
		t.Errorf("same settings were not 'unchanged':\n%v", r)
	}
	// The metrics count what is loaded now: more rules than before.
	m = readMetrics(t, metricsFile)
	if got := m.value(t, "reyes_rules_loaded"); got <= loaded["reyes_rules_loaded"] {
		t.Errorf("rules loaded %v after adding LOG and fail-safe rules, was %v", got, loaded["reyes_rules_loaded"])
	}
	loaded["reyes_rules_loaded"] = m.value(t, "reyes_rules_loaded")
	if err := os.WriteFile(disable, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mustCode(t, "paused", follow(), 0)
	if m := sameLoaded("paused", "paused"); m.value(t, "reyes_follower_paused") != 1 {
		t.Error("paused is not 1")
	}
	os.Remove(disable)

	body, _ := os.ReadFile(store)
	os.Remove(store)
	mustCode(t, "store gone", follow("--log-drop", "--fail-safe", "192.0.2.0/24/tcp/22"), 1)
	if m := sameLoaded("failed", "failed"); m.value(t, "reyes_follower_failures_total", "reason=store") != 1 {
		t.Errorf("store failure not counted:\n%s", m.text)
	}
	os.WriteFile(store, body, 0o644)
	if r := follow("--mode", "bogus"); r.code == 0 {
		t.Fatalf("bad mode accepted: %v", r)
	}
	if m := sameLoaded("config", "failed"); m.value(t, "reyes_follower_failures_total", "reason=config") != 1 {
		t.Errorf("config failure not counted:\n%s", m.text)
	}

	r = run(t, nil, nil, reyesctl, "status", "--state-dir", stateDir, "--netns", ns.Name)
	mustCode(t, "reyesctl status", r, 0)
	out := squeezeSpaces(r.stdout)
	for _, want := range []string{"serial " + serial, "kernel: holds reyes' rules as applied", "at stage config", "groups: " + sgWeb, "host found by: addresses"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, nil, nil, reyesctl, "status", "--state-dir", stateDir, "--netns", ns.Name, "--json")
	mustCode(t, "reyesctl status --json", r, 0)
	var rep struct {
		Loaded struct {
			Serial uint64 `json:"serial"`
		} `json:"loaded"`
		Kernel struct {
			Holds bool `json:"holds"`
		} `json:"kernel"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Loaded.Serial != st.Serial || !rep.Kernel.Holds {
		t.Errorf("status --json: %v\n%s", err, r.stdout)
	}
	// Someone flushes reyes' filter chain: status sees it.
	ns.MustRun("iptables", "--wait", "-F", "REYES-FILTER")
	r = run(t, nil, nil, reyesctl, "status", "--state-dir", stateDir, "--netns", ns.Name)
	if !strings.Contains(r.stdout, "DRIFTED") {
		t.Errorf("status after a flush:\n%v", r)
	}
}

func squeezeSpaces(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
