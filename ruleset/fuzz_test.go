package ruleset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to a
// canonical fixed point: Encode(Decode(x)) succeeds and decodes to a
// ruleset that encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	sample := mustEncode(f, mustBuild(f, sampleInventory(f), BuildOptions{Exclude: []string{"bastion"}}))
	f.Add(sample)
	f.Add([]byte(validJSON))
	// The optional parts: delegated prefixes, scoped references, findings.
	rich := validRuleset()
	rich.Interfaces[0].Prefixes = []netip.Prefix{pfx("10.0.0.16/28"), pfx("fd00:0:0:1:2::/80")}
	rich.Groups[1].Rules[0].Scoped = []ScopedRef{{Group: "sg-0000000e", VPC: "vpc-00000001", From: []string{"vpc-00000002"}}}
	rich.Findings = []Finding{{Kind: FindingUnreadAccount, Group: "sg-0000000b", Ref: "sg-0000000c", Account: "999999999999", Detail: "not read"}}
	f.Add(mustEncode(f, rich))
	for _, m := range [][2]string{
		{`"serial":7,`, `"serial":7,"x":1,`},
		{`"scope"`, `"ſcope"`},
		{`"scope":"prod",`, `"scope":"prod","scope":"prod",`},
		{`"10.0.0.0/8"`, `"10.0.0.1/8"`},
		{`"fd00::1"`, `"::ffff:10.0.0.3"`},
		{`"rules":[]`, `"rules":null`},
		{`"addrs":["10.1.0.5"]`, `"addrs":null`},
		{`"2025-03-01T12:00:00Z"`, `"2025-03-01T13:00:00+01:00"`},
		{`"2025-03-01T13:00:00Z"`, `"9999-12-31T23:59:59.999999999-23:59"`},
		{`"from":443,"to":443`, `"from":443,"to":442`},
		{`"proto":58`, `"proto":1`},
		{`"name":"db"`, `"name":"\u00e9\ud800\n<&>"`},
	} {
		f.Add([]byte(strings.Replace(validJSON, m[0], m[1], 1)))
	}
	f.Add([]byte(validJSON + `{}`))
	f.Add([]byte(`{"format":"reyes.ruleset/v1"}`))
	f.Add([]byte(`{"format":"reyes.ruleset/v1","x":[[[[[[[[[]]]]]]]]]}`))
	f.Add(sample[:len(sample)/3])

	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(strings.Replace(validJSON, `"scope"`, `"\u0073cope"`, 1)))

	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Decode(data)
		if err != nil {
			if rs != nil {
				t.Fatalf("Decode returned a ruleset with error %v", err)
			}
			return
		}
		if err := refCheckKeys(data); err != nil {
			t.Fatalf("Decode accepted keys the reference refuses: %v\ninput: %q", err, data)
		}
		b1, err := Encode(rs)
		if err != nil {
			t.Fatalf("Decode accepted what Encode refuses: %v\ninput: %q", err, data)
		}
		rs2, err := Decode(b1)
		if err != nil {
			t.Fatalf("Decode refuses what Encode wrote: %v\nencoded: %q", err, b1)
		}
		b2, err := Encode(rs2)
		if err != nil {
			t.Fatalf("second Encode: %v", err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("not a fixed point:\n%s\n%s", b1, b2)
		}
		// What Validate accepted is canonical: Canonicalize changes nothing.
		rs2.Canonicalize()
		if b3, err := Encode(rs2); err != nil || !bytes.Equal(b3, b1) {
			t.Fatalf("Canonicalize changed a decoded ruleset (%v):\n%s\n%s", err, b1, b3)
		}
	})
}

// refMaxDepth is the deepest nesting of the format (5) with room to spare.
const refMaxDepth = 8

// refCheckKeys is an independent statement of the key rules, with
// encoding/json's tokenizer: no key in another case or outside ASCII (which
// encoding/json would fold onto a field), no duplicate key, no deep nesting.
// Whatever Decode accepts must pass it.
func refCheckKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		obj, key bool
		seen     map[string]bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, ok := tok.(string); ok && top != nil && top.obj && top.key {
			for _, r := range k {
				if 'A' <= r && r <= 'Z' || r >= 0x80 {
					return fmt.Errorf("key %q", k)
				}
			}
			if top.seen[k] {
				return fmt.Errorf("duplicate key %q", k)
			}
			top.seen[k], top.key = true, false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= refMaxDepth {
				return errors.New("nested too deeply")
			}
			stack = append(stack, &frame{obj: tok == json.Delim('{'), key: tok == json.Delim('{'), seen: map[string]bool{}})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].key = true
		}
	}
}
