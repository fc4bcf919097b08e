package sign

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

var testPayload = []byte(`{"format":"reyes.ruleset/v1","type":"security-groups","scope":"test"}` + "\n")

// topLevel lists the sentinels that callers branch on; every rejection must
// match exactly one of them.
var topLevel = []error{
	ErrUnknownFormat, ErrMalformed, ErrTooLarge, ErrUnknownSigner, ErrBadSignature,
	ErrWeakAlgorithm, ErrKeyExpired, ErrSignatureExpired, ErrFutureSignature, ErrKeyRevoked,
}

// checkErr fails unless err matches want and no other top-level sentinel.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	for _, s := range topLevel {
		if errors.Is(err, s) && !errors.Is(want, s) {
			t.Fatalf("error %v also matches %v", err, s)
		}
	}
}

func TestGnuPGKeysRoundTrip(t *testing.T) {
	g := newGnuPG(t)
	for _, algo := range []string{"ed25519", "rsa3072"} {
		t.Run(algo, func(t *testing.T) {
			fpr := g.genKey("Leader "+algo+" <leader-"+algo+"@example.org>", algo, "sign", "never")
			for _, armored := range []bool{true, false} {
				t.Run(fmt.Sprintf("armored=%v", armored), func(t *testing.T) {
					flag := []string{}
					if armored {
						flag = []string{"--armor"}
					}
					sec := g.run(nil, append(flag, "--export-secret-keys", fpr)...)
					pub := g.run(nil, append(flag, "--export", fpr)...)
					signer, err := ParseSigner(sec)
					if err != nil {
						t.Fatalf("ParseSigner: %v", err)
					}
					if signer.Fingerprint() != fpr {
						t.Errorf("signer fingerprint %s, gpg says %s", signer.Fingerprint(), fpr)
					}
					kr, err := ParseKeyring(pub)
					if err != nil {
						t.Fatalf("ParseKeyring: %v", err)
					}
					now := time.Now()
					obj, v := sealOpen(t, signer, kr, now)
					if !bytes.Equal(v.Payload, testPayload) || v.Signer != fpr || v.Key != fpr {
						t.Errorf("Open = %q by %s/%s, want %q by %s", v.Payload, v.Signer, v.Key, testPayload, fpr)
					}
					payload, sig, err := Unpack(obj)
					if err != nil {
						t.Fatalf("Unpack: %v", err)
					}
					g.verify(sig, payload)
					// And the other way round: gpg signs, reyes opens.
					gsig := g.detachSign(fpr, testPayload, "--digest-algo", "SHA512")
					if _, err := Open(bytes.NewReader(pack(gsig, testPayload)), kr, now); err != nil {
						t.Errorf("Open of a gpg signature: %v", err)
					}
				})
			}
		})
	}
}

func TestReyesKeyInGnuPG(t *testing.T) {
	g := newGnuPG(t)
	now := time.Now()
	sec, pub, err := GenerateKey("Reyes Leader", "leader@example.org", now)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ParseSigner(sec)
	if err != nil {
		t.Fatalf("ParseSigner of a generated key: %v", err)
	}
	kr, err := ParseKeyring(pub)
	if err != nil {
		t.Fatalf("ParseKeyring of a generated key: %v", err)
	}
	if got := kr.Fingerprints(); len(got) != 1 || got[0] != signer.Fingerprint() {
		t.Fatalf("keyring %v, signer %s", got, signer.Fingerprint())
	}
	// Followers get only the public key.
	g.run(pub, "--import")
	obj, err := Seal(testPayload, signer, now)
	if err != nil {
		t.Fatal(err)
	}
	payload, sig, err := Unpack(obj)
	if err != nil {
		t.Fatal(err)
	}
	g.verify(sig, payload)
	// The secret key imports too, and gpg signs with it.
	g.run(sec, "--import")
	gsig := g.detachSign(signer.Fingerprint(), testPayload)
	if _, err := Open(bytes.NewReader(pack(gsig, testPayload)), kr, now); err != nil {
		t.Errorf("Open of a gpg signature made with a reyes key: %v", err)
	}
}

func TestSigningSubkey(t *testing.T) {
	g := newGnuPG(t)
	primary := g.genKey("Offline <offline@example.org>", "ed25519", "cert", "never")
	sub := g.addKey(primary, "ed25519", "sign", "never")
	pub := g.run(nil, "--armor", "--export", primary)
	kr, err := ParseKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, export := range []string{"--export-secret-keys", "--export-secret-subkeys"} {
		t.Run(export, func(t *testing.T) {
			signer, err := ParseSigner(g.run(nil, "--armor", export, primary))
			if err != nil {
				t.Fatalf("ParseSigner: %v", err)
			}
			obj, v := sealOpen(t, signer, kr, now)
			if v.Signer != primary || v.Key != sub {
				t.Errorf("signed by %s/%s, want %s/%s", v.Signer, v.Key, primary, sub)
			}
			payload, sig, _ := Unpack(obj)
			g.verify(sig, payload)
		})
	}
}

func TestKeyFileErrors(t *testing.T) {
	g := newGnuPG(t)
	fpr := g.genKey("Locked <locked@example.org>", "ed25519", "sign", "never", "--passphrase", "secret")
	locked := g.run(nil, "--passphrase", "secret", "--batch", "--pinentry-mode", "loopback", "--armor", "--export-secret-keys", fpr)
	pub := g.run(nil, "--export", fpr)
	kbx := filepath.Join(g.Dir, "pubring.kbx")
	dir := t.TempDir()
	tests := []struct {
		name string
		load func() error
		want error
	}{
		{"passphrase", func() error { _, err := ParseSigner(locked); return err }, ErrPassphrase},
		{"keybox keyring", func() error { _, err := LoadKeyring(kbx); return err }, ErrKeybox},
		{"keybox signer", func() error { _, err := LoadSigner(kbx); return err }, ErrKeybox},
		{"public key as signer", func() error { _, err := ParseSigner(pub); return err }, ErrNoKey},
		{"empty", func() error { _, err := ParseKeyring(nil); return err }, ErrNoKey},
		{"garbage", func() error { _, err := ParseKeyring([]byte("not a key\n")); return err }, ErrNoKey},
		{"signature as key", func() error {
			_, err := ParseKeyring(g.detachSign(fpr, testPayload, "--passphrase", "secret"))
			return err
		}, ErrNoKey},
		{"missing file", func() error { _, err := LoadKeyring(filepath.Join(dir, "nope.asc")); return err }, os.ErrNotExist},
		{"no files", func() error { _, err := LoadKeyring(); return err }, ErrNoKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.load()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if err := (func() error { _, err := ParseSigner(locked); return err })(); !strings.Contains(err.Error(), "gpg --passwd") {
		t.Errorf("passphrase error does not say what to do: %v", err)
	}
	if _, err := LoadKeyring(kbx); !strings.Contains(err.Error(), "gpg --export") {
		t.Errorf("keybox error does not say to use gpg --export: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	now := time.Now()
	oldSec, oldPub, err := GenerateKey("Old", "old@example.org", now)
	if err != nil {
		t.Fatal(err)
	}
	newSec, newPub, err := GenerateKey("New", "new@example.org", now)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fromFiles, err := LoadKeyring(writeTemp(t, dir, "old.asc", oldPub), writeTemp(t, dir, "new.asc", newPub))
	if err != nil {
		t.Fatal(err)
	}
	oneFile, err := LoadKeyring(writeTemp(t, dir, "both.asc", append(append([]byte{}, oldPub...), newPub...)))
	if err != nil {
		t.Fatal(err)
	}
	for name, kr := range map[string]*Keyring{"two files": fromFiles, "one file": oneFile} {
		if n := len(kr.Fingerprints()); n != 2 {
			t.Fatalf("%s: %d keys, want 2", name, n)
		}
		for _, sec := range [][]byte{oldSec, newSec} {
			signer, err := ParseSigner(sec)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := Seal(testPayload, signer, now)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Open(bytes.NewReader(obj), kr, now); err != nil {
				t.Errorf("%s: Open of an object signed by %s: %v", name, signer.Fingerprint(), err)
			}
		}
	}
}

// rejectFixture holds the keys and objects the rejection cases are built from.
type rejectFixture struct {
	g       *gnupg
	now     time.Time
	kr      *Keyring // trusts fpr, weak, expiring and revoked
	signer  *Signer  // fpr
	fpr     string
	obj     []byte // testPayload sealed by signer at now
	other   *Signer
	weak    string // RSA-1024
	expire  string // expires in a day
	revoked string
	// revokedSig is a gpg signature made by revoked before its revocation.
	revokedSig []byte
}

func newRejectFixture(t *testing.T) *rejectFixture {
	g := newGnuPG(t)
	f := &rejectFixture{g: g}
	f.fpr = g.genKey("Good <good@example.org>", "ed25519", "sign", "never")
	f.weak = g.genKey("Weak <weak@example.org>", "rsa1024", "sign", "never")
	f.expire = g.genKey("Expiring <exp@example.org>", "ed25519", "sign", "1d")
	f.revoked = g.genKey("Revoked <rev@example.org>", "ed25519", "sign", "never")
	// After key generation: a key created after "now" is not valid yet.
	f.now = time.Now().Add(time.Second)
	f.revokedSig = g.detachSign(f.revoked, testPayload)
	rev, err := os.ReadFile(filepath.Join(g.Dir, "openpgp-revocs.d", f.revoked+".rev"))
	if err != nil {
		t.Fatal(err)
	}
	// gpg writes the certificate with a leading ':' so that it cannot be
	// imported by accident; this test does it on purpose.
	g.run(bytes.ReplaceAll(rev, []byte(":-----BEGIN"), []byte("-----BEGIN")), "--import")
	var errKr error
	f.kr, errKr = ParseKeyring(g.run(nil, "--export", f.fpr, f.weak, f.expire, f.revoked))
	if errKr != nil {
		t.Fatal(errKr)
	}
	if f.signer, err = ParseSigner(g.run(nil, "--export-secret-keys", f.fpr)); err != nil {
		t.Fatal(err)
	}
	if f.obj, err = Seal(testPayload, f.signer, f.now); err != nil {
		t.Fatal(err)
	}
	f.other, _, _ = testKey(t, "Other", "other@example.org", f.now)
	return f
}

// patchHash re-armors an armored v4 signature with its hash algorithm ID
// replaced.
func patchHash(t *testing.T, sig []byte, id byte) []byte {
	block, err := armor.Decode(bytes.NewReader(sig))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	off := 2 // new-format header with a one-octet length
	if body[0]&0x40 == 0 {
		off = 1 + 1<<(body[0]&3)
	}
	body[off+3] = id
	var out bytes.Buffer
	w, _ := armor.Encode(&out, "PGP SIGNATURE", nil)
	w.Write(body)
	w.Close()
	out.WriteByte('\n')
	return out.Bytes()
}

func TestOpenRejects(t *testing.T) {
	f := newRejectFixture(t)
	g := f.g
	sig, _, err := readObject(bytes.NewReader(f.obj), DefaultMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	otherObj, err := Seal(testPayload, f.other, f.now)
	if err != nil {
		t.Fatal(err)
	}
	longer := append(append([]byte{}, testPayload...), "extra"...)
	sigLonger, _, _ := readObject(bytes.NewReader(mustSeal(t, longer, f.signer, f.now)), DefaultMaxSize)
	flipped := bytes.Clone(f.obj)
	flipped[len(flipped)-3] ^= 0x01
	futureObj := mustSeal(t, testPayload, f.signer, f.now.Add(time.Hour))

	tests := []struct {
		name string
		obj  []byte
		now  time.Time
		opts []Option
		want error
	}{
		{"tampered payload", flipped, f.now, nil, ErrBadSignature},
		{"other key", otherObj, f.now, nil, ErrUnknownSigner},
		{"payload missing the signed tail", pack(sigLonger, testPayload), f.now, nil, ErrBadSignature},
		{"payload with extra data", pack(sig, longer), f.now, nil, ErrBadSignature},
		{"truncated payload", f.obj[:len(f.obj)-1], f.now, nil, ErrTruncated},
		{"truncated signature", f.obj[:100], f.now, nil, ErrTruncated},
		{"truncated header", f.obj[:10], f.now, nil, ErrTruncated},
		{"trailing data", append(bytes.Clone(f.obj), '\n'), f.now, nil, ErrTrailingData},
		{"sha1 signature by gpg", pack(g.detachSign(f.fpr, testPayload, "--digest-algo", "SHA1"), testPayload), f.now, nil, ErrWeakAlgorithm},
		{"md5 signature", pack(patchHash(t, g.detachSign(f.fpr, testPayload, "--digest-algo", "SHA1"), 1), testPayload), f.now, nil, ErrWeakAlgorithm},
		{"sha224 signature by gpg", pack(g.detachSign(f.fpr, testPayload, "--digest-algo", "SHA224"), testPayload), f.now, nil, ErrWeakAlgorithm},
		{"rsa1024 key", pack(g.detachSign(f.weak, testPayload), testPayload), f.now, nil, ErrWeakAlgorithm},
		{"expired key", pack(g.detachSign(f.expire, testPayload), testPayload), f.now.Add(48 * time.Hour), nil, ErrKeyExpired},
		{"revoked key", pack(f.revokedSig, testPayload), f.now, nil, ErrKeyRevoked},
		{"signature from the future", futureObj, f.now, nil, ErrFutureSignature},
		{"over the cap", f.obj, f.now, []Option{WithMaxSize(int64(len(f.obj) - 1))}, ErrTooLarge},
		{"declared size over the cap", []byte("reyes-signed/v1 sig=10 payload=999999999999\n"), f.now, nil, ErrTooLarge},
		{"signature field over its cap", []byte("reyes-signed/v1 sig=999999 payload=1\n"), f.now, nil, ErrTooLarge},
		{"trailing data beyond the cap", append(bytes.Clone(f.obj), make([]byte, 100)...), f.now, []Option{WithMaxSize(int64(len(f.obj) + 10))}, ErrTrailingData},
		{"unknown version", append([]byte("reyes-signed/v2"), f.obj[len("reyes-signed/v1"):]...), f.now, nil, ErrUnknownFormat},
		{"bare json", testPayload, f.now, nil, ErrUnknownFormat},
		{"empty", nil, f.now, nil, ErrUnknownFormat},
		{"cleartext-signed by gpg", g.run(testPayload, "--local-user", f.fpr, "--clearsign"), f.now, nil, ErrUnknownFormat},
		{"binary gpg message", g.run(testPayload, "--local-user", f.fpr, "--sign"), f.now, nil, ErrUnknownFormat},
		{"inline message in the signature field", pack(g.run(testPayload, "--local-user", f.fpr, "--armor", "--sign"), testPayload), f.now, nil, ErrInlineMessage},
		{"text-mode signature", pack(g.detachSign(f.fpr, testPayload, "--textmode"), testPayload), f.now, nil, ErrMalformed},
		{"two signatures", pack(g.run(testPayload, "--local-user", f.fpr, "--local-user", f.expire, "--armor", "--detach-sign"), testPayload), f.now, nil, ErrMalformed},
		{"leading zero", []byte(strings.Replace(string(f.obj), "sig=", "sig=0", 1)), f.now, nil, ErrMalformed},
		{"zero signature", []byte("reyes-signed/v1 sig=0 payload=0\n"), f.now, nil, ErrMalformed},
		{"no payload field", []byte("reyes-signed/v1 sig=10\n0123456789"), f.now, nil, ErrMalformed},
		{"header too long", []byte("reyes-signed/v1 " + strings.Repeat(" ", 80)), f.now, nil, ErrMalformed},
		{"garbage signature", pack([]byte("-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"), testPayload), f.now, nil, ErrMalformed},
		{"not armored", pack(bytes.Repeat([]byte("x"), 40), testPayload), f.now, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open(bytes.NewReader(tt.obj), f.kr, tt.now, tt.opts...)
			if got != nil {
				t.Errorf("Open returned a payload with error %v", err)
			}
			t.Log(err)
			checkErr(t, err, tt.want)
			got, err = OpenBytes(tt.obj, f.kr, tt.now, tt.opts...)
			if got != nil {
				t.Errorf("OpenBytes returned a payload with error %v", err)
			}
			checkErr(t, err, tt.want)
		})
	}
	t.Run("nil keyring", func(t *testing.T) {
		_, err := Open(bytes.NewReader(f.obj), nil, f.now)
		checkErr(t, err, ErrUnknownSigner)
	})
	t.Run("within clock skew", func(t *testing.T) {
		obj := mustSeal(t, testPayload, f.signer, f.now.Add(time.Minute))
		if _, err := Open(bytes.NewReader(obj), f.kr, f.now); err != nil {
			t.Errorf("a signature one minute ahead: %v", err)
		}
	})
	t.Run("exactly at the cap", func(t *testing.T) {
		if _, err := Open(bytes.NewReader(f.obj), f.kr, f.now, WithMaxSize(int64(len(f.obj)))); err != nil {
			t.Error(err)
		}
	})
	t.Run("expiring key before expiry", func(t *testing.T) {
		if _, err := Open(bytes.NewReader(pack(g.detachSign(f.expire, testPayload), testPayload)), f.kr, f.now); err != nil {
			t.Error(err)
		}
	})
}

func TestSealRejects(t *testing.T) {
	f := newRejectFixture(t)
	tests := []struct {
		name string
		key  string
		now  time.Time
		want error
	}{
		{"weak key", f.weak, f.now, ErrWeakAlgorithm},
		{"expired key", f.expire, f.now.Add(48 * time.Hour), ErrNoKey},
		{"revoked key", f.revoked, f.now, ErrNoKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSigner(f.g.run(nil, "--export-secret-keys", tt.key))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Seal(testPayload, s, tt.now); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestObjectFormat(t *testing.T) {
	s, _, _ := testKey(t, "Fmt", "fmt@example.org", time.Now())
	for _, payload := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0, 0xff, '\n'}, 1000)} {
		obj := mustSeal(t, payload, s, time.Now())
		head, rest, _ := bytes.Cut(obj, []byte("\n"))
		var sigLen, payloadLen int
		if _, err := fmt.Sscanf(string(head), "reyes-signed/v1 sig=%d payload=%d", &sigLen, &payloadLen); err != nil {
			t.Fatalf("header %q: %v", head, err)
		}
		if payloadLen != len(payload) || sigLen+payloadLen != len(rest) {
			t.Fatalf("header %q does not match the %d bytes that follow", head, len(rest))
		}
		if !bytes.HasPrefix(rest, []byte(beginSignature+"\n")) || !bytes.HasSuffix(rest[:sigLen], []byte(endSignature+"\n")) {
			t.Fatalf("signature field is not one armored signature:\n%s", rest[:sigLen])
		}
		if !bytes.Equal(rest[sigLen:], payload) {
			t.Fatal("payload bytes differ")
		}
		got, err := Open(bytes.NewReader(obj), s.Keyring(), time.Now())
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("Open = %q, %v", got, err)
		}
	}
}

// testKey generates a key for name and email at now: its signer and the
// armored secret and public keys.
func testKey(t testing.TB, name, email string, now time.Time) (s *Signer, secret, public []byte) {
	t.Helper()
	secret, public, err := GenerateKey(name, email, now)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = ParseSigner(secret); err != nil {
		t.Fatal(err)
	}
	return s, secret, public
}

// sealOpen seals testPayload with s at now and opens the object with kr.
func sealOpen(t *testing.T, s *Signer, kr *Keyring, now time.Time) (obj []byte, v *Verified) {
	t.Helper()
	obj = mustSeal(t, testPayload, s, now)
	v, err := OpenVerified(bytes.NewReader(obj), kr, now)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return obj, v
}

func mustSeal(t testing.TB, payload []byte, s *Signer, now time.Time) []byte {
	t.Helper()
	obj, err := Seal(payload, s, now)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestParseKeyringRefusesSecretKeys(t *testing.T) {
	sec, pub, err := GenerateKey("k", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKeyring(sec); !errors.Is(err, ErrSecretKey) {
		t.Errorf("ParseKeyring(secret key): %v, want ErrSecretKey", err)
	}
	if _, err := ParseKeyring(pub); err != nil {
		t.Errorf("ParseKeyring(public key): %v", err)
	}
}

func TestKeyringRefusesCopiesOfOneKey(t *testing.T) {
	_, pub, err := GenerateKey("k", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKeyring(append(append([]byte{}, pub...), pub...)); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("ParseKeyring(two copies): %v, want ErrDuplicateKey", err)
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.asc"), filepath.Join(dir, "b.asc")
	os.WriteFile(a, pub, 0o644)
	os.WriteFile(b, pub, 0o644)
	if _, err := LoadKeyring(a, b); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("LoadKeyring(two copies): %v, want ErrDuplicateKey", err)
	}
}

// TestOpenDoesNotTrustTheHeaderForAllocation: a short object whose header
// claims a huge payload under a huge cap is truncated, not a panic or a
// giant allocation.
func TestOpenDoesNotTrustTheHeaderForAllocation(t *testing.T) {
	obj := []byte("reyes-signed/v1 sig=1 payload=999999999999999999\n-")
	_, err := Open(bytes.NewReader(obj), &Keyring{}, time.Now(), WithMaxSize(1<<62))
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("Open: %v, want ErrTruncated", err)
	}
}
