package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply"
)

// TestSmoke runs the smallest size once, without the binaries, and checks
// what the benchmark relies on: an unchanged store makes no kernel call, a
// one-member change swaps exactly one set, a new serial of the same estate
// changes nothing.
func TestSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "ipset", "iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("kernel test: %s is not installed", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	be, err := apply.DetectBackend(ctx, apply.ExecRunner{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{Sizes: []size{sizes["small"]}, Runs: 1, Backend: be, Log: slog.New(slog.DiscardHandler)}
	r, err := runSize(ctx, cfg, sizes["small"], 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.ENIs != 500 || r.ObjectBytes == 0 || r.Leader.CPU <= 0 {
		t.Errorf("estate or leader not measured: %+v", r)
	}
	if len(r.Hosts) != 2 {
		t.Fatalf("got %d hosts, want 2", len(r.Hosts))
	}
	for _, h := range r.Hosts {
		t.Run(h.Kind, func(t *testing.T) {
			if h.Plan.Rules == 0 || h.Plan.Sets == 0 || h.Floor <= 0 || len(h.FloorSteps) == 0 {
				t.Errorf("plan or floor not measured: %+v %v", h.Plan, h.FloorSteps)
			}
			if h.Full.Calls.N == 0 || !h.Full.Changed {
				t.Errorf("full run: %d kernel calls, changed %v", h.Full.Calls.N, h.Full.Changed)
			}
			if !h.Unchanged.Result.NotModified || h.Unchanged.Calls.N != 0 {
				t.Errorf("unchanged run: not modified %v, calls %q", h.Unchanged.Result.NotModified, h.Unchanged.Calls.Calls)
			}
			if h.Republish.Changed {
				t.Errorf("republished run changed the kernel: %+v", h.Republish.Result.Applied)
			}
			if h.OneMember.Swapped != 1 || h.OneMember.Rules {
				t.Errorf("one-member run: %d sets swapped, rules loaded %v", h.OneMember.Swapped, h.OneMember.Rules)
			}
		})
	}
	rep := &report{Machine: "test", Command: "go run ./bench/e2e -sizes small", Runs: 1, Backend: be,
		Results: []*runResult{r}, All: [][]*runResult{{r}}}
	md := rep.markdown()
	for _, s := range []string{"| interfaces / groups / rules / addresses | 500 / 50 / 200 / 1,000 |", "**follower end to end**", "One-member change: "} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
}

func TestWriteSection(t *testing.T) {
	gen := func(body string) string { return beginMarker + "\n\n" + body + "\n" + endMarker }
	tests := []struct {
		name, old, text, want string
	}{
		{"new file", "", "T1", sectionHeading + "\n\n" + gen("T1") + "\n\n"},
		{"added at the top", "## apply\n\nx\n", "T1", sectionHeading + "\n\n" + gen("T1") + "\n\n## apply\n\nx\n"},
		{"replaced, notes and other sections kept",
			sectionHeading + "\n\n" + gen("old") + "\n\nNotes.\n\n## apply\n",
			"new", sectionHeading + "\n\n" + gen("new") + "\n\nNotes.\n\n## apply\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
			if tt.old != "" {
				if err := os.WriteFile(path, []byte(tt.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := writeSection(path, tt.text); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"num small", num(999), "999"},
		{"num thousands", num(1234567), "1,234,567"},
		{"ms sub-millisecond", ms(150 * time.Microsecond), "0.15 ms"},
		{"ms tens", ms(42 * time.Millisecond), "42 ms"},
		{"ms thousands", ms(12345 * time.Millisecond), "12,345 ms"},
		{"mb kilobytes", mb(15_000), "15 kB"},
		{"mb megabytes", mb(10_900_000), "10.9 MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
