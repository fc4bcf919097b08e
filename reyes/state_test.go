package reyes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created by SaveState
	st, err := LoadState(dir)
	if err != nil || !st.IsZero() {
		t.Fatalf("missing state: %+v, %v; want zero, nil", st, err)
	}
	want := NewState(header(42, t0, time.Hour), SumPayload([]byte("p")), `"abc"`, t0.Add(time.Second))
	if err := SaveState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state directory holds %d entries, want only %s", len(entries), StateFile)
	}
	if err := SaveState(dir, State{}); err == nil {
		t.Error("saving an empty state succeeded")
	}
}

func TestStateCorrupt(t *testing.T) {
	good := `{"format":"reyes.state/v1","scope":"prod","serial":1,"generated_at":"2025-06-01T12:00:00Z","not_after":"2025-06-01T13:00:00Z","sha256":"` + strings.Repeat("ab", 32) + `","accepted_at":"2025-06-01T12:00:00Z"}`
	tests := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"garbage", "not json"},
		{"truncated", good[:len(good)-10]},
		{"unknown field", strings.Replace(good, `"serial"`, `"serail":1,"serial"`, 1)},
		{"trailing data", good + "{}"},
		{"wrong format", strings.Replace(good, "reyes.state/v1", "reyes.state/v2", 1)},
		{"short digest", strings.Replace(good, strings.Repeat("ab", 32), "abab", 1)},
		{"no digest", strings.Replace(good, `"sha256":"`+strings.Repeat("ab", 32)+`",`, "", 1)},
		{"negative serial", strings.Replace(good, `"serial":1`, `"serial":-1`, 1)},
		{"too large", good + strings.Repeat(" ", maxStateSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadState(dir); !errors.Is(err, ErrCorruptState) {
				t.Fatalf("got %v, want ErrCorruptState", err)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, StateFile), []byte(good), 0o644)
		if st, err := LoadState(dir); err != nil || st.Serial != 1 {
			t.Fatalf("got %+v, %v", st, err)
		}
	})
}

func TestSaveStateFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	old := NewState(header(1, t0, time.Hour), SumPayload([]byte("old")), "", t0)
	if err := SaveState(dir, old); err != nil {
		t.Fatal(err)
	}
	// A state that cannot be encoded (a year past 9999) fails before the
	// file is touched.
	bad := NewState(header(2, t0, time.Hour), SumPayload([]byte("new")), "", t0)
	bad.NotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := SaveState(dir, bad); err == nil {
		t.Fatal("SaveState of an unencodable state succeeded")
	}
	if got, err := LoadState(dir); err != nil || got != old {
		t.Fatalf("after a failed save: %+v, %v; want the old state", got, err)
	}
	// A directory that cannot be written: root ignores permissions.
	if os.Geteuid() == 0 {
		t.Skip("running as root, which ignores directory permissions; the read-only case needs a normal user")
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if err := SaveState(dir, NewState(header(2, t0, time.Hour), SumPayload([]byte("new")), "", t0)); err == nil {
		t.Fatal("SaveState into a read-only directory succeeded")
	}
	if got, err := LoadState(dir); err != nil || got != old {
		t.Fatalf("after a failed save: %+v, %v; want the old state", got, err)
	}
}

// FuzzDecodeState: the state decoder never panics, and what it accepts
// survives a save and load unchanged.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"format":"reyes.state/v1","scope":"prod","serial":1,"generated_at":"2025-06-01T12:00:00Z","not_after":"2025-06-01T13:00:00Z","sha256":"` + strings.Repeat("ab", 32) + `","etag":"\"x\"","accepted_at":"2025-06-01T12:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"reyes.state/v1"} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeState(data)
		if err != nil {
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("error %v is not ErrCorruptState", err)
			}
			return
		}
		dir := t.TempDir()
		if err := SaveState(dir, st); err != nil {
			t.Fatalf("saving a decoded state: %v", err)
		}
		back, err := LoadState(dir)
		if err != nil {
			t.Fatalf("loading a saved state: %v", err)
		}
		if !back.GeneratedAt.Equal(st.GeneratedAt) || back.Serial != st.Serial || back.Digest != st.Digest || back.ETag != st.ETag {
			t.Fatalf("state changed in a round trip: %+v -> %+v", st, back)
		}
	})
}
