// Package jsonbody says what is wrong with a JSON request body in the client's terms.
// encoding/json's own messages name the server's Go types ("cannot unmarshal array into Go value
// of type sso.PasswordLoginRequest"): they tell a client nothing it can act on, and a stranger how
// the server is built.
package jsonbody

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Problem describes err, an error of json.Unmarshal or json.Decoder.Decode, without Go type
// names: the field and the JSON kind expected for a value of the wrong kind, the byte offset of a
// syntax error, the name of an unknown field (json.Decoder.DisallowUnknownFields).
func Problem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return "request body must be a JSON object"
	case errors.As(err, &typeErr):
		return fmt.Sprintf("request body: %q must be %s, not %s", typeErr.Field, kind(typeErr.Type), typeErr.Value)
	case errors.Is(err, io.EOF), errors.As(err, &syntaxErr) && syntaxErr.Offset == 0 && strings.HasPrefix(syntaxErr.Error(), "unexpected end"):
		return "request body is empty"
	// json.Unmarshal says a body ended early with a SyntaxError, json.Decoder with io.ErrUnexpectedEOF.
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &syntaxErr) && strings.HasPrefix(syntaxErr.Error(), "unexpected end"):
		return "request body is not valid JSON (it ends early)"
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("request body is not valid JSON (at byte %d)", syntaxErr.Offset)
	}
	// DisallowUnknownFields' error has no type of its own; its text names only the field.
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "request body: unknown field " + field
	}
	return "request body is not valid JSON"
}

// kind names what a value of Go type t is in JSON.
func kind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}
