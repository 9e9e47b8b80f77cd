// Package patch applies SCIM PATCH requests (RFC 7644 §3.5.2) to attribute maps.
//
// All operations of one request are applied to a copy of the resource; the caller gets either the
// patched copy or an *scimerr.Error with the RFC scimType, never a half-applied resource.
package patch

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// PatchOpSchema is the schema URN of a PATCH request body.
const PatchOpSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

// MaxOperations bounds the operations of one request; each may copy the resource's attributes, so
// an unbounded list would be a cheap way to burn CPU.
const MaxOperations = 1000

// Operation kinds, lower-case; Parse accepts any case ("Replace" from Okta).
const (
	OpAdd     = "add"
	OpRemove  = "remove"
	OpReplace = "replace"
)

// Operation is one PATCH operation.
type Operation struct {
	// Op is add, remove or replace, lower-cased by Parse.
	Op string
	// Path is the target ("" for a path-less add or replace).
	Path string
	// Value is the operation's value as decoded with UseNumber; HasValue tells an explicit null
	// from an absent value.
	Value    any
	HasValue bool
}

// Request is a parsed PATCH request body.
type Request struct {
	Operations []Operation
}

type wireOp struct {
	Op    string          `json:"op"`
	Path  *string         `json:"path"`
	Value json.RawMessage `json:"value"`
}

type wireRequest struct {
	Schemas    []string `json:"schemas"`
	Operations []wireOp `json:"Operations"`
}

// Parse parses and checks a PATCH request body: the PatchOp schema, an Operations list of zero to
// MaxOperations operations, known op names. Failures are 400 invalidSyntax (or invalidValue for a malformed
// value).
func Parse(body []byte) (*Request, error) {
	if schemas, ops, ok := scan(body); ok {
		return check(schemas, ops)
	}
	return parseDecoded(body)
}

// parseDecoded is Parse through encoding/json, for the bodies scan declines.
func parseDecoded(body []byte) (*Request, error) {
	var w wireRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "PATCH body is not a valid PatchOp message")
	}
	if dec.More() {
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "PATCH body has data after the JSON object")
	}
	var ops []scannedOp // nil when Operations is absent or null; empty for []
	if w.Operations != nil {
		ops = make([]scannedOp, len(w.Operations))
	}
	for i, o := range w.Operations {
		ops[i] = scannedOp{op: o.Op, raw: o.Value}
		if o.Path != nil {
			ops[i].path, ops[i].hasPath = *o.Path, true
		}
	}
	return check(w.Schemas, ops)
}

// check builds the request from a decoded body, with Parse's checks in their order.
func check(schemas []string, ops []scannedOp) (*Request, error) {
	hasSchema := false
	for _, s := range schemas {
		if strings.EqualFold(s, PatchOpSchema) {
			hasSchema = true
		}
	}
	if !hasSchema {
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "PATCH body must list schema %s", PatchOpSchema)
	}
	// An empty list ("Operations": []) is a PATCH that changes nothing, answered with the resource
	// as it is: RFC 7644 §3.5.2 asks for "one or more" operations, but Microsoft Entra ID sends
	// empty PATCHes, and their meaning is plain. A body without Operations is malformed.
	if ops == nil {
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "PATCH body has no Operations")
	}
	if len(ops) > MaxOperations {
		return nil, scimerr.BadRequest(scimerr.TooMany, "PATCH body has more than %d operations", MaxOperations)
	}
	req := &Request{Operations: make([]Operation, 0, len(ops))}
	for i, o := range ops {
		op := Operation{Op: strings.ToLower(strings.TrimSpace(o.op))}
		switch op.Op {
		case OpAdd, OpRemove, OpReplace:
		default:
			return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "operation %d: op must be add, remove or replace", i)
		}
		if o.hasPath {
			op.Path = strings.TrimSpace(o.path)
		}
		switch {
		case o.hasValue:
			op.Value, op.HasValue = o.value, true
		case len(o.raw) > 0:
			v, err := schema.DecodeValue(o.raw)
			if err != nil {
				return nil, scimerr.BadRequest(scimerr.InvalidValue, "operation %d: value is not valid JSON", i)
			}
			op.Value, op.HasValue = v, true
		}
		if op.Op != OpRemove && !op.HasValue {
			return nil, scimerr.BadRequest(scimerr.InvalidValue, "operation %d: %s needs a value", i, op.Op)
		}
		req.Operations = append(req.Operations, op)
	}
	return req, nil
}
