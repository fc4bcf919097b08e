package reyes_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/sealtest"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
)

// publishSerial seals a ruleset of the sample estate with the given serial
// and puts it into the pipeline's store, as a leader holding the key could.
func (p *pipeline) publishSerial(t *testing.T, serial uint64, at time.Time) ruleset.Header {
	t.Helper()
	obj, rs := sealtest.Seal(t, sampleInventory, ruleset.BuildOptions{Scope: "test", GeneratedAt: at, Serial: serial}, p.signer, at)
	if err := p.store.Put(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	return rs.Header
}

// TestSerialCannotRunAhead: a validly signed object with serial 2^64-1
// used to make every later object a "rollback" until the state file was
// deleted by hand. Followers now refuse a serial beyond not_after in
// nanoseconds, the leader ignores such a published serial, and a follower
// that accepted one before recovers by generation time.
func TestSerialCannotRunAhead(t *testing.T) {
	ctx := context.Background()
	p := appliedPipeline(t)

	p.now = p.now.Add(time.Minute)
	poisoned := p.publishSerial(t, math.MaxUint64, p.now)
	if _, err := p.follower.RunOnce(ctx); !errors.Is(err, reyes.ErrSerialAhead) {
		t.Fatalf("follower accepted serial 2^64-1: %v", err)
	}

	// A follower of an older reyes accepted it: its state holds the serial.
	if err := reyes.SaveState(p.follower.StateDir, reyes.NewState(poisoned, reyes.Digest{1}, "", p.now)); err != nil {
		t.Fatal(err)
	}
	p.now = p.now.Add(time.Minute)
	var logs bytes.Buffer
	p.leader.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	res, err := p.leader.RunOnce(ctx)
	if err != nil || res.Skipped {
		t.Fatalf("leader after a poisoned serial: %+v %v", res, err)
	}
	if res.Header.Serial == 0 || res.Header.Serial > reyes.MaxSerial(res.Header.NotAfter) {
		t.Fatalf("leader published serial %d", res.Header.Serial)
	}
	if !strings.Contains(logs.String(), "beyond its time") {
		t.Errorf("leader did not say it ignored the serial:\n%s", logs.String())
	}
	if _, err := p.follower.RunOnce(ctx); err != nil {
		t.Fatalf("follower with the poisoned state refused the leader's next object: %v", err)
	}
	// And from then on serials compare again: an older one is a rollback.
	older := p.publishSerial(t, res.Header.Serial-1, p.now.Add(-time.Second))
	if _, err := p.follower.RunOnce(ctx); !errors.Is(err, reyes.ErrRollback) {
		t.Fatalf("serial %d after %d: %v", older.Serial, res.Header.Serial, err)
	}
}

func TestFreshnessSerialBound(t *testing.T) {
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	h := ruleset.Header{Format: ruleset.Format, Type: ruleset.Type, Scope: "s", GeneratedAt: at, NotAfter: at.Add(time.Hour)}
	p := reyes.FreshnessPolicy{Scope: "s"}
	for _, tc := range []struct {
		name   string
		serial uint64
		want   error
	}{
		{"generated_at in nanoseconds", uint64(at.UnixNano()), nil},
		{"not_after in nanoseconds", uint64(at.Add(time.Hour).UnixNano()), nil},
		{"one past not_after", uint64(at.Add(time.Hour).UnixNano()) + 1, reyes.ErrSerialAhead},
		{"2^64-1", math.MaxUint64, reyes.ErrSerialAhead},
		{"small", 7, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h
			h.Serial = tc.serial
			_, err := p.Check(h, reyes.Digest{2}, at, reyes.State{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("serial %d: %v, want %v", tc.serial, err, tc.want)
			}
		})
	}
}

// TestMaxSkewReachesSignature: max_skew 10m with the leader 8 minutes
// ahead was accepted by the freshness check and refused by the signature
// check ("allowed skew 5m0s").
func TestMaxSkewReachesSignature(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		skew    time.Duration
		ahead   time.Duration
		refused bool
	}{
		{"10m skew, leader 8m ahead", 10 * time.Minute, 8 * time.Minute, false},
		{"default skew, leader 8m ahead", 0, 8 * time.Minute, true},
		{"2m skew, leader 3m ahead", 2 * time.Minute, 3 * time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline(t)
			p.follower.Freshness.MaxSkew = tc.skew
			leaderNow := p.now.Add(tc.ahead)
			p.leader.Now = func() time.Time { return leaderNow }
			if _, err := p.leader.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			_, err := p.follower.RunOnce(ctx)
			if tc.refused != (err != nil) {
				t.Fatalf("refused=%v: %v", tc.refused, err)
			}
		})
	}
}

func TestLeaderTTL(t *testing.T) {
	ctx := context.Background()
	t.Run("above max_validity refused", func(t *testing.T) {
		p := newPipeline(t)
		p.leader.Build.TTL = 48 * time.Hour
		if _, err := p.leader.RunOnce(ctx); !errors.Is(err, reyes.ErrTTL) {
			t.Fatalf("ttl 48h: %v", err)
		}
		if _, _, err := p.store.Get(ctx, ""); !errors.Is(err, reyes.ErrNotFound) {
			t.Fatalf("something was published: %v", err)
		}
		p.leader.MaxValidity = 48 * time.Hour
		p.follower.Freshness.MaxValidity = 48 * time.Hour
		p.publishAndApply(t)
	})
	t.Run("changed ttl republishes", func(t *testing.T) {
		p := newPipeline(t)
		p.leader.Build.TTL = time.Hour
		first, err := p.leader.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.now = p.now.Add(time.Minute)
		if res, err := p.leader.RunOnce(ctx); err != nil || !res.Skipped {
			t.Fatalf("same ttl: %+v %v", res, err)
		}
		p.leader.Build.TTL = 2 * time.Hour
		res, err := p.leader.RunOnce(ctx)
		if err != nil || res.Skipped || res.Header.NotAfter.Sub(res.Header.GeneratedAt) != 2*time.Hour || res.Header.Serial <= first.Header.Serial {
			t.Fatalf("changed ttl: %+v %v", res, err)
		}
	})
}

// failingGet is a store whose Get fails (a missing s3:GetObject, say); its
// parts and roots are the file store's.
type failingGet struct{ *reyes.FileStore }

func (f failingGet) Get(context.Context, string) ([]byte, string, error) {
	return nil, "", errors.New("AccessDenied: s3:GetObject")
}

func TestLeaderCountsFailedPreviousRead(t *testing.T) {
	ctx := context.Background()
	p := newPipeline(t)
	var logs bytes.Buffer
	p.leader.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	p.leader.Store = failingGet{p.store}
	for i := 1; i <= 2; i++ {
		res, err := p.leader.RunOnce(ctx)
		if err != nil || res.Skipped {
			t.Fatalf("run %d: %+v %v", i, res, err)
		}
		if res.PreviousReadError == nil || res.PreviousReadFailures != i {
			t.Fatalf("run %d: read error %v counted %d", i, res.PreviousReadError, res.PreviousReadFailures)
		}
		p.now = p.now.Add(time.Minute)
	}
	if got := strings.Count(logs.String(), "could not read the published object back"); got != 2 || !strings.Contains(logs.String(), "s3:GetObject") {
		t.Fatalf("%d warnings:\n%s", got, logs.String())
	}
	// No object yet is not a failure.
	q := newPipeline(t)
	if res, err := q.leader.RunOnce(ctx); err != nil || res.PreviousReadError != nil || res.PreviousReadFailures != 0 {
		t.Fatalf("first publish: %+v %v", res, err)
	}
}
