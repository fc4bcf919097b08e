package sign

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Keyring is a set of trusted public keys. The zero value trusts nothing.
// A Keyring is immutable after parsing and safe for concurrent use.
type Keyring struct {
	entities openpgp.EntityList
}

// ParseKeyring reads public keys (or secret keys, of which only the public
// parts are used) from data, armored or binary, as "gpg --export" writes
// them. Several keys may be given, also as several concatenated armored
// blocks.
func ParseKeyring(data []byte) (*Keyring, error) {
	el, err := readEntities(data)
	if err != nil {
		return nil, err
	}
	if err := uniqueKeys(el); err != nil {
		return nil, err
	}
	for _, e := range el {
		if e.PrivateKey != nil {
			return nil, fmt.Errorf("%w: key %s: followers need only the public key (gpg --export, or reyesctl keygen --public); the signing key belongs on the leaders", ErrSecretKey, fingerprint(e.PrimaryKey))
		}
	}
	return &Keyring{entities: el}, nil
}

// LoadKeyring reads every file in paths with [ParseKeyring] and trusts the
// keys of all of them, for key rotation.
func LoadKeyring(paths ...string) (*Keyring, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("loading keyring: %w: no key files given", ErrNoKey)
	}
	kr := &Keyring{}
	for _, p := range paths {
		k, err := loadKeyFile(p, "keyring", ParseKeyring)
		if err != nil {
			return nil, err
		}
		kr.entities = append(kr.entities, k.entities...)
		if err := uniqueKeys(kr.entities); err != nil {
			return nil, fmt.Errorf("loading keyring %s: %w", p, err)
		}
	}
	return kr, nil
}

// Merge returns a keyring that trusts the keys of k and of others.
//
// Merge does not look for copies of one key (see ParseKeyring); load
// trusted keys with LoadKeyring, which refuses them.
func (k *Keyring) Merge(others ...*Keyring) *Keyring {
	out := &Keyring{}
	if k != nil {
		out.entities = append(out.entities, k.entities...)
	}
	for _, o := range others {
		if o != nil {
			out.entities = append(out.entities, o.entities...)
		}
	}
	return out
}

// Fingerprints returns the upper-case hex fingerprints of the primary keys
// in the keyring, in the order they were read.
func (k *Keyring) Fingerprints() []string {
	return k.eachKey(func(e *openpgp.Entity) string { return fingerprint(e.PrimaryKey) })
}

// KeyDigests returns, for each key in the keyring in the order read, the
// hex SHA-256 of its public part as OpenPGP serializes it: the primary key,
// subkeys, user IDs and every signature on them, revocations and expiry
// changes included. Unlike a fingerprint it changes whenever what the key
// may verify changes (a revocation certificate imported, a subkey added or
// expired), so a caller that caches a verification can tell when to verify
// again.
func (k *Keyring) KeyDigests() []string {
	return k.eachKey(func(e *openpgp.Entity) string {
		h := sha256.New()
		if err := e.Serialize(h); err != nil {
			// Cannot be compared: a digest that matches nothing recorded.
			fmt.Fprintf(h, "unserializable %s: %v", fingerprint(e.PrimaryKey), err)
		}
		return hex.EncodeToString(h.Sum(nil))
	})
}

// eachKey returns f of each key in the keyring, in the order read; nil for
// a nil keyring.
func (k *Keyring) eachKey(f func(*openpgp.Entity) string) []string {
	if k == nil {
		return nil
	}
	out := make([]string, 0, len(k.entities))
	for _, e := range k.entities {
		out = append(out, f(e))
	}
	return out
}

// Signer holds one secret key that signs. It is safe for concurrent use.
type Signer struct {
	entity *openpgp.Entity
}

// ParseSigner reads exactly one secret key, armored or binary, as
// "gpg --export-secret-keys KEYID" (or --export-secret-subkeys) writes it.
// A key protected by a passphrase is refused with [ErrPassphrase].
func ParseSigner(data []byte) (*Signer, error) {
	el, err := readEntities(data)
	if err != nil {
		return nil, err
	}
	var secret []*openpgp.Entity
	for _, e := range el {
		if hasSecret(e) {
			secret = append(secret, e)
		}
	}
	switch len(secret) {
	case 0:
		return nil, fmt.Errorf("%w: no secret key found (export it with gpg --export-secret-keys, not gpg --export)", ErrNoKey)
	case 1:
	default:
		return nil, fmt.Errorf("%w: %d secret keys found, need exactly one (gpg --export-secret-keys KEYID)", ErrNoKey, len(secret))
	}
	e := secret[0]
	if e.PrivateKey != nil && !e.PrivateKey.Dummy() && e.PrivateKey.Encrypted {
		return nil, fmt.Errorf("reading secret key %s: %w", fingerprint(e.PrimaryKey), ErrPassphrase)
	}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil && !sk.PrivateKey.Dummy() && sk.PrivateKey.Encrypted {
			return nil, fmt.Errorf("reading secret subkey %s: %w", fingerprint(sk.PublicKey), ErrPassphrase)
		}
	}
	return &Signer{entity: e}, nil
}

// LoadSigner reads the secret key in the file at path with [ParseSigner].
func LoadSigner(path string) (*Signer, error) {
	return loadKeyFile(path, "signing key", ParseSigner)
}

// loadKeyFile reads the key file at path and parses it with parse; the
// errors say "loading " and what, and name the file when parse fails
// (readKeyFile's errors name it already).
func loadKeyFile[T any](path, what string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := readKeyFile(path)
	if err != nil {
		return zero, fmt.Errorf("loading %s: %w", what, err)
	}
	v, err := parse(data)
	if err != nil {
		return zero, fmt.Errorf("loading %s %s: %w", what, path, err)
	}
	return v, nil
}

// Fingerprint returns the upper-case hex fingerprint of the signer's primary
// key.
func (s *Signer) Fingerprint() string { return fingerprint(s.entity.PrimaryKey) }

// PublicKey returns the signer's public key, armored, as "gpg --export
// --armor" would: the file to hand to followers.
func (s *Signer) PublicKey() ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, fmt.Errorf("armoring public key: %w", err)
	}
	if err := s.entity.Serialize(w); err != nil {
		return nil, fmt.Errorf("serializing public key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("armoring public key: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// Keyring returns a keyring that trusts the signer's public key.
func (s *Signer) Keyring() *Keyring {
	return &Keyring{entities: openpgp.EntityList{s.entity}}
}

func hasSecret(e *openpgp.Entity) bool {
	if e.PrivateKey != nil && !e.PrivateKey.Dummy() {
		return true
	}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil && !sk.PrivateKey.Dummy() {
			return true
		}
	}
	return false
}

// readEntities reads keys from armored (one or more blocks) or binary data.
func readEntities(data []byte) (openpgp.EntityList, error) {
	if len(data) >= 12 && string(data[8:12]) == "KBXf" {
		return nil, ErrKeybox
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty key file", ErrNoKey)
	}
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN PGP ")) {
		el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%w: reading binary keys: %w", ErrNoKey, err)
		}
		if len(el) == 0 {
			return nil, fmt.Errorf("%w: no keys in binary data", ErrNoKey)
		}
		return el, nil
	}
	var el openpgp.EntityList
	for i, block := range splitArmor(trimmed) {
		b, err := armor.Decode(bytes.NewReader(block))
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: armored block %d is empty", ErrNoKey, i+1)
			}
			return nil, fmt.Errorf("%w: decoding armored block %d: %w", ErrNoKey, i+1, err)
		}
		if b.Type != openpgp.PublicKeyType && b.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("%w: armored block %d is a %q, not a key", ErrNoKey, i+1, b.Type)
		}
		keys, err := openpgp.ReadKeyRing(b.Body)
		if err != nil {
			return nil, fmt.Errorf("%w: reading armored block %d: %w", ErrNoKey, i+1, err)
		}
		el = append(el, keys...)
	}
	if len(el) == 0 {
		return nil, fmt.Errorf("%w: no keys in armored data", ErrNoKey)
	}
	return el, nil
}

// splitArmor splits data at every line that starts an armored block.
func splitArmor(data []byte) [][]byte {
	const begin = "\n-----BEGIN PGP "
	var blocks [][]byte
	for {
		i := bytes.Index(data[1:], []byte(begin))
		if i < 0 {
			return append(blocks, data)
		}
		blocks = append(blocks, data[:i+2])
		data = data[i+2:]
	}
}

func fingerprint(pk *packet.PublicKey) string {
	return strings.ToUpper(fmt.Sprintf("%x", pk.Fingerprint))
}

// uniqueKeys refuses two copies of one primary key. Verification stops at
// the first copy whose signature checks, so an older export without a
// revocation or expiry that a newer one carries would keep a revoked key
// trusted (gpg merges copies; reyes does not). Give each key once, in its
// newest export.
func uniqueKeys(el openpgp.EntityList) error {
	seen := map[string]bool{}
	for _, e := range el {
		fp := fingerprint(e.PrimaryKey)
		if seen[fp] {
			return fmt.Errorf("%w: key %s is given twice; give each trusted key once, in its newest export (an older copy would hide a revocation)", ErrDuplicateKey, fp)
		}
		seen[fp] = true
	}
	return nil
}
