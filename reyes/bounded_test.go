package reyes

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/hungsrv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/reyes-fw/reyes/sgsource"
)

// hungS3Store returns a store of s3://reyes-test/obj on a server that
// never answers, each attempt timing out at 300 ms, attempts of them,
// logging into the buffer returned.
func hungS3Store(t *testing.T, attempts int) (*S3Store, *bytes.Buffer) {
	t.Helper()
	logs := new(bytes.Buffer)
	opts := testS3Options(hungsrv.URL(t))
	opts.Timeout = 300 * time.Millisecond
	opts.MaxAttempts = attempts
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	st, err := NewS3Store(context.Background(), "reyes-test", "obj", opts)
	if err != nil {
		t.Fatal(err)
	}
	return st, logs
}

// TestS3StoreHungServerRetriesAndLogs: each attempt ends at the store's
// timeout, every retry is logged naming the call, and the error names it.
func TestS3StoreHungServerRetriesAndLogs(t *testing.T) {
	st, logs := hungS3Store(t, 3)
	start := time.Now()
	_, _, err := st.Get(context.Background(), "")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Get from a hung server took %s", d)
	}
	if err == nil || !strings.Contains(err.Error(), "GetObject") || !strings.Contains(err.Error(), "s3://reyes-test/obj") {
		t.Fatalf("Get: %v", err)
	}
	if n := strings.Count(logs.String(), "retrying"); n != 2 || !strings.Contains(logs.String(), "call=GetObject") {
		t.Errorf("%d retry lines, want 2:\n%s", n, logs.String())
	}
}

// TestEC2HungEndpointRetriesAndLogs: the leader's EC2 client ends each
// attempt at its timeout (a hung endpoint held the leader 900 s) and logs
// each retry, naming the call and the region.
func TestEC2HungEndpointRetriesAndLogs(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	src := &sgsource.EC2{
		Regions: []string{"eu-west-1"},
		Config: &aws.Config{
			Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
			BaseEndpoint: aws.String(hungsrv.URL(t)),
		},
		MaxAttempts: 3, MaxBackoff: 10 * time.Millisecond,
		Logger:        slog.New(slog.DiscardHandler),
		ClientOptions: EC2ClientOptions(log, 300*time.Millisecond),
	}
	start := time.Now()
	_, err := src.Fetch(context.Background())
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Fetch from a hung endpoint took %s", d)
	}
	if err == nil || !strings.Contains(err.Error(), "eu-west-1") || !strings.Contains(err.Error(), "Describe") {
		t.Fatalf("Fetch: %v", err)
	}
	if n := strings.Count(logs.String(), "retrying"); n < 2 || !strings.Contains(logs.String(), "where=eu-west-1") || !strings.Contains(logs.String(), "call=Describe") {
		t.Errorf("%d retry lines:\n%s", n, logs.String())
	}
}
