package reyes_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

// TestKeyRotationAfterCompromise: someone with the leader's stolen key
// publishes a ruleset whose serial is as high as a valid object allows
// (its not_after in nanoseconds, 24 hours ahead); the followers accept it.
// The operator rotates: a new leader key, the followers trust only it.
// The honest leader's next ruleset (serial from its clock) must replace the
// attacker's at once; it used to be refused as a rollback for up to 24
// hours, with the attacker's rules loaded, since the serial of a ruleset
// that only an untrusted key vouches for still bound the follower.
// Generation times still bind: an honest object older than the attacker's
// is refused.
func TestKeyRotationAfterCompromise(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	p.publishAndApply(t)
	older := p.now

	// The attacker, with the stolen key, a minute later.
	p.now = p.now.Add(time.Minute)
	inv, err := sgsource.Dir{Path: sampleInventory}.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Build(inv, ruleset.BuildOptions{Scope: "test", GeneratedAt: p.now, TTL: reyes.DefaultMaxValidity,
		Serial: reyes.MaxSerial(p.now.Add(reyes.DefaultMaxValidity))})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := ruleset.Encode(rs)
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := sign.Seal(payload, p.signer, p.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.store.Put(ctx, stolen); err != nil {
		t.Fatal(err)
	}
	if res, err := p.follower.RunOnce(ctx); err != nil || res.Header.Serial != rs.Serial {
		t.Fatalf("the attacker's object: serial %d, %v", res.Header.Serial, err)
	}

	// Rotation: a new key on the leader and on every follower.
	sec, pub, err := sign.GenerateKey("new leader", "", p.now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	newSigner, err := sign.ParseSigner(sec)
	if err != nil {
		t.Fatal(err)
	}
	newTrusted, err := sign.ParseKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	p.follower.Trusted = newTrusted

	// An honest object older than the attacker's, signed by the new key
	// (say, a hot spare's): still refused.
	rsOld, err := ruleset.Build(inv, ruleset.BuildOptions{Scope: "test", GeneratedAt: older})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ = ruleset.Encode(rsOld)
	obj, err := sign.Seal(payload, newSigner, older)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.store.Put(ctx, obj); err != nil {
		t.Fatal(err)
	}
	p.now = p.now.Add(time.Minute)
	if _, err := p.follower.RunOnce(ctx); !errors.Is(err, reyes.ErrRollback) {
		t.Fatalf("an object generated before the attacker's: %v, want %v", err, reyes.ErrRollback)
	}

	// The honest leader, with the new key, ten minutes later, finds the
	// attacker's object in the store.
	if err := p.store.Put(ctx, stolen); err != nil {
		t.Fatal(err)
	}
	p.leader.Signer = newSigner
	p.now = p.now.Add(10 * time.Minute)
	if _, err := p.leader.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := p.follower.RunOnce(ctx)
	if err != nil {
		t.Fatalf("the honest leader's ruleset after the rotation was refused: %v", err)
	}
	if res.Header.Serial >= rs.Serial {
		t.Fatalf("serial %d", res.Header.Serial)
	}
	// From here on serials bind again.
	p.now = p.now.Add(time.Minute)
	if err := p.store.Put(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if _, err := p.follower.RunOnce(ctx); !errors.Is(err, reyes.ErrRollback) {
		t.Fatalf("replay after recovery: %v, want %v", err, reyes.ErrRollback)
	}
}
