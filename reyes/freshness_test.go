package reyes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func header(serial uint64, generated time.Time, ttl time.Duration) ruleset.Header {
	return ruleset.Header{
		Format: ruleset.Format, Type: ruleset.Type, Scope: "prod",
		Serial: serial, GeneratedAt: generated, NotAfter: generated.Add(ttl),
	}
}

// followerStep is what a follower does with a verified payload: load the
// state, check, and save only an accepted change.
func followerStep(dir string, p FreshnessPolicy, h ruleset.Header, d Digest, now time.Time) (bool, error) {
	last, err := LoadState(dir)
	if err != nil {
		return false, err
	}
	changed, err := p.Check(h, d, now, last)
	if err != nil || !changed {
		return changed, err
	}
	return true, SaveState(dir, NewState(h, d, `"etag"`, now))
}

func TestFreshness(t *testing.T) {
	policy := FreshnessPolicy{Scope: "prod"}
	lastDigest := SumPayload([]byte("serial 10"))
	otherDigest := SumPayload([]byte("something else"))
	mod := func(f func(*ruleset.Header)) ruleset.Header {
		h := header(11, t0, time.Hour)
		f(&h)
		return h
	}
	tests := []struct {
		name    string
		policy  FreshnessPolicy
		h       ruleset.Header
		digest  Digest
		now     time.Time
		changed bool
		want    error
	}{
		{"newer serial", policy, header(11, t0, time.Hour), otherDigest, t0, true, nil},
		{"identical again", policy, header(10, t0.Add(-time.Minute), time.Hour), lastDigest, t0, false, nil},
		{"any positive ttl", policy, header(11, t0, time.Second), otherDigest, t0, true, nil},
		{"at not_after", policy, header(11, t0, time.Hour), otherDigest, t0.Add(time.Hour), true, nil},
		{"within skew", policy, header(11, t0.Add(4*time.Minute), time.Hour), otherDigest, t0, true, nil},
		{"validity at the cap", policy, header(11, t0, 24*time.Hour), otherDigest, t0, true, nil},
		{"custom cap", FreshnessPolicy{Scope: "prod", MaxValidity: 2 * time.Hour}, header(11, t0, 2*time.Hour), otherDigest, t0, true, nil},

		{"expired", policy, header(11, t0, time.Hour), otherDigest, t0.Add(time.Hour + time.Second), false, ErrExpired},
		{"identical but expired", policy, header(10, t0.Add(-time.Minute), time.Hour), lastDigest, t0.Add(2 * time.Hour), false, ErrExpired},
		{"from the future", policy, header(11, t0.Add(6*time.Minute), time.Hour), otherDigest, t0, false, ErrNotYetValid},
		{"custom skew", FreshnessPolicy{Scope: "prod", MaxSkew: time.Second}, header(11, t0.Add(2*time.Second), time.Hour), otherDigest, t0, false, ErrNotYetValid},
		{"validity too long", policy, header(11, t0, 24*time.Hour+time.Second), otherDigest, t0, false, ErrValidityTooLong},
		{"custom cap exceeded", FreshnessPolicy{Scope: "prod", MaxValidity: time.Hour}, header(11, t0, 2*time.Hour), otherDigest, t0, false, ErrValidityTooLong},
		{"wrong scope", policy, mod(func(h *ruleset.Header) { h.Scope = "staging" }), otherDigest, t0, false, ErrWrongScope},
		{"no scope configured", FreshnessPolicy{}, header(11, t0, time.Hour), otherDigest, t0, false, ErrWrongScope},
		{"older serial", policy, header(9, t0, time.Hour), otherDigest, t0, false, ErrRollback},
		{"same serial other content", policy, header(10, t0, time.Hour), otherDigest, t0, false, ErrRollback},
		{"wrong format", policy, mod(func(h *ruleset.Header) { h.Format = "reyes.ruleset/v0" }), otherDigest, t0, false, ErrBadHeader},
		{"wrong type", policy, mod(func(h *ruleset.Header) { h.Type = "inventory" }), otherDigest, t0, false, ErrBadHeader},
		{"no generated_at", policy, mod(func(h *ruleset.Header) { h.GeneratedAt = time.Time{} }), otherDigest, t0, false, ErrBadHeader},
		{"not_after before generated_at", policy, header(11, t0, -time.Minute), otherDigest, t0, false, ErrBadHeader},
		{"zero ttl", policy, header(11, t0, 0), otherDigest, t0, false, ErrBadHeader},
	}
	sentinels := []error{ErrBadHeader, ErrWrongScope, ErrExpired, ErrNotYetValid, ErrValidityTooLong, ErrRollback}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			last := NewState(header(10, t0.Add(-time.Minute), time.Hour), lastDigest, `"e1"`, t0.Add(-time.Minute))
			if err := SaveState(dir, last); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(filepath.Join(dir, StateFile))
			if err != nil {
				t.Fatal(err)
			}
			changed, err := followerStep(dir, tt.policy, tt.h, tt.digest, tt.now)
			if changed != tt.changed {
				t.Errorf("changed = %v, want %v", changed, tt.changed)
			}
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, s := range sentinels {
				if err != nil && errors.Is(err, s) && s != tt.want {
					t.Errorf("err %v also matches %v", err, s)
				}
			}
			after, _ := os.ReadFile(filepath.Join(dir, StateFile))
			if !tt.changed && !bytes.Equal(before, after) {
				t.Errorf("state changed although nothing was accepted:\nbefore %s\nafter  %s", before, after)
			}
			if tt.changed {
				st, err := LoadState(dir)
				if err != nil || st.Serial != tt.h.Serial || st.Digest != tt.digest {
					t.Errorf("state after accept: %+v, %v", st, err)
				}
			}
		})
	}
}

func TestFreshnessFirstAndRescoped(t *testing.T) {
	h := header(1, t0, time.Hour)
	d := SumPayload([]byte("x"))
	for name, last := range map[string]State{
		"nothing accepted yet":   {},
		"last was another scope": NewState(ruleset.Header{Scope: "old", Serial: 99}, d, "", t0),
	} {
		t.Run(name, func(t *testing.T) {
			changed, err := FreshnessPolicy{Scope: "prod"}.Check(h, d, t0, last)
			if err != nil || !changed {
				t.Fatalf("Check = %v, %v; want true, nil", changed, err)
			}
		})
	}
}

func ExampleFreshnessPolicy_Check() {
	policy := FreshnessPolicy{Scope: "prod"} // default skew 5m, validity cap 24h
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	h := ruleset.Header{
		Format: ruleset.Format, Type: ruleset.Type, Scope: "prod",
		Serial: 7, GeneratedAt: now.Add(-time.Minute), NotAfter: now.Add(59 * time.Minute),
	}
	digest := SumPayload([]byte("the verified payload"))

	changed, err := policy.Check(h, digest, now, State{})
	fmt.Println("first:", changed, err)

	// After applying, the follower saves NewState(h, digest, etag, now).
	last := NewState(h, digest, `"etag"`, now)
	changed, err = policy.Check(h, digest, now, last)
	fmt.Println("again:", changed, err)

	h.Serial = 6
	_, err = policy.Check(h, SumPayload([]byte("older")), now, last)
	fmt.Println("older:", errors.Is(err, ErrRollback))
	// Output:
	// first: true <nil>
	// again: false <nil>
	// older: true
}

// FuzzVerifiedPayload drives the follower's path after the store: Open the
// signed object, Decode exactly the verified bytes, Check the header. It
// must never panic, Decode must only ever see verified bytes, and whatever
// passes must be recorded and recognised as unchanged.
func FuzzVerifiedPayload(f *testing.F) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	signer, _, _ := sealtest.Key(f, "Fuzz", now)
	trusted := signer.Keyring()
	rs := &ruleset.Ruleset{Header: header(3, now.Add(-time.Minute), time.Hour)}
	good, err := ruleset.Encode(rs)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, false)
	f.Add(good, true)
	f.Add([]byte(`{"format":"reyes.ruleset/v1"}`), false)
	f.Add([]byte(`{}`), false)
	policy := FreshnessPolicy{Scope: "prod"}
	f.Fuzz(func(t *testing.T, payload []byte, tamper bool) {
		obj, err := sign.Seal(payload, signer, now)
		if err != nil {
			t.Fatal(err)
		}
		if tamper && len(payload) > 0 {
			obj[len(obj)-1] ^= 0x20
		}
		verified, err := sign.Open(bytes.NewReader(obj), trusted, now)
		if tamper && len(payload) > 0 {
			if err == nil {
				t.Fatal("a tampered object opened")
			}
			return
		}
		if err != nil {
			t.Fatalf("Open of a fresh seal: %v", err)
		}
		decoded, err := ruleset.Decode(verified)
		if err != nil {
			return
		}
		d := SumPayload(verified)
		changed, err := policy.Check(decoded.Header, d, now, State{})
		if err != nil || !changed {
			return
		}
		again, err := policy.Check(decoded.Header, d, now, NewState(decoded.Header, d, "", now))
		if err != nil || again {
			t.Fatalf("the accepted ruleset again: changed=%v err=%v, want a no-op", again, err)
		}
	})
}

// TestRejectionsKeepState runs the follower's chain (store, verify, decode,
// freshness, save) for every kind of rejection and checks that the state
// saved for the previous ruleset is byte for byte untouched.
func TestRejectionsKeepState(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	leader, _, _ := sealtest.Key(t, "Leader", now.Add(-time.Hour))
	other, _, _ := sealtest.Key(t, "Other", now.Add(-time.Hour))
	trusted := leader.Keyring()

	encode := func(h ruleset.Header) []byte {
		b, err := ruleset.Encode(&ruleset.Ruleset{Header: h})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seal := func(payload []byte, s *sign.Signer) []byte {
		obj, err := sign.Seal(payload, s, now)
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	policy := FreshnessPolicy{Scope: "prod"}
	step := func(store Store, dir string) (bool, error) {
		last, err := LoadState(dir)
		if err != nil {
			return false, err
		}
		body, etag, err := store.Get(ctx, last.ETag)
		if errors.Is(err, ErrNotModified) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		payload, err := sign.OpenBytes(body, trusted, now, sign.WithMaxSize(1<<20))
		if err != nil {
			return false, err
		}
		rs, err := ruleset.Decode(payload)
		if err != nil {
			return false, err
		}
		d := SumPayload(payload)
		changed, err := policy.Check(rs.Header, d, now, last)
		if err != nil || !changed {
			return false, err
		}
		return true, SaveState(dir, NewState(rs.Header, d, etag, now))
	}

	good := encode(header(10, now.Add(-time.Minute), time.Hour))
	tampered := seal(encode(header(11, now, time.Hour)), leader)
	tampered[len(tampered)-5] ^= 1
	downURL := "s3://reyes-test/x"
	tests := []struct {
		name   string
		object []byte // nil: the store has nothing
		store  func(path string) Store
		want   error
	}{
		{"missing object", nil, nil, ErrNotFound},
		{"server down", nil, func(string) Store {
			opts := testS3Options("http://127.0.0.1:" + strconv.Itoa(freePort(t)))
			st, err := OpenStore(ctx, downURL, opts)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}, nil},
		{"over the store cap", seal(good, leader), func(p string) Store { return NewFileStore(p, StoreOptions{MaxSize: 100}) }, ErrTooLarge},
		{"unknown signer", seal(encode(header(11, now, time.Hour)), other), nil, sign.ErrUnknownSigner},
		{"bad signature", tampered, nil, sign.ErrBadSignature},
		{"not a signed object", good, nil, sign.ErrUnknownFormat},
		{"not a ruleset", seal([]byte(`{"hello":1}`), leader), nil, ruleset.ErrUnknownFormat},
		{"expired", seal(encode(header(11, now.Add(-2*time.Hour), time.Hour)), leader), nil, ErrExpired},
		{"not yet valid", seal(encode(header(11, now.Add(time.Hour), time.Hour)), leader), nil, ErrNotYetValid},
		{"validity too long", seal(encode(header(11, now, 48*time.Hour)), leader), nil, ErrValidityTooLong},
		{"wrong scope", seal(encode(func() ruleset.Header { h := header(11, now, time.Hour); h.Scope = "dev"; return h }()), leader), nil, ErrWrongScope},
		{"rollback", seal(encode(header(9, now, time.Hour)), leader), nil, ErrRollback},
		{"same serial, other content", seal(encode(header(10, now, time.Hour)), leader), nil, ErrRollback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "object")
			var store Store = NewFileStore(path, StoreOptions{})
			if err := store.Put(ctx, seal(good, leader)); err != nil {
				t.Fatal(err)
			}
			if changed, err := step(store, dir); err != nil || !changed {
				t.Fatalf("first ruleset: %v, %v", changed, err)
			}
			before, _ := os.ReadFile(filepath.Join(dir, StateFile))
			if tt.object != nil {
				if err := os.WriteFile(path, tt.object, 0o644); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if tt.store != nil {
				store = tt.store(path)
			}
			changed, err := step(store, dir)
			if changed || err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, %v; want an error matching %v", changed, err, tt.want)
			}
			after, _ := os.ReadFile(filepath.Join(dir, StateFile))
			if !bytes.Equal(before, after) {
				t.Errorf("state changed by a rejection:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	t.Run("unchanged is a no-op", func(t *testing.T) {
		dir := t.TempDir()
		store := NewFileStore(filepath.Join(dir, "object"), StoreOptions{})
		store.Put(ctx, seal(good, leader))
		if changed, err := step(store, dir); err != nil || !changed {
			t.Fatalf("first: %v, %v", changed, err)
		}
		before, _ := os.ReadFile(filepath.Join(dir, StateFile))
		if changed, err := step(store, dir); err != nil || changed {
			t.Fatalf("unchanged object (304): %v, %v", changed, err)
		}
		store.Put(ctx, seal(good, leader)) // same payload, new object and ETag
		if changed, err := step(store, dir); err != nil || changed {
			t.Fatalf("same ruleset republished: %v, %v", changed, err)
		}
		after, _ := os.ReadFile(filepath.Join(dir, StateFile))
		if !bytes.Equal(before, after) {
			t.Errorf("state changed by a no-op")
		}
	})
}
