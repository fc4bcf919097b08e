package reyes_test

import (
	"context"
	"testing"
)

// BenchmarkFollowerUnchanged is one idle poll: the store answers "not
// modified", the settings and identity match the last apply, no drift
// check is due. It includes writing the status and metrics files.
func BenchmarkFollowerUnchanged(b *testing.B) {
	p := newPipeline(b)
	ctx := context.Background()
	if _, err := p.leader.RunOnce(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := p.follower.RunOnce(ctx); err != nil {
		b.Fatal(err)
	}
	p.kernel.ResetCalls()
	b.ResetTimer()
	for b.Loop() {
		res, err := p.follower.RunOnce(ctx)
		if err != nil || !res.NotModified {
			b.Fatalf("NotModified=%v err=%v", res.NotModified, err)
		}
	}
	b.StopTimer()
	if n := len(p.kernel.Calls()); n != 0 {
		b.Fatalf("%d kernel calls", n)
	}
}
