package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/sign"
)

// TestLeaderMetricsFileFlag: --metrics-file reaches the leader, which
// writes the file after a publish.
func TestLeaderMetricsFileFlag(t *testing.T) {
	dir := t.TempDir()
	sec, _, err := sign.GenerateKey("leader", "", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, prom := filepath.Join(dir, "leader.key"), filepath.Join(dir, "leader.prom")
	if err := os.WriteFile(key, sec, 0o600); err != nil {
		t.Fatal(err)
	}
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
