package reyes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
)

// Errors returned (wrapped) by stores. Test with errors.Is.
var (
	// ErrNotModified: the object's ETag equals the one given to Get; nothing
	// was downloaded.
	ErrNotModified = errors.New("object not modified")
	// ErrNotFound: there is no object (yet).
	ErrNotFound = errors.New("object not found")
	// ErrTooLarge: the object is over the size cap; it was not read.
	ErrTooLarge = errors.New("object too large")
)

// Store defaults.
const (
	DefaultMaxObjectSize = 64 << 20
	DefaultStoreTimeout  = 30 * time.Second
	DefaultMaxAttempts   = 4
	DefaultMaxBackoff    = 20 * time.Second
)

// Store is where a leader puts signed objects and followers get them. Puts
// are atomic: a Get returns a whole object from one Put, never a mix, and
// when several leaders put, the last one wins. Implementations are safe for
// concurrent use.
type Store interface {
	// Get returns the object and its entity tag. When ifNoneMatch is not
	// empty and equals the object's current tag, Get returns ErrNotModified
	// without reading the object. Objects over the size cap fail with
	// ErrTooLarge, a missing one with ErrNotFound.
	Get(ctx context.Context, ifNoneMatch string) (body []byte, etag string, err error)
	// Put replaces the object with body in one atomic write.
	Put(ctx context.Context, body []byte) error
	// String names the store for logs: s3://bucket/key or a path.
	String() string
}

// StoreOptions configures [OpenStore]. The zero value means the defaults.
type StoreOptions struct {
	// MaxSize caps the object size for Get and Put. Default
	// [DefaultMaxObjectSize] (64 MiB).
	MaxSize int64

	// The options below apply to S3 only.

	// Timeout bounds each HTTP attempt, the body download included.
	// Default [DefaultStoreTimeout].
	Timeout time.Duration
	// MaxAttempts is how many times a request is tried (throttling, 5xx,
	// network errors), with jittered exponential backoff. Default
	// [DefaultMaxAttempts].
	MaxAttempts int
	// MaxBackoff caps the wait between attempts. Default [DefaultMaxBackoff].
	MaxBackoff time.Duration
	// PathStyle addresses http://endpoint/bucket/key instead of
	// http://bucket.endpoint/key, as most S3-compatible servers need.
	PathStyle bool
	// Endpoint overrides the S3 endpoint URL. Without it the SDK's own
	// settings apply: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the shared
	// config file, then AWS itself.
	Endpoint string
	// Region overrides the region found by the standard chain (AWS_REGION,
	// the shared config file). Without any, us-east-1 is used.
	Region string
	// LoadOptions are passed to config.LoadDefaultConfig after reyes' own,
	// e.g. config.WithSharedConfigProfile or static credentials.
	LoadOptions []func(*config.LoadOptions) error
	// Logger receives debug logs; nil means none.
	Logger *slog.Logger
}

func (o StoreOptions) maxSize() int64 {
	if o.MaxSize <= 0 {
		return DefaultMaxObjectSize
	}
	return o.MaxSize
}

func (o StoreOptions) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// OpenStore opens the store at url: "s3://bucket/key" is an S3 object (any
// S3-compatible server with Endpoint and PathStyle), anything else a local
// file path ("file://" prefix allowed).
func OpenStore(ctx context.Context, url string, opts StoreOptions) (Store, error) {
	lower := strings.ToLower(url)
	switch {
	case strings.HasPrefix(lower, "s3:") && !strings.HasPrefix(url, "s3://"),
		strings.HasPrefix(lower, "file:") && !strings.HasPrefix(url, "file://"):
		// "s3:/bucket/key" is a typo, not a local path named "s3:".
		return nil, fmt.Errorf("opening store %q: want s3://bucket/key (two slashes, lower case) or a file path", url)
	case strings.HasPrefix(url, "s3://"):
		bucket, key, ok := strings.Cut(strings.TrimPrefix(url, "s3://"), "/")
		if !ok || bucket == "" || key == "" || strings.HasSuffix(key, "/") {
			return nil, fmt.Errorf("opening store %q: want s3://bucket/key", url)
		}
		return NewS3Store(ctx, bucket, key, opts)
	case strings.Contains(url, "://") && !strings.HasPrefix(url, "file://"):
		return nil, fmt.Errorf("opening store %q: unknown scheme (want s3://bucket/key or a file path)", url)
	default:
		path := strings.TrimPrefix(url, "file://")
		if path == "" {
			return nil, fmt.Errorf("opening store: empty path")
		}
		return NewFileStore(path, opts), nil
	}
}
