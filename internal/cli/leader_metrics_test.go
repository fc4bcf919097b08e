package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// writeLeaderKey makes a leader key (valid from an hour ago), writes its
// secret key to dir/leader.key and returns that path and the armored
// public key.
func writeLeaderKey(t *testing.T, dir string) (keyFile string, public []byte) {
	t.Helper()
	sec, pub, err := sign.GenerateKey("leader", "", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(dir, "leader.key")
	if err := os.WriteFile(keyFile, sec, 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile, pub
}

// TestLeaderMetricsFileFlag: --metrics-file reaches the leader, which
// writes the file after a publish.
func TestLeaderMetricsFileFlag(t *testing.T) {
	dir := t.TempDir()
	key, _ := writeLeaderKey(t, dir)
	prom := filepath.Join(dir, "leader.prom")
	var stdout, stderr bytes.Buffer
	if err := RunLeader(context.Background(), []string{"--source", "../../examples/quickstart/inventory", "--store", filepath.Join(dir, "ruleset.signed"),
		"--signing-key", key, "--metrics-file", prom}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("RunLeader: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`reyes_leader_last_run_result{result="published"} 1`, `reyes_leader_runs_total{result="published"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("no %s in:\n%s", want, b)
		}
	}
}

// TestLeaderLayoutFlag: the leader publishes a root naming parts by
// default, one whole object with --layout whole (or layout: whole in the
// configuration file), and puts what it did in the metrics.
func TestLeaderLayoutFlag(t *testing.T) {
	dir := t.TempDir()
	sec, _, err := sign.GenerateKey("leader", "", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "leader.key")
	if err := os.WriteFile(key, sec, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "whole.yaml")
	if err := os.WriteFile(conf, []byte("layout: whole\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args      []string
		wantParts bool
	}{
		{"default", nil, true},
		{"flag parts", []string{"--layout", "parts"}, true},
		{"flag whole", []string{"--layout", "whole"}, false},
		{"file whole", []string{"--config", conf}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			store, prom := filepath.Join(d, "ruleset.signed"), filepath.Join(d, "leader.prom")
			var stdout, stderr bytes.Buffer
			args := append([]string{"--source", "../../examples/quickstart/inventory", "--store", store, "--signing-key", key, "--metrics-file", prom}, tc.args...)
			if err := RunLeader(context.Background(), args, nil, &stdout, &stderr); err != nil {
				t.Fatalf("RunLeader: %v\n%s", err, stderr.String())
			}
			obj, err := os.ReadFile(store)
			if err != nil {
				t.Fatal(err)
			}
			payload, _, err := sign.Unpack(obj)
			if err != nil {
				t.Fatal(err)
			}
			if got := ruleset.IsRoot(payload); got != tc.wantParts {
				t.Errorf("the store holds a root: %v, want %v", got, tc.wantParts)
			}
			entries, _ := os.ReadDir(store + ".parts")
			hist, _ := os.ReadDir(store + ".roots")
			if (len(entries) > 0) != tc.wantParts || (len(hist) == 1) != tc.wantParts {
				t.Errorf("%d parts, %d history copies", len(entries), len(hist))
			}
			b, err := os.ReadFile(prom)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("reyes_leader_parts_put_total %d\n", len(entries))
			if !strings.Contains(string(b), want) {
				t.Errorf("no %q in:\n%s", want, b)
			}
		})
	}
}
