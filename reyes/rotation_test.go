package reyes_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
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
	p := appliedPipeline(t)
	older := p.now

	// The attacker, with the stolen key, a minute later.
	p.now = p.now.Add(time.Minute)
	stolen, rs := sealtest.Seal(t, sampleInventory, ruleset.BuildOptions{Scope: "test", GeneratedAt: p.now, TTL: reyes.DefaultMaxValidity,
		Serial: reyes.MaxSerial(p.now.Add(reyes.DefaultMaxValidity))}, p.signer, p.now)
	if err := p.store.Put(ctx, stolen); err != nil {
		t.Fatal(err)
	}
	if res, err := p.follower.RunOnce(ctx); err != nil || res.Header.Serial != rs.Serial {
		t.Fatalf("the attacker's object: serial %d, %v", res.Header.Serial, err)
	}

	// Rotation: a new key on the leader and on every follower.
	newSigner, _, pub := sealtest.Key(t, "new leader", p.now.Add(-time.Hour))
	newTrusted, err := sign.ParseKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	p.follower.Trusted = newTrusted

	// An honest object older than the attacker's, signed by the new key
	// (say, a hot spare's): still refused.
	obj, _ := sealtest.Seal(t, sampleInventory, ruleset.BuildOptions{Scope: "test", GeneratedAt: older}, newSigner, older)
	if err := p.store.Put(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if _, err := p.followLater(ctx, time.Minute); !errors.Is(err, reyes.ErrRollback) {
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

// TestUnchangedTrustedKeyRevoked: the operator imports the leader key's
// revocation certificate into the followers' trusted key file (the key
// leaked). Its fingerprint is the same, but the trust decision is not: the
// next run, with the object unchanged in the store, verifies it again and
// refuses it, instead of reporting "unchanged" for an object only a
// revoked key vouches for.
func TestUnchangedTrustedKeyRevoked(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	signer, sec, _ := sealtest.Key(t, "reyes leader", p.now.Add(-time.Hour))
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(sec))
	if err != nil || len(el) != 1 {
		t.Fatalf("reading the key back: %v", err)
	}
	p.leader.Signer, p.follower.Trusted = signer, signer.Keyring()
	p.publishAndApply(t)

	p.now = p.now.Add(time.Minute)
	cfg := &packet.Config{Time: func() time.Time { return p.now }}
	if err := el[0].RevokeKey(packet.KeyCompromised, "leaked", cfg); err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	w, err := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := el[0].Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	revoked, err := sign.ParseKeyring(pub.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	p.follower.Trusted = revoked

	res, err := p.followLater(ctx, time.Minute)
	if !errors.Is(err, sign.ErrKeyRevoked) {
		t.Fatalf("run with the signing key revoked: NotModified=%v err=%v, want %v", res.NotModified, err, sign.ErrKeyRevoked)
	}
}
