package ruleset

import "testing"

func TestBinsFor(t *testing.T) {
	const k = 16 << 10
	for _, c := range []struct {
		name       string
		size, tgt  int64
		prev, want int
	}{
		{"empty", 0, k, 0, 1},
		{"one bin's worth", k, k, 0, 1},
		{"just over", k + 1, k, 0, 2},
		{"sqrt(16)=4", 16 * k, k, 0, 4},
		{"sqrt(17) rounds up to 8", 17 * k, k, 0, 8},
		{"1000 -> 32", 1000 * k, k, 0, 32},
		{"clamped", 1 << 50, k, 0, MaxBins},
		{"previous kept when the ideal is 4 times more", 16 * 16 * k, k, 4, 4},
		{"previous left when the ideal is 8 times more", 32 * 32 * k, k, 4, 32},
		{"previous kept when the ideal is 4 times less", 16 * k, k, 16, 16},
		{"previous left when the ideal is 8 times less", 4 * k, k, 16, 2},
		{"invalid previous ignored", 16 * k, k, 3, 4},
		{"previous beyond MaxBins ignored", 16 * k, k, 8192, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := binsFor(c.size, c.tgt, c.prev); got != c.want {
				t.Fatalf("binsFor(%d, %d, %d) = %d, want %d", c.size, c.tgt, c.prev, got, c.want)
			}
		})
	}
}

// TestSplitMemberBins: members get twice the bins of another kind of the
// same size (R = 4 under the square root).
func TestSplitMemberBins(t *testing.T) {
	for kind, want := range map[string]int{KindAddrs: 32, KindGroups: 32, KindInterfaces: 32, KindMembers: 64} {
		if got := binsFor(1000*DefaultTargetBinBytes*binReads(kind), DefaultTargetBinBytes, 0); got != want {
			t.Errorf("%s: %d bins for 1000 × the target, want %d", kind, got, want)
		}
	}
}
