package apply_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/render"
)

// Apply a plan (here built by hand; normally from render.Render) against
// the fake kernel; the real one is apply.ExecRunner{}.
func ExampleApply() {
	any := render.Match{Protocol: -1, DPortFrom: -1, DPortTo: -1, ICMPType: -1, ICMPCode: -1}
	web := any
	web.SrcSet, web.Protocol, web.DPortFrom, web.DPortTo = "reyes4-sg-0123", 6, 443, 443
	plan := &render.Plan{V4: render.FamilyPlan{
		Family: render.IPv4,
		Sets: []render.Set{{Name: "reyes4-sg-0123", Family: render.IPv4,
			Members: []netip.Addr{netip.MustParseAddr("10.1.2.3")}}},
		Chains: []render.Chain{{Name: render.InputChain, Rules: []render.Rule{
			{Match: web, Action: render.Action{Kind: render.Return}},
			{Match: any, Action: render.Action{Kind: render.Drop}},
		}}},
	}}
	kernel := applytest.New("nft")
	opts := apply.Options{Runner: kernel}
	for range 2 {
		res, err := apply.Apply(context.Background(), plan, opts)
		if err != nil {
			fmt.Println(err)
			return
		}
		f := res.Families[0]
		fmt.Printf("backend %s: changed %v, sets created %v, rules loaded %v\n", res.Backend, res.Changed(), f.SetsCreated, f.RulesLoaded)
	}
	// Output:
	// backend nft: changed true, sets created [reyes4-sg-0123], rules loaded true
	// backend nft: changed false, sets created [], rules loaded false
}

// Hold the state lock around an apply, as the follower does: a second run
// on the same state directory waits at most the given time, then gets an
// error naming the holder's pid.
func ExampleLock() {
	dir, err := os.MkdirTemp("", "reyes-state")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	lock, err := apply.Lock(ctx, dir, apply.DefaultLockWait)
	if err != nil {
		fmt.Println(err)
		return
	}
	// ... apply.Apply and record the state here ...
	_, err = apply.Lock(ctx, dir, 10*time.Millisecond) // another run meanwhile
	fmt.Println(errors.Is(err, apply.ErrLocked))
	if err := lock.Unlock(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// true
}
