package reyes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// S3Store keeps the object in S3 or an S3-compatible server. A PUT of one
// object is atomic, so followers never see a torn object, and the last of
// several leaders to put wins. It is safe for concurrent use.
type S3Store struct {
	client  *s3.Client
	bucket  string
	key     string
	maxSize int64
	log     *slog.Logger
}

// NewS3Store returns the store for s3://bucket/key. Credentials and region
// come from the SDK's standard chain (environment, shared config and
// credentials files, SSO, web identity, ECS and EC2 instance roles), the
// endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL unless opts says
// otherwise. Nothing is sent until the first Get or Put.
func NewS3Store(ctx context.Context, bucket, key string, opts StoreOptions) (*S3Store, error) {
	timeout, attempts, backoff := opts.Timeout, opts.MaxAttempts, opts.MaxBackoff
	if timeout <= 0 {
		timeout = DefaultStoreTimeout
	}
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	if backoff <= 0 {
		backoff = DefaultMaxBackoff
	}
	retryer := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		o.MaxBackoff = backoff
	})
	lo := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return retryer }),
		// Each attempt, the body included, ends within timeout: a hung
		// server is retried, then fails naming the call.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(timeout)),
	}
	if opts.Region != "" {
		lo = append(lo, config.WithRegion(opts.Region))
	}
	lo = append(lo, opts.LoadOptions...)
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration for s3://%s/%s: %w", bucket, key, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = opts.PathStyle
		// S3-compatible servers often send no checksum; the SDK would log
		// that on every GET. The signature, not the checksum, is what
		// reyes trusts.
		o.DisableLogOutputChecksumValidationSkipped = true
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.APIOptions = append(o.APIOptions, logRetries(opts.logger(), "s3://"+bucket+"/"+key, func() aws.Retryer { return retryer }))
	})
	return &S3Store{client: client, bucket: bucket, key: key, maxSize: opts.maxSize(), log: opts.logger()}, nil
}

// String returns s3://bucket/key.
func (s *S3Store) String() string { return "s3://" + s.bucket + "/" + s.key }

// Get fetches the object, conditionally on ifNoneMatch: an unchanged object
// costs one request answered 304 and no body. The size cap is checked
// against Content-Length before reading and enforced while reading.
func (s *S3Store) Get(ctx context.Context, ifNoneMatch string) ([]byte, string, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key)}
	if ifNoneMatch != "" {
		in.IfNoneMatch = aws.String(ifNoneMatch)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("getting %s: %w", s, classifyS3Error(err))
	}
	defer out.Body.Close()
	etag := aws.ToString(out.ETag)
	if ifNoneMatch != "" && etag == ifNoneMatch {
		// A server (or proxy) that ignores If-None-Match: the same ETag
		// is still the same object, and an idle poll stays idle.
		return nil, "", fmt.Errorf("getting %s: %w", s, ErrNotModified)
	}
	size := aws.ToInt64(out.ContentLength)
	if size > s.maxSize {
		return nil, "", fmt.Errorf("getting %s: %w: %d bytes (cap %d)", s, ErrTooLarge, size, s.maxSize)
	}
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(size) + 1)
	}
	if _, err := buf.ReadFrom(io.LimitReader(out.Body, s.maxSize+1)); err != nil {
		return nil, "", fmt.Errorf("getting %s: reading body: %w", s, err)
	}
	if int64(buf.Len()) > s.maxSize {
		return nil, "", fmt.Errorf("getting %s: %w: more than %d bytes", s, ErrTooLarge, s.maxSize)
	}
	s.log.DebugContext(ctx, "fetched object", "store", s.String(), "etag", etag, "bytes", buf.Len())
	return buf.Bytes(), etag, nil
}

// Put uploads body with a single PutObject.
func (s *S3Store) Put(ctx context.Context, body []byte) error {
	if int64(len(body)) > s.maxSize {
		return fmt.Errorf("putting %s: %w: %d bytes (cap %d)", s, ErrTooLarge, len(body), s.maxSize)
	}
	out, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/octet-stream"),
	})
	if err != nil {
		return fmt.Errorf("putting %s: %w", s, classifyS3Error(err))
	}
	s.log.DebugContext(ctx, "put object", "store", s.String(), "etag", aws.ToString(out.ETag), "bytes", len(body))
	return nil
}

// classifyS3Error maps "not modified" and "no such key" to the store's
// sentinels, keeping the SDK's error in the chain.
func classifyS3Error(err error) error {
	var api smithy.APIError
	var re *awshttp.ResponseError
	switch {
	case errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket":
		return fmt.Errorf("bucket does not exist: %w", err)
	case errors.As(err, &api) && api.ErrorCode() == "NoSuchKey":
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotModified:
		return fmt.Errorf("%w: %w", ErrNotModified, err)
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && (api == nil || api.ErrorCode() == "NotFound"):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
