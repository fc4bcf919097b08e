// Package systemd_test checks the example systemd units: their settings
// statically everywhere, and with systemd-analyze verify (and security)
// where that tool exists.
package systemd_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var units = []string{"reyes-leader.service", "reyes-leader.timer", "reyes-follower.service", "reyes-follower.timer"}

// unitFile is a parsed unit: section -> key -> values in file order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, name string) unitFile {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", name, n, l)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUnitSettings(t *testing.T) {
	for _, tc := range []struct {
		unit string
		want map[string]map[string]string // section -> key -> one of its values
	}{
		{"reyes-leader.service", map[string]map[string]string{
			"Unit": {"Wants": "network-online.target", "After": "network-online.target"},
			"Service": {
				"Type":                    "oneshot",
				"ExecStart":               "/usr/local/bin/reyes-leader --config /etc/reyes/leader.yaml",
				"EnvironmentFile":         "-/etc/reyes/leader.env",
				"ProtectSystem":           "strict",
				"ReadWritePaths":          "/var/lib/reyes",
				"CapabilityBoundingSet":   "",
				"NoNewPrivileges":         "yes",
				"PrivateTmp":              "yes",
				"ProtectHome":             "yes",
				"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
			},
		}},
		{"reyes-follower.service", map[string]map[string]string{
			"Unit": {"Wants": "network-online.target", "After": "network-online.target"},
			"Service": {
				"Type":                  "oneshot",
				"ExecStart":             "/usr/local/bin/reyes-follower --config /etc/reyes/follower.yaml",
				"EnvironmentFile":       "-/etc/reyes/follower.env",
				"ProtectSystem":         "strict",
				"ReadWritePaths":        "/var/lib/reyes",
				"CapabilityBoundingSet": "CAP_NET_ADMIN CAP_NET_RAW",
				"NoNewPrivileges":       "yes",
				"PrivateTmp":            "yes",
				"ProtectHome":           "yes",
			},
		}},
		{"reyes-leader.timer", map[string]map[string]string{
			"Timer":   {"OnUnitActiveSec": "5min", "RandomizedDelaySec": "1min"},
			"Install": {"WantedBy": "timers.target"},
		}},
		{"reyes-follower.timer", map[string]map[string]string{
			"Timer":   {"OnUnitActiveSec": "1min", "RandomizedDelaySec": "15s"},
			"Install": {"WantedBy": "timers.target"},
		}},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			u := parseUnit(t, tc.unit)
			for section, keys := range tc.want {
				for k, want := range keys {
					if got := u[section][k]; !slices.Contains(got, want) {
						t.Errorf("[%s] %s=%q, want %q among them", section, k, got, want)
					}
				}
			}
			if strings.HasSuffix(tc.unit, ".service") {
				if _, ok := u["Install"]; ok {
					t.Error("the service has an [Install] section; its timer starts it")
				}
			}
		})
	}
}

// unitsForVerify copies the units to a temporary directory with ExecStart
// pointing at an executable that exists (this test binary):
// systemd-analyze verify checks that the command is executable, and the
// reyes binaries are not installed where the units expect them.
func unitsForVerify(t *testing.T) (dir string, paths []string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	bin := regexp.MustCompile(`/usr/local/bin/reyes-(leader|follower)`)
	for _, name := range units {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bin.ReplaceAll(b, []byte(exe)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return dir, paths
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found on PATH; the units were not verified by systemd")
	}
	return p
}

func TestSystemdAnalyzeVerify(t *testing.T) {
	tool := systemdAnalyze(t)
	_, paths := unitsForVerify(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, append([]string{"verify"}, paths...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out.String())
	}
	// verify exits 0 on an unknown key or a bad value it ignores; it
	// says so, naming the unit.
	for _, l := range strings.Split(out.String(), "\n") {
		for _, u := range units {
			if strings.Contains(l, u) {
				t.Errorf("systemd-analyze verify: %s", l)
			}
		}
	}
	if !t.Failed() && out.Len() > 0 {
		t.Logf("systemd-analyze verify said, about other units:\n%s", out.String())
	}
}

// TestSystemdAnalyzeSecurity keeps the services' exposure, as
// systemd-analyze security rates their sandboxing (0 best, 10 worst), at
// 3.0 or below (--threshold counts in tenths).
func TestSystemdAnalyzeSecurity(t *testing.T) {
	tool := systemdAnalyze(t)
	_, paths := unitsForVerify(t)
	for _, p := range paths {
		if !strings.HasSuffix(p, ".service") {
			continue
		}
		t.Run(filepath.Base(p), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, tool, "security", "--offline=true", "--threshold=30", "--no-pager", p)
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if err != nil && strings.Contains(out.String(), "unrecognized option") {
				t.Skipf("this systemd-analyze has no offline security analysis (systemd 250 or later): %s", strings.TrimSpace(out.String()))
			}
			if err != nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			t.Log(lines[len(lines)-1])
		})
	}
}
