package sign

import (
	"bytes"
	"testing"
	"time"
)

// FuzzOpen feeds arbitrary objects to Open. It must never panic, and when it
// accepts an object that object must be exactly the canonical packing of the
// payload it returns (nothing added, nothing dropped).
func FuzzOpen(f *testing.F) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s, _, _ := testKey(f, "Fuzz", "fuzz@example.org", now)
	kr := s.Keyring()
	for _, p := range []string{"", "{}", `{"format":"reyes.ruleset/v1"}`, "\x00\xff\n"} {
		obj, err := Seal([]byte(p), s, now)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(obj)
		f.Add(obj[:len(obj)-1])
		f.Add(append(bytes.Clone(obj), 'x'))
	}
	f.Add([]byte("reyes-signed/v1 sig=1 payload=0\n-"))
	f.Add([]byte("reyes-signed/v2 sig=1 payload=0\n-"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\n"))
	f.Fuzz(func(t *testing.T, obj []byte) {
		payload, err := Open(bytes.NewReader(obj), kr, now, WithMaxSize(1<<20))
		p1, err1 := OpenBytes(obj, kr, now, WithMaxSize(1<<20))
		if (err == nil) != (err1 == nil) || !bytes.Equal(payload, p1) || err != nil && err.Error() != err1.Error() {
			t.Fatalf("Open and OpenBytes disagree: %q, %v and %q, %v", payload, err, p1, err1)
		}
		if err != nil {
			if payload != nil {
				t.Fatalf("payload returned with error %v", err)
			}
			return
		}
		p2, sig, err := Unpack(obj)
		if err != nil {
			t.Fatalf("Open accepted what Unpack refuses: %v", err)
		}
		if !bytes.Equal(p2, payload) || !bytes.Equal(pack(sig, payload), obj) {
			t.Fatalf("accepted object is not the canonical packing of its payload")
		}
	})
}
