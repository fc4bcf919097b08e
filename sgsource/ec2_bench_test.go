package sgsource_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/sgsource"
)

// BenchmarkEC2Fetch fetches synth.Large (4 regions, 5,000 groups, 50,000
// interfaces, 100,000 addresses) from an httptest EC2 endpoint that renders
// the XML pages on the fly, in the same process. It reports the API calls
// per Fetch, the peak heap in use during a Fetch (the endpoint's pages
// included, sampled every millisecond) and the heap the returned Inventory
// keeps, and the CPU time of the process per Fetch (client and endpoint),
// which unlike the wall time does not depend on what else the machine runs.
func BenchmarkEC2Fetch(b *testing.B) {
	inv := synth.Generate(synth.Large())
	var regions []string
	for _, r := range inv.Regions {
		regions = append(regions, r.Name)
	}
	for _, bc := range []struct {
		name     string
		pageSize int32
	}{
		{"pages=1000", 1000},
		{"pages=default", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fake, srv := sgsource.NewFakeEC2(b, inv)
			src := sgsource.NewTestEC2(srv, regions...)
			src.PageSize = bc.pageSize
			b.ReportAllocs()

			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			var peak atomic.Uint64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				t := time.NewTicker(time.Millisecond)
				defer t.Stop()
				var ms runtime.MemStats
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						runtime.ReadMemStats(&ms)
						if ms.HeapInuse > peak.Load() {
							peak.Store(ms.HeapInuse)
						}
					}
				}
			})

			cpu0 := cpuTime()
			var got *inventory.Inventory
			b.ResetTimer()
			for b.Loop() {
				var err error
				if got, err = src.Fetch(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			close(stop)
			wg.Wait()

			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(got)
			b.ReportMetric(float64(fake.Count("", ""))/float64(b.N), "calls/op")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(peak.Load()-min(peak.Load(), base.HeapInuse))/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(base.HeapAlloc))/(1<<20), "inventory-MiB")
			if len(got.Regions) != len(inv.Regions) {
				b.Fatalf("got %d regions", len(got.Regions))
			}
		})
	}
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
