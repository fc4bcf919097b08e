package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/apply/applytest"
)

// bigSpec has n sets of one member each (IPv4), each referenced by a rule.
func bigSpec(n, member int) planSpec {
	s := planSpec{sets: map[string][]string{}}
	for i := range n {
		name := fmt.Sprintf("s%04d", i)
		s.sets[name] = []string{fmt.Sprintf("10.%d.%d.%d", 1+i/60000, i/250%240, member)}
		s.allows = append(s.allows, allow{set: name, proto: 6, port: 1 + i})
	}
	return s
}

func ipsetRestores(k *applytest.Kernel) int {
	n := 0
	for _, c := range k.Calls() {
		if c.Name == "ipset" && len(c.Args) > 0 && c.Args[0] == "restore" {
			n++
		}
	}
	return n
}

// TestSessions: a plan of more sets than one ipset session takes is filled
// and cleaned up in several sessions, and a failure in the middle of them
// leaves the previous sets and rules in force, with no filled set left.
// So many changed sets go to their free slots and switch with one rule
// load (more than maxInPlace are never swapped in place).
func TestSessions(t *testing.T) {
	ctx := context.Background()
	k := applytest.New("nft")
	opts := Options{Runner: k, StateDir: t.TempDir()}
	const n = 2*ipsetSession + 100
	if _, err := Apply(ctx, bigSpec(n, 1).build(), opts); err != nil {
		t.Fatal(err)
	}

	// Every member changes: fill and destroy both need three sessions.
	k.ResetCalls()
	res, err := Apply(ctx, bigSpec(n, 2).build(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res.Families[0].SetsSwapped); got != n || !res.Families[0].RulesLoaded {
		t.Errorf("%d sets changed (rules loaded %v), want %d and a rule load", got, res.Families[0].RulesLoaded, n)
	}
	// fill 3 + destroy of the old slots 3 (IPv6 has no sets).
	if got := ipsetRestores(k); got < 6 {
		t.Errorf("%d ipset restore sessions, want at least 6", got)
	}
	if got := strings.Count(k.Dump(), "\ncreate reyes4-"); got != n {
		t.Errorf("%d sets in the kernel, want %d", got, n)
	}
	after := k.Dump()

	// Fail the second fill session: everything goes back.
	fills := 0
	k.Fail = func(c applytest.Call) error {
		if c.Name == "ipset" && strings.Contains(c.Stdin, "create ") {
			fills++
			if fills == 2 {
				return errors.New("injected")
			}
		}
		return nil
	}
	_, err = Apply(ctx, bigSpec(n, 3).build(), opts)
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepFill {
		t.Fatalf("Apply: %v, want a fill StepError", err)
	}
	if got := k.Dump(); got != after {
		t.Errorf("a failed fill session left a mix:\n%s", lineDiffForTest(after, got))
	}
}

func lineDiffForTest(want, got string) string {
	w := map[string]bool{}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	var b strings.Builder
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}
