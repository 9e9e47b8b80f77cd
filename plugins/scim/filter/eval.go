package filter

import (
	"encoding/json"
	"math/big"
	"strings"
	"time"

	fp "github.com/scim2/filter-parser/v2"

	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// maxDepth bounds expression nesting; the length bound already limits it, this keeps recursion
// obviously finite.
const maxDepth = 64

type node interface {
	match(m map[string]any) bool
}

type logicNode struct {
	and         bool
	left, right node
}

func (n *logicNode) match(m map[string]any) bool {
	if n.and {
		return n.left.match(m) && n.right.match(m)
	}
	return n.left.match(m) || n.right.match(m)
}

type notNode struct{ inner node }

func (n *notNode) match(m map[string]any) bool { return !n.inner.match(m) }

// valuePathNode is `attr[filter]` in a filter: true when any element matches.
type valuePathNode struct {
	ref   schema.Ref
	inner node
}

func (n *valuePathNode) match(m map[string]any) bool {
	v, ok := get(m, n.ref)
	if !ok {
		return false
	}
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if em, ok := e.(map[string]any); ok && n.inner.match(em) {
				return true
			}
		}
	case map[string]any:
		return n.inner.match(t)
	}
	return false
}

// cmpNode is one attribute comparison.
type cmpNode struct {
	ref   schema.Ref
	op    fp.CompareOperator
	value any // string, bool, json.Number or nil
	// leaf describes the compared values (nil: unknown attribute, typed by the value at hand).
	leaf *schema.Attribute
	// useValueSub: the path names a complex attribute; compare its "value" sub-attribute
	// (RFC 7644 §3.4.2.2: `emails co "example.com"`).
	useValueSub bool
	caseExact   bool
	// fold, when set, maps both sides of a string comparison to one form (the value at
	// compile time); see FoldUserName.
	fold func(string) string
	when time.Time // parsed compare value for dateTime leaves
	num  *big.Rat  // parsed compare value for numbers
}

// scope is the context of attribute names: the resource type at top level, or the parent attribute
// inside brackets.
type scope struct {
	parent *schema.Attribute
}

type compiler struct {
	rt           *schema.ResourceType
	foldUserName func(string) string
}

func invalid(format string, args ...any) error {
	return scimerr.BadRequest(scimerr.InvalidFilter, format, args...)
}

func (c *compiler) resolve(p fp.AttributePath, sc *scope) (schema.Ref, error) {
	if sc == nil {
		return c.rt.Resolve(p.URI(), p.AttributeName, p.SubAttributeName()), nil
	}
	if p.URIPrefix != nil {
		return schema.Ref{}, invalid("a value filter cannot use a schema URN")
	}
	// Inside brackets a name is a sub-attribute of the parent; a further ".sub" has nothing to
	// name (SCIM sub-attributes are not complex) and simply never matches.
	ref := schema.Ref{Name: p.AttributeName, Attr: sc.parent.SubAttribute(p.AttributeName)}
	if ref.Attr != nil {
		ref.Name = ref.Attr.Name
	}
	if p.SubAttribute != nil {
		ref.SubName = *p.SubAttribute
	}
	return ref, nil
}

func (c *compiler) compile(e fp.Expression, sc *scope, depth int) (node, error) {
	if depth > maxDepth {
		return nil, invalid("filter is nested too deeply")
	}
	switch t := e.(type) {
	case *fp.LogicalExpression:
		if t == nil || t.Left == nil || t.Right == nil {
			return nil, invalid("filter is not valid")
		}
		l, err := c.compile(t.Left, sc, depth+1)
		if err != nil {
			return nil, err
		}
		r, err := c.compile(t.Right, sc, depth+1)
		if err != nil {
			return nil, err
		}
		return &logicNode{and: strings.EqualFold(string(t.Operator), string(fp.AND)), left: l, right: r}, nil
	case *fp.NotExpression:
		if t == nil || t.Expression == nil {
			return nil, invalid("filter is not valid")
		}
		in, err := c.compile(t.Expression, sc, depth+1)
		if err != nil {
			return nil, err
		}
		return &notNode{inner: in}, nil
	case *fp.ValuePath:
		if t == nil || t.ValueFilter == nil {
			return nil, invalid("filter is not valid")
		}
		if sc != nil {
			return nil, invalid("value filters cannot be nested")
		}
		ref, err := c.resolve(t.AttributePath, sc)
		if err != nil {
			return nil, err
		}
		if ref.SubName != "" || ref.ExtRoot {
			return nil, invalid("%s cannot carry a value filter", t.AttributePath.String())
		}
		if ref.Attr != nil && ref.Attr.Type != schema.Complex {
			return nil, invalid("%s is not a complex attribute", ref.Name)
		}
		in, err := c.compile(t.ValueFilter, &scope{parent: ref.Attr}, depth+1)
		if err != nil {
			return nil, err
		}
		return &valuePathNode{ref: ref, inner: in}, nil
	case *fp.AttributeExpression:
		if t == nil {
			return nil, invalid("filter is not valid")
		}
		return c.compileCmp(t, sc)
	}
	return nil, invalid("filter is not valid")
}

func (c *compiler) compileCmp(e *fp.AttributeExpression, sc *scope) (node, error) {
	ref, err := c.resolve(e.AttributePath, sc)
	if err != nil {
		return nil, err
	}
	if ref.ExtRoot {
		if e.Operator != fp.PR {
			return nil, invalid("%s names a schema, not an attribute", ref.Ext)
		}
	}
	n := &cmpNode{ref: ref, op: fp.CompareOperator(strings.ToLower(string(e.Operator))), leaf: ref.Leaf()}
	if sc == nil && ref.SubName != "" && ref.Attr != nil && ref.Attr.Type != schema.Complex {
		return nil, invalid("%s has no sub-attributes", ref.Name)
	}
	if n.leaf != nil && n.leaf.Type == schema.Complex {
		if v := n.leaf.SubAttribute("value"); v != nil {
			n.leaf, n.useValueSub = v, true
		} else if n.op != fp.PR {
			return nil, invalid("%s is complex; compare one of its sub-attributes", ref.Name)
		}
	}
	if n.leaf != nil {
		n.caseExact = n.leaf.CaseExact
	}
	switch v := e.CompareValue.(type) {
	case string:
		s, err := unquote(v)
		if err != nil {
			return nil, invalid("filter has a malformed string")
		}
		n.value = s
		if c.foldUserName != nil && sc == nil && c.rt == schema.UserResourceType &&
			n.leaf != nil && n.leaf.Name == "userName" && ref.SubName == "" {
			n.fold, n.value = c.foldUserName, c.foldUserName(s)
		}
	case json.Number:
		r, ok := new(big.Rat).SetString(string(v))
		if !ok {
			return nil, invalid("filter has a malformed number")
		}
		n.value, n.num = v, r
	case bool, nil:
		n.value = v
	default:
		return nil, invalid("filter has an unsupported value")
	}
	switch n.op {
	case fp.PR:
		return n, nil
	case fp.EQ, fp.NE:
	case fp.CO, fp.SW, fp.EW:
		if _, ok := n.value.(string); !ok {
			return nil, invalid("%s needs a string value", n.op)
		}
	case fp.GT, fp.GE, fp.LT, fp.LE:
		switch n.value.(type) {
		case string, json.Number:
		default:
			return nil, invalid("%s needs a string, number or dateTime value", n.op)
		}
		// RFC 7644 §3.4.2.2: ordering on boolean or binary attributes is a 400 invalidFilter.
		if n.leaf != nil && (n.leaf.Type == schema.Boolean || n.leaf.Type == schema.Binary) {
			return nil, invalid("%s cannot be used on %s attribute %s", n.op, n.leaf.Type, ref.Name)
		}
	default:
		return nil, invalid("unknown operator %q", string(e.Operator))
	}
	if n.leaf == nil || n.value == nil {
		return n, nil
	}
	// Check the compare value against the attribute's type now rather than failing to match
	// every resource later.
	switch n.leaf.Type {
	case schema.Boolean:
		switch v := n.value.(type) {
		case bool:
		case string:
			// Tolerate `active eq "true"`.
			switch strings.ToLower(v) {
			case "true":
				n.value = true
			case "false":
				n.value = false
			default:
				return nil, invalid("%s is boolean", ref.Name)
			}
		default:
			return nil, invalid("%s is boolean", ref.Name)
		}
	case schema.DateTime:
		s, ok := n.value.(string)
		if !ok {
			return nil, invalid("%s is a dateTime", ref.Name)
		}
		if n.op != fp.CO && n.op != fp.SW && n.op != fp.EW {
			ts, ok := schema.ParseDateTime(s)
			if !ok {
				return nil, invalid("%q is not an RFC 3339 dateTime", s)
			}
			n.when = ts
		}
	case schema.Integer, schema.Decimal:
		if n.num == nil {
			return nil, invalid("%s is a number", ref.Name)
		}
	case schema.String, schema.Reference, schema.Binary:
		if _, ok := n.value.(string); !ok {
			return nil, invalid("%s is a string", ref.Name)
		}
	}
	return n, nil
}

// get returns the value of ref in m (the resource or, inside brackets, an element).
func get(m map[string]any, ref schema.Ref) (any, bool) {
	if ref.ExtRoot {
		return schema.Lookup(m, ref.Ext)
	}
	if ref.Ext != "" {
		ev, ok := schema.Lookup(m, ref.Ext)
		if !ok {
			return nil, false
		}
		if m, ok = ev.(map[string]any); !ok {
			return nil, false
		}
	}
	return schema.Lookup(m, ref.Name)
}

// values collects the leaf values the comparison applies to, flattening multi-valued attributes
// (any element may match).
func (n *cmpNode) values(m map[string]any) []any {
	v, ok := get(m, n.ref)
	if !ok {
		return nil
	}
	sub := n.ref.SubName
	if sub == "" && n.useValueSub {
		sub = "value"
	}
	var out []any
	add := func(x any) {
		if sub == "" {
			out = append(out, x)
			return
		}
		if xm, ok := x.(map[string]any); ok {
			if sv, ok := schema.Lookup(xm, sub); ok {
				if list, ok := sv.([]any); ok {
					out = append(out, list...)
				} else {
					out = append(out, sv)
				}
			}
		}
	}
	if list, ok := v.([]any); ok {
		for _, e := range list {
			add(e)
		}
	} else {
		add(v)
	}
	return out
}

func (n *cmpNode) match(m map[string]any) bool {
	vals := n.values(m)
	switch n.op {
	case fp.PR:
		for _, v := range vals {
			if !schema.IsEmpty(v) {
				return true
			}
		}
		return false
	case fp.NE:
		// ne is "not eq": true when no value equals, including when the attribute is absent;
		// `attr ne null` is so the complement of `attr eq null` (an assigned attribute), not
		// true of every resource.
		if n.value == nil {
			for _, v := range vals {
				if !schema.IsEmpty(v) {
					return true
				}
			}
			return false
		}
		return !n.any(vals, fp.EQ)
	case fp.EQ:
		if n.value == nil {
			// `attr eq null` asks for an unassigned attribute.
			for _, v := range vals {
				if !schema.IsEmpty(v) {
					return false
				}
			}
			return true
		}
	}
	return n.any(vals, n.op)
}

func (n *cmpNode) any(vals []any, op fp.CompareOperator) bool {
	if n.value == nil {
		return false
	}
	for _, v := range vals {
		if n.compare(v, op) {
			return true
		}
	}
	return false
}

// compare applies op to one attribute value v and the compare value.
func (n *cmpNode) compare(v any, op fp.CompareOperator) bool {
	switch cv := n.value.(type) {
	case bool:
		b, ok := v.(bool)
		return ok && op == fp.EQ && b == cv
	case json.Number:
		var r *big.Rat
		switch t := v.(type) {
		case json.Number:
			r, _ = new(big.Rat).SetString(string(t))
		case float64:
			r = new(big.Rat)
			if r.SetFloat64(t) == nil {
				r = nil
			}
		}
		if r == nil {
			return false
		}
		return ordered(r.Cmp(n.num), op)
	case string:
		s, ok := v.(string)
		if !ok {
			return false
		}
		if !n.when.IsZero() {
			t, ok := schema.ParseDateTime(s)
			if !ok {
				return false
			}
			return ordered(t.Compare(n.when), op)
		}
		switch {
		case n.fold != nil:
			s = n.fold(s) // cv was folded when the filter was compiled
		case !n.caseExact:
			s, cv = strings.ToLower(s), strings.ToLower(cv)
		}
		switch op {
		case fp.CO:
			return strings.Contains(s, cv)
		case fp.SW:
			return strings.HasPrefix(s, cv)
		case fp.EW:
			return strings.HasSuffix(s, cv)
		default:
			return ordered(strings.Compare(s, cv), op)
		}
	}
	return false
}

func ordered(c int, op fp.CompareOperator) bool {
	switch op {
	case fp.EQ:
		return c == 0
	case fp.GT:
		return c > 0
	case fp.GE:
		return c >= 0
	case fp.LT:
		return c < 0
	case fp.LE:
		return c <= 0
	}
	return false
}
