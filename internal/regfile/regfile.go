// Package regfile reads files that must be regular files (state, status,
// metrics, cached parts) without ever blocking: a FIFO put where such a
// file goes would otherwise make open(2) wait for a writer for ever, where
// no timeout or signal ends it.
package regfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Errors of Read. Test with errors.Is.
var (
	// ErrNotRegular: the path is a FIFO, a device, a directory, a socket
	// (or, with O_NOFOLLOW, a symbolic link).
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is larger than the cap given to Read.
	ErrTooLarge = errors.New("file too large")
)

// Read reads path, at most max bytes (max <= 0: no cap), if it is a
// regular file. It opens with O_NONBLOCK and O_NOCTTY, plus flags (e.g.
// syscall.O_NOFOLLOW). A missing file is an error wrapping
// fs.ErrNotExist; one that is not regular wraps ErrNotRegular and names
// its kind; one over max wraps ErrTooLarge.
func Read(path string, max int64, flags int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|flags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading %s: %w: it is a %s", path, ErrNotRegular, Kind(fi.Mode()))
	}
	var r io.Reader = f
	if max > 0 {
		r = io.LimitReader(f, max+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if max > 0 && int64(len(data)) > max {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrTooLarge, max)
	}
	return data, nil
}

// Kind names what a file that is not regular is, for messages.
func Kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file (" + m.Type().String() + ")"
}
