package reyes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/reyes-fw/reyes/ruleset"
)

// Objects is a flat directory of objects next to a store's root object:
// "<key>.parts/" (the parts a root names) or "<key>.roots/" (the history
// of published roots, read by the leader's garbage collection). Objects in
// it are written whole and never changed: a name says what its content is.
// Implementations are safe for concurrent use.
type Objects interface {
	// Get returns the object called name. It reads at most maxSize+1
	// bytes: a larger object fails with ErrTooLarge; a missing one with
	// ErrNotFound. maxSize <= 0 means the store's MaxSize.
	Get(ctx context.Context, name string, maxSize int64) ([]byte, error)
	// Put writes the object called name in one atomic write: a reader
	// sees the whole object or none (file: temporary file, fsync, rename;
	// S3: one PutObject). An existing object is replaced.
	Put(ctx context.Context, name string, body []byte) error
	// List returns every object of the directory with a valid name (see
	// [ValidObjectName]), in no particular order; an empty or missing
	// directory is no error. On S3 it reads every page of the listing.
	List(ctx context.Context) ([]ObjectInfo, error)
	// Delete removes the object called name; a missing object is not an
	// error.
	Delete(ctx context.Context, name string) error
	// String names the directory for logs: s3://bucket/key.parts/ or a
	// path.
	String() string
}

// ObjectInfo describes one object of an [Objects] directory.
type ObjectInfo struct {
	Name     string
	Size     int64
	Modified time.Time
}

// PartStore is a [Store] that also holds the parts a root names and the
// history of published roots, next to its root object. [FileStore] and
// [S3Store] are PartStores.
type PartStore interface {
	Store
	// Parts is "<key>.parts/": the content-addressed parts.
	Parts() Objects
	// Roots is "<key>.roots/": a copy of every root the leader put, for
	// garbage collection.
	Roots() Objects
}

// Directories of a PartStore, appended to the root's key or path.
const (
	partsSuffix = ".parts"
	rootsSuffix = ".roots"
)

// MaxObjectNameLen is the longest name of an object in [Objects].
const MaxObjectNameLen = 200

// ErrObjectName: a name that [Objects] refuses (see [ValidObjectName]).
var ErrObjectName = errors.New("invalid object name")

// ValidObjectName reports whether name may name an object in [Objects]:
// 1 to 200 characters of a-z, 0-9, '.' and '-', not starting with '.'
// (the file store's temporary files and "." and ".." do).
func ValidObjectName(name string) bool {
	if len(name) == 0 || len(name) > MaxObjectNameLen || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func checkObjectName(dir Objects, name string) error {
	if !ValidObjectName(name) {
		return fmt.Errorf("%w: %q in %s: want 1 to %d characters of a-z, 0-9, '.' and '-', not starting with '.'", ErrObjectName, name, dir, MaxObjectNameLen)
	}
	return nil
}

// FetchParts returns a ruleset.FetchFunc that reads a root's parts from
// objs (a PartStore's Parts), each at most its size in the root; a part
// objs does not have is an error wrapping both ruleset.ErrPartMissing and
// ErrNotFound. LoadView and Join verify what it returns.
func FetchParts(objs Objects) ruleset.FetchFunc {
	return func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
		b, err := objs.Get(ctx, ref.Name, ref.Size)
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: %s in %s: %w", ruleset.ErrPartMissing, ref.Name, objs, err)
		}
		return b, err
	}
}
