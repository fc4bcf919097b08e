// Package sealtest makes signed rulesets for tests, as a leader would:
// an inventory directory read, built into a ruleset, encoded and sealed.
package sealtest

import (
	"testing"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// Seal reads the inventory directory dir, builds it with opts, and seals
// the encoded ruleset with s at time at. It returns the object and the
// ruleset; any failure fails the test.
func Seal(t testing.TB, dir string, opts ruleset.BuildOptions, s *sign.Signer, at time.Time) ([]byte, *ruleset.Ruleset) {
	t.Helper()
	inv, err := sgsource.ReadDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Build(inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := ruleset.Encode(rs)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sign.Seal(payload, s, at)
	if err != nil {
		t.Fatal(err)
	}
	return obj, rs
}
