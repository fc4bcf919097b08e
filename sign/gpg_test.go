package sign

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gnupg drives the real gpg binary in a throwaway GNUPGHOME.
type gnupg struct {
	t    testing.TB
	home string
}

// newGnuPG makes an empty GNUPGHOME (short path: the agent's socket lives in
// it) and stops its agent when the test ends. It skips when gpg is absent.
func newGnuPG(t testing.TB) *gnupg {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed (Debian package gnupg); skipping GnuPG interoperability test")
	}
	home, err := os.MkdirTemp("", "rg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	// The agent calibrates passphrase hashing to ~100 ms per use, which
	// makes key generation with a passphrase take seconds; tests need speed.
	if err := os.WriteFile(filepath.Join(home, "gpg-agent.conf"), []byte("s2k-count 65536\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gnupg{t: t, home: home}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = g.env()
		_ = cmd.Run()
		_ = os.RemoveAll(home)
	})
	return g
}

func (g *gnupg) env() []string {
	return append(os.Environ(), "GNUPGHOME="+g.home, "LC_ALL=C", "TZ=UTC")
}

// run runs gpg with args and stdin and returns its stdout; it fails the test
// on a non-zero exit.
func (g *gnupg) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, errOut, err := g.try(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// try runs gpg and returns stdout, stderr and the exit error.
func (g *gnupg) try(stdin []byte, args ...string) ([]byte, []byte, error) {
	base := []string{"--batch", "--no-tty", "--yes", "--trust-model", "always",
		"--pinentry-mode", "loopback", "--passphrase", ""}
	if len(args) > 0 && args[0] == "--passphrase" { // caller sets its own
		base = base[:len(base)-2]
	}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Env = g.env()
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

// genKey makes a key with gpg --quick-gen-key and returns its fingerprint.
func (g *gnupg) genKey(uid, algo, usage, expire string, extra ...string) string {
	g.t.Helper()
	args := append(extra, "--status-fd", "1", "--quick-gen-key", uid, algo, usage, expire)
	out := g.run(nil, args...)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 4 && f[1] == "KEY_CREATED" {
			return f[3]
		}
	}
	g.t.Fatalf("gpg --quick-gen-key %s %s: no KEY_CREATED in status output:\n%s", uid, algo, out)
	return ""
}

// addKey adds a subkey with gpg --quick-add-key and returns its fingerprint.
func (g *gnupg) addKey(fpr, algo, usage, expire string) string {
	g.t.Helper()
	out := g.run(nil, "--status-fd", "1", "--quick-add-key", fpr, algo, usage, expire)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 4 && f[1] == "KEY_CREATED" {
			return f[3]
		}
	}
	g.t.Fatalf("gpg --quick-add-key %s: no KEY_CREATED:\n%s", fpr, out)
	return ""
}

// write writes data to name in a fresh temp directory and returns the path.
func writeTemp(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// verify runs gpg --verify sig payload and fails the test unless it succeeds.
func (g *gnupg) verify(sig, payload []byte) {
	g.t.Helper()
	dir := g.t.TempDir()
	s := writeTemp(g.t, dir, "payload.json.asc", sig)
	p := writeTemp(g.t, dir, "payload.json", payload)
	if _, errOut, err := g.try(nil, "--verify", s, p); err != nil {
		g.t.Fatalf("gpg --verify rejected what reyes signed: %v\n%s", err, errOut)
	}
}

// detachSign makes an armored detached signature with gpg.
func (g *gnupg) detachSign(key string, payload []byte, extra ...string) []byte {
	g.t.Helper()
	args := append([]string{"--local-user", key + "!", "--armor", "--detach-sign"}, extra...)
	return g.run(payload, args...)
}
