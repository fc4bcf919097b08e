package reyes

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestS3StoreIgnoredIfNoneMatch: an S3-compatible server (or a proxy in
// front of it) that ignores If-None-Match answers 200 with the very ETag
// the follower sent. That is still "not modified": the follower must not
// verify, render and apply (kernel calls) on every idle poll.
func TestS3StoreIgnoredIfNoneMatch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Content-Length", "5")
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	ctx := context.Background()
	st, err := NewS3Store(ctx, "b", "k", testS3Options(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	body, tag, err := st.Get(ctx, "")
	if err != nil || string(body) != "hello" || tag != `"abc"` {
		t.Fatalf("unconditional get: %q %q %v", body, tag, err)
	}
	if _, _, err := st.Get(ctx, `"abc"`); !errors.Is(err, ErrNotModified) {
		t.Errorf("same ETag answered 200: %v, want %v", err, ErrNotModified)
	}
	if body, _, err := st.Get(ctx, `"other"`); err != nil || string(body) != "hello" {
		t.Errorf("another ETag: %q %v", body, err)
	}
}
