package sgsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/internal/errtext"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/reyes-fw/reyes/internal/strictjson"
)

// maxDepth bounds the nesting of objects and arrays in a document, so that
// a hostile file cannot exhaust the stack of a later reader.
const maxDepth = 32

// decodeDocument decodes data, the AWS CLI's JSON output of one call, into
// out, the SDK's output type of that call (ec2.DescribeSecurityGroupsOutput
// ...), whose field names are the CLI's. top names the member that holds
// the answer ("SecurityGroups"); it is required. nextToken returns the
// decoded NextToken.
//
// Every rejection is a *FieldError naming file, the JSON pointer and the
// field: invalid JSON or UTF-8, a duplicate key, a key that matches a field
// only in another case (names are case-sensitive, as AWS writes them: a
// "groupId" would be an unknown field, and its group would seem to lack an
// ID), null or the wrong JSON type where a field reyes knows is, nesting
// deeper than maxDepth, trailing data, and a NextToken (a truncated dump).
// Members that the SDK does not model are ignored: a newer CLI adds them.
func decodeDocument(ctx context.Context, data []byte, file, top string, out any, nextToken func() *string) error {
	c := &docChecker{ctx: ctx, dec: jsontext.NewDecoder(bytes.NewReader(data)), top: top, fields: map[reflect.Type]map[string]reflect.StructField{}}
	if err := c.document(reflect.TypeOf(out).Elem()); err != nil {
		return inFile(file, err)
	}
	if !c.topSeen {
		return inFile(file, where{}.key(top).fail(errMissing))
	}
	// Times (an attachment's AttachTime) are not used: their format must
	// not decide whether a dump is read.
	skipTimes := json.WithUnmarshalers(json.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ *time.Time) error {
		return dec.SkipValue()
	}))
	if err := json.Unmarshal(data, out, skipTimes); err != nil {
		return inFile(file, jsonError(err))
	}
	if tok := nextToken(); tok != nil && *tok != "" {
		// The AWS CLI writes a NextToken when it stopped early
		// (--max-items, --no-paginate): the file holds a part of the
		// answer, and a partial inventory must never be published.
		return inFile(file, where{}.key("NextToken").fail(errors.New("the dump is truncated (a NextToken is present): dump again without --max-items or --no-paginate")))
	}
	return nil
}

// inFile sets the file of a *FieldError.
func inFile(file string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) && fe.File == "" {
		fe.File = file
	}
	return err
}

// jsonError turns an error of package json or jsontext into a *FieldError
// at the value it names.
func jsonError(err error) error {
	var se *strictjson.Error
	if !errors.As(strictjson.Explain(err), &se) {
		return err
	}
	return &FieldError{Pointer: string(se.Pointer), Field: fieldOfPointer(se.Pointer), Err: errors.New(se.Reason)}
}

// fieldOfPointer writes a JSON pointer as a field path:
// "/SecurityGroups/3/GroupId" is "SecurityGroups[3].GroupId".
func fieldOfPointer(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		switch {
		case tok != "" && allDigits(tok):
			b.WriteString("[" + tok + "]")
		case plainKey(tok):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(tok)
		default: // quoted, so that a hostile key cannot forge a path
			b.WriteString("[" + strconv.Quote(errtext.Clip(tok)) + "]")
		}
	}
	return b.String()
}

// plainKey reports whether a key is a name that can appear unquoted in a
// field path: letters, digits and underscores, as all AWS field names are.
func plainKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// docChecker walks a document along the Go type it is decoded into, for
// what json.Unmarshal lets through: keys in another case than the field's,
// null for a known field, deep nesting in members nobody reads.
type docChecker struct {
	ctx     context.Context
	steps   int
	dec     *jsontext.Decoder
	top     string
	topSeen bool
	fields  map[reflect.Type]map[string]reflect.StructField
}

// fail reports reason at ptr.
func (c *docChecker) fail(ptr jsontext.Pointer, reason string) error {
	return &FieldError{Pointer: string(ptr), Field: fieldOfPointer(ptr), Err: errors.New(reason)}
}

func (c *docChecker) read() error {
	// A file may be large: the walk stops when the context ends.
	if c.steps++; c.steps%4096 == 0 {
		if err := c.ctx.Err(); err != nil {
			return err
		}
	}
	_, err := c.dec.ReadToken()
	if err != nil {
		return jsonError(err)
	}
	return nil
}

func (c *docChecker) document(t reflect.Type) error {
	if k := c.dec.PeekKind(); k != '{' {
		if k == 0 || k == '}' || k == ']' { // the read reports the syntax error
			if err := c.read(); err != nil {
				return err
			}
		}
		return c.fail("", "want an object, got "+strictjson.Kind(k))
	}
	return c.value(t)
}

// value checks the next value, to be decoded into a t.
func (c *docChecker) value(t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch k := c.dec.PeekKind(); {
	case k == 'n':
		ptr := c.dec.StackPointer()
		if err := c.read(); err != nil {
			return err
		}
		return c.fail(ptr, "want "+strictjson.Want(t)+", got null")
	case k == '{' && t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Time]():
		return c.object(t)
	case k == '[' && t.Kind() == reflect.Slice:
		if err := c.open(); err != nil {
			return err
		}
		for c.dec.PeekKind() != ']' {
			if err := c.value(t.Elem()); err != nil {
				return err
			}
		}
		return c.read()
	}
	return c.skip()
}

// open reads '{' or '[' and checks the depth.
func (c *docChecker) open() error {
	if err := c.read(); err != nil {
		return err
	}
	if c.dec.StackDepth() > maxDepth {
		return c.fail(c.dec.StackPointer(), fmt.Sprintf("nested deeper than %d levels", maxDepth))
	}
	return nil
}

func (c *docChecker) object(t reflect.Type) error {
	fields := c.fieldsOf(t)
	if err := c.open(); err != nil {
		return err
	}
	for c.dec.PeekKind() != '}' {
		tok, err := c.dec.ReadToken()
		if err != nil {
			return jsonError(err)
		}
		name := tok.String()
		if c.dec.PeekKind() == 0 { // truncated after the name: let a read say so
			return c.read()
		}
		if c.dec.StackDepth() == 1 && name == c.top {
			c.topSeen = true
		}
		if f, ok := fields[name]; ok {
			if err := c.value(f.Type); err != nil {
				return err
			}
			continue
		}
		for known := range fields {
			if strings.EqualFold(known, name) {
				return c.fail(c.dec.StackPointer(), fmt.Sprintf("the key is %q, not %q (keys are case-sensitive)", known, name))
			}
		}
		if err := c.skip(); err != nil {
			return err
		}
	}
	return c.read()
}

// skip consumes one value of any type, checking its depth.
func (c *docChecker) skip() error {
	depth := c.dec.StackDepth()
	for {
		switch c.dec.PeekKind() {
		case '{', '[':
			if err := c.open(); err != nil {
				return err
			}
		default:
			if err := c.read(); err != nil {
				return err
			}
		}
		if c.dec.StackDepth() == depth {
			return nil
		}
	}
}

// fieldsOf returns the exported fields of a struct type by their JSON name.
func (c *docChecker) fieldsOf(t reflect.Type) map[string]reflect.StructField {
	if m, ok := c.fields[t]; ok {
		return m
	}
	m := map[string]reflect.StructField{}
	for f := range t.Fields() {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name := f.Name
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == "-" {
			continue
		} else if tag != "" {
			name = tag
		}
		m[name] = f
	}
	c.fields[t] = m
	return m
}
