package sign

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const benchPayloadSize = 20 << 20

func benchObject(b *testing.B) (obj, payload []byte, kr *Keyring) {
	b.Helper()
	now := time.Now()
	s, _, _ := testKey(b, "Bench", "bench@example.org", now)
	payload = make([]byte, benchPayloadSize)
	rand.Read(payload)
	return mustSeal(b, payload, s, now), payload, s.Keyring()
}

// BenchmarkOpen20MiB opens (reads, splits, verifies) a 20 MiB object.
func BenchmarkOpen20MiB(b *testing.B) {
	benchOpen(b, func(obj []byte, kr *Keyring, now time.Time) error {
		_, err := Open(bytes.NewReader(obj), kr, now)
		return err
	})
}

// BenchmarkOpenBytes20MiB opens the same object already in memory, as a
// follower does with what a store returned: no copy of the payload.
func BenchmarkOpenBytes20MiB(b *testing.B) {
	benchOpen(b, func(obj []byte, kr *Keyring, now time.Time) error {
		_, err := OpenBytes(obj, kr, now)
		return err
	})
}

// benchOpen times open of the 20 MiB object of benchObject.
func benchOpen(b *testing.B, open func(obj []byte, kr *Keyring, now time.Time) error) {
	obj, _, kr := benchObject(b)
	now := time.Now()
	b.SetBytes(int64(len(obj)))
	b.ReportAllocs()
	for b.Loop() {
		if err := open(obj, kr, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeal20MiB signs a 20 MiB payload.
func BenchmarkSeal20MiB(b *testing.B) {
	_, payload, _ := benchObject(b)
	s, _, _ := testKey(b, "Bench", "bench@example.org", time.Now())
	now := time.Now()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := Seal(payload, s, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSHA256Go20MiB is the floor inside the process: hashing alone.
func BenchmarkSHA256Go20MiB(b *testing.B) {
	_, payload, _ := benchObject(b)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		sha256.Sum256(payload)
	}
}

// BenchmarkSha256sum20MiB runs coreutils sha256sum on the same bytes from
// the page cache (process start included): the yardstick the issue names.
func BenchmarkSha256sum20MiB(b *testing.B) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		b.Skip("sha256sum not installed (coreutils)")
	}
	obj, _, _ := benchObject(b)
	p := filepath.Join(b.TempDir(), "object")
	if err := os.WriteFile(p, obj, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(obj)))
	for b.Loop() {
		if err := exec.Command("sha256sum", p).Run(); err != nil {
			b.Fatal(err)
		}
	}
}
