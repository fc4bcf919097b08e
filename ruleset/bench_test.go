package ruleset

import (
	"sync"
	"testing"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
)

// The benchmarks run at the size of the performance targets: synth.Large,
// 5,000 groups, 50,000 interfaces, 100,000 addresses, 20,000 rules.
var large = sync.OnceValue(func() *inventory.Inventory { return synth.Generate(synth.Large()) })

func BenchmarkBuild(b *testing.B) {
	inv := large()
	b.ReportAllocs()
	for b.Loop() {
		mustBuild(b, inv, BuildOptions{Exclude: []string{"vpn"}})
	}
}

func BenchmarkEncode(b *testing.B) {
	rs := mustBuild(b, large(), BuildOptions{Exclude: []string{"vpn"}})
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(mustEncode(b, rs))
	}
	b.ReportMetric(float64(n), "encoded-bytes")
}

func BenchmarkDecode(b *testing.B) {
	data := mustEncode(b, mustBuild(b, large(), BuildOptions{Exclude: []string{"vpn"}}))
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "encoded-bytes")
}
