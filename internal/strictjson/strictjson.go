// Package strictjson puts the errors of encoding/json/v2
// (github.com/go-json-experiment/json) into words for the people who wrote
// the document: where, as a JSON pointer (RFC 6901), and what is wrong, in
// JSON's terms rather than Go's. Package ruleset and package sgsource share
// it, so that a ruleset and an inventory file are refused alike.
package strictjson

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"

	"github.com/reyes-fw/reyes/internal/errtext"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Error is one reason a JSON document was refused.
type Error struct {
	// Pointer is where, in the document: "/SecurityGroups/3/GroupId". It
	// is "" for the document as a whole.
	Pointer jsontext.Pointer
	// Reason says what is wrong there.
	Reason string
}

// Error returns "<pointer>: <reason>", or the reason alone for the whole
// document.
func (e *Error) Error() string {
	if e.Pointer == "" {
		return e.Reason
	}
	return string(e.Pointer) + ": " + e.Reason
}

// Explain returns err, an error of json.Unmarshal or of a jsontext.Decoder,
// as an *Error. Errors of another kind (of the reader, say) are returned
// unchanged.
func Explain(err error) error {
	var se *json.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		return explainSemantic(se)
	case errors.As(err, &syn):
		return explainSyntactic(syn)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &Error{Reason: "invalid JSON: unexpected end of input"}
	}
	return err
}

func explainSemantic(se *json.SemanticError) *Error {
	if se.Err == json.ErrUnknownName {
		return &Error{Pointer: se.JSONPointer, Reason: fmt.Sprintf("unknown field %q", se.JSONPointer.LastToken())}
	}
	var syn *jsontext.SyntacticError
	if errors.As(se.Err, &syn) {
		return explainSyntactic(syn)
	}
	got := Kind(se.JSONKind)
	if len(se.JSONValue) > 0 {
		got += " " + errtext.Clip(string(se.JSONValue))
	}
	reason := "got " + got
	if want := Want(se.GoType); want != "" {
		reason = "want " + want + ", " + reason
	}
	if se.Err != nil {
		reason += ": " + se.Err.Error()
	}
	return &Error{Pointer: se.JSONPointer, Reason: reason}
}

func explainSyntactic(e *jsontext.SyntacticError) *Error {
	if errors.Is(e.Err, jsontext.ErrDuplicateName) {
		return &Error{Pointer: e.JSONPointer, Reason: fmt.Sprintf("duplicate key %q", e.JSONPointer.LastToken())}
	}
	msg := "syntax error"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	if errors.Is(e.Err, io.ErrUnexpectedEOF) {
		msg = "unexpected end of input"
	}
	return &Error{Pointer: e.JSONPointer, Reason: "invalid JSON at byte " + strconv.FormatInt(e.ByteOffset, 10) + ": " + msg}
}

// Kind names a JSON kind as a phrase: "a string", "an array", "null"...
func Kind(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{', '}':
		return "an object"
	case '[', ']':
		return "an array"
	}
	return "a value"
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// Want says which JSON value a Go type takes: "a string", "an integer",
// "an array"... or "" if it cannot say.
func Want(t reflect.Type) string {
	if t == nil {
		return ""
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return Want(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return ""
}
