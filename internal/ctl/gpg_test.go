package ctl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/gpgtest"
)

// gpgHome is a throwaway GNUPGHOME for the real gpg binary.
type gpgHome struct{ *gpgtest.Home }

func newGPGHome(t *testing.T) gpgHome { return gpgHome{gpgtest.New(t)} }

// gpg runs gpg and returns its status-fd output, its stderr and the exit
// error.
func (h gpgHome) gpg(args ...string) (status, stderr string, err error) {
	out, errOut, err := h.Try(nil, append([]string{"--status-fd", "1"}, args...)...)
	return string(out), string(errOut), err
}

// TestGnuPG: a key made by "reyesctl keygen" is imported by gpg, and an
// object sealed with it and split by "reyesctl unpack" verifies with
// "gpg --verify"; a changed payload or a forged object does not.
func TestGnuPG(t *testing.T) {
	f := newFixture(t)
	h := newGPGHome(t)
	fpr := f.signer.Fingerprint()
	now := time.Now()

	t.Run("import keygen's public key", func(t *testing.T) {
		status, stderr, err := h.gpg("--import", f.public)
		if err != nil {
			t.Fatalf("gpg --import: %v\n%s", err, stderr)
		}
		if !strings.Contains(status, "IMPORT_OK") || !strings.Contains(status, fpr) {
			t.Fatalf("gpg --import status lacks IMPORT_OK %s:\n%s", fpr, status)
		}
	})

	unpack := func(t *testing.T, obj string) string {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "out")
		if _, _, err := runCLI(t, now, "unpack", obj, dir); err != nil {
			t.Fatalf("unpack: %v", err)
		}
		return dir
	}
	verify := func(dir string) (string, string, error) {
		return h.gpg("--verify", filepath.Join(dir, SignatureFile), filepath.Join(dir, PayloadFile))
	}

	t.Run("gpg verifies an unpacked object", func(t *testing.T) {
		dir := unpack(t, f.good)
		status, stderr, err := verify(dir)
		if err != nil {
			t.Fatalf("gpg --verify: %v\n%s\n%s", err, status, stderr)
		}
		if !strings.Contains(status, "VALIDSIG "+fpr) {
			t.Errorf("no VALIDSIG %s in:\n%s", fpr, status)
		}
	})
	t.Run("gpg rejects a changed payload", func(t *testing.T) {
		dir := unpack(t, f.good)
		p := filepath.Join(dir, PayloadFile)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte(`"serial":42`), []byte(`"serial":43`), 1)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		status, _, err := verify(dir)
		if err == nil || !strings.Contains(status, "BADSIG") {
			t.Fatalf("gpg --verify accepted a changed payload (err %v):\n%s", err, status)
		}
	})
	t.Run("gpg rejects an unpacked tampered object", func(t *testing.T) {
		status, _, err := verify(unpack(t, f.tampered))
		if err == nil || !strings.Contains(status, "BADSIG") {
			t.Fatalf("gpg --verify accepted a tampered object (err %v):\n%s", err, status)
		}
	})
	t.Run("gpg does not know the other signer", func(t *testing.T) {
		status, _, err := verify(unpack(t, f.untrusted))
		if err == nil || !strings.Contains(status, "NO_PUBKEY") {
			t.Fatalf("gpg --verify accepted an object by an unknown key (err %v):\n%s", err, status)
		}
	})
}
