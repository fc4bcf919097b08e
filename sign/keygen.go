package sign

import (
	"bytes"
	"crypto"
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// GenerateKey makes a new Ed25519 OpenPGP key (a v4 key that GnuPG 2.2 and
// later read) for name and email, created at now and without expiry, and
// returns the armored secret key (for the leader, unprotected: guard the
// file) and the armored public key (for the followers). This is what
// "reyesctl keygen" writes.
func GenerateKey(name, email string, now time.Time) (secret, public []byte, err error) {
	cfg := &packet.Config{
		Algorithm:   packet.PubKeyAlgoEdDSA,
		Curve:       packet.Curve25519,
		DefaultHash: crypto.SHA256,
		Time:        func() time.Time { return now },
	}
	e, err := openpgp.NewEntity(name, "reyes signing key", email, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	var sec bytes.Buffer
	w, err := armor.Encode(&sec, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("armoring secret key: %w", err)
	}
	if err := e.SerializePrivate(w, cfg); err != nil {
		return nil, nil, fmt.Errorf("serializing secret key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, nil, fmt.Errorf("armoring secret key: %w", err)
	}
	sec.WriteByte('\n')
	public, err = (&Signer{entity: e}).PublicKey()
	if err != nil {
		return nil, nil, err
	}
	return sec.Bytes(), public, nil
}
