// Package sign seals a payload and a detached OpenPGP signature over its
// exact bytes into one object, and opens such an object again against a set
// of trusted public keys.
//
// One object per publish matters: an S3 PUT (or a rename of a local file) is
// atomic, two objects are not, so a follower can never see a payload with
// the signature of another.
//
// # Object format
//
// An object is, byte for byte:
//
//	reyes-signed/v1 sig=<S> payload=<P>\n
//	<S bytes: ASCII-armored detached OpenPGP signature ("PGP SIGNATURE")>
//	<P bytes: the payload>
//
// S and P are decimal byte counts without leading zeros. Nothing may follow
// the payload. The signature is a binary-document (type 0x00) signature over
// exactly the P payload bytes, made with SHA-256 or a stronger hash. Any
// object that does not start with "reyes-signed/" is rejected with
// [ErrUnknownFormat], as is any other version than v1.
//
// Because the signature is a plain detached OpenPGP signature, stock GnuPG
// verifies it: [Unpack] splits an object into the payload and the armored
// signature, and after writing them to payload.json and payload.json.asc,
// "gpg --verify payload.json.asc payload.json" succeeds with the leader's
// public key ("reyesctl unpack OBJECT DIR" does exactly that).
//
// # Keys
//
// [ParseSigner] and [ParseKeyring] read keys as "gpg --export-secret-keys"
// and "gpg --export" write them, armored or binary. A keyring may hold several
// keys (key rotation: trust the old and the new key for a while). Signing
// subkeys are used when present. Secret keys protected by a passphrase are
// refused with [ErrPassphrase]; a GnuPG keybox file (pubring.kbx) is refused
// with [ErrKeybox], whose message says to use "gpg --export".
//
// # Rejections
//
// [Open] returns verified payload bytes or an error that matches exactly one
// of the sentinels with errors.Is: [ErrUnknownFormat], [ErrMalformed] (and its
// refinements [ErrTruncated], [ErrTrailingData], [ErrInlineMessage]),
// [ErrTooLarge], [ErrUnknownSigner], [ErrBadSignature], [ErrWeakAlgorithm],
// [ErrKeyExpired], [ErrSignatureExpired], [ErrFutureSignature] and
// [ErrKeyRevoked].
//
// What this package does not do: it does not parse the payload, and it knows
// nothing of freshness, scopes or rollback (package reyes does, on the
// verified bytes). It does not talk to a GnuPG agent or keybox, does not
// encrypt, and does not check web-of-trust certifications: trust is exactly
// the set of public keys handed to [Open].
package sign
