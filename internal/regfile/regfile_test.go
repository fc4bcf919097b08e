package regfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/regfile"
)

// TestRead: a regular file is read whole or refused over its cap; a FIFO
// (with no writer), a directory and, with O_NOFOLLOW, a symbolic link are
// refused at once; a missing file is fs.ErrNotExist.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		path  string
		max   int64
		flags int
		want  string
		err   error
	}{
		{"regular", file, 5, 0, "12345", nil},
		{"no cap", file, 0, 0, "12345", nil},
		{"over the cap", file, 4, 0, "", regfile.ErrTooLarge},
		{"fifo", fifo, 5, 0, "", regfile.ErrNotRegular},
		{"directory", dir, 5, 0, "", regfile.ErrNotRegular},
		{"link followed", link, 5, 0, "12345", nil},
		{"link refused", link, 5, syscall.O_NOFOLLOW, "", syscall.ELOOP},
		{"missing", filepath.Join(dir, "nope"), 5, 0, "", fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var got []byte
			var err error
			go func() { got, err = regfile.Read(tc.path, tc.max, tc.flags); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Read blocked")
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}
