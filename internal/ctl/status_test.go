package ctl

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/sign"
)

// statusFixture is a follower that applied the fixture's good object to a
// fake kernel.
type statusFixture struct {
	*fixture
	kernel   *applytest.Kernel
	follower *reyes.Follower
	store    string
	now      time.Time
}

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	f := newFixture(t)
	s := &statusFixture{fixture: f, kernel: applytest.New("nft"), store: filepath.Join(f.dir, "store.obj"), now: time.Now()}
	if err := os.WriteFile(s.store, f.goodBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	trusted, err := sign.LoadKeyring(f.public)
	if err != nil {
		t.Fatal(err)
	}
	s.follower = &reyes.Follower{
		Store: reyes.NewFileStore(s.store, reyes.StoreOptions{}), Trusted: trusted, StateDir: filepath.Join(f.dir, "state"),
		Freshness: reyes.FreshnessPolicy{Scope: "quickstart"},
		Identity: reyes.IdentityOptions{DisableIMDS: true,
			InterfaceAddrs: func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("10.20.1.11")}, nil }},
		Apply: apply.Options{Runner: s.kernel},
		Now:   func() time.Time { return s.now },
	}
	if err := os.MkdirAll(s.follower.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *statusFixture) run(t *testing.T) {
	t.Helper()
	if _, err := s.follower.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// status runs "reyesctl status" against the fixture's state and kernel.
func (s *statusFixture) status(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &invocation{stdout: &stdout, stderr: &stderr, now: func() time.Time { return s.now }, runner: s.kernel}
	err := c.run(t.Context(), append([]string{"status", "--state-dir", s.follower.StateDir}, args...))
	return squeeze(stdout.String()), err
}

func TestStatus(t *testing.T) {
	s := newStatusFixture(t)
	s.run(t)
	state, err := reyes.LoadState(s.follower.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.status(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"scope quickstart, serial 42",
		"generated at:", "not after:", "applied at:",
		"sha256: " + state.Digest.String(),
		"host found by: addresses",
		"interface: eni-f105372af0061d156 [10.20.1.11 10.20.1.12 2400:6500:60ec:9c00::11]: sg-41c9bbb04cf721a80, sg-b238c182ba23a5210",
		"groups: sg-41c9bbb04cf721a80, sg-b238c182ba23a5210",
		"plan:", "shared and vpc mode",
		"last run:", "applied in",
		"kernel: holds reyes' rules as applied",
		"reyesctl:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// JSON: the same, machine-readable.
	out, err = s.status(t, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r StatusReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if r.Loaded == nil || r.Loaded.Serial != 42 || r.Loaded.PlanIPv4 == "" || r.Loaded.Rules == 0 ||
		len(r.Loaded.Identity.Groups()) != 2 || r.LastRun == nil || r.LastRun.Result != reyes.ResultApplied ||
		!r.Kernel.Checked || !r.Kernel.Holds || r.DriftCheck == nil {
		t.Errorf("--json report: %s", out)
	}
	if !strings.Contains(out, `"serial": 42`) {
		t.Errorf("serial not an exact JSON integer:\n%s", out)
	}

	// Someone flushes a chain: status says so, and changes nothing.
	if err := s.kernel.Script(4, "*filter\n-F REYES-FILTER\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	before := s.kernel.Dump()
	s.kernel.ResetCalls()
	out, err = s.status(t)
	if err != nil || !strings.Contains(out, "DRIFTED from what was applied: IPv4: chain REYES-FILTER") {
		t.Errorf("status after a flush: %v\n%s", err, out)
	}
	for _, c := range s.kernel.Calls() {
		read := strings.HasSuffix(c.Name, "-save") || slices.Equal(c.Args, []string{"--version"}) ||
			(c.Name == "ipset" && len(c.Args) > 0 && c.Args[0] == "save")
		if !read {
			t.Errorf("status ran %s, which is not a read", c)
		}
	}
	if s.kernel.Dump() != before {
		t.Error("status changed the kernel")
	}

	// A failed run: the last run says where and why; what is loaded stays.
	os.Remove(s.store)
	s.now = s.now.Add(time.Minute)
	if _, err := s.follower.RunOnce(t.Context()); err == nil {
		t.Fatal("run without an object did not fail")
	}
	out, err = s.status(t, "--no-kernel")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"serial 42", "failed in", "at stage store", "last error:", "object not found", "kernel: not checked (--no-kernel)", "last failure:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status after a failed run lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusNothingApplied(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runCLI(t, time.Now(), "status", "--state-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"loaded:", "nothing applied yet", "last run:", "none recorded", "kernel:", "not checked: nothing applied yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// A state directory that does not exist is an error (a typo in
	// --state-dir must not read as "nothing applied").
	if _, _, err := runCLI(t, time.Now(), "status", "--state-dir", filepath.Join(dir, "typo")); ExitCode(err) != ExitFailure || !strings.Contains(err.Error(), "typo") {
		t.Errorf("missing state dir: %v", err)
	}
	// A corrupt state is an error, not "nothing applied".
	if err := os.WriteFile(filepath.Join(dir, reyes.StateFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, time.Now(), "status", "--state-dir", dir); err == nil || ExitCode(err) != ExitFailure {
		t.Errorf("corrupt state: %v", err)
	}
	if _, _, err := runCLI(t, time.Now(), "status", "--backend", "iptables-sideways"); ExitCode(err) != ExitUsage {
		t.Errorf("bad backend: %v", err)
	}
}

func TestVersionFlag(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		out, _, err := runCLI(t, time.Now(), arg)
		if err != nil || !strings.HasPrefix(out, "reyesctl ") || strings.Count(out, "\n") != 1 {
			t.Errorf("%s: %q %v", arg, out, err)
		}
	}
}
