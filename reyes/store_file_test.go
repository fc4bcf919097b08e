package reyes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestFileStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "ruleset.signed")
	st, err := OpenStore(ctx, path, StoreOptions{MaxSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if st.String() != path {
		t.Errorf("String() = %q", st.String())
	}
	if _, _, err := st.Get(ctx, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing file: %v, want ErrNotFound", err)
	}
	if err := st.Put(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	body, etag1, err := st.Get(ctx, "")
	if err != nil || string(body) != "one" || etag1 == "" {
		t.Fatalf("Get = %q, %q, %v", body, etag1, err)
	}
	if _, _, err := st.Get(ctx, etag1); !errors.Is(err, ErrNotModified) {
		t.Fatalf("Get with the current ETag: %v, want ErrNotModified", err)
	}
	if err := st.Put(ctx, []byte("two")); err != nil { // same size
		t.Fatal(err)
	}
	body, etag2, err := st.Get(ctx, etag1)
	if err != nil || string(body) != "two" || etag2 == etag1 {
		t.Fatalf("Get after a same-size Put = %q, %q, %v (old ETag %q)", body, etag2, err, etag1)
	}
	if err := st.Put(ctx, make([]byte, 1001)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put over the cap: %v, want ErrTooLarge", err)
	}
	// Written by something else, over the cap.
	if err := os.WriteFile(path, make([]byte, 1001), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Get(ctx, ""); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Get over the cap: %v, want ErrTooLarge", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries (temporary files left behind?)", len(entries))
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := st.Get(canceled, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context: %v", err)
	}
	if err := NewFileStore(filepath.Join(dir, "missing-dir", "x"), StoreOptions{}).Put(ctx, []byte("x")); err == nil {
		t.Error("Put into a missing directory succeeded")
	}
}

// TestFileStoreConcurrent: several leaders put, followers get; every Get
// returns one whole object, never a torn one, and the last Put wins.
func TestFileStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	st := NewFileStore(filepath.Join(t.TempDir(), "obj"), StoreOptions{})
	objects := map[string]bool{}
	var bodies [][]byte
	for i := range 4 {
		b := bytes.Repeat([]byte(fmt.Sprintf("leader %d;", i)), 20000+i*997)
		bodies = append(bodies, b)
		objects[string(b)] = true
	}
	if err := st.Put(ctx, bodies[0]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 100)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if err := st.Put(ctx, bodies[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				body, _, err := st.Get(ctx, "")
				if err != nil {
					errs <- err
					return
				}
				if !objects[string(body)] {
					errs <- fmt.Errorf("torn object of %d bytes", len(body))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := st.Put(ctx, bodies[2]); err != nil {
		t.Fatal(err)
	}
	if body, _, err := st.Get(ctx, ""); err != nil || !bytes.Equal(body, bodies[2]) {
		t.Errorf("last write did not win: %d bytes, %v", len(body), err)
	}
}

func TestOpenStoreURLs(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		url     string
		wantErr bool
		want    string
	}{
		{"s3://bucket/key.signed", false, "s3://bucket/key.signed"},
		{"s3://bucket/dir/key", false, "s3://bucket/dir/key"},
		{"s3://bucket", true, ""},
		{"s3://bucket/", true, ""},
		{"s3:///key", true, ""},
		{"s3://bucket/dir/", true, ""},
		{"https://example.org/x", true, ""},
		{"file:///var/lib/reyes/obj", false, "/var/lib/reyes/obj"},
		{"/var/lib/reyes/obj", false, "/var/lib/reyes/obj"},
		{"relative/obj", false, "relative/obj"},
		{"", true, ""},
		// One slash used to be read as a local path: "object not found".
		{"s3:/bucket/key", true, ""},
		{"s3:bucket/key", true, ""},
		{"S3://bucket/key", true, ""},
		{"file:/var/lib/reyes/obj", true, ""},
		{"./s3-objects/obj", false, "./s3-objects/obj"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			st, err := OpenStore(ctx, tt.url, StoreOptions{Region: "us-east-1"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && st.String() != tt.want {
				t.Errorf("String() = %q, want %q", st.String(), tt.want)
			}
		})
	}
}

// TestFileStoreRefusesSpecialFiles: a FIFO as --store blocked in open(2)
// for ever, and SIGTERM did not end it.
func TestFileStoreRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, dir, "/dev/null"} {
		t.Run(path, func(t *testing.T) {
			st := NewFileStore(path, StoreOptions{})
			done := make(chan error, 1)
			go func() {
				_, _, err := st.Get(context.Background(), "")
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Get: %v", err)
				}
			case <-time.After(5 * time.Second):
				// Unblock the goroutine so the test can end.
				if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				t.Fatal("Get of a FIFO still blocked after 5 s")
			}
			if path == "/dev/null" {
				return // not ours to replace
			}
			if err := st.Put(context.Background(), []byte("x")); !errors.Is(err, ErrNotRegular) {
				t.Fatalf("Put over a %s: %v", path, err)
			}
		})
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v %v", fi, err)
	}
}

// TestFileStoreMissingDirectory: the error named a temporary file.
func TestFileStoreMissingDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	path := filepath.Join(missing, "ruleset.signed")
	err := NewFileStore(path, StoreOptions{}).Put(context.Background(), []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "directory "+missing+" does not exist") || strings.Contains(err.Error(), ".tmp-") {
		t.Fatalf("Put: %v", err)
	}
}
