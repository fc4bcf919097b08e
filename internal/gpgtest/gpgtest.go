// Package gpgtest drives the real gpg binary in a throwaway GNUPGHOME, for
// tests of OpenPGP interoperability. It is test support only.
package gpgtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Home is one throwaway GNUPGHOME.
type Home struct {
	t   testing.TB
	Dir string
}

// New makes an empty GNUPGHOME (with a short path: gpg-agent puts its
// socket there) and stops its agent and removes it when the test ends. It
// skips the test, saying so, when gpg is not installed.
func New(t testing.TB) *Home {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed (Debian package gnupg); skipping the GnuPG interoperability test")
	}
	dir, err := os.MkdirTemp("", "rg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The agent calibrates passphrase hashing to ~100 ms per use, which
	// makes key generation with a passphrase take seconds; tests need speed.
	if err := os.WriteFile(filepath.Join(dir, "gpg-agent.conf"), []byte("s2k-count 65536\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &Home{t: t, Dir: dir}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = h.Env()
		_ = cmd.Run()
		_ = os.RemoveAll(dir)
	})
	return h
}

// Env is the environment gpg runs with: this GNUPGHOME, C locale, UTC.
func (h *Home) Env() []string {
	return append(os.Environ(), "GNUPGHOME="+h.Dir, "LC_ALL=C", "TZ=UTC")
}

// Try runs gpg in batch mode (no tty, --yes, trust everything, an empty
// passphrase unless args start with their own --passphrase) with stdin,
// and returns its stdout, its stderr and the exit error.
func (h *Home) Try(stdin []byte, args ...string) (stdout, stderr []byte, err error) {
	base := []string{"--batch", "--no-tty", "--yes", "--trust-model", "always",
		"--pinentry-mode", "loopback", "--passphrase", ""}
	if len(args) > 0 && args[0] == "--passphrase" {
		base = base[:len(base)-2]
	}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Env = h.Env()
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

// Run is Try that fails the test on a non-zero exit and returns stdout.
func (h *Home) Run(stdin []byte, args ...string) []byte {
	h.t.Helper()
	out, errOut, err := h.Try(stdin, args...)
	if err != nil {
		h.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}
