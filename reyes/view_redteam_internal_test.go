package reyes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/ruleset"
)

// TestRedteamViewDifferential: for random hosts of random estates, the
// follower's path on a split ruleset (probe, LoadView, identifyIn) finds
// the same host as Identify on the whole ruleset, fails when it fails, and
// renders the same text under random render options. The hosts are those
// a follower meets: its own addresses (some of one interface's, all of
// several interfaces', with addresses no interface has, with a VPC ID),
// configured addresses and explicit groups (known, unknown, mixed).
func TestRedteamViewDifferential(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	found, failed := 0, 0
	for seed := range uint64(6) {
		c := synth.Small()
		c.Seed = int64(seed + 1)
		c.Prefixes = 0.2
		inv := synth.Generate(c)
		rs, err := ruleset.Build(inv, ruleset.BuildOptions{Scope: "test", GeneratedAt: at, Serial: 1})
		if err != nil {
			t.Fatal(err)
		}
		target := []int64{256, 1024, 0}[seed%3]
		root, parts, err := ruleset.Split(rs, ruleset.SplitOptions{TargetBinBytes: target})
		if err != nil {
			t.Fatal(err)
		}
		fetch := func(ctx context.Context, ref ruleset.PartRef) ([]byte, error) {
			b, ok := parts[ref.Name]
			if !ok {
				return nil, ruleset.ErrPartMissing
			}
			return b, nil
		}
		rng := rand.New(rand.NewPCG(seed, 99))
		randAddr := func() netip.Addr {
			return netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		}
		for i := range 60 {
			var opts IdentityOptions
			opts.DisableIMDS = true
			opts.Logger = log
			pick := func() ruleset.Interface { return rs.Interfaces[rng.IntN(len(rs.Interfaces))] }
			var addrs []netip.Addr
			for range 1 + rng.IntN(3) {
				n := pick()
				for _, a := range n.Addrs {
					if rng.IntN(3) > 0 {
						addrs = append(addrs, a)
					}
				}
				if len(n.Prefixes) > 0 && rng.IntN(2) == 0 {
					addrs = append(addrs, n.Prefixes[0].Addr().Next())
				}
			}
			if rng.IntN(4) == 0 {
				addrs = append(addrs, randAddr())
			}
			switch rng.IntN(4) {
			case 0: // own addresses
				opts.InterfaceAddrs = func() ([]netip.Addr, error) { return slices.Clone(addrs), nil }
			case 1: // configured addresses
				if len(addrs) == 0 {
					addrs = append(addrs, randAddr())
				}
				opts.Addrs = addrs
			case 2: // explicit groups
				for range 1 + rng.IntN(3) {
					if rng.IntN(5) == 0 {
						opts.Groups = append(opts.Groups, fmt.Sprintf("sg-%017x", rng.Uint64()>>4))
					} else {
						opts.Groups = append(opts.Groups, rs.Groups[rng.IntN(len(rs.Groups))].ID)
					}
				}
				if rng.IntN(3) == 0 {
					opts.VPCCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
				}
			case 3: // own addresses in one VPC
				opts.InterfaceAddrs = func() ([]netip.Addr, error) { return slices.Clone(addrs), nil }
				opts.VPCID = pick().VPC
			}
			ropts := render.Options{Mode: render.Mode(rng.IntN(2)), Table: render.TableMode(rng.IntN(2)), LogDrop: rng.IntN(2) == 0}
			if rng.IntN(2) == 0 {
				ropts.ForeignCIDRs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
			}
			name := fmt.Sprintf("seed %d host %d", seed, i)

			hf, srcf, errf := Identify(ctx, rs, opts)
			probe, err := probeHost(ctx, opts, log)
			if err != nil {
				t.Fatalf("%s: probe: %v", name, err)
			}
			view, err := ruleset.LoadView(ctx, root, probe.request(opts), fetch)
			if err != nil {
				t.Fatalf("%s: LoadView: %v", name, err)
			}
			hv, srcv, errv := identifyIn(ctx, view.Ruleset, probe, opts, log)
			if (errf == nil) != (errv == nil) || (errf != nil && !sameErrKind(errf, errv)) {
				t.Fatalf("%s: whole: %v; split: %v", name, errf, errv)
			}
			if errf != nil {
				failed++
				continue
			}
			found++
			if !reflect.DeepEqual(hf, hv) || !reflect.DeepEqual(srcf, srcv) {
				t.Fatalf("%s: whole finds %+v (%+v), split %+v (%+v)", name, hf, srcf, hv, srcv)
			}
			pf, errf := render.Render(rs, hf, ropts)
			pv, errv := render.Render(view.Ruleset, hv, ropts)
			if (errf == nil) != (errv == nil) {
				t.Fatalf("%s: render: whole %v, split %v", name, errf, errv)
			}
			if errf != nil {
				continue
			}
			if a, b := planText(pf), planText(pv); a != b {
				t.Fatalf("%s: options %+v: the view renders\n%s\nthe whole ruleset\n%s", name, ropts, b, a)
			}
		}
	}
	if found < 100 || failed == 0 {
		t.Errorf("%d hosts found, %d not: the test did not exercise both", found, failed)
	}
	t.Logf("%d hosts found and rendered alike, %d refused alike", found, failed)
}

func sameErrKind(a, b error) bool {
	for _, e := range []error{ErrUnknownHost, ErrAmbiguousHost, ErrIdentityConfig} {
		if errors.Is(a, e) != errors.Is(b, e) {
			return false
		}
	}
	return true
}

func planText(p *render.Plan) string {
	var b bytes.Buffer
	for _, fp := range p.Families() {
		b.Write(fp.IpsetRestore())
		b.Write(fp.IptablesRestore())
	}
	return b.String()
}
