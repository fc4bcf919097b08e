package sign

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxKeyFileSize caps a key file that LoadKeyring or LoadSigner reads: a
// key is a few kilobytes, a keyring of many rotations still far less.
const MaxKeyFileSize = 4 << 20

// readKeyFile reads a key file without waiting for ever or reading
// without end: it opens with O_NONBLOCK, so that a FIFO without a writer
// (a mistyped path into a pipe) reads as empty instead of blocking in
// open(2), where no signal ends it; and it reads at most MaxKeyFileSize
// bytes, so that /dev/zero is an error, not an exhausted memory. A pipe
// with a writer (bash's <(...)) still reads whole.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: syscall.EISDIR}
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > MaxKeyFileSize {
		return nil, fmt.Errorf("reading %s: larger than %d bytes: not a key file", path, MaxKeyFileSize)
	}
	return b, nil
}
