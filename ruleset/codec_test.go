package ruleset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/synth"
	"github.com/reyes-fw/reyes/inventory"
	"github.com/reyes-fw/reyes/sgsource"
)

const sampleDir = "../examples/quickstart/inventory"

func sampleInventory(t testing.TB) *inventory.Inventory {
	t.Helper()
	inv, err := sgsource.ReadDir(context.Background(), sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func mustBuild(t testing.TB, inv *inventory.Inventory, opts BuildOptions) *Ruleset {
	t.Helper()
	if opts.GeneratedAt.IsZero() {
		opts.GeneratedAt = t0
	}
	rs, err := Build(inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func mustEncode(t testing.TB, rs *Ruleset) []byte {
	t.Helper()
	b, err := Encode(rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rulesetCase is a ruleset for the codec tests.
type rulesetCase struct {
	name string
	rs   func(t *testing.T) *Ruleset
}

// codecCases are hand-built, sample, synthetic and empty rulesets.
func codecCases() []rulesetCase {
	return []rulesetCase{
		{"hand-built", func(*testing.T) *Ruleset { return validRuleset() }},
		{"sample", func(t *testing.T) *Ruleset {
			return mustBuild(t, sampleInventory(t), BuildOptions{Exclude: []string{"vpn"}})
		}},
		{"synth small", func(t *testing.T) *Ruleset { return mustBuild(t, synth.Generate(synth.Small()), BuildOptions{}) }},
		{"empty", func(t *testing.T) *Ruleset { return mustBuild(t, &inventory.Inventory{}, BuildOptions{}) }},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tt := range codecCases() {
		t.Run(tt.name, func(t *testing.T) {
			rs := tt.rs(t)
			b := mustEncode(t, rs)
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, rs) {
				t.Errorf("Decode(Encode(rs)) differs from rs")
			}
			if b2 := mustEncode(t, got); !bytes.Equal(b, b2) {
				t.Errorf("re-encoding differs:\n%s\n%s", b, b2)
			}
			if bytes.Contains(b, []byte("null")) {
				t.Errorf("canonical encoding has a null list: %s", b)
			}
		})
	}
}

// shuffled returns a deep copy of inv with every list in a random order:
// regions, VPCs and their CIDRs, prefix lists and their entries, groups,
// their permissions and every source list, interfaces, their addresses and
// groups. Build must not see the difference.
func shuffled(inv *inventory.Inventory, rng *rand.Rand) *inventory.Inventory {
	out := &inventory.Inventory{Regions: shuffledClone(rng, inv.Regions)}
	for r := range out.Regions {
		reg := &out.Regions[r]
		reg.VPCs = shuffledClone(rng, reg.VPCs)
		for i := range reg.VPCs {
			reg.VPCs[i].CIDRs = shuffledClone(rng, reg.VPCs[i].CIDRs)
		}
		reg.PrefixLists = shuffledClone(rng, reg.PrefixLists)
		for i := range reg.PrefixLists {
			reg.PrefixLists[i].Entries = shuffledClone(rng, reg.PrefixLists[i].Entries)
		}
		reg.SecurityGroups = shuffledClone(rng, reg.SecurityGroups)
		gs := reg.SecurityGroups
		for i := range gs {
			ps := shuffledClone(rng, gs[i].Ingress)
			for k := range ps {
				p := &ps[k]
				p.CIDRs = shuffledClone(rng, p.CIDRs)
				p.Groups = shuffledClone(rng, p.Groups)
				p.PrefixListIDs = shuffledClone(rng, p.PrefixListIDs)
			}
			gs[i].Ingress = ps
		}
		reg.NetworkInterfaces = shuffledClone(rng, reg.NetworkInterfaces)
		ns := reg.NetworkInterfaces
		for i := range ns {
			ns[i].Addresses = shuffledClone(rng, ns[i].Addresses)
			ns[i].Groups = shuffledClone(rng, ns[i].Groups)
		}
	}
	return out
}

// shuffledClone returns a copy of s in an order rng picks.
func shuffledClone[T any](rng *rand.Rand, s []T) []T {
	c := slices.Clone(s)
	rng.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
	return c
}

func TestEncodeDeterministic(t *testing.T) {
	tests := []struct {
		name string
		inv  func(t *testing.T) *inventory.Inventory
	}{
		{"sample", func(t *testing.T) *inventory.Inventory { return sampleInventory(t) }},
		{"synth small", func(*testing.T) *inventory.Inventory { return synth.Generate(synth.Small()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := tt.inv(t)
			opts := BuildOptions{Exclude: []string{"vpn", "default"}}
			want := mustEncode(t, mustBuild(t, inv, opts))
			for seed := range uint64(8) {
				rng := rand.New(rand.NewPCG(seed, 42))
				got := mustEncode(t, mustBuild(t, shuffled(inv, rng), opts))
				if !bytes.Equal(got, want) {
					t.Fatalf("seed %d: shuffled inventory encodes differently", seed)
				}
			}
			// Build does not modify its input.
			if again := mustEncode(t, mustBuild(t, inv, opts)); !bytes.Equal(again, want) {
				t.Fatal("a second Build of the same inventory differs")
			}
		})
	}
}

// validJSON is the encoding of validRuleset, spelled out so that the
// strictness cases below can edit it.
const validJSON = `{"format":"reyes.ruleset/v1","type":"security-groups","scope":"prod","serial":7,"generated_at":"2025-03-01T12:00:00Z","not_after":"2025-03-01T13:00:00Z","vpcs":[{"id":"vpc-00000001","region":"eu-west-1","owner":"123456789012","cidrs":["10.0.0.0/16","fd00::/56"]},{"id":"vpc-00000002","region":"us-west-2","cidrs":["10.1.0.0/16"]}],"groups":[{"id":"sg-0000000a","name":"web","region":"eu-west-1","vpc":"vpc-00000001","owner":"123456789012","rules":[{"proto":1,"from":8,"to":-1,"cidrs":["10.0.0.0/8"]},{"proto":6,"from":443,"to":443,"cidrs":["0.0.0.0/0","::/0"],"groups":["sg-0000000b"]}]},{"id":"sg-0000000b","name":"db","region":"eu-west-1","vpc":"vpc-00000001","rules":[{"proto":6,"from":5432,"to":5432,"groups":["sg-0000000a","sg-0000000c"]},{"proto":58,"from":-1,"to":-1,"cidrs":["fd00::/8"]}]},{"id":"sg-0000000d","name":"vpn","region":"us-west-2","vpc":"","excluded":true,"rules":[]}],"interfaces":[{"id":"eni-00000001","region":"eu-west-1","vpc":"vpc-00000001","addrs":["10.0.0.1","10.0.0.2","fd00::1"],"groups":["sg-0000000a","sg-0000000b"]},{"id":"eni-00000002","region":"us-west-2","vpc":"vpc-00000002","addrs":["10.1.0.5"],"groups":["sg-0000000d"]}]}` + "\n"

func TestValidJSONIsCanonical(t *testing.T) {
	if got := mustEncode(t, validRuleset()); string(got) != validJSON {
		t.Fatalf("Encode(validRuleset()) =\n%s\nwant\n%s", got, validJSON)
	}
}

// edit replaces the single occurrence of old in validJSON.
func edit(t *testing.T, old, new string) []byte {
	t.Helper()
	if n := strings.Count(validJSON, old); n != 1 {
		t.Fatalf("%q occurs %d times in validJSON", old, n)
	}
	return []byte(strings.Replace(validJSON, old, new, 1))
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		data    func(t *testing.T) []byte
		lim     Limits
		want    error
		field   string // for ErrInvalid
		message string // part of the error text, for ErrMalformed
	}{
		// Unknown fields at each level.
		{name: "unknown top-level field", data: func(t *testing.T) []byte { return edit(t, `"serial":7,`, `"serial":7,"signature":"x",`) }, want: ErrMalformed, message: `"signature"`},
		{name: "unknown vpc field", data: func(t *testing.T) []byte {
			return edit(t, `"id":"vpc-00000002",`, `"id":"vpc-00000002","state":"available",`)
		}, want: ErrMalformed, message: `"state"`},
		{name: "unknown group field", data: func(t *testing.T) []byte { return edit(t, `"name":"db",`, `"name":"db","description":"x",`) }, want: ErrMalformed, message: `/groups/1/description: unknown field "description"`},
		{name: "unknown rule field", data: func(t *testing.T) []byte { return edit(t, `"proto":58,`, `"proto":58,"egress":true,`) }, want: ErrMalformed, message: `"egress"`},
		{name: "unknown interface field", data: func(t *testing.T) []byte { return edit(t, `"id":"eni-00000002",`, `"id":"eni-00000002","mac":"x",`) }, want: ErrMalformed, message: `"mac"`},
		{name: "header field nested", data: func(t *testing.T) []byte { return edit(t, `"name":"db",`, `"name":"db","serial":1,`) }, want: ErrMalformed, message: `"serial"`},

		// Duplicate keys.
		{name: "duplicate top-level key", data: func(t *testing.T) []byte { return edit(t, `"scope":"prod",`, `"scope":"prod","scope":"test",`) }, want: ErrMalformed, message: `duplicate key "scope"`},
		{name: "duplicate format key", data: func(t *testing.T) []byte { return edit(t, `"type":`, `"format":"reyes.ruleset/v1","type":`) }, want: ErrMalformed, message: `duplicate key "format"`},
		{name: "duplicate rule key", data: func(t *testing.T) []byte { return edit(t, `"proto":58,`, `"proto":58,"proto":6,`) }, want: ErrMalformed, message: `/groups/1/rules/1/proto: duplicate key "proto"`},
		{name: "duplicate list key", data: func(t *testing.T) []byte { return edit(t, `"interfaces":[`, `"interfaces":[],"interfaces":[`) }, want: ErrMalformed, message: `duplicate key "interfaces"`},

		// Keys in another case, which encoding/json would match anyway.
		{name: "Format", data: func(t *testing.T) []byte { return edit(t, `"format"`, `"Format"`) }, want: ErrMalformed, message: `"Format"`},
		{name: "SCOPE", data: func(t *testing.T) []byte { return edit(t, `"scope"`, `"SCOPE"`) }, want: ErrMalformed, message: `"SCOPE"`},
		{name: "long s", data: func(t *testing.T) []byte { return edit(t, `"scope"`, `"ſcope"`) }, want: ErrMalformed, message: `"ſcope"`},
		{name: "long s duplicate", data: func(t *testing.T) []byte { return edit(t, `"scope":"prod",`, `"scope":"prod","ſcope":"x",`) }, want: ErrMalformed, message: `"ſcope"`},
		{name: "nested Id", data: func(t *testing.T) []byte { return edit(t, `"id":"eni-00000002"`, `"Id":"eni-00000002"`) }, want: ErrMalformed, message: `/interfaces/1/Id: unknown field "Id"`},
		{name: "escaped key", data: func(t *testing.T) []byte { return edit(t, `"scope"`, `"\u0053cope"`) }, want: ErrMalformed, message: `holds an escape`},
		{name: "escaped duplicate key", data: func(t *testing.T) []byte {
			return edit(t, `"scope":"prod",`, `"scope":"prod","\u0073cope":"x",`)
		}, want: ErrMalformed, message: `holds an escape`},

		// Trailing data.
		{name: "second object", data: func(*testing.T) []byte { return []byte(validJSON + ` {}`) }, want: ErrMalformed},
		{name: "trailing garbage", data: func(*testing.T) []byte { return []byte(strings.TrimSpace(validJSON) + `x`) }, want: ErrMalformed},
		{name: "trailing bracket", data: func(*testing.T) []byte { return []byte(validJSON + `]`) }, want: ErrMalformed},
		{name: "truncated", data: func(*testing.T) []byte { return []byte(validJSON[:len(validJSON)/2]) }, want: ErrMalformed},
		{name: "empty", data: func(*testing.T) []byte { return nil }, want: ErrMalformed},

		// Wrong types.
		{name: "serial as string", data: func(t *testing.T) []byte { return edit(t, `"serial":7`, `"serial":"7"`) }, want: ErrMalformed, message: "serial"},
		{name: "negative serial", data: func(t *testing.T) []byte { return edit(t, `"serial":7`, `"serial":-7`) }, want: ErrMalformed, message: "serial"},
		{name: "fractional serial", data: func(t *testing.T) []byte { return edit(t, `"serial":7`, `"serial":7.5`) }, want: ErrMalformed, message: "serial"},
		{name: "proto as name", data: func(t *testing.T) []byte { return edit(t, `"proto":58`, `"proto":"icmpv6"`) }, want: ErrMalformed, message: "/groups/1/rules/1/proto: want an integer, got a string"},
		{name: "rules as object", data: func(t *testing.T) []byte { return edit(t, `"rules":[]`, `"rules":{}`) }, want: ErrMalformed, message: "/groups/2/rules: want an array, got an object"},
		{name: "addrs as string", data: func(t *testing.T) []byte { return edit(t, `"addrs":["10.1.0.5"]`, `"addrs":"10.1.0.5"`) }, want: ErrMalformed, message: "addrs"},
		{name: "interfaces as object", data: func(t *testing.T) []byte {
			i := strings.Index(validJSON, `"interfaces":`)
			return []byte(validJSON[:i] + `"interfaces":{}}`)
		}, want: ErrMalformed, message: "interfaces"},
		{name: "cidr as number", data: func(t *testing.T) []byte { return edit(t, `"fd00::/8"`, `5`) }, want: ErrMalformed, message: "cidrs"},
		{name: "excluded as string", data: func(t *testing.T) []byte { return edit(t, `"excluded":true`, `"excluded":"true"`) }, want: ErrMalformed, message: "excluded"},
		{name: "time as number", data: func(t *testing.T) []byte {
			return edit(t, `"not_after":"2025-03-01T13:00:00Z"`, `"not_after":1740834000`)
		}, want: ErrMalformed, message: "not_after"},
		{name: "top-level array", data: func(*testing.T) []byte { return []byte(`[` + validJSON + `]`) }, want: ErrMalformed},
		{name: "top-level string", data: func(*testing.T) []byte { return []byte(`"reyes.ruleset/v1"`) }, want: ErrMalformed},
		{name: "format as number", data: func(t *testing.T) []byte { return edit(t, `"format":"reyes.ruleset/v1"`, `"format":1`) }, want: ErrMalformed},

		// Format.
		{name: "format missing", data: func(t *testing.T) []byte { return edit(t, `"format":"reyes.ruleset/v1",`, ``) }, want: ErrUnknownFormat, message: "format none"},
		{name: "format null", data: func(t *testing.T) []byte { return edit(t, `"format":"reyes.ruleset/v1",`, `"format":null,`) }, want: ErrUnknownFormat},
		{name: "format v2", data: func(t *testing.T) []byte { return edit(t, `"reyes.ruleset/v1"`, `"reyes.ruleset/v2"`) }, want: ErrUnknownFormat, message: `"reyes.ruleset/v2"`},
		{name: "format v2 with new fields", data: func(t *testing.T) []byte {
			return edit(t, `"format":"reyes.ruleset/v1","type"`, `"format":"reyes.ruleset/v2","egress":[],"type"`)
		}, want: ErrUnknownFormat},
		{name: "top-level null", data: func(*testing.T) []byte { return []byte(`null`) }, want: ErrUnknownFormat},
		{name: "empty object", data: func(*testing.T) []byte { return []byte(`{}`) }, want: ErrUnknownFormat},

		// Size and depth.
		{name: "too large", data: func(*testing.T) []byte { return []byte(validJSON) }, lim: Limits{MaxBytes: 1000}, want: ErrTooLarge},
		{name: "too large by one", data: func(*testing.T) []byte { return []byte(validJSON) }, lim: Limits{MaxBytes: int64(len(validJSON) - 1)}, want: ErrTooLarge},
		{name: "nested too deeply", data: func(t *testing.T) []byte {
			return edit(t, `"serial":7,`, `"serial":7,"x":`+strings.Repeat("[", 8)+strings.Repeat("]", 8)+`,`)
		}, want: ErrMalformed, message: `unknown field "x"`},
		{name: "nested very deeply", data: func(*testing.T) []byte {
			return []byte(`{"format":"reyes.ruleset/v1","x":` + strings.Repeat(`{"a":`, 100_000))
		}, want: ErrMalformed, message: `unknown field "x"`},

		// Invalid values, with the field.
		{name: "host bits", data: func(t *testing.T) []byte { return edit(t, `"10.0.0.0/8"`, `"10.1.2.3/8"`) }, want: ErrInvalid, field: "groups[0](sg-0000000a).rules[0].cidrs[0]"},
		{name: "1.2.3.4/24", data: func(t *testing.T) []byte { return edit(t, `"10.1.0.0/16"`, `"1.2.3.4/24"`) }, want: ErrInvalid, field: "vpcs[1](vpc-00000002).cidrs[0]"},
		{name: "prefix length 33", data: func(t *testing.T) []byte { return edit(t, `"10.0.0.0/8"`, `"10.0.0.0/33"`) }, want: ErrInvalid, field: "groups[0](sg-0000000a).rules[0].cidrs[0]"},
		{name: "cidr without length", data: func(t *testing.T) []byte { return edit(t, `"fd00::/8"`, `"fd00::"`) }, want: ErrInvalid, field: "groups[1](sg-0000000b).rules[1].cidrs[0]"},
		{name: "cidr empty", data: func(t *testing.T) []byte { return edit(t, `"fd00::/56"`, `""`) }, want: ErrInvalid, field: "vpcs[0](vpc-00000001).cidrs[1]"},
		{name: "cidr with zone", data: func(t *testing.T) []byte { return edit(t, `"fd00::/8"`, `"fe80::%eth0/64"`) }, want: ErrInvalid, field: "groups[1](sg-0000000b).rules[1].cidrs[0]"},
		{name: "cidr under a bad group id", data: func(t *testing.T) []byte {
			return []byte(strings.Replace(strings.Replace(validJSON, `"sg-0000000a","name"`, `"sg-x","name"`, 1), `"10.0.0.0/8"`, `"x"`, 1))
		}, want: ErrInvalid, field: "groups[0].rules[0].cidrs[0]"},
		{name: "addr garbage", data: func(t *testing.T) []byte { return edit(t, `"10.1.0.5"`, `"banana"`) }, want: ErrInvalid, field: "interfaces[1](eni-00000002).addrs[0]"},
		{name: "addr as cidr", data: func(t *testing.T) []byte { return edit(t, `"10.1.0.5"`, `"10.1.0.5/32"`) }, want: ErrInvalid, field: "interfaces[1](eni-00000002).addrs[0]"},
		{name: "addr with zone", data: func(t *testing.T) []byte { return edit(t, `"fd00::1"`, `"fd00::1%eth0"`) }, want: ErrInvalid, field: "interfaces[0](eni-00000001).addrs[2]"},
		{name: "addr 4in6", data: func(t *testing.T) []byte { return edit(t, `"fd00::1"`, `"::ffff:10.0.0.9"`) }, want: ErrInvalid, field: "interfaces[0](eni-00000001).addrs[2]"},
		{name: "generated_at garbage", data: func(t *testing.T) []byte { return edit(t, `"2025-03-01T12:00:00Z"`, `"yesterday"`) }, want: ErrInvalid, field: "generated_at"},
		{name: "not_after without zone", data: func(t *testing.T) []byte { return edit(t, `"2025-03-01T13:00:00Z"`, `"2025-03-01T13:00:00"`) }, want: ErrInvalid, field: "not_after"},
		{name: "generated_at missing", data: func(t *testing.T) []byte { return edit(t, `"generated_at":"2025-03-01T12:00:00Z",`, ``) }, want: ErrInvalid, field: "generated_at"},
		{name: "generated_at null", data: func(t *testing.T) []byte {
			return edit(t, `"generated_at":"2025-03-01T12:00:00Z"`, `"generated_at":null`)
		}, want: ErrInvalid, field: "generated_at"},
		{name: "expired before generated", data: func(t *testing.T) []byte { return edit(t, `"2025-03-01T13:00:00Z"`, `"2025-03-01T11:00:00Z"`) }, want: ErrInvalid, field: "not_after"},
		{name: "port out of range", data: func(t *testing.T) []byte { return edit(t, `"from":443,"to":443`, `"from":443,"to":70000`) }, want: ErrInvalid, field: "groups[0](sg-0000000a).rules[1].to"},
		{name: "port range reversed", data: func(t *testing.T) []byte { return edit(t, `"from":5432,"to":5432`, `"from":5432,"to":5431`) }, want: ErrInvalid, field: "groups[1](sg-0000000b).rules[0].to"},
		{name: "protocol 256", data: func(t *testing.T) []byte { return edit(t, `"proto":58`, `"proto":256`) }, want: ErrInvalid, field: "groups[1](sg-0000000b).rules[1].proto"},
		{name: "icmpv6 from ipv4", data: func(t *testing.T) []byte { return edit(t, `"fd00::/8"`, `"10.0.0.0/8"`) }, want: ErrInvalid, field: "groups[1](sg-0000000b).rules[1].cidrs[0]"},
		{name: "rule without sources", data: func(t *testing.T) []byte { return edit(t, `,"cidrs":["fd00::/8"]`, ``) }, want: ErrInvalid, field: "groups[1](sg-0000000b).rules[1]"},
		{name: "rule with empty sources", data: func(t *testing.T) []byte { return edit(t, `"cidrs":["fd00::/8"]`, `"cidrs":[],"groups":null`) }, want: ErrInvalid, field: "groups[1](sg-0000000b).rules[1]"},
		{name: "rules out of order", data: func(t *testing.T) []byte {
			return edit(t, `{"proto":6,"from":5432,"to":5432,"groups":["sg-0000000a","sg-0000000c"]},{"proto":58,"from":-1,"to":-1,"cidrs":["fd00::/8"]}`,
				`{"proto":58,"from":-1,"to":-1,"cidrs":["fd00::/8"]},{"proto":6,"from":5432,"to":5432,"groups":["sg-0000000a","sg-0000000c"]}`)
		}, want: ErrInvalid, field: "groups[1](sg-0000000b).rules[1]"},
		{name: "unsorted addrs", data: func(t *testing.T) []byte { return edit(t, `"10.0.0.1","10.0.0.2"`, `"10.0.0.2","10.0.0.1"`) }, want: ErrInvalid, field: "interfaces[0](eni-00000001).addrs[1]"},
		{name: "scope with newline", data: func(t *testing.T) []byte { return edit(t, `"scope":"prod"`, `"scope":"prod\n"`) }, want: ErrInvalid, field: "scope"},
		{name: "excluded with rules", data: func(t *testing.T) []byte { return edit(t, `"name":"db",`, `"name":"db","excluded":true,`) }, want: ErrInvalid, field: "groups[1](sg-0000000b).rules"},
		{name: "limit from DecodeLimits", data: func(*testing.T) []byte { return []byte(validJSON) }, lim: Limits{MaxGroups: 1}, want: ErrInvalid, field: "groups"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := DecodeLimits(tt.data(t), tt.lim)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", rs)
			}
			if rs != nil {
				t.Errorf("Decode returned a ruleset with its error")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrMalformed, ErrInvalid, ErrUnknownFormat, ErrTooLarge} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("%v is also %v", err, other)
				}
			}
			if tt.field != "" {
				checkInvalid(t, err, tt.field)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not mention %q", err, tt.message)
			}
			if !strings.HasPrefix(err.Error(), "decoding ruleset: ") {
				t.Errorf("error %q lacks the verb-ing prefix", err)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	want := validRuleset()
	tests := []struct {
		name string
		data func(t *testing.T) []byte
		mut  func(rs *Ruleset) // applied to validRuleset for the expectation
	}{
		{"canonical", func(*testing.T) []byte { return []byte(validJSON) }, nil},
		{"no final newline", func(*testing.T) []byte { return []byte(strings.TrimSpace(validJSON)) }, nil},
		{"whitespace around", func(*testing.T) []byte { return []byte(" \n\t" + validJSON + "\r\n ") }, nil},
		{"indented", func(t *testing.T) []byte {
			var b bytes.Buffer
			if err := json.Indent(&b, []byte(validJSON), "", "  "); err != nil {
				t.Fatal(err)
			}
			return b.Bytes()
		}, nil},
		{"fields reordered", func(t *testing.T) []byte {
			return edit(t, `"format":"reyes.ruleset/v1","type":"security-groups"`, `"type":"security-groups","format":"reyes.ruleset/v1"`)
		}, nil},
		{"excluded false", func(t *testing.T) []byte { return edit(t, `"name":"db",`, `"name":"db","excluded":false,`) }, nil},
		{"vpcs null", func(t *testing.T) []byte {
			return edit(t, `"vpcs":[{"id":"vpc-00000001","region":"eu-west-1","owner":"123456789012","cidrs":["10.0.0.0/16","fd00::/56"]},{"id":"vpc-00000002","region":"us-west-2","cidrs":["10.1.0.0/16"]}]`, `"vpcs":null`)
		}, func(rs *Ruleset) { rs.VPCs = []VPC{} }},
		{"vpcs missing", func(t *testing.T) []byte {
			return edit(t, `"vpcs":[{"id":"vpc-00000001","region":"eu-west-1","owner":"123456789012","cidrs":["10.0.0.0/16","fd00::/56"]},{"id":"vpc-00000002","region":"us-west-2","cidrs":["10.1.0.0/16"]}],`, ``)
		}, func(rs *Ruleset) { rs.VPCs = []VPC{} }},
		{"vpc cidrs null", func(t *testing.T) []byte { return edit(t, `"cidrs":["10.1.0.0/16"]`, `"cidrs":null`) }, func(rs *Ruleset) { rs.VPCs[1].CIDRs = []netip.Prefix{} }},
		{"rules null", func(t *testing.T) []byte { return edit(t, `"rules":[]`, `"rules":null`) }, nil},
		{"rules missing", func(t *testing.T) []byte { return edit(t, `,"rules":[]`, ``) }, nil},
		{"rule groups null", func(t *testing.T) []byte {
			return edit(t, `"cidrs":["fd00::/8"]`, `"cidrs":["fd00::/8"],"groups":null`)
		}, nil},
		{"rule groups empty", func(t *testing.T) []byte { return edit(t, `"cidrs":["fd00::/8"]`, `"cidrs":["fd00::/8"],"groups":[]`) }, nil},
		{"addrs null", func(t *testing.T) []byte { return edit(t, `"addrs":["10.1.0.5"]`, `"addrs":null`) }, func(rs *Ruleset) { rs.Interfaces[1].Addrs = []netip.Addr{} }},
		{"interface groups null", func(t *testing.T) []byte { return edit(t, `"groups":["sg-0000000d"]`, `"groups":null`) }, func(rs *Ruleset) { rs.Interfaces[1].Groups = []string{} }},
		{"interfaces null", func(t *testing.T) []byte {
			i := strings.Index(validJSON, `"interfaces":`)
			return []byte(validJSON[:i] + `"interfaces":null}`)
		}, func(rs *Ruleset) { rs.Interfaces = []Interface{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.data(t))
			if err != nil {
				t.Fatal(err)
			}
			want := want
			if tt.mut != nil {
				want = validRuleset()
				tt.mut(want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			b := mustEncode(t, got)
			if bytes.Contains(b, []byte("null")) {
				t.Errorf("re-encoding has null: %s", b)
			}
			if tt.mut == nil && string(b) != validJSON {
				t.Errorf("re-encoding is not canonical:\n%s", b)
			}
		})
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	rs := validRuleset()
	rs.Groups[0].Rules[1].CIDRs[0] = pfx("1.2.3.4/24")
	b, err := Encode(rs)
	if b != nil {
		t.Errorf("Encode returned bytes with an error")
	}
	checkInvalid(t, err, "groups[0](sg-0000000a).rules[1].cidrs[0]")
	if !strings.HasPrefix(err.Error(), "encoding ruleset: ") {
		t.Errorf("error %q lacks the verb-ing prefix", err)
	}
}

func TestEncodeDoesNotEscapeHTML(t *testing.T) {
	rs := validRuleset()
	rs.Groups[0].Name = `<a&b>`
	if b := mustEncode(t, rs); !bytes.Contains(b, []byte(`"name":"<a&b>"`)) {
		t.Errorf("name escaped: %s", b)
	}
}

// TestEncodeMatchesEncodingJSON: Encode writes, byte for byte, what
// encoding/json's Encoder with SetEscapeHTML(false) wrote before Encode moved
// to encoding/json/v2. Signatures over published rulesets and the golden
// files depend on these bytes.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	weird := validRuleset()
	weird.Groups[0].Name = "<a&b> \u2028\u2029 \x01\x7f\t\n\"\\ é 日本 \U0001F600"
	weird.Groups[1].Name = ""
	weird.Header.GeneratedAt = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("", 3600))
	weird.Header.NotAfter = weird.Header.GeneratedAt.Add(90 * time.Minute)
	tests := append(codecCases(), rulesetCase{"odd names and times", func(*testing.T) *Ruleset { return weird }})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := tt.rs(t)
			got := mustEncode(t, rs)
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(rs); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("Encode differs from encoding/json:\n got %s\nwant %s", got, want.Bytes())
			}
		})
	}
}
