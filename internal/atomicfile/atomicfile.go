// Package atomicfile replaces files so that readers, and the file system
// after a crash, see the old content or the new, never a part: the one
// atomic-write helper of reyes (the follower's state, the local store,
// reyesctl's keys; without the fsyncs, Replace, the status and metrics
// files).
//
// It does not lock: concurrent writers of one path each replace it whole,
// and the last rename wins.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, with permissions perm: a temporary file
// in the same directory, written, fsynced, renamed over path, then the
// directory fsynced, so that a crash at any point leaves the old file or
// the new one. On failure the temporary file is removed and path is as it
// was. Errors name path (and a missing directory, see CheckDir).
func Write(path string, data []byte, perm fs.FileMode) error {
	p, err := Prepare(path, data, perm)
	if err != nil {
		return err
	}
	return p.Commit()
}

// Replace replaces path with data, with permissions perm, as Write does
// but without an fsync: a temporary file in the same directory, written
// and renamed over path. Readers see the old content or the new, never a
// part. A crash of the machine may leave the old file, the new one or, on
// a file system that does not write a file's data before a rename over
// another (ext4 does, with its default auto_da_alloc), an empty one. It
// is for files that describe what a crash takes with it anyway (what the
// kernel has loaded) or that a crash may take back by one write (a
// status), not for anything a crash must not lose: use Write for those.
func Replace(path string, data []byte, perm fs.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		if derr := CheckDir(path); derr != nil {
			return fmt.Errorf("writing %s: %w", path, derr)
		}
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = os.Rename(tmp.Name(), path); err != nil {
			err = fmt.Errorf("replacing %s: %w", path, err)
		}
	} else {
		err = fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// Pending is a file written and fsynced beside the one it will replace,
// not yet in force: Commit puts it in place, Abort drops it. Call exactly
// one of them. Not safe for concurrent use.
type Pending struct {
	tmp, path string
	done      bool
}

// Prepare is the first half of Write: the temporary file, written with
// perm and fsynced. A state directory that is read-only or full fails here,
// before the caller does what the file is to record.
func Prepare(path string, data []byte, perm fs.FileMode) (p *Pending, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		if derr := CheckDir(path); derr != nil {
			return nil, fmt.Errorf("writing %s: %w", path, derr)
		}
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return nil, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(perm); err != nil {
		return nil, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return nil, fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return nil, fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	return &Pending{tmp: tmp.Name(), path: path}, nil
}

// Commit renames the prepared file over its path and fsyncs the directory.
func (p *Pending) Commit() error {
	if p.done {
		return errors.New("atomicfile: committed or aborted already")
	}
	p.done = true
	if err := os.Rename(p.tmp, p.path); err != nil {
		os.Remove(p.tmp)
		return fmt.Errorf("replacing %s: %w", p.path, err)
	}
	return SyncDir(filepath.Dir(p.path))
}

// Abort removes the prepared file; path stays as it was.
func (p *Pending) Abort() {
	if !p.done {
		p.done = true
		os.Remove(p.tmp)
	}
}

// WriteSync writes data to path (created with perm, or truncated) and
// fsyncs it, without a rename: the first half of a two-phase write whose
// rename comes later (apply prepares its state before it touches the
// kernel and puts it in force after). Use Write for a plain replace.
func WriteSync(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory, so that a rename or a new file in it
// survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// ErrNoDir is wrapped by CheckDir's error when the directory is missing
// (that error also matches fs.ErrNotExist) or is not a directory.
var ErrNoDir = errors.New("no such directory")

// dirError is CheckDir's error: its message names the directory alone.
type dirError struct {
	msg     string
	missing bool
}

func (e *dirError) Error() string { return e.msg }

func (e *dirError) Is(target error) bool {
	return target == ErrNoDir || e.missing && target == fs.ErrNotExist
}

// CheckDir fails, naming the directory, when the directory that path is to
// be written in does not exist or is not a directory: a bare "open ...: no
// such file or directory" on a temporary file does not say that /etc/reyes
// is what is missing.
func CheckDir(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &dirError{msg: "directory " + dir + " does not exist", missing: true}
	case err != nil:
		return err
	case !fi.IsDir():
		return &dirError{msg: dir + " is not a directory"}
	}
	return nil
}
