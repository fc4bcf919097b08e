package sign

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestKeyFileNotRegular: a key file that is a FIFO without a writer, a
// device without end or a directory is an error at once; LoadKeyring used
// to block in open(2) on the FIFO for ever (SIGTERM did not end it) and to
// read /dev/zero until memory ran out.
func TestKeyFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "key.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	link := filepath.Join(dir, "key.asc")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, link, "/dev/zero", dir} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			for name, load := range map[string]func(string) error{
				"LoadKeyring": func(p string) error { _, err := LoadKeyring(p); return err },
				"LoadSigner":  func(p string) error { _, err := LoadSigner(p); return err },
			} {
				done := make(chan error, 1)
				go func() { done <- load(path) }()
				select {
				case err := <-done:
					if err == nil {
						t.Errorf("%s(%s) accepted it", name, path)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s(%s) still waiting after 5 s", name, path)
				}
			}
		})
	}
}

// TestKeyFilePipe: a key given through a pipe with a writer (bash's
// --trusted-key <(...)) still loads.
func TestKeyFilePipe(t *testing.T) {
	_, pub, err := GenerateKey("pipe", "", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "key.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// A writer that is there before the reader, as with <(...).
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		w.Write(pub)
		w.Close()
	}()
	kr, err := LoadKeyring(fifo)
	if err != nil || len(kr.Fingerprints()) != 1 {
		t.Fatalf("LoadKeyring through a pipe: %v", err)
	}
	if errors.Is(err, ErrNoKey) {
		t.Fatal(err)
	}
}
