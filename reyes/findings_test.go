package reyes_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

// TestLeaderReportsFindings: a publish of an estate of several accounts
// logs a warning per finding, names the accounts not read, and counts the
// findings in its result; the ruleset carries them for reyesctl inspect.
func TestLeaderReportsFindings(t *testing.T) {
	p := newPipeline(t)
	var logs bytes.Buffer
	p.leader.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	p.leader.Source = sgsource.Dir{Path: "../render/testdata/inventories/accounts"}
	res, err := p.leader.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{ruleset.FindingUnreadAccount: 1, ruleset.FindingStaleReference: 4, ruleset.FindingClientIP: 1}
	for k, n := range want {
		if res.FindingCounts[k] != n {
			t.Errorf("%s: %d findings, want %d (all: %v)", k, res.FindingCounts[k], n, res.FindingCounts)
		}
	}
	if len(res.Findings) != 6 {
		t.Errorf("%d findings in the result, want 6", len(res.Findings))
	}
	out := logs.String()
	if n := strings.Count(out, "level=WARN msg=\"security group rule not mirrored as AWS applies it\""); n != 6 {
		t.Errorf("%d finding warnings, want 6:\n%s", n, out)
	}
	if !strings.Contains(out, "account=999999999999 references=1") {
		t.Errorf("the account not read is not named:\n%s", out)
	}
	if !strings.Contains(out, "findings=6") {
		t.Errorf("the publish line does not count the findings:\n%s", out)
	}
}
