package ruleset

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/internal/errtext"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/reyes-fw/reyes/internal/strictjson"
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

// Encode returns the canonical encoding of a valid ruleset: compact JSON
// with fields in a fixed order, lists sorted, no HTML escaping, U+2028 and
// U+2029 escaped, and a final newline. The same ruleset always encodes to
// the same bytes. Encode validates first and encodes nothing invalid.
func Encode(rs *Ruleset) ([]byte, error) {
	if err := rs.Validate(); err != nil {
		return nil, fmt.Errorf("encoding ruleset: %w", err)
	}
	// The options reproduce, byte for byte, what encoding/json's Encoder
	// with SetEscapeHTML(false) wrote before: signatures and golden files
	// depend on it.
	b, err := json.Marshal(rs, jsontext.EscapeForHTML(false), jsontext.EscapeForJS(true))
	if err != nil {
		return nil, fmt.Errorf("encoding ruleset: %w", err)
	}
	b = append(b, '\n')
	if int64(len(b)) > DefaultLimits.MaxBytes {
		// Decode would refuse it.
		return nil, fmt.Errorf("encoding ruleset: %d bytes: %w (limit %d)", len(b), ErrTooLarge, DefaultLimits.MaxBytes)
	}
	return b, nil
}

// Decode parses and validates an encoded ruleset with the default limits.
// It is strict: unknown fields, duplicate keys, keys in another case or
// holding an escape, invalid UTF-8, a format other than Format, trailing
// data and any invalid value reject the whole ruleset. Errors about the JSON
// name the place with a JSON pointer (RFC 6901).
func Decode(data []byte) (*Ruleset, error) { return DecodeLimits(data, Limits{}) }

// DecodeLimits is Decode with explicit limits.
func DecodeLimits(data []byte, lim Limits) (*Ruleset, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("decoding ruleset: %d bytes: %w (limit %d)", len(data), ErrTooLarge, lim.MaxBytes)
	}
	if err := checkEscapedNames(data); err != nil {
		return nil, fmt.Errorf("decoding ruleset: %w: %w", ErrMalformed, strictjson.Explain(err))
	}
	// encoding/json/v2 semantics: names match exactly (no case folding),
	// duplicate names, invalid UTF-8 and trailing data are errors.
	rs := new(Ruleset)
	if err := json.Unmarshal(data, rs, json.RejectUnknownMembers(true)); err != nil {
		// A payload of another format gets a clear error, not a list of
		// unknown fields. Only failures pay for this second parse.
		if ferr := checkFormat(data); ferr != nil {
			return nil, fmt.Errorf("decoding ruleset: %w", ferr)
		}
		if verr := valueError(data, err); verr != nil {
			return nil, fmt.Errorf("decoding ruleset: %w", verr)
		}
		return nil, fmt.Errorf("decoding ruleset: %w: %w", ErrMalformed, strictjson.Explain(err))
	}
	if rs.Format != Format {
		return nil, fmt.Errorf("decoding ruleset: %w", formatError(rs.Format))
	}
	rs.normalize()
	if err := rs.ValidateLimits(lim); err != nil {
		return nil, fmt.Errorf("decoding ruleset: %w", err)
	}
	return rs, nil
}

// normalize makes a decoded ruleset's lists what Build makes: null and []
// both mean empty, as a non-nil empty list, except the sources of a rule,
// which are nil when empty.
func (rs *Ruleset) normalize() {
	rs.VPCs = nonNil(rs.VPCs)
	for i := range rs.VPCs {
		rs.VPCs[i].CIDRs = nonNil(rs.VPCs[i].CIDRs)
	}
	rs.Groups = nonNil(rs.Groups)
	for i := range rs.Groups {
		g := &rs.Groups[i]
		g.Rules = nonNil(g.Rules)
		for j := range g.Rules {
			r := &g.Rules[j]
			if len(r.CIDRs) == 0 {
				r.CIDRs = nil
			}
			if len(r.Groups) == 0 {
				r.Groups = nil
			}
			if len(r.Scoped) == 0 {
				r.Scoped = nil
			}
		}
	}
	if len(rs.Findings) == 0 {
		rs.Findings = nil
	}
	rs.Interfaces = nonNil(rs.Interfaces)
	for i := range rs.Interfaces {
		n := &rs.Interfaces[i]
		n.Addrs = nonNil(n.Addrs)
		if len(n.Prefixes) == 0 {
			n.Prefixes = nil
		}
		n.Groups = nonNil(n.Groups)
	}
}

// valueError returns err, a failed Unmarshal of data, as a
// *ValidationError when it is about a value rather than the JSON: an
// address, a CIDR block or a time that does not parse. It names the field
// the way Validate does, with the ID of the group, VPC or interface when
// that is well formed. It returns nil for any other error.
func valueError(data []byte, err error) error {
	se, what := badString(err)
	if what == "" {
		return nil
	}
	// The IDs, read leniently: data is valid JSON of the right shape up to
	// the bad value at least.
	type ided []struct {
		ID string `json:"id"`
	}
	var ids struct {
		VPCs       ided `json:"vpcs"`
		Groups     ided `json:"groups"`
		Interfaces ided `json:"interfaces"`
	}
	_ = json.Unmarshal(data, &ids, jsontext.AllowDuplicateNames(true))
	lists := map[string]struct {
		ids   ided
		valid func(string) bool
	}{
		"vpcs":       {ids.VPCs, ValidVPCID},
		"groups":     {ids.Groups, ValidGroupID},
		"interfaces": {ids.Interfaces, ValidInterfaceID},
	}
	var field strings.Builder
	for tok := range se.JSONPointer.Tokens() {
		i, err := strconv.Atoi(tok)
		if err != nil {
			if field.Len() > 0 {
				field.WriteByte('.')
			}
			field.WriteString(tok)
			continue
		}
		l, top := lists[field.String()]
		field.WriteString("[" + tok + "]")
		if top && i >= 0 && i < len(l.ids) && l.valid(l.ids[i].ID) {
			field.WriteString("(" + l.ids[i].ID + ")")
		}
	}
	return invalid(field.String(), "%q is not %s", errtext.Clip(stringAt(data, se.JSONPointer)), what)
}

// badString returns err's *json.SemanticError and what its string value
// is not, when err is a string that is not the address, CIDR or time its
// field takes; what is "" for any other error.
func badString(err error) (se *json.SemanticError, what string) {
	if !errors.As(err, &se) || se.JSONKind != '"' || se.GoType == nil {
		return se, ""
	}
	switch se.GoType {
	case reflect.TypeFor[netip.Addr]():
		what = "an IP address"
	case reflect.TypeFor[netip.Prefix]():
		what = "a CIDR"
	case reflect.TypeFor[time.Time]():
		what = "an RFC 3339 time"
	}
	return se, what
}

// stringAt returns the string at ptr in data, or "".
func stringAt(data []byte, ptr jsontext.Pointer) string {
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return ""
		}
		kind, n := dec.StackIndex(dec.StackDepth())
		isName := kind == '{' && n%2 == 1
		if tok.Kind() == '"' && !isName && dec.StackPointer() == ptr {
			return tok.String()
		}
	}
}

// checkFormat returns ErrUnknownFormat if data is a JSON object whose
// format is not Format, and nil otherwise (also when data is not JSON). A
// key "Format" counts as the format here, so that a ruleset with a
// mis-cased key is malformed, not of another format.
func checkFormat(data []byte) error {
	var head struct {
		Format *string `json:"format"`
	}
	if err := json.Unmarshal(data, &head, json.MatchCaseInsensitiveNames(true), jsontext.AllowDuplicateNames(true)); err != nil {
		return nil
	}
	if head.Format != nil && *head.Format == Format {
		return nil
	}
	return formatError(deref(head.Format))
}

// formatError is the ErrUnknownFormat of a payload whose format is not
// Format ("" when it has none).
func formatError(format string) error {
	got := "none"
	if format != "" {
		got = strconv.Quote(format)
	}
	return fmt.Errorf("%w: format %s, want %q", ErrUnknownFormat, got, Format)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// checkEscapedNames rejects an object name written with an escape, such as
// "\u0073cope": the canonical encoding never writes one, and what a signer
// reviewed should read the same to a person as to Decode. Only a payload
// that holds a backslash at all pays for this token walk.
func checkEscapedNames(data []byte) error {
	if bytes.IndexByte(data, '\\') < 0 {
		return nil
	}
	dec := jsontext.NewDecoder(bytes.NewReader(data), jsontext.AllowDuplicateNames(true))
	for {
		// In an object, an even count of tokens read so far means the
		// next one is a name.
		if kind, n := dec.StackIndex(dec.StackDepth()); kind == '{' && n%2 == 0 && dec.PeekKind() == '"' {
			name, err := dec.ReadValue()
			if err != nil {
				return nil // Unmarshal reports it
			}
			if bytes.IndexByte(name, '\\') >= 0 {
				return &strictjson.Error{Pointer: dec.StackPointer().Parent(), Reason: fmt.Sprintf("key %s holds an escape", name)}
			}
			continue
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil // the end, or a syntax error that Unmarshal reports
		}
	}
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
		sortPrefixes(&n.Prefixes)
		if len(n.Prefixes) == 0 {
			n.Prefixes = nil
		}
		slices.Sort(n.Groups)
		n.Groups = nonNil(slices.Compact(n.Groups))
	}
	slices.SortFunc(rs.Findings, compareFinding)
	rs.Findings = slices.CompactFunc(rs.Findings, func(a, b Finding) bool { return compareFinding(a, b) == 0 })
	if len(rs.Findings) == 0 {
		rs.Findings = nil
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
		m.Scoped = append(m.Scoped, r.Scoped...)
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
		r.Scoped = canonicalScoped(r.Scoped, r.Groups)
		if r.CIDRs == nil && r.Groups == nil && r.Scoped == nil {
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

// canonicalScoped merges scoped references to one group for one VPC (their
// From is a union), drops those to a group that full lists already (all its
// members are sources), sorts, and returns nil for none.
func canonicalScoped(in []ScopedRef, full []string) []ScopedRef {
	if len(in) == 0 {
		return nil
	}
	type key struct{ g, v string }
	by := map[key][]string{}
	for _, s := range in {
		if _, ok := slices.BinarySearch(full, s.Group); ok {
			continue
		}
		k := key{s.Group, s.VPC}
		by[k] = append(by[k], s.From...)
	}
	var out []ScopedRef
	for k, from := range by {
		from = slices.Clone(from)
		slices.Sort(from)
		out = append(out, ScopedRef{Group: k.g, VPC: k.v, From: slices.Compact(from)})
	}
	slices.SortFunc(out, compareScoped)
	return out
}
