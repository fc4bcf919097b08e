package reyes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/reyes-fw/reyes/internal/atomicfile"
)

// Parts returns the directory "<path>.parts" of the parts the root names.
func (s *FileStore) Parts() Objects {
	return &fileObjects{dir: s.path + partsSuffix, maxSize: s.maxSize}
}

// Roots returns the directory "<path>.roots" of the published roots.
func (s *FileStore) Roots() Objects {
	return &fileObjects{dir: s.path + rootsSuffix, maxSize: s.maxSize}
}

// fileObjects is a directory of files. It is created by the first Put
// (its parent, the root's directory, must exist). Only regular files are
// read or listed: a FIFO, a device or a symbolic link in it is refused.
type fileObjects struct {
	dir     string
	maxSize int64
}

func (o *fileObjects) String() string { return o.dir }

func (o *fileObjects) path(name string) string { return filepath.Join(o.dir, name) }

func (o *fileObjects) Get(ctx context.Context, name string, maxSize int64) ([]byte, error) {
	if err := checkObjectName(o, name); err != nil {
		return nil, err
	}
	path := o.path(name)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if maxSize <= 0 {
		maxSize = o.maxSize
	}
	// O_NONBLOCK: a FIFO would wait for a writer in open(2); O_NOFOLLOW:
	// a symbolic link is not an object this store wrote.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_NOFOLLOW, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("reading %s: %w", path, ErrNotFound)
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("reading %s: %w: it is a symbolic link", path, ErrNotRegular)
	case err != nil:
		return nil, fmt.Errorf("reading: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading %s: %w: it is a %s", path, ErrNotRegular, fileKind(fi.Mode()))
	}
	if fi.Size() > maxSize {
		return nil, fmt.Errorf("reading %s: %w: %d bytes (cap %d)", path, ErrTooLarge, fi.Size(), maxSize)
	}
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + 1)
	if _, err := buf.ReadFrom(io.LimitReader(f, maxSize+1)); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(buf.Len()) > maxSize {
		return nil, fmt.Errorf("reading %s: %w: more than %d bytes", path, ErrTooLarge, maxSize)
	}
	return buf.Bytes(), nil
}

func (o *fileObjects) Put(ctx context.Context, name string, body []byte) error {
	if err := checkObjectName(o, name); err != nil {
		return err
	}
	path := o.path(name)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := o.mkdir(); err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("writing %s: %w: it is a %s", path, ErrNotRegular, fileKind(fi.Mode()))
	}
	return atomicfile.Write(path, body, 0o644)
}

// mkdir creates the directory if it is missing; its parent, the directory
// of the root's file, must exist.
func (o *fileObjects) mkdir() error {
	fi, err := os.Stat(o.dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("writing into %s: %w: it is a %s, not a directory", o.dir, ErrNotRegular, fileKind(fi.Mode()))
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("writing into %s: %w", o.dir, err)
	}
	if err := atomicfile.CheckDir(o.dir); err != nil {
		return fmt.Errorf("creating %s: %w", o.dir, err)
	}
	if err := os.Mkdir(o.dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating %s: %w", o.dir, err)
	}
	// The new directory's entry must survive a crash, or so could a root
	// naming parts in a directory that is gone.
	return atomicfile.SyncDir(filepath.Dir(o.dir))
}

func (o *fileObjects) List(ctx context.Context) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing %s: %w", o.dir, err)
	}
	entries, err := os.ReadDir(o.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", o.dir, err)
	}
	var out []ObjectInfo
	for _, e := range entries {
		if !e.Type().IsRegular() || !ValidObjectName(e.Name()) {
			continue // temporary files, symbolic links, anything not ours
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", o.dir, err)
		}
		out = append(out, ObjectInfo{Name: e.Name(), Size: fi.Size(), Modified: fi.ModTime()})
	}
	return out, nil
}

func (o *fileObjects) Delete(ctx context.Context, name string) error {
	if err := checkObjectName(o, name); err != nil {
		return err
	}
	path := o.path(name)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting %s: %w", path, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("deleting %s: %w: it is a directory", path, ErrNotRegular)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting %s: %w", path, err)
	}
	return nil
}
