package atomicfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/internal/atomicfile"
)

// TestWrite: Write, and Replace (the same without fsyncs), create and
// replace files with their permissions, name a missing directory, and
// leave no temporary file behind.
func TestWrite(t *testing.T) {
	for _, w := range []struct {
		name  string
		write func(string, []byte, fs.FileMode) error
	}{{"Write", atomicfile.Write}, {"Replace", atomicfile.Replace}} {
		t.Run(w.name, func(t *testing.T) { testWrite(t, w.write) })
	}
}

func testWrite(t *testing.T, write func(string, []byte, fs.FileMode) error) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		path     string
		perm     os.FileMode
		errHas   string
		errNoDir bool
	}{
		{name: "new file", path: filepath.Join(dir, "a"), perm: 0o600},
		{name: "replaces", path: filepath.Join(dir, "a"), perm: 0o644},
		{name: "missing directory", path: filepath.Join(dir, "no", "a"), errHas: "directory " + filepath.Join(dir, "no") + " does not exist", errNoDir: true},
		{name: "parent is a file", path: filepath.Join(notDir, "a"), errHas: notDir + " is not a directory", errNoDir: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.name)
			err := write(tc.path, data, tc.perm)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) || errors.Is(err, atomicfile.ErrNoDir) != tc.errNoDir ||
					errors.Is(err, fs.ErrNotExist) != strings.Contains(tc.errHas, "does not exist") {
					t.Fatalf("Write = %v, want an error with %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(tc.path)
			if err != nil || string(got) != tc.name {
				t.Fatalf("read back %q, %v", got, err)
			}
			fi, err := os.Stat(tc.path)
			if err != nil || fi.Mode().Perm() != tc.perm {
				t.Fatalf("mode %v, %v; want %v", fi.Mode().Perm(), err, tc.perm)
			}
		})
	}
	// No temporary file is left behind, whatever failed.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestWriteFailureKeepsOld: a write that cannot finish leaves the old file.
func TestWriteFailureKeepsOld(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into a read-only directory: cannot make the write fail")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "a")
	if err := atomicfile.Write(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if err := atomicfile.Write(p, []byte("new"), 0o600); err == nil {
		t.Fatal("Write into a read-only directory succeeded")
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("after a failed write: %q", got)
	}
}

func TestWriteSync(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pending")
	for _, data := range []string{"longer first", "short"} {
		if err := atomicfile.WriteSync(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != data {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	}
	if err := atomicfile.WriteSync(filepath.Join(p, "x"), nil, 0o600); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("WriteSync under a file: %v", err)
	}
}

// TestPrepare: a prepared file is not in force until Commit; Abort leaves
// the old file and nothing beside it.
func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	if err := atomicfile.Write(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	pend, err := atomicfile.Prepare(p, []byte("new"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("prepared but not committed: %q", got)
	}
	pend.Abort()
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("after Abort: %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("after Abort the directory holds %d files", len(ents))
	}
	pend, err = atomicfile.Prepare(p, []byte("new"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := pend.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "new" {
		t.Fatalf("after Commit: %q", got)
	}
	if err := pend.Commit(); err == nil {
		t.Error("a second Commit succeeded")
	}
}
