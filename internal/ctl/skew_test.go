package ctl

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
)

// TestVerifyMaxSkew: --max-skew reaches the signature check as well as
// the header's (a leader 8 minutes ahead with max_skew 10m).
func TestVerifyMaxSkew(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	ahead := now.Add(8 * time.Minute)
	obj, _ := sealtest.Seal(t, inventoryDir, ruleset.BuildOptions{GeneratedAt: ahead, Scope: "quickstart", Serial: uint64(ahead.UnixNano())}, f.signer, ahead)
	p := filepath.Join(t.TempDir(), "ahead.obj")
	if err := os.WriteFile(p, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []runCase{
		{name: "default skew", args: []string{"verify", "--trusted-key", f.public, p}, code: ExitFailure},
		{name: "max-skew 10m", args: []string{"verify", "--trusted-key", f.public, "--max-skew", "10m", p}, out: []string{"OK"}},
		{name: "max-validity below the ttl", args: []string{"verify", "--trusted-key", f.public, "--max-skew", "10m", "--max-validity", "30m", p},
			code: ExitFailure, errIs: reyes.ErrValidityTooLong},
		{name: "explain max-skew 10m", args: []string{"explain", "--store", p, "--trusted-key", f.public, "--max-skew", "10m",
			"--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443"}, out: []string{"verdict: allow"}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, now) })
	}
}
