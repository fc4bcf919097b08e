package ctl

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
)

// TestInspectFindings: inspect lists what the ruleset cannot mirror, with
// counts and the accounts that were not read.
func TestInspectFindings(t *testing.T) {
	inv, err := sgsource.ReadDir(context.Background(), "../../render/testdata/inventories/accounts")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := printFindings(&b, rs.Findings); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"FINDINGS (6)", "unread-account: 1", "stale-reference: 4", "client-ip: 1",
		"accounts referred to but not read: 999999999999",
		"unread-account   sg-000000000000000e1  sg-000000000000000e9  999999999999",
		"client-ip        sg-000000000000000e1  sg-000000000000000e7  -",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := printFindings(&b, nil); err != nil || b.Len() != 0 {
		t.Errorf("no findings printed %q, %v", b.String(), err)
	}
}
