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

	"github.com/reyes-fw/reyes/sign"
)

// TestUnchangedTrustedKeyRevoked: the operator imports the leader key's
// revocation certificate into the followers' trusted key file (the key
// leaked). Its fingerprint is the same, but the trust decision is not: the
// next run, with the object unchanged in the store, verifies it again and
// refuses it, instead of reporting "unchanged" for an object only a
// revoked key vouches for.
func TestUnchangedTrustedKeyRevoked(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	sec, _, err := sign.GenerateKey("reyes leader", "", p.now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.ParseSigner(sec)
	if err != nil {
		t.Fatal(err)
	}
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

	p.now = p.now.Add(time.Minute)
	res, err := p.follower.RunOnce(ctx)
	if !errors.Is(err, sign.ErrKeyRevoked) {
		t.Fatalf("run with the signing key revoked: NotModified=%v err=%v, want %v", res.NotModified, err, sign.ErrKeyRevoked)
	}
}
