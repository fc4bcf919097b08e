package sign

import "errors"

// kindError is a sentinel error that is also a refinement of a broader one:
// errors.Is(ErrTrailingData, ErrMalformed) holds.
type kindError struct {
	msg    string
	parent error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.parent }

// Sentinel errors returned (wrapped) by this package. Test for them with
// errors.Is.
var (
	// ErrUnknownFormat: the object is not a reyes signed object, or of a
	// version this package does not know.
	ErrUnknownFormat = errors.New("unknown object format")
	// ErrMalformed: the object has the right format name but its structure
	// is broken.
	ErrMalformed = errors.New("malformed object")
	// ErrTruncated: the object ends before the lengths in its header say.
	ErrTruncated error = &kindError{"object truncated", ErrMalformed}
	// ErrTrailingData: bytes follow the payload.
	ErrTrailingData error = &kindError{"trailing data after payload", ErrMalformed}
	// ErrInlineMessage: the signature field holds a signed (inline or
	// cleartext) message where a detached signature belongs.
	ErrInlineMessage error = &kindError{"inline signed message where a detached signature belongs", ErrMalformed}
	// ErrTooLarge: the object is larger than the configured cap.
	ErrTooLarge = errors.New("object too large")
	// ErrUnknownSigner: no trusted key made the signature.
	ErrUnknownSigner = errors.New("signature made by an unknown key")
	// ErrBadSignature: the signature does not verify over the payload.
	ErrBadSignature = errors.New("bad signature")
	// ErrWeakAlgorithm: the signature uses a weak hash (MD5, SHA-1,
	// RIPEMD-160, SHA-224) or the key is weak (RSA below 2048 bits, DSA).
	ErrWeakAlgorithm = errors.New("weak algorithm")
	// ErrKeyExpired: the signing key (or its primary key) has expired.
	ErrKeyExpired = errors.New("signing key expired")
	// ErrSignatureExpired: the signature itself, or a self-signature it
	// depends on, has expired.
	ErrSignatureExpired = errors.New("signature expired")
	// ErrFutureSignature: the signature is dated further in the future than
	// the allowed clock skew.
	ErrFutureSignature = errors.New("signature made in the future")
	// ErrKeyRevoked: the signing key, its primary key or its primary
	// identity has been revoked.
	ErrKeyRevoked = errors.New("signing key revoked")

	// ErrPassphrase: a secret key is protected by a passphrase. reyes reads
	// unprotected keys only (like the original); protect the file instead.
	ErrPassphrase = errors.New("secret key is protected by a passphrase; remove it with gpg --passwd (empty passphrase) and export again, and protect the key file with file permissions instead")
	// ErrKeybox: a GnuPG keybox (pubring.kbx) was given where an exported
	// key belongs.
	ErrKeybox = errors.New("file is a GnuPG keybox (pubring.kbx), not an exported key; export the key with: gpg --export --armor KEYID > key.asc (or gpg --export-secret-keys --armor KEYID for a signing key)")
	// ErrNoKey: a key file holds no usable key of the kind needed.
	ErrNoKey = errors.New("no usable key")
	// ErrDuplicateKey: one key appears twice among the trusted keys, where
	// an older copy could hide a newer revocation.
	ErrDuplicateKey = errors.New("trusted key given twice")
	// ErrSecretKey: a secret key was given where only a public key belongs
	// (a follower's trusted keys), which would spread the signing key.
	ErrSecretKey = errors.New("secret key given as a trusted key")
)
