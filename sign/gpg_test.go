package sign

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/internal/gpgtest"
)

// gnupg drives the real gpg binary in a throwaway GNUPGHOME, with the
// key helpers this package's tests need.
type gnupg struct {
	*gpgtest.Home
	t testing.TB
}

func newGnuPG(t testing.TB) *gnupg { return &gnupg{Home: gpgtest.New(t), t: t} }

func (g *gnupg) run(stdin []byte, args ...string) []byte { g.t.Helper(); return g.Run(stdin, args...) }

func (g *gnupg) try(stdin []byte, args ...string) ([]byte, []byte, error) {
	return g.Try(stdin, args...)
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
