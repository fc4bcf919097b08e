package reyes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/reyes-fw/reyes/internal/mototest"
)

func TestValidObjectName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"g0017-265432-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", true},
		{"vpcs-12-ab", true},
		{"17-0123456789abcdef", true},
		{"a", true},
		{"a.b", true},
		{strings.Repeat("a", 200), true},
		{strings.Repeat("a", 201), false},
		{"", false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{".x.tmp-123", false},
		{"a/b", false},
		{"../x", false},
		{"A", false},
		{"a_b", false},
		{"a b", false},
		{"a\x00", false},
		{"é", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.name), func(t *testing.T) {
			if got := ValidObjectName(tc.name); got != tc.ok {
				t.Errorf("ValidObjectName(%q) = %v, want %v", tc.name, got, tc.ok)
			}
		})
	}
}

// ListNames lists o and returns the names, sorted, failing t on an error;
// each, unless nil, is called with every object listed. Exported for the
// tests of package reyes_test.
func ListNames(t testing.TB, o Objects, each func(ObjectInfo)) []string {
	t.Helper()
	list, err := o.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, oi := range list {
		names = append(names, oi.Name)
		if each != nil {
			each(oi)
		}
	}
	slices.Sort(names)
	return names
}

// testObjects checks the behaviour every Objects shares.
func testObjects(t *testing.T, o Objects) {
	ctx := context.Background()
	t.Run("missing", func(t *testing.T) {
		if _, err := o.Get(ctx, "nothing", 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of a missing object: %v, want ErrNotFound", err)
		}
		if err := o.Delete(ctx, "nothing"); err != nil {
			t.Fatalf("Delete of a missing object: %v", err)
		}
		if l, err := o.List(ctx); err != nil || len(l) != 0 {
			t.Fatalf("List of an empty directory: %v, %v", l, err)
		}
	})
	before := time.Now().Add(-2 * time.Second)
	t.Run("put, get, list, delete", func(t *testing.T) {
		want := map[string][]byte{"a0001-3-abc": []byte("one"), "b": []byte("second"), "empty": {}}
		for name, body := range want {
			if err := o.Put(ctx, name, body); err != nil {
				t.Fatal(err)
			}
		}
		for name, body := range want {
			got, err := o.Get(ctx, name, 100)
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("Get(%q) = %q, %v, want %q", name, got, err, body)
			}
		}
		names := ListNames(t, o, func(oi ObjectInfo) {
			if oi.Size != int64(len(want[oi.Name])) {
				t.Errorf("%s: size %d, want %d", oi.Name, oi.Size, len(want[oi.Name]))
			}
			if oi.Modified.Before(before) || oi.Modified.After(time.Now().Add(2*time.Second)) {
				t.Errorf("%s: modified %s, not about now", oi.Name, oi.Modified)
			}
		})
		if !slices.Equal(names, []string{"a0001-3-abc", "b", "empty"}) {
			t.Errorf("List names = %q", names)
		}
		if err := o.Put(ctx, "b", []byte("replaced")); err != nil {
			t.Fatal(err)
		}
		if got, err := o.Get(ctx, "b", 0); err != nil || string(got) != "replaced" {
			t.Errorf("Get after a second Put = %q, %v", got, err)
		}
		for name := range want {
			if err := o.Delete(ctx, name); err != nil {
				t.Fatal(err)
			}
			if _, err := o.Get(ctx, name, 0); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after Delete: %v", err)
			}
		}
		if l, err := o.List(ctx); err != nil || len(l) != 0 {
			t.Fatalf("List after deleting everything: %v, %v", l, err)
		}
	})
	t.Run("size cap", func(t *testing.T) {
		if err := o.Put(ctx, "big", make([]byte, 101)); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Get(ctx, "big", 100); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Get over the cap: %v, want ErrTooLarge", err)
		}
		if b, err := o.Get(ctx, "big", 101); err != nil || len(b) != 101 {
			t.Errorf("Get at the cap: %d bytes, %v", len(b), err)
		}
		if err := o.Delete(ctx, "big"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("invalid names", func(t *testing.T) {
		for _, name := range []string{"", "../x", "a/b", "A", ".tmp", strings.Repeat("a", 201)} {
			if _, err := o.Get(ctx, name, 0); !errors.Is(err, ErrObjectName) {
				t.Errorf("Get(%q): %v, want ErrObjectName", name, err)
			}
			if err := o.Put(ctx, name, []byte("x")); !errors.Is(err, ErrObjectName) {
				t.Errorf("Put(%q): %v, want ErrObjectName", name, err)
			}
			if err := o.Delete(ctx, name); !errors.Is(err, ErrObjectName) {
				t.Errorf("Delete(%q): %v, want ErrObjectName", name, err)
			}
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := o.Get(canceled, "x", 0); !errors.Is(err, context.Canceled) {
			t.Errorf("Get: %v", err)
		}
		if err := o.Put(canceled, "x", nil); !errors.Is(err, context.Canceled) {
			t.Errorf("Put: %v", err)
		}
		if _, err := o.List(canceled); !errors.Is(err, context.Canceled) {
			t.Errorf("List: %v", err)
		}
		if err := o.Delete(canceled, "x"); !errors.Is(err, context.Canceled) {
			t.Errorf("Delete: %v", err)
		}
	})
}

func TestFileObjects(t *testing.T) {
	dir := t.TempDir()
	st := NewFileStore(filepath.Join(dir, "ruleset.signed"), StoreOptions{})
	if got, want := st.Parts().String(), filepath.Join(dir, "ruleset.signed.parts"); got != want {
		t.Errorf("Parts() = %s, want %s", got, want)
	}
	if got, want := st.Roots().String(), filepath.Join(dir, "ruleset.signed.roots"); got != want {
		t.Errorf("Roots() = %s, want %s", got, want)
	}
	for _, o := range []Objects{st.Parts(), st.Roots()} {
		t.Run(filepath.Base(o.String()), func(t *testing.T) { testObjects(t, o) })
	}
	t.Run("no temporary files left", func(t *testing.T) {
		for _, o := range []Objects{st.Parts(), st.Roots()} {
			entries, err := os.ReadDir(o.String())
			if err != nil || len(entries) != 0 {
				t.Errorf("%s holds %v (%v)", o, entries, err)
			}
		}
	})
	t.Run("missing root directory", func(t *testing.T) {
		missing := filepath.Join(dir, "no-such-dir")
		o := NewFileStore(filepath.Join(missing, "x"), StoreOptions{}).Parts()
		err := o.Put(context.Background(), "a", []byte("x"))
		if err == nil || !strings.Contains(err.Error(), "directory "+missing+" does not exist") {
			t.Fatalf("Put: %v", err)
		}
		if l, err := o.List(context.Background()); err != nil || l != nil {
			t.Fatalf("List: %v %v", l, err)
		}
	})
}

// TestFileObjectsRefuseSpecialFiles: as for the root's path, a FIFO, a
// directory or a device is never read or replaced, and a symbolic link is
// not an object the store wrote.
func TestFileObjectsRefuseSpecialFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o := NewFileStore(filepath.Join(dir, "r"), StoreOptions{}).Parts()
	if err := o.Put(ctx, "good", []byte("x")); err != nil {
		t.Fatal(err)
	}
	pdir := o.String()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("not a part"), 0o600); err != nil {
		t.Fatal(err)
	}
	mk := map[string]func(string) error{
		"fifo":    func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"dir":     func(p string) error { return os.Mkdir(p, 0o700) },
		"symlink": func(p string) error { return os.Symlink(secret, p) },
		"devnull": func(p string) error { return os.Symlink("/dev/null", p) },
	}
	for name, make := range mk {
		if err := make(filepath.Join(pdir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for name := range mk {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := o.Get(ctx, name, 0)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), filepath.Join(pdir, name)) {
					t.Fatalf("Get: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Get still blocked after 5 s")
			}
			if err := o.Put(ctx, name, []byte("x")); !errors.Is(err, ErrNotRegular) {
				t.Fatalf("Put over a %s: %v", name, err)
			}
		})
	}
	list, err := o.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "good" {
		t.Errorf("List = %v, %v; want only the regular file", list, err)
	}
	if err := o.Delete(ctx, "dir"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Delete of a directory: %v", err)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "not a part" {
		t.Errorf("the symbolic link's target changed: %q %v", b, err)
	}
	// A file where the directory should be.
	notDir := NewFileStore(secret, StoreOptions{}) // secret.parts does not exist
	if err := os.WriteFile(secret+".parts", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := notDir.Parts().Put(ctx, "a", []byte("x")); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Put into a file: %v", err)
	}
}

// s3TestStore opens a store on moto_server with a fresh bucket.
func s3TestStore(t *testing.T, bucket, key string, opts StoreOptions) *S3Store {
	t.Helper()
	ctx := context.Background()
	st, err := NewS3Store(ctx, bucket, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		var owned interface{ ErrorCode() string }
		if !errors.As(err, &owned) || owned.ErrorCode() != "BucketAlreadyOwnedByYou" {
			t.Fatalf("creating bucket: %v", err)
		}
	}
	return st
}

func TestS3Objects(t *testing.T) {
	endpoint := mototest.Start(t, mototest.Options{Why: "the S3 objects test"})
	ctx := context.Background()
	st := s3TestStore(t, "reyes-objects", "rulesets/prod.signed", testS3Options(endpoint))
	if got := st.Parts().String(); got != "s3://reyes-objects/rulesets/prod.signed.parts/" {
		t.Errorf("Parts() = %s", got)
	}
	if got := st.Roots().String(); got != "s3://reyes-objects/rulesets/prod.signed.roots/" {
		t.Errorf("Roots() = %s", got)
	}
	for _, o := range []Objects{st.Parts(), st.Roots()} {
		t.Run(o.String(), func(t *testing.T) { testObjects(t, o) })
	}

	t.Run("list paginates and keeps to its prefix", func(t *testing.T) {
		o := st.objects(partsSuffix)
		o.pageSize = 3
		var want []string
		for i := range 10 {
			name := fmt.Sprintf("p%02d", i)
			want = append(want, name)
			if err := o.Put(ctx, name, []byte(name)); err != nil {
				t.Fatal(err)
			}
		}
		// Neighbours that are not parts of this root.
		for _, key := range []string{"rulesets/prod.signed", "rulesets/prod.signed.roots/p99", "rulesets/prod.signed.parts/sub/x",
			"rulesets/prod.signed.parts/UPPER", "rulesets/prod.signedx.parts/p98"} {
			if _, err := st.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("reyes-objects"), Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
				t.Fatal(err)
			}
		}
		names := ListNames(t, o, func(oi ObjectInfo) {
			if oi.Size != 3 {
				t.Errorf("%s: size %d", oi.Name, oi.Size)
			}
		})
		if !slices.Equal(names, want) {
			t.Errorf("List = %q, want %q", names, want)
		}
	})
}

// TestS3ObjectsHungServer: every call on a part ends within the store's
// per-attempt timeout times its attempts, is logged at each retry naming
// the part, and fails naming the call and the part.
func TestS3ObjectsHungServer(t *testing.T) {
	st, logs := hungS3Store(t, 2)
	o := st.Parts()
	ctx := context.Background()
	for _, tc := range []struct {
		call string
		do   func() error
	}{
		{"GetObject", func() error { _, err := o.Get(ctx, "g0001-1-ab", 0); return err }},
		{"PutObject", func() error { return o.Put(ctx, "g0001-1-ab", []byte("x")) }},
		{"ListObjectsV2", func() error { _, err := o.List(ctx); return err }},
		{"DeleteObject", func() error { return o.Delete(ctx, "g0001-1-ab") }},
	} {
		t.Run(tc.call, func(t *testing.T) {
			logs.Reset()
			start := time.Now()
			err := tc.do()
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %s", d)
			}
			if err == nil || !strings.Contains(err.Error(), tc.call) || !strings.Contains(err.Error(), "s3://reyes-test/obj.parts/") {
				t.Fatalf("err = %v, want one naming %s and the part", err, tc.call)
			}
			if !strings.Contains(logs.String(), "call="+tc.call) || !strings.Contains(logs.String(), "where=s3://reyes-test/obj.parts/") {
				t.Errorf("retry log:\n%s", logs.String())
			}
		})
	}
}
