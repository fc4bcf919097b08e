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

// Key makes a leader key named name, created at created, as reyes-keygen
// does: its signer and the armored secret and public keys. Any failure
// fails the test.
func Key(t testing.TB, name string, created time.Time) (signer *sign.Signer, secret, public []byte) {
	t.Helper()
	secret, public, err := sign.GenerateKey(name, "", created)
	if err != nil {
		t.Fatal(err)
	}
	signer, err = sign.ParseSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	return signer, secret, public
}
