package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/apply"
)

// TestSmoke runs the smallest size once, without the binaries, and checks
// what the benchmark relies on: the leader publishes parts and puts none
// again for the same estate; a first run reads less than the estate; an
// idle poll is one conditional GET and no kernel call; a new serial of the
// same estate and a change elsewhere read the root alone and make no
// kernel call; a one-member change swaps exactly one set; two churn
// publishes and two single random changes outside the plan (not chosen to
// miss the host's parts) leave the plan the one applied, checked in
// process, and make no kernel call, whatever the follower reads.
func TestSmoke(t *testing.T) {
	ctx, be := smokeSetup(t)
	// The small estate has so few group parts that its hosts read them
	// all; medium is the smallest with changes elsewhere, and its worst
	// case is left out to keep the test fast.
	sz := sizes["medium"]
	sz.Hosts = []string{hostTypical, hostBusiest}
	cfg := config{Sizes: []size{sz}, Runs: 1, Backend: be, Log: slog.New(slog.DiscardHandler), Draws: 2, Seed: 1}
	r, err := runSize(ctx, cfg, sz, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts.ENIs != 5000 || r.ObjectBytes == 0 || r.RootBytes == 0 || r.Parts == 0 || r.Leader.CPU <= 0 {
		t.Errorf("estate or leader not measured: %+v", r)
	}
	first, re := r.Publishes["first"], r.Publishes["republish"]
	if first.Res.PartsPut != r.Parts || re.Res.PartsPut != 0 || re.Req.N["parts PUT"] != 0 {
		t.Errorf("leader: first publish put %d of %d parts, republish %d (%s)", first.Res.PartsPut, r.Parts, re.Res.PartsPut, re.Req)
	}
	if len(r.Hosts) != 2 {
		t.Fatalf("got %d hosts, want 2", len(r.Hosts))
	}
	for _, h := range r.Hosts {
		t.Run(h.Kind, func(t *testing.T) {
			if h.Plan.Rules == 0 || h.Plan.Sets == 0 || h.Floor <= 0 || len(h.FloorSteps) == 0 {
				t.Errorf("plan or floor not measured: %+v %v", h.Plan, h.FloorSteps)
			}
			full := h.Full.Result
			if h.Full.Calls.N == 0 || !h.Full.Changed || full.PartsFetched == 0 || full.StoreBytes >= int64(r.RootBytes)+r.PartsBytes {
				t.Errorf("first run: %d kernel calls, changed %v, %d parts, %d bytes", h.Full.Calls.N, h.Full.Changed, full.PartsFetched, full.StoreBytes)
			}
			if u := h.Unchanged; !u.Result.NotModified || u.Calls.N != 0 || u.Req.Total() != 1 || u.Req.N["root GET (304)"] != 1 {
				t.Errorf("unchanged run: not modified %v, calls %q, requests %s", u.Result.NotModified, u.Calls.Calls, u.Req)
			}
			for what, x := range map[string]followerRun{"republished": h.Republish, "change elsewhere": h.Elsewhere} {
				if !x.Result.PlanUnchanged || x.Calls.N != 0 || x.Result.PartsFetched != 0 || x.Result.StoreBytes == 0 {
					t.Errorf("%s: plan unchanged %v, %d calls, %d parts, %d bytes", what, x.Result.PlanUnchanged, x.Calls.N, x.Result.PartsFetched, x.Result.StoreBytes)
				}
			}
			if !h.HasElsewhere || !h.HasNear {
				t.Errorf("no change elsewhere found (%v), or none in a part the host reads (%v)", h.HasElsewhere, h.HasNear)
			}
			// The root's change list holds none of the host's records: no
			// part read (one on a filter false positive), no kernel call.
			if n := h.Near; !n.Result.PlanUnchanged || n.Changed || n.Calls.N != 0 || n.Result.PartsFetched > 1 {
				t.Errorf("change in a part the host reads: plan unchanged %v, kernel changed %v, %d calls, %d parts read", n.Result.PlanUnchanged, n.Changed, n.Calls.N, n.Result.PartsFetched)
			}
			if h.OneMember.Swapped != 1 || h.OneMember.Rules || h.OneMember.Result.PartsFetched == 0 || h.OneMember.Result.PartsCached == 0 {
				t.Errorf("one-member run: %d sets swapped, rules loaded %v, parts %d fetched, %d cached", h.OneMember.Swapped, h.OneMember.Rules,
					h.OneMember.Result.PartsFetched, h.OneMember.Result.PartsCached)
			}
			checkChurn(t, h, 50, 2)
			// Amid churn, a change in the plan reads the parts of the
			// records that changed (one; two on a filter false positive).
			if c := h.ChurnMember; h.ChurnMemberWhat == "" || c.Swapped != 1 || c.Result.PartsFetched == 0 || c.Result.PartsFetched > 2 {
				t.Errorf("member amid churn (%s): %d sets swapped, %d parts fetched, %d cached", h.ChurnMemberWhat, c.Swapped, c.Result.PartsFetched, c.Result.PartsCached)
			}
		})
	}
	rep := &report{Machine: "test", Command: "go run ./bench/e2e -sizes medium", Runs: 1, Backend: be, Seed: cfg.Seed,
		Results: []*runResult{r}, All: [][]*runResult{{r}}}
	md := rep.markdown()
	if c := r.Publishes["churn"]; c.Res.PartsPut == 0 || c.Res.PartsPut >= r.Parts {
		t.Errorf("leader, churn publish: %d of %d parts put", c.Res.PartsPut, r.Parts)
	}
	for _, s := range []string{"| interfaces / groups / rules / addresses | 5,000 / 500 / 2,000 / 10,000 |", "**first run**", "**change elsewhere**", "one-member change: ",
		"**churn** (-churn 1%", "**churn again**", "**single random change elsewhere**", "`reyes.Leader` into the file store, first publish", "same, a churn publish", "churn (-churn 1% -seed 1): 50 interfaces removed and 50 added"} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
	t.Log("\n" + md)
}

// checkChurn checks a host's churn and single random changes outside its
// plan, not chosen to miss its parts: whatever the follower reads, it
// makes no kernel call and its plan is the one applied by the one-member
// change before them; n interfaces were churned, draws single changes
// made.
func checkChurn(t *testing.T, h hostResult, n, draws int) {
	t.Helper()
	if !h.Churn.ok() || !h.Churn2.ok() || len(h.Draws) != draws {
		t.Fatalf("churn not measured (%q): churn %v, again %v, %d single changes", h.NoChurn, h.Churn.ok(), h.Churn2.ok(), len(h.Draws))
	}
	applied := planText(h.OneMember.Result.Plan)
	changes := map[string]churnRun{"churn": h.Churn, "churn again": h.Churn2}
	for i, d := range h.Draws {
		changes["single change "+strconv.Itoa(i)] = d
	}
	for what, c := range changes {
		x := c.Run
		if !c.PlanSame || x.Calls.N != 0 || x.Changed || x.Result.Applied.Changed() || x.Result.StoreBytes == 0 {
			t.Errorf("%s (%s): plan checked the same %v, %d kernel calls %q, kernel changed %v, %d bytes read", what, c.What, c.PlanSame, x.Calls.N, x.Calls.Calls, x.Changed, x.Result.StoreBytes)
		}
		if x.Result.Plan != nil && string(planText(x.Result.Plan)) != string(applied) {
			t.Errorf("%s: the follower rendered another plan than the one applied", what)
		}
		// A root that still lists every part the host read is accepted
		// without reading a part (README: "costs it that one GET and
		// nothing else").
		if c.Listed && x.Result.PartsFetched != 0 {
			t.Errorf("%s: every part of the host still listed, yet %d parts read", what, x.Result.PartsFetched)
		}
		if !x.Result.PlanUnchanged {
			t.Errorf("%s: the follower did not find its plan unchanged (%d parts read)", what, x.Result.PartsFetched)
		}
	}
	for what, c := range map[string]churnRun{"churn": h.Churn, "churn again": h.Churn2} {
		if c.N != n || c.PartsChanged == 0 || c.BytesChanged == 0 {
			t.Errorf("%s: %d interfaces (want %d), %d parts new in the estate (%d bytes)", what, c.N, n, c.PartsChanged, c.BytesChanged)
		}
	}
}

// TestSmokeChurnSmall measures the churn rows at the small size too (its
// hosts read every group part, so it has no change elsewhere, but churn
// outside their plans), with a churn given as a count, and checks that a
// host in every group has none.
func TestSmokeChurnSmall(t *testing.T) {
	ctx, be := smokeSetup(t)
	sz := sizes["small"]
	cfg := config{Sizes: []size{sz}, Runs: 1, Backend: be, Log: slog.New(slog.DiscardHandler), Churn: churnSpec{N: 12}, Draws: 3, Seed: 7}
	r, err := runSize(ctx, cfg, sz, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range r.Hosts {
		t.Run(h.Kind, func(t *testing.T) {
			if h.Kind == hostAll {
				if h.Churn.ok() || len(h.Draws) != 0 || h.NoChurn == "" {
					t.Errorf("a host in every group: churn %v, %d single changes, none because %q", h.Churn.ok(), len(h.Draws), h.NoChurn)
				}
				return
			}
			checkChurn(t, h, 12, 3)
		})
	}
	rep := &report{Machine: "test", Command: "go run ./bench/e2e -sizes small -churn 12", Runs: 1, Backend: be, Churn: cfg.Churn, Seed: cfg.Seed,
		Results: []*runResult{r}, All: [][]*runResult{{r}}}
	md := rep.markdown()
	for _, s := range []string{"**churn** (-churn 12:", "| 12 + 12; ", "none possible: every interface is in a group the plan involves", "churn (-churn 12 -seed 7): 12 interfaces removed and 12 added"} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
}

func TestWriteSection(t *testing.T) {
	gen := func(body string) string { return beginMarker + "\n\n" + body + "\n" + endMarker }
	xb, xe := markers("xlarge")
	xgen := func(body string) string { return xb + "\n\n" + body + "\n" + xe }
	tests := []struct {
		name, old, block, text, want string
	}{
		{"new file", "", "", "T1", sectionHeading + "\n\n" + gen("T1") + "\n\n"},
		{"added at the top", "## apply\n\nx\n", "", "T1", sectionHeading + "\n\n" + gen("T1") + "\n\n## apply\n\nx\n"},
		{"replaced, notes and other sections kept",
			sectionHeading + "\n\n" + gen("old") + "\n\nNotes.\n\n## apply\n", "",
			"new", sectionHeading + "\n\n" + gen("new") + "\n\nNotes.\n\n## apply\n"},
		{"named block added after the main one",
			sectionHeading + "\n\n" + gen("old") + "\n\nNotes.\n", "xlarge",
			"X", sectionHeading + "\n\n" + gen("old") + "\n\n" + xgen("X") + "\n\nNotes.\n"},
		{"named block replaced, main one kept",
			sectionHeading + "\n\n" + gen("old") + "\n\n" + xgen("X") + "\n\nNotes.\n", "xlarge",
			"Y", sectionHeading + "\n\n" + gen("old") + "\n\n" + xgen("Y") + "\n\nNotes.\n"},
		{"main block replaced, named one kept",
			sectionHeading + "\n\n" + gen("old") + "\n\n" + xgen("X") + "\n\nNotes.\n", "",
			"new", sectionHeading + "\n\n" + gen("new") + "\n\n" + xgen("X") + "\n\nNotes.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
			if tt.old != "" {
				if err := os.WriteFile(path, []byte(tt.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := writeSection(path, tt.block, tt.text); err != nil {
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

// smokeSetup skips (saying why) unless root with the kernel tools, and
// returns a context bounded to a minute and the iptables backend.
func smokeSetup(t *testing.T) (context.Context, apply.Backend) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "ipset", "iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("kernel test: %s is not installed", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	be, err := apply.DetectBackend(ctx, apply.ExecRunner{})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, be
}
