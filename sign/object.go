package sign

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

const (
	// magic starts every object; the version follows it.
	magic = "reyes-signed/"
	// version1 is the only version this package reads and writes.
	version1 = magic + "v1"
	// DefaultMaxSize is the default cap on the size of a whole object.
	DefaultMaxSize int64 = 64 << 20
	// DefaultMaxSkew is how far in the future a signature may be dated (the
	// leader's clock running ahead) before Open rejects it.
	DefaultMaxSkew = 5 * time.Minute
	// maxSignatureSize caps the signature field: an RSA-4096 signature is
	// under 1 KiB armored.
	maxSignatureSize = 16 << 10
	// maxHeaderLen caps the header line, newline included.
	maxHeaderLen = 64

	beginSignature = "-----BEGIN PGP SIGNATURE-----"
	endSignature   = "-----END PGP SIGNATURE-----"
)

// Seal signs payload with signer at time now and returns one object holding
// the payload and an armored detached signature (SHA-256) over exactly its
// bytes. It fails when the signer has no valid signing key at now (expired,
// revoked) or when the key is weak.
func Seal(payload []byte, signer *Signer, now time.Time) ([]byte, error) {
	if signer == nil || signer.entity == nil {
		return nil, fmt.Errorf("sealing: %w: no signer", ErrNoKey)
	}
	key, ok := signer.entity.SigningKey(now)
	if !ok {
		return nil, fmt.Errorf("sealing: %w: key %s has no signing key valid at %s (expired, revoked, or no signing capability)",
			ErrNoKey, signer.Fingerprint(), now.UTC().Format(time.RFC3339))
	}
	if key.PrivateKey == nil || key.PrivateKey.Dummy() {
		return nil, fmt.Errorf("sealing: %w: the secret part of signing key %s is missing", ErrNoKey, fingerprint(key.PublicKey))
	}
	if err := checkKeyStrength(key.PublicKey); err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	cfg := &packet.Config{
		DefaultHash:  crypto.SHA256,
		Time:         func() time.Time { return now },
		SigningKeyId: key.PublicKey.KeyId,
	}
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, signer.entity, bytes.NewReader(payload), cfg); err != nil {
		return nil, fmt.Errorf("sealing: signing: %w", err)
	}
	sig.WriteByte('\n')
	return pack(sig.Bytes(), payload), nil
}

// pack assembles an object from an armored signature and a payload.
func pack(sig, payload []byte) []byte {
	header := fmt.Sprintf("%s sig=%d payload=%d\n", version1, len(sig), len(payload))
	out := make([]byte, 0, len(header)+len(sig)+len(payload))
	out = append(out, header...)
	out = append(out, sig...)
	return append(out, payload...)
}

// Option changes how [Open] reads an object.
type Option func(*options)

type options struct {
	maxSize int64
	maxSkew time.Duration
}

// WithMaxSize caps the size of the whole object (default [DefaultMaxSize]).
// The cap holds while reading: Open never reads or allocates more.
func WithMaxSize(n int64) Option { return func(o *options) { o.maxSize = n } }

// WithMaxSkew sets how far in the future the signature may be dated
// (default [DefaultMaxSkew]). Within the skew, key expiry and revocation are
// judged at the signature's time instead of now.
func WithMaxSkew(d time.Duration) Option { return func(o *options) { o.maxSkew = d } }

// Verified is the result of a successful [OpenVerified].
type Verified struct {
	// Payload is the verified payload: the only bytes to parse.
	Payload []byte
	// Signer is the fingerprint of the primary key that signed.
	Signer string
	// Key is the fingerprint of the key (primary or subkey) that made the
	// signature.
	Key string
	// SignedAt is the signature's creation time.
	SignedAt time.Time
}

// Open reads one object from r, verifies its signature against trusted at
// time now and returns the payload. See [OpenVerified].
func Open(r io.Reader, trusted *Keyring, now time.Time, opts ...Option) ([]byte, error) {
	v, err := OpenVerified(r, trusted, now, opts...)
	if err != nil {
		return nil, err
	}
	return v.Payload, nil
}

// OpenVerified reads one object from r, at most the configured cap, and
// verifies that a key in trusted signed exactly its payload bytes and was
// valid at now. Every failure matches one of the package's sentinel errors.
func OpenVerified(r io.Reader, trusted *Keyring, now time.Time, opts ...Option) (*Verified, error) {
	return openObject(func(max int64) ([]byte, []byte, error) { return readObject(r, max) }, trusted, now, opts)
}

// OpenBytes is [Open] for an object already in memory (what a store's Get
// returns). The payload it returns aliases object instead of copying it.
func OpenBytes(object []byte, trusted *Keyring, now time.Time, opts ...Option) ([]byte, error) {
	v, err := openObject(func(max int64) ([]byte, []byte, error) { return splitObject(object, max) }, trusted, now, opts)
	if err != nil {
		return nil, err
	}
	return v.Payload, nil
}

// openObject splits an object with split, given the size cap of opts, and
// verifies it: what OpenVerified and OpenBytes share.
func openObject(split func(max int64) (sig, payload []byte, err error), trusted *Keyring, now time.Time, opts []Option) (*Verified, error) {
	o := options{maxSize: DefaultMaxSize, maxSkew: DefaultMaxSkew}
	for _, opt := range opts {
		opt(&o)
	}
	sig, payload, err := split(o.maxSize)
	if err != nil {
		return nil, fmt.Errorf("opening signed object: %w", err)
	}
	v, err := verify(sig, payload, trusted, now, o.maxSkew)
	if err != nil {
		return nil, fmt.Errorf("opening signed object: %w", err)
	}
	return v, nil
}

// splitObject splits an in-memory object with the same rules as readObject.
func splitObject(obj []byte, max int64) (sig, payload []byte, err error) {
	if max <= 0 {
		max = DefaultMaxSize
	}
	head := obj[:min(len(obj), maxHeaderLen)]
	if int64(len(head)) > max+1 {
		head = head[:max+1]
	}
	sigLen, payloadLen, headerLen, err := parseHead(head)
	if err != nil {
		return nil, nil, err
	}
	if total := headerLen + sigLen + payloadLen; total > max {
		return nil, nil, fmt.Errorf("%w: object of %d bytes (cap %d)", ErrTooLarge, total, max)
	}
	rest := obj[headerLen:]
	switch {
	case int64(len(rest)) < sigLen:
		return nil, nil, fmt.Errorf("%w: in the signature", ErrTruncated)
	case int64(len(rest)) < sigLen+payloadLen:
		return nil, nil, fmt.Errorf("%w: in the payload", ErrTruncated)
	case int64(len(rest)) > sigLen+payloadLen:
		return nil, nil, ErrTrailingData
	}
	return rest[:sigLen:sigLen], rest[sigLen:], nil
}

// Unpack splits an object into its payload and its armored detached
// signature, without verifying anything: for "reyesctl unpack", after which
// "gpg --verify payload.json.asc payload.json" checks the pair.
func Unpack(object []byte) (payload, armoredSig []byte, err error) {
	sig, payload, err := splitObject(object, int64(len(object)))
	if err != nil {
		return nil, nil, fmt.Errorf("unpacking signed object: %w", err)
	}
	return payload, sig, nil
}

// readObject reads and splits an object of at most max bytes.
func readObject(r io.Reader, max int64) (sig, payload []byte, err error) {
	if max <= 0 {
		max = DefaultMaxSize
	}
	limit := max
	if limit < 1<<62 {
		limit++ // one byte more, to tell "exactly max" from "over max"
	}
	br := bufio.NewReaderSize(io.LimitReader(r, limit), 4096)
	head, err := br.Peek(maxHeaderLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("reading header: %w", err)
	}
	sigLen, payloadLen, headerLen, err := parseHead(head)
	if err != nil {
		return nil, nil, err
	}
	if total := headerLen + sigLen + payloadLen; total > max {
		return nil, nil, fmt.Errorf("%w: object of %d bytes (cap %d)", ErrTooLarge, total, max)
	}
	if _, err := br.Discard(int(headerLen)); err != nil {
		return nil, nil, fmt.Errorf("reading header: %w", err)
	}
	sig = make([]byte, sigLen)
	if err := readFull(br, sig, "signature"); err != nil {
		return nil, nil, err
	}
	// Grow the payload as bytes arrive, not by what the header claims: a
	// 50-byte object must not make a follower allocate the whole cap.
	var pb bytes.Buffer
	pb.Grow(int(min(payloadLen, 16<<20)))
	if n, err := io.Copy(&pb, io.LimitReader(br, payloadLen)); err != nil {
		return nil, nil, fmt.Errorf("reading payload: %w", err)
	} else if n < payloadLen {
		return nil, nil, fmt.Errorf("%w: in the payload", ErrTruncated)
	}
	payload = pb.Bytes()
	var one [1]byte
	switch n, err := io.ReadFull(br, one[:]); {
	case n > 0:
		// However much follows (never read beyond the cap), the object is
		// not what its header says.
		return nil, nil, ErrTrailingData
	case errors.Is(err, io.EOF):
	default:
		return nil, nil, fmt.Errorf("reading object: %w", err)
	}
	return sig, payload, nil
}

// parseHead finds the header line in head (the first bytes of an object)
// and checks the declared sizes against the fixed caps.
func parseHead(head []byte) (sigLen, payloadLen, headerLen int64, err error) {
	nl := bytes.IndexByte(head, '\n')
	if len(head) > 0 && len(head) < len(magic) && bytes.HasPrefix([]byte(magic), head) {
		return 0, 0, 0, fmt.Errorf("%w: in the header", ErrTruncated)
	}
	if !bytes.HasPrefix(head, []byte(magic)) {
		return 0, 0, 0, fmt.Errorf("%w: %s", ErrUnknownFormat, describe(head))
	}
	if nl < 0 {
		if len(head) < maxHeaderLen {
			return 0, 0, 0, fmt.Errorf("%w: header line not terminated", ErrTruncated)
		}
		return 0, 0, 0, fmt.Errorf("%w: header line longer than %d bytes", ErrMalformed, maxHeaderLen)
	}
	sigLen, payloadLen, err = parseHeader(string(head[:nl]))
	if err != nil {
		return 0, 0, 0, err
	}
	if sigLen > maxSignatureSize {
		return 0, 0, 0, fmt.Errorf("%w: signature field of %d bytes (cap %d)", ErrTooLarge, sigLen, maxSignatureSize)
	}
	return sigLen, payloadLen, int64(nl + 1), nil
}

func readFull(r io.Reader, buf []byte, what string) error {
	_, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: in the %s", ErrTruncated, what)
	default:
		return fmt.Errorf("reading %s: %w", what, err)
	}
}

// parseHeader parses "reyes-signed/v1 sig=S payload=P".
func parseHeader(line string) (sigLen, payloadLen int64, err error) {
	ver, rest, _ := cut(line, ' ')
	if ver != version1 {
		return 0, 0, fmt.Errorf("%w: version %q (this reyes reads %s)", ErrUnknownFormat, ver, version1)
	}
	sigField, payloadField, ok := cut(rest, ' ')
	if !ok {
		return 0, 0, fmt.Errorf("%w: header %q", ErrMalformed, line)
	}
	sigLen, ok1 := field(sigField, "sig=")
	payloadLen, ok2 := field(payloadField, "payload=")
	if !ok1 || !ok2 || sigLen == 0 {
		return 0, 0, fmt.Errorf("%w: header %q", ErrMalformed, line)
	}
	return sigLen, payloadLen, nil
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// field parses name followed by a canonical decimal number (no sign, no
// leading zeros, at most 18 digits so that sums cannot overflow).
func field(s, name string) (int64, bool) {
	if len(s) <= len(name) || s[:len(name)] != name {
		return 0, false
	}
	num := s[len(name):]
	if len(num) > 18 || (len(num) > 1 && num[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	return n, err == nil
}

// describe names what an object that is not ours looks like.
func describe(head []byte) string {
	switch {
	case len(head) == 0:
		return "empty object"
	case bytes.HasPrefix(head, []byte("-----BEGIN PGP SIGNED MESSAGE-----")):
		return "a cleartext-signed OpenPGP message, not a reyes signed object"
	case bytes.HasPrefix(head, []byte("-----BEGIN PGP")):
		return "an armored OpenPGP message, not a reyes signed object"
	case head[0] == '{':
		return "unsigned JSON, not a reyes signed object"
	case head[0]&0x80 != 0:
		return "binary data (an OpenPGP message?), not a reyes signed object"
	default:
		return fmt.Sprintf("object does not start with %q", magic)
	}
}

// verify checks that sig is one detached signature over exactly payload,
// made by a key in trusted that is valid at now.
func verify(sig, payload []byte, trusted *Keyring, now time.Time, maxSkew time.Duration) (*Verified, error) {
	body, err := decodeSignature(sig)
	if err != nil {
		return nil, err
	}
	s, err := parseSignaturePacket(body)
	if err != nil {
		return nil, err
	}
	if s.SigType != packet.SigTypeBinary {
		return nil, fmt.Errorf("%w: signature type %#x is not a binary-document signature", ErrMalformed, uint8(s.SigType))
	}
	if !strongHash(s.Hash) {
		return nil, fmt.Errorf("%w: signature hash %s", ErrWeakAlgorithm, s.Hash)
	}
	var keyID uint64
	switch {
	case s.IssuerKeyId != nil:
		keyID = *s.IssuerKeyId
	case len(s.IssuerFingerprint) == 20: // v4
		keyID = be64(s.IssuerFingerprint[12:])
	case len(s.IssuerFingerprint) == 32: // v6
		keyID = be64(s.IssuerFingerprint[:8])
	default:
		return nil, fmt.Errorf("%w: signature names no issuer", ErrMalformed)
	}
	if trusted == nil {
		trusted = &Keyring{}
	}
	keys := trusted.entities.KeysByIdUsage(keyID, packet.KeyFlagSign)
	var candidates openpgp.EntityList
	for _, k := range keys {
		if len(s.IssuerFingerprint) > 0 && !bytes.Equal(s.IssuerFingerprint, k.PublicKey.Fingerprint) {
			continue
		}
		if err := checkKeyStrength(k.PublicKey); err != nil {
			return nil, err
		}
		candidates = append(candidates, k.Entity)
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("%w: key ID %016X is not a trusted signing key", ErrUnknownSigner, keyID)
	}
	at := now
	if s.CreationTime.After(now) {
		if s.CreationTime.Sub(now) > maxSkew {
			return nil, fmt.Errorf("%w: signed at %s, now is %s (allowed skew %s)", ErrFutureSignature,
				s.CreationTime.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), maxSkew)
		}
		at = s.CreationTime
	}
	cfg := &packet.Config{Time: func() time.Time { return at }}
	_, entity, err := openpgp.VerifyDetachedSignature(candidates, bytes.NewReader(payload), bytes.NewReader(body), cfg)
	if err != nil {
		return nil, mapVerifyError(err)
	}
	v := &Verified{Payload: payload, Signer: fingerprint(entity.PrimaryKey), SignedAt: s.CreationTime}
	for _, k := range keys {
		if k.Entity == entity {
			v.Key = fingerprint(k.PublicKey)
		}
	}
	return v, nil
}

// decodeSignature checks that sig is exactly one armored "PGP SIGNATURE"
// block and returns its binary body.
func decodeSignature(sig []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(sig, []byte("-----BEGIN PGP MESSAGE-----")),
		bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNED MESSAGE-----")):
		return nil, ErrInlineMessage
	case !bytes.HasPrefix(sig, []byte(beginSignature+"\n")) && !bytes.HasPrefix(sig, []byte(beginSignature+"\r\n")):
		return nil, fmt.Errorf("%w: signature field is not an armored detached signature", ErrMalformed)
	}
	trimmed := bytes.TrimSuffix(bytes.TrimSuffix(sig, []byte("\n")), []byte("\r"))
	if !bytes.HasSuffix(trimmed, []byte(endSignature)) {
		return nil, fmt.Errorf("%w: signature field does not end with %s", ErrMalformed, endSignature)
	}
	if bytes.Count(sig, []byte("-----BEGIN ")) != 1 {
		return nil, fmt.Errorf("%w: more than one armored block in the signature field", ErrMalformed)
	}
	block, err := armor.Decode(bytes.NewReader(sig))
	if err != nil {
		return nil, fmt.Errorf("%w: decoding armored signature: %w", ErrMalformed, err)
	}
	if block.Type != openpgp.SignatureType {
		return nil, fmt.Errorf("%w: armored block is a %q", ErrMalformed, block.Type)
	}
	body, err := io.ReadAll(io.LimitReader(block.Body, maxSignatureSize))
	if err != nil {
		return nil, fmt.Errorf("%w: decoding armored signature: %w", ErrMalformed, err)
	}
	return body, nil
}

// parseSignaturePacket parses body as exactly one signature packet.
func parseSignaturePacket(body []byte) (*packet.Signature, error) {
	tag, hashID, err := peekPacket(body)
	if err != nil {
		return nil, err
	}
	switch tag {
	case 2: // signature
	case 4, 8, 11: // one-pass signature, compressed data, literal data
		return nil, ErrInlineMessage
	default:
		return nil, fmt.Errorf("%w: packet of type %d where a signature belongs", ErrMalformed, tag)
	}
	if name, weak := weakHashIDs[hashID]; weak {
		return nil, fmt.Errorf("%w: signature hash %s", ErrWeakAlgorithm, name)
	}
	pr := packet.NewReader(bytes.NewReader(body))
	p, err := pr.Next()
	if err != nil {
		return nil, fmt.Errorf("%w: parsing signature packet: %w", ErrMalformed, err)
	}
	s, ok := p.(*packet.Signature)
	if !ok {
		return nil, fmt.Errorf("%w: packet %T where a signature belongs", ErrMalformed, p)
	}
	if _, err := pr.Next(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one packet in the signature", ErrMalformed)
	}
	return s, nil
}

// weakHashIDs are the OpenPGP hash algorithm IDs refused in signatures.
var weakHashIDs = map[byte]string{1: "MD5", 2: "SHA-1", 3: "RIPEMD-160", 11: "SHA-224"}

// peekPacket reads the tag of the first packet in body and, for a v4 or v6
// signature packet, its hash algorithm ID, without go-crypto's parser (which
// refuses MD5 with an unspecific error).
func peekPacket(body []byte) (tag, hashID byte, err error) {
	if len(body) < 2 || body[0]&0x80 == 0 {
		return 0, 0, fmt.Errorf("%w: signature is not an OpenPGP packet", ErrMalformed)
	}
	var off int
	if body[0]&0x40 != 0 { // new format
		tag = body[0] & 0x3f
		switch l := body[1]; {
		case l < 192:
			off = 2
		case l < 224:
			off = 3
		case l == 255:
			off = 6
		default: // partial lengths are not allowed for signatures
			return tag, 0, fmt.Errorf("%w: signature packet with partial length", ErrMalformed)
		}
	} else { // old format
		tag = (body[0] >> 2) & 0x0f
		switch body[0] & 3 {
		case 0:
			off = 2
		case 1:
			off = 3
		case 2:
			off = 5
		default:
			return tag, 0, fmt.Errorf("%w: signature packet of indeterminate length", ErrMalformed)
		}
	}
	// version, type, public key algorithm, hash algorithm
	if tag == 2 && len(body) >= off+4 && (body[off] == 4 || body[off] == 6) {
		hashID = body[off+3]
	}
	return tag, hashID, nil
}

func be64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// strongHash reports whether h is SHA-256 or stronger.
func strongHash(h crypto.Hash) bool {
	switch h {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA3_256, crypto.SHA3_512:
		return true
	}
	return false
}

// checkKeyStrength refuses RSA keys below 2048 bits, DSA and ElGamal keys.
func checkKeyStrength(pk *packet.PublicKey) error {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		bits, err := pk.BitLength()
		if err != nil {
			return fmt.Errorf("%w: key %s: %w", ErrWeakAlgorithm, fingerprint(pk), err)
		}
		if bits < 2048 {
			return fmt.Errorf("%w: key %s is RSA-%d (need 2048 bits or more)", ErrWeakAlgorithm, fingerprint(pk), bits)
		}
	case packet.PubKeyAlgoDSA, packet.PubKeyAlgoElGamal:
		return fmt.Errorf("%w: key %s uses DSA/ElGamal", ErrWeakAlgorithm, fingerprint(pk))
	}
	return nil
}

// mapVerifyError turns go-crypto's verification errors into this package's.
func mapVerifyError(err error) error {
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return fmt.Errorf("%w: %w", ErrUnknownSigner, err)
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return fmt.Errorf("%w: %w", ErrKeyRevoked, err)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return fmt.Errorf("%w: %w", ErrKeyExpired, err)
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return fmt.Errorf("%w: %w", ErrSignatureExpired, err)
	}
	var se pgperrors.SignatureError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	var ue pgperrors.UnsupportedError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: %w", ErrWeakAlgorithm, err)
	}
	return fmt.Errorf("%w: %w", ErrBadSignature, err)
}
