// Package filter parses SCIM filters (RFC 7644 §3.4.2.2) with github.com/scim2/filter-parser/v2
// and evaluates them against attribute maps, using the schema for attribute types and caseExact.
//
// Parsing compiles the expression against a resource type once, so evaluation over many resources
// does no name resolution, and type errors (an ordering operator on a boolean, a malformed
// dateTime) surface as 400 invalidFilter before any resource is read.
package filter

import (
	"encoding/json"
	"fmt"
	"strings"

	fp "github.com/scim2/filter-parser/v2"

	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// MaxLength bounds a filter's length. The parser backtracks; a bound keeps a hostile filter cheap,
// and no real client sends anything close to it.
const MaxLength = 4096

// Filter is a compiled filter for one resource type.
type Filter struct {
	raw  string
	root node
}

// String returns the filter as given ("" for no filter).
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	return f.raw
}

// Match reports whether r satisfies the filter. r should be normalized (schema.Normalize) and
// carry its server attributes (id, meta) so that filters on them work.
func (f *Filter) Match(r schema.Resource) bool {
	if f == nil || f.root == nil {
		return true
	}
	return f.root.match(r)
}

// Parse parses and compiles a filter for resources of type rt. Every failure is a 400
// invalidFilter *scimerr.Error.
func Parse(raw string, rt *schema.ResourceType, opts ...Option) (*Filter, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, scimerr.BadRequest(scimerr.InvalidFilter, "filter is empty")
	}
	if len(raw) > MaxLength {
		return nil, scimerr.BadRequest(scimerr.InvalidFilter, "filter is longer than %d bytes", MaxLength)
	}
	if nestingDepth(raw) > maxDepth {
		// Refused before the parser sees it: deep nesting is what makes the backtracking parser
		// slow (4,000 open parentheses took 350 ms), and compile would refuse it anyway.
		return nil, scimerr.BadRequest(scimerr.InvalidFilter, "filter nests deeper than %d levels", maxDepth)
	}
	expr, err := parseExpr(raw)
	if err != nil {
		return nil, err
	}
	c := compiler{rt: rt}
	for _, o := range opts {
		o(&c)
	}
	root, err := c.compile(expr, nil, 0)
	if err != nil {
		return nil, err
	}
	return &Filter{raw: raw, root: root}, nil
}

// Option adjusts how Parse compiles a filter.
type Option func(*compiler)

// FoldUserName compares a User's userName, in every operator, in the form fold gives both sides
// (the server's canonical identity form) instead of by lower-casing alone: the index that answers
// a lone `userName eq` is keyed by that form, and a filter must not match an account or not
// depending on whether the index or a scan answers it.
func FoldUserName(fold func(string) string) Option {
	return func(c *compiler) { c.foldUserName = fold }
}

// nestingDepth is the deepest nesting of parentheses and brackets in raw outside string literals
// (a backslash escapes the next byte inside one). Unbalanced input is left to the parser to refuse.
func nestingDepth(raw string) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '(' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == ')' || c == ']':
			depth--
		}
	}
	return deepest
}

// parseExpr calls the parser, turning a failure (or a panic inside the third-party parser, which
// must never take the server down) into invalidFilter.
func parseExpr(raw string) (expr fp.Expression, err error) {
	defer func() {
		if r := recover(); r != nil {
			expr, err = nil, scimerr.BadRequest(scimerr.InvalidFilter, "filter is not valid")
		}
	}()
	expr, err = fp.ParseFilterNumber([]byte(raw))
	if err != nil || expr == nil {
		return nil, scimerr.BadRequest(scimerr.InvalidFilter,
			"filter is not valid SCIM filter syntax (RFC 7644 section 3.4.2.2)")
	}
	return expr, nil
}

// EqualityLookup recognises a filter that is a single equality on userName, externalId, id or
// displayName (unqualified or qualified with the core schema URN) with a string value, so that the
// store can answer from an index instead of scanning. attr is the canonical attribute name. The
// caller must honour caseExact: userName and displayName compare case-insensitively, id and
// externalId exactly.
func EqualityLookup(f *Filter) (attr, value string, ok bool) {
	if f == nil {
		return "", "", false
	}
	c, isCmp := f.root.(*cmpNode)
	if !isCmp || c.op != fp.EQ || c.ref.Ext != "" || c.ref.SubName != "" || c.ref.Attr == nil {
		return "", "", false
	}
	s, isStr := c.value.(string)
	if !isStr {
		return "", "", false
	}
	switch c.ref.Attr.Name {
	case "userName", "externalId", "id", "displayName":
		return c.ref.Attr.Name, s, true
	}
	return "", "", false
}

// ElementFilter is a compiled value filter (the part in brackets of `emails[type eq "work"]`),
// evaluated against one element of a multi-valued complex attribute. PATCH uses it.
type ElementFilter struct {
	root node
}

// CompileElementFilter compiles the value filter expr for elements of attribute parent (nil when
// the attribute is unknown: sub-attributes are then handled schema-less).
func CompileElementFilter(parent *schema.Attribute, expr fp.Expression) (*ElementFilter, error) {
	c := compiler{}
	root, err := c.compile(expr, &scope{parent: parent}, 0)
	if err != nil {
		return nil, err
	}
	return &ElementFilter{root: root}, nil
}

// Match reports whether the element satisfies the filter. Non-object elements never do.
func (f *ElementFilter) Match(elem any) bool {
	m, ok := elem.(map[string]any)
	if !ok {
		return false
	}
	return f.root.match(m)
}

// Equalities returns the sub-attribute values an element must have when the filter is only `eq`
// comparisons joined by `and` (`type eq "work"`), so that an add through a filter that matches
// nothing can create the element; ok is false for any other filter.
func (f *ElementFilter) Equalities() (map[string]any, bool) {
	out := map[string]any{}
	var walk func(n node) bool
	walk = func(n node) bool {
		switch t := n.(type) {
		case *logicNode:
			return t.and && walk(t.left) && walk(t.right)
		case *cmpNode:
			if t.op != fp.EQ || t.ref.SubName != "" || t.value == nil {
				return false
			}
			out[t.ref.Name] = t.value
			return true
		}
		return false
	}
	if !walk(f.root) {
		return nil, false
	}
	return out, true
}

// unquote decodes a string compare value; the parser keeps JSON escapes as written.
func unquote(s string) (string, error) {
	var out string
	if err := json.Unmarshal([]byte(`"`+s+`"`), &out); err != nil {
		return "", fmt.Errorf("bad string literal: %w", err)
	}
	return out, nil
}
