package reyes

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/reyes-fw/reyes/internal/mototest"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// counter is an HTTP client that counts requests and response body bytes.
type counter struct {
	requests, bodyBytes atomic.Int64
	client              http.Client
}

func (c *counter) Do(req *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	resp, err := c.client.Do(req)
	if resp != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.bodyBytes}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// testS3Options are hermetic: static fake credentials, no shared files, a
// fixed region, quick retries.
func testS3Options(endpoint string, extra ...func(*config.LoadOptions) error) StoreOptions {
	return StoreOptions{
		Endpoint:    endpoint,
		PathStyle:   true,
		Region:      "us-east-1",
		Timeout:     5 * time.Second,
		MaxAttempts: 2,
		MaxBackoff:  50 * time.Millisecond,
		LoadOptions: append([]func(*config.LoadOptions) error{
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")),
			config.WithSharedConfigFiles([]string{}),
			config.WithSharedCredentialsFiles([]string{}),
		}, extra...),
	}
}

func TestS3Store(t *testing.T) {
	endpoint := mototest.Start(t, mototest.Options{Why: "the S3 store test"})
	ctx := context.Background()
	// The counting client is not the SDK's BuildableClient, to which the
	// SDK adds AWS_CA_BUNDLE; the test talks plain HTTP and needs no CA.
	t.Setenv("AWS_CA_BUNDLE", "")
	cnt := &counter{}
	opts := testS3Options(endpoint, config.WithHTTPClient(cnt))
	opts.MaxSize = 4096
	store, err := OpenStore(ctx, "s3://reyes-test/rulesets/prod.signed", opts)
	if err != nil {
		t.Fatal(err)
	}
	st := store.(*S3Store)
	if _, err := st.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("reyes-test")}); err != nil {
		t.Fatalf("creating bucket: %v", err)
	}

	t.Run("missing object", func(t *testing.T) {
		if _, _, err := st.Get(ctx, ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})
	var etag1 string
	t.Run("put and get", func(t *testing.T) {
		if err := st.Put(ctx, []byte("object one")); err != nil {
			t.Fatal(err)
		}
		body, etag, err := st.Get(ctx, "")
		if err != nil || string(body) != "object one" || etag == "" {
			t.Fatalf("Get = %q, %q, %v", body, etag, err)
		}
		etag1 = etag
	})
	t.Run("unchanged costs one 304", func(t *testing.T) {
		r0, b0 := cnt.requests.Load(), cnt.bodyBytes.Load()
		if _, _, err := st.Get(ctx, etag1); !errors.Is(err, ErrNotModified) {
			t.Fatalf("got %v, want ErrNotModified", err)
		}
		if r, b := cnt.requests.Load()-r0, cnt.bodyBytes.Load()-b0; r != 1 || b != 0 {
			t.Errorf("an unchanged object cost %d requests and %d body bytes, want 1 and 0", r, b)
		}
	})
	t.Run("changed object", func(t *testing.T) {
		if err := st.Put(ctx, []byte("object two")); err != nil {
			t.Fatal(err)
		}
		body, etag, err := st.Get(ctx, etag1)
		if err != nil || string(body) != "object two" || etag == etag1 {
			t.Fatalf("Get = %q, %q, %v", body, etag, err)
		}
	})
	t.Run("put over the cap", func(t *testing.T) {
		if err := st.Put(ctx, make([]byte, 4097)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("object over the cap", func(t *testing.T) {
		big := testS3Options(endpoint)
		bigStore, err := NewS3Store(ctx, "reyes-test", "big.signed", big)
		if err != nil {
			t.Fatal(err)
		}
		if err := bigStore.Put(ctx, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		small, err := NewS3Store(ctx, "reyes-test", "big.signed", opts)
		if err != nil {
			t.Fatal(err)
		}
		b0 := cnt.bodyBytes.Load()
		if _, _, err := small.Get(ctx, ""); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
		if b := cnt.bodyBytes.Load() - b0; b > 0 {
			t.Errorf("read %d body bytes of an object over the cap", b)
		}
	})
	t.Run("missing bucket", func(t *testing.T) {
		nb, err := NewS3Store(ctx, "no-such-bucket", "x", testS3Options(endpoint))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = nb.Get(ctx, "")
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want a bucket error that is not ErrNotFound", err)
		}
	})
}

func TestS3StoreServerDown(t *testing.T) {
	ctx := context.Background()
	endpoint := "http://127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens
	st, err := NewS3Store(ctx, "reyes-test", "x", testS3Options(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = st.Get(ctx, "")
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotModified) {
		t.Fatalf("Get from a server that is down: %v", err)
	}
	if err := st.Put(ctx, []byte("x")); err == nil {
		t.Fatal("Put to a server that is down succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failing took %s", d)
	}
	t.Log(err)
}

// TestS3StoreEndpointFromEnvironment checks that the SDK itself honours
// AWS_ENDPOINT_URL_S3 when no endpoint is configured.
func TestS3StoreEndpointFromEnvironment(t *testing.T) {
	endpoint := mototest.Start(t, mototest.Options{Why: "the S3 store test"})
	ctx := context.Background()
	for _, name := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("AWS_ENDPOINT_URL_S3", "")
			t.Setenv("AWS_ENDPOINT_URL", "")
			t.Setenv(name, endpoint)
			st, err := NewS3Store(ctx, "env-bucket", "obj", testS3Options(""))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("env-bucket")}); err != nil {
				var exists interface{ ErrorCode() string }
				if !errors.As(err, &exists) || exists.ErrorCode() != "BucketAlreadyOwnedByYou" {
					t.Fatalf("creating bucket via %s: %v", name, err)
				}
			}
			if err := st.Put(ctx, []byte(name)); err != nil {
				t.Fatal(err)
			}
			if body, _, err := st.Get(ctx, ""); err != nil || string(body) != name {
				t.Fatalf("Get = %q, %v", body, err)
			}
		})
	}
}
