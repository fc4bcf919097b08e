package reyes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Parts returns the objects under "<key>.parts/" of the bucket.
func (s *S3Store) Parts() Objects { return s.objects(partsSuffix) }

// Roots returns the objects under "<key>.roots/" of the bucket.
func (s *S3Store) Roots() Objects { return s.objects(rootsSuffix) }

func (s *S3Store) objects(suffix string) *s3Objects {
	return &s3Objects{s: s, prefix: s.key + suffix + "/"}
}

// s3Objects are the objects of a bucket under a prefix. They share the
// store's client: the same per-attempt timeout, retries and retry logs as
// the root object's Get and Put.
type s3Objects struct {
	s      *S3Store
	prefix string
	// pageSize, if positive, is the MaxKeys of each ListObjectsV2 page
	// (tests); S3's own default is 1000.
	pageSize int32
}

func (o *s3Objects) String() string { return "s3://" + o.s.bucket + "/" + o.prefix }

func (o *s3Objects) url(name string) string { return o.String() + name }

func (o *s3Objects) Get(ctx context.Context, name string, maxSize int64) ([]byte, error) {
	if err := checkObjectName(o, name); err != nil {
		return nil, err
	}
	if maxSize <= 0 {
		maxSize = o.s.maxSize
	}
	url := o.url(name)
	ctx = withWhere(ctx, url)
	out, err := o.s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.s.bucket), Key: aws.String(o.prefix + name)})
	if err != nil {
		return nil, fmt.Errorf("getting %s: %w", url, classifyS3Error(err))
	}
	defer out.Body.Close()
	size := aws.ToInt64(out.ContentLength)
	if size > maxSize {
		return nil, fmt.Errorf("getting %s: %w: %d bytes (cap %d)", url, ErrTooLarge, size, maxSize)
	}
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(size) + 1)
	}
	if _, err := buf.ReadFrom(io.LimitReader(out.Body, maxSize+1)); err != nil {
		return nil, fmt.Errorf("getting %s: reading body: %w", url, err)
	}
	if int64(buf.Len()) > maxSize {
		return nil, fmt.Errorf("getting %s: %w: more than %d bytes", url, ErrTooLarge, maxSize)
	}
	o.s.log.DebugContext(ctx, "fetched object", "object", url, "bytes", buf.Len())
	return buf.Bytes(), nil
}

func (o *s3Objects) Put(ctx context.Context, name string, body []byte) error {
	if err := checkObjectName(o, name); err != nil {
		return err
	}
	url := o.url(name)
	ctx = withWhere(ctx, url)
	_, err := o.s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(o.s.bucket),
		Key:           aws.String(o.prefix + name),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/octet-stream"),
	})
	if err != nil {
		return fmt.Errorf("putting %s: %w", url, classifyS3Error(err))
	}
	o.s.log.DebugContext(ctx, "put object", "object", url, "bytes", len(body))
	return nil
}

func (o *s3Objects) List(ctx context.Context) ([]ObjectInfo, error) {
	ctx = withWhere(ctx, o.String())
	in := &s3.ListObjectsV2Input{Bucket: aws.String(o.s.bucket), Prefix: aws.String(o.prefix)}
	if o.pageSize > 0 {
		in.MaxKeys = aws.Int32(o.pageSize)
	}
	var out []ObjectInfo
	pages := s3.NewListObjectsV2Paginator(o.s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", o, classifyS3Error(err))
		}
		for _, obj := range page.Contents {
			name, ok := strings.CutPrefix(aws.ToString(obj.Key), o.prefix)
			if !ok || !ValidObjectName(name) {
				continue // "sub/dir" keys and anything else not ours
			}
			out = append(out, ObjectInfo{Name: name, Size: aws.ToInt64(obj.Size), Modified: aws.ToTime(obj.LastModified)})
		}
	}
	return out, nil
}

func (o *s3Objects) Delete(ctx context.Context, name string) error {
	if err := checkObjectName(o, name); err != nil {
		return err
	}
	url := o.url(name)
	ctx = withWhere(ctx, url)
	_, err := o.s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(o.s.bucket), Key: aws.String(o.prefix + name)})
	if err != nil {
		if err := classifyS3Error(err); errors.Is(err, ErrNotFound) {
			return nil // S3 answers 204 for a missing key; some servers 404
		}
		return fmt.Errorf("deleting %s: %w", url, classifyS3Error(err))
	}
	o.s.log.DebugContext(ctx, "deleted object", "object", url)
	return nil
}
