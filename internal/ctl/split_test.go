package ctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// splitFixture is the fixture's good ruleset published in the parts
// layout (a root and its parts in a file store), with small bins so that
// there are several parts of each kind.
type splitFixture struct {
	*fixture
	root  string // path of the signed root
	store *reyes.FileStore
	parts *ruleset.Root
}

func newSplitFixture(t *testing.T) *splitFixture {
	t.Helper()
	f := newFixture(t)
	root, parts, err := ruleset.Split(f.rs, ruleset.SplitOptions{TargetBinBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	s := &splitFixture{fixture: f, root: filepath.Join(f.dir, "split", "root.signed"), parts: root}
	if err := os.MkdirAll(filepath.Dir(s.root), 0o755); err != nil {
		t.Fatal(err)
	}
	s.store = reyes.NewFileStore(s.root, reyes.StoreOptions{})
	ctx := context.Background()
	for name, b := range parts {
		if err := s.store.Parts().Put(ctx, name, b); err != nil {
			t.Fatal(err)
		}
	}
	payload, err := ruleset.EncodeRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sign.Seal(payload, f.signer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.Put(ctx, obj); err != nil {
		t.Fatal(err)
	}
	return s
}

// republishCompressed signs the fixture's root compressed, as leaders do.
func (s *splitFixture) republishCompressed(t *testing.T) {
	t.Helper()
	text, err := ruleset.EncodeRoot(s.parts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := ruleset.CompressRoot(text)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sign.Seal(payload, s.signer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.Put(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

// TestSplitVerifyInspectExplain: every command that reads an object reads
// a root and all its parts, and says what a whole object of the same
// estate makes it say.
func TestSplitVerifyInspectExplain(t *testing.T) {
	f := newSplitFixture(t)
	now := time.Now()
	if len(f.parts.Parts) < 5 {
		t.Fatalf("only %d parts: the fixture wants several bins", len(f.parts.Parts))
	}
	same := func(t *testing.T, args ...string) {
		t.Helper()
		whole, _, err := runCLI(t, now, append(args, f.good)...)
		if err != nil {
			t.Fatalf("%v on the whole object: %v", args, err)
		}
		split, _, err := runCLI(t, now, append(args, f.root)...)
		if err != nil {
			t.Fatalf("%v on the root: %v", args, err)
		}
		// The lines naming the object and its format differ; the rest
		// must not.
		strip := func(s string) []string {
			var out []string
			for _, l := range strings.Split(s, "\n") {
				if strings.HasPrefix(l, "object:") || strings.HasPrefix(l, "format:") || strings.HasPrefix(l, "changes:") || strings.HasPrefix(l, "signed at:") ||
					strings.HasPrefix(l, "generated_at:") || strings.HasPrefix(l, "expired:") {
					continue
				}
				out = append(out, l)
			}
			return out
		}
		if w, s := strip(whole), strip(split); !slices.Equal(w, s) {
			t.Fatalf("%v differs on the root:\nwhole:\n%s\nroot:\n%s", args, whole, split)
		}
		if args[0] != "explain" && !strings.Contains(split, ruleset.RootFormat) {
			t.Errorf("%v on a root does not say its format:\n%s", args, split)
		}
	}
	t.Run("verify", func(t *testing.T) { same(t, "verify", "--trusted-key", f.public) })
	t.Run("inspect", func(t *testing.T) { same(t, "inspect", "--trusted-key", f.public) })
	t.Run("explain", func(t *testing.T) {
		same(t, "explain", "--trusted-key", f.public, "--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443", "--store")
	})
	t.Run("compressed", func(t *testing.T) {
		f.republishCompressed(t)
		same(t, "verify", "--trusted-key", f.public)
		same(t, "inspect", "--trusted-key", f.public)
	})
}

// TestSplitInspectChanges: inspect says whether a root lists what changed
// since the root before it, and about how many records.
func TestSplitInspectChanges(t *testing.T) {
	f := newSplitFixture(t)
	now := time.Now()
	out, _, err := runCLI(t, now, "inspect", "--trusted-key", f.public, f.root)
	if err != nil || !regexp.MustCompile(`changes: +none listed`).MatchString(out) {
		t.Fatalf("inspect without changes (%v):\n%s", err, out)
	}
	var keys []string
	for i := range 90 {
		keys = append(keys, ruleset.ViewKey(ruleset.KindInterfaces, fmt.Sprintf("eni-%017x", i)))
	}
	r := *f.parts
	r.Changes = ruleset.NewChanges([32]byte{0xab, 0xcd}, keys)
	payload, err := ruleset.EncodeRoot(&r)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sign.Seal(payload, f.signer, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.Put(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCLI(t, now, "inspect", "--trusted-key", f.public, f.root)
	m := regexp.MustCompile(`changes: +since the root whose payload has SHA-256 abcd0{60}: about (\d+) records`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("inspect with changes (%v):\n%s", err, out)
	}
	if n, _ := strconv.Atoi(m[1]); n < 80 || n > 100 {
		t.Fatalf("about %d records, want about 90", n)
	}
}

// corrupt flips a bit of the last byte but one of the file at path (in a
// part, the end of its last line).
func corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-2] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSplitRefusals: a part that does not match the root, or is missing,
// fails verify naming it; so does a root whose signature is bad.
func TestSplitRefusals(t *testing.T) {
	now := time.Now()
	t.Run("changed part", func(t *testing.T) {
		f := newSplitFixture(t)
		victim := f.parts.Parts[len(f.parts.Parts)/2]
		corrupt(t, filepath.Join(f.store.Path()+".parts", victim.Name))
		_, _, err := runCLI(t, now, "verify", "--trusted-key", f.public, f.root)
		if !errors.Is(err, ruleset.ErrPartMismatch) || !strings.Contains(err.Error(), victim.Name) {
			t.Fatalf("verify with a changed part: %v", err)
		}
	})
	t.Run("missing part", func(t *testing.T) {
		f := newSplitFixture(t)
		victim := f.parts.Parts[0]
		if err := os.Remove(filepath.Join(f.store.Path()+".parts", victim.Name)); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCLI(t, now, "inspect", "--trusted-key", f.public, f.root)
		if !errors.Is(err, ruleset.ErrPartMissing) || !strings.Contains(err.Error(), victim.Name) {
			t.Fatalf("inspect with a missing part: %v", err)
		}
	})
	t.Run("untrusted root", func(t *testing.T) {
		f := newSplitFixture(t)
		_, _, err := runCLI(t, now, "verify", "--trusted-key", f.otherPub, f.root)
		if !errors.Is(err, sign.ErrUnknownSigner) {
			t.Fatalf("verify with another key: %v", err)
		}
	})
}

// TestSplitUnpackStockTools: unpack writes the root, its signature and the
// parts so that gpg --verify checks the root and sha256sum -c checks every
// part, and both notice a change.
func TestSplitUnpackStockTools(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("sha256sum is not installed")
	}
	f := newSplitFixture(t)
	h := newGPGHome(t)
	if _, stderr, err := h.gpg("--import", f.public); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, stderr)
	}
	dir := filepath.Join(t.TempDir(), "out")
	out, _, err := runCLI(t, time.Now(), "unpack", f.root, dir)
	if err != nil {
		t.Fatalf("unpack: %v", err)
	}
	if !strings.Contains(out, "sha256sum -c") || !strings.Contains(out, "nothing was verified") {
		t.Errorf("unpack says:\n%s", out)
	}
	status, stderr, err := h.gpg("--verify", filepath.Join(dir, RootSignatureFile), filepath.Join(dir, RootFile))
	if err != nil || !strings.Contains(status, "VALIDSIG "+f.signer.Fingerprint()) {
		t.Fatalf("gpg --verify of the root: %v\n%s\n%s", err, status, stderr)
	}
	// A compressed root (as leaders sign it): gpg checks the signed
	// bytes, gunzip gives the text sha256sum reads.
	zdir := filepath.Join(t.TempDir(), "z")
	f.republishCompressed(t)
	out, _, err = runCLI(t, time.Now(), "unpack", f.root, zdir)
	if err != nil || !strings.Contains(out, "gunzip -c") {
		t.Fatalf("unpack of a compressed root: %v\n%s", err, out)
	}
	status, stderr, err = h.gpg("--verify", filepath.Join(zdir, RootGzipSignatureFile), filepath.Join(zdir, RootGzipFile))
	if err != nil || !strings.Contains(status, "VALIDSIG "+f.signer.Fingerprint()) {
		t.Fatalf("gpg --verify of the compressed root: %v\n%s\n%s", err, status, stderr)
	}
	cmd := exec.Command("sh", "-c", "gunzip -c root.gz | cmp - root && sha256sum --strict -c root")
	cmd.Dir = zdir
	if b, err := cmd.CombinedOutput(); err != nil || strings.Count(string(b), ": OK") != len(f.parts.Parts) {
		t.Fatalf("gunzip | cmp && sha256sum -c: %v\n%s", err, b)
	}
	sum := func() (string, error) {
		cmd := exec.Command("sha256sum", "--strict", "-c", RootFile)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	got, err := sum()
	if err != nil || strings.Count(got, ": OK") != len(f.parts.Parts) {
		t.Fatalf("sha256sum -c root: %v\n%s", err, got)
	}
	// A changed part fails sha256sum.
	corrupt(t, filepath.Join(dir, f.parts.Parts[0].Name))
	if got, err := sum(); err == nil || !strings.Contains(got, "FAILED") {
		t.Fatalf("sha256sum -c accepted a changed part: %v\n%s", err, got)
	}
}

// TestSplitInspectShowsChanges: a root with a change list says since
// which root (the SHA-256 a follower's status records as loaded), so an
// operator can tell whether a follower could take it.
func TestSplitInspectShowsChanges(t *testing.T) {
	f := newSplitFixture(t)
	root := *f.parts
	since := [32]byte{0xab, 0xcd}
	root.Changes = ruleset.NewChanges(since, []string{ruleset.ViewKey(ruleset.KindGroups, "sg-1")})
	payload, err := ruleset.EncodeRoot(&root)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	obj, err := sign.Seal(payload, f.signer, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.Put(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, now, "inspect", "--trusted-key", f.public, f.root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "changes:") || !strings.Contains(out, "abcd000000") {
		t.Fatalf("inspect does not show the change list:\n%s", out)
	}
}
