package ruleset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
)

// Errors of Decode, besides *ValidationError.
var (
	// ErrUnknownFormat: the payload does not name Format (a newer or
	// foreign format, or not a ruleset at all).
	ErrUnknownFormat = errors.New("unknown ruleset format")
	// ErrTooLarge: the encoded ruleset exceeds Limits.MaxBytes.
	ErrTooLarge = errors.New("ruleset too large")
	// ErrMalformed: not strict JSON of the expected shape (syntax errors,
	// unknown fields, duplicate keys, wrong types, trailing data).
	ErrMalformed = errors.New("malformed ruleset")
)

// maxDepth bounds JSON nesting; the format needs 5.
const maxDepth = 8

// Encode returns the canonical encoding of a valid ruleset: compact JSON
// with fields in a fixed order, lists sorted. The same ruleset always
// encodes to the same bytes. Encode validates first and encodes nothing
// invalid.
func Encode(rs *Ruleset) ([]byte, error) {
	if err := rs.Validate(); err != nil {
		return nil, fmt.Errorf("encoding ruleset: %w", err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rs); err != nil {
		return nil, fmt.Errorf("encoding ruleset: %w", err)
	}
	if int64(b.Len()) > DefaultLimits.MaxBytes {
		// Decode would refuse it.
		return nil, fmt.Errorf("encoding ruleset: %d bytes: %w (limit %d)", b.Len(), ErrTooLarge, DefaultLimits.MaxBytes)
	}
	return b.Bytes(), nil
}

// Decode parses and validates an encoded ruleset with the default limits.
// It is strict: unknown fields, duplicate or differently-cased keys, a
// format other than Format, trailing data and any invalid value reject the
// whole ruleset.
func Decode(data []byte) (*Ruleset, error) { return DecodeLimits(data, Limits{}) }

// DecodeLimits is Decode with explicit limits.
func DecodeLimits(data []byte, lim Limits) (*Ruleset, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("decoding ruleset: %d bytes: %w (limit %d)", len(data), ErrTooLarge, lim.MaxBytes)
	}
	if err := checkKeys(data); err != nil {
		return nil, fmt.Errorf("decoding ruleset: %w: %w", ErrMalformed, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wireRuleset
	if err := dec.Decode(&w); err != nil {
		// A payload of another format gets a clear error, not a list of
		// unknown fields. Only failures pay for this second parse.
		if ferr := checkFormat(data); ferr != nil {
			return nil, fmt.Errorf("decoding ruleset: %w", ferr)
		}
		return nil, fmt.Errorf("decoding ruleset: %w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decoding ruleset: %w: trailing data after the ruleset", ErrMalformed)
	}
	if err := formatError(w.Format); err != nil {
		return nil, fmt.Errorf("decoding ruleset: %w", err)
	}
	rs, err := w.ruleset()
	if err != nil {
		return nil, fmt.Errorf("decoding ruleset: %w", err)
	}
	if err := rs.ValidateLimits(lim); err != nil {
		return nil, fmt.Errorf("decoding ruleset: %w", err)
	}
	return rs, nil
}

// checkFormat returns ErrUnknownFormat if data is a JSON object whose
// format is not Format, and nil otherwise (also when data is not JSON).
func checkFormat(data []byte) error {
	var head struct {
		Format *string `json:"format"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil
	}
	return formatError(head.Format)
}

// formatError is ErrUnknownFormat unless format names Format.
func formatError(format *string) error {
	if format != nil && *format == Format {
		return nil
	}
	got := "none"
	if format != nil {
		got = fmt.Sprintf("%q", *format)
	}
	return fmt.Errorf("%w: format %s, want %q", ErrUnknownFormat, got, Format)
}

// checkKeys scans the JSON and rejects duplicate keys in an object, keys
// that are not lower case or hold an escape (encoding/json would match them
// to fields case-insensitively, or unescape them into a field name), and
// nesting deeper than maxDepth. It only has to be exact for well-formed
// JSON: json.Decoder rejects everything else afterwards. It is a byte
// scanner, not a tokenizer, because it runs over every published ruleset.
func checkKeys(data []byte) error {
	type frame struct {
		obj     bool
		wantKey bool
		keys    [][]byte // objects of the format have at most a dozen keys
	}
	var stack []frame
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{', '[':
			if len(stack) >= maxDepth {
				return errors.New("nested too deeply")
			}
			stack = append(stack, frame{obj: c == '{', wantKey: c == '{'})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].obj {
				stack[n-1].wantKey = true
			}
		case '"':
			start := i + 1
			escaped := false
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					escaped = true
					i++
				}
			}
			n := len(stack)
			if n == 0 || !stack[n-1].obj || !stack[n-1].wantKey {
				continue
			}
			stack[n-1].wantKey = false
			if i > len(data) {
				i = len(data)
			}
			k := data[start:i]
			if escaped {
				return fmt.Errorf("key %q holds an escape", k)
			}
			for _, b := range k {
				// Upper case, and any non-ASCII byte: encoding/json folds
				// case with Unicode rules ("ſ" matches "s").
				if 'A' <= b && b <= 'Z' || b >= 0x80 {
					return fmt.Errorf("key %q is not lower-case ASCII", k)
				}
			}
			if slices.ContainsFunc(stack[n-1].keys, func(x []byte) bool { return bytes.Equal(x, k) }) {
				return fmt.Errorf("duplicate key %q", k)
			}
			stack[n-1].keys = append(stack[n-1].keys, k)
		}
	}
	return nil
}

// Canonicalize sorts every list of the ruleset and removes duplicate
// addresses, group references and sources, so that a hand-built ruleset
// validates and encodes canonically. Build and Decode return canonical
// rulesets already.
func (rs *Ruleset) Canonicalize() {
	slices.SortFunc(rs.VPCs, func(a, b VPC) int { return strings.Compare(a.ID, b.ID) })
	for i := range rs.VPCs {
		sortPrefixes(&rs.VPCs[i].CIDRs)
		rs.VPCs[i].CIDRs = nonNil(rs.VPCs[i].CIDRs)
	}
	slices.SortFunc(rs.Groups, func(a, b Group) int { return strings.Compare(a.ID, b.ID) })
	for i := range rs.Groups {
		rs.Groups[i].Rules = canonicalRules(rs.Groups[i].Rules)
	}
	slices.SortFunc(rs.Interfaces, func(a, b Interface) int { return strings.Compare(a.ID, b.ID) })
	for i := range rs.Interfaces {
		n := &rs.Interfaces[i]
		n.Addrs = nonNil(sortedAddrs(n.Addrs))
		slices.Sort(n.Groups)
		n.Groups = nonNil(slices.Compact(n.Groups))
	}
	// Lists without omitempty encode as [] in canonical form, never null.
	rs.VPCs = nonNil(rs.VPCs)
	rs.Groups = nonNil(rs.Groups)
	rs.Interfaces = nonNil(rs.Interfaces)
}

// nonNil returns s, or an empty slice if s is nil.
func nonNil[S ~[]E, E any](s S) S {
	if s == nil {
		return S{}
	}
	return s
}

func sortPrefixes(ps *[]netip.Prefix) {
	slices.SortFunc(*ps, ComparePrefix)
	*ps = slices.Compact(*ps)
}

// canonicalRules merges rules with the same protocol and ports (their
// sources are a union either way), sorts sources and rules, and drops rules
// left without sources.
func canonicalRules(rules []Rule) []Rule {
	type key struct{ p, f, t int }
	byKey := make(map[key]*Rule, len(rules))
	var keys []key
	for _, r := range rules {
		k := key{r.Protocol, r.FromPort, r.ToPort}
		m, ok := byKey[k]
		if !ok {
			m = &Rule{Protocol: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort}
			byKey[k] = m
			keys = append(keys, k)
		}
		m.CIDRs = append(m.CIDRs, r.CIDRs...)
		m.Groups = append(m.Groups, r.Groups...)
	}
	out := make([]Rule, 0, len(keys))
	for _, k := range keys {
		r := byKey[k]
		sortPrefixes(&r.CIDRs)
		slices.Sort(r.Groups)
		r.Groups = slices.Compact(r.Groups)
		if len(r.CIDRs) == 0 {
			r.CIDRs = nil
		}
		if len(r.Groups) == 0 {
			r.Groups = nil
		}
		if r.CIDRs == nil && r.Groups == nil {
			continue
		}
		out = append(out, *r)
	}
	slices.SortFunc(out, compareRuleKey)
	if out == nil {
		out = []Rule{}
	}
	return out
}
