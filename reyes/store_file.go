package reyes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/reyes-fw/reyes/internal/atomicfile"
	"github.com/reyes-fw/reyes/internal/regfile"
)

// FileStore keeps the object in a local file, for tests, single hosts, or
// distribution by other means (rsync, configuration management). It is safe
// for concurrent use, also by several processes.
type FileStore struct {
	path    string
	maxSize int64
}

// NewFileStore returns the store for the file at path. Only MaxSize of opts
// applies.
func NewFileStore(path string, opts StoreOptions) *FileStore {
	return &FileStore{path: path, maxSize: opts.maxSize()}
}

// String returns the file's path.
func (s *FileStore) String() string { return s.path }

// Get reads the file. Its ETag comes from the file's inode, size and
// modification time, so an unchanged file costs an open and a stat, no read;
// since Put replaces the file by rename, every Put changes the inode.
func (s *FileStore) Get(ctx context.Context, ifNoneMatch string) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", s.path, err)
	}
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait, in
	// open(2), for a writer for ever (and SIGTERM would not end it). The
	// file is refused below unless it is a regular one, for which the
	// flag changes nothing.
	f, err := os.OpenFile(s.path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("reading %s: %w", s.path, ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("reading: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("reading %s: %w: it is a %s", s.path, ErrNotRegular, fileKind(fi.Mode()))
	}
	etag := fileETag(fi)
	if ifNoneMatch != "" && etag == ifNoneMatch {
		return nil, "", fmt.Errorf("reading %s: %w", s.path, ErrNotModified)
	}
	if fi.Size() > s.maxSize {
		return nil, "", fmt.Errorf("reading %s: %w: %d bytes (cap %d)", s.path, ErrTooLarge, fi.Size(), s.maxSize)
	}
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + 1)
	if _, err := buf.ReadFrom(io.LimitReader(f, s.maxSize+1)); err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", s.path, err)
	}
	if int64(buf.Len()) > s.maxSize {
		return nil, "", fmt.Errorf("reading %s: %w: more than %d bytes", s.path, ErrTooLarge, s.maxSize)
	}
	return buf.Bytes(), etag, nil
}

// Put replaces the file atomically.
func (s *FileStore) Put(ctx context.Context, body []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("writing %s: %w", s.path, err)
	}
	if int64(len(body)) > s.maxSize {
		return fmt.Errorf("writing %s: %w: %d bytes (cap %d)", s.path, ErrTooLarge, len(body), s.maxSize)
	}
	if fi, err := os.Stat(s.path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("writing %s: %w: it is a %s", s.path, ErrNotRegular, fileKind(fi.Mode()))
	}
	return atomicfile.Write(s.path, body, 0o644)
}

// ErrNotRegular: a file store's path is not a regular file (a FIFO, a
// device, a directory, a socket). It is refused: reading a FIFO would wait
// for a writer for ever.
var ErrNotRegular = regfile.ErrNotRegular

func fileKind(m fs.FileMode) string { return regfile.Kind(m) }

// Path is the file the store reads and writes.
func (s *FileStore) Path() string { return s.path }

// CheckDir reports whether the directory that holds the store's file
// exists, so that a misconfigured store is refused before any work is done.
func (s *FileStore) CheckDir() error { return atomicfile.CheckDir(s.path) }

// fileETag derives an entity tag from what stat says.
func fileETag(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf(`"%x-%x-%x-%x"`, st.Dev, st.Ino, fi.Size(), fi.ModTime().UnixNano())
	}
	return fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano())
}
