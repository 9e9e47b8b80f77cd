package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
	sigsyaml "sigs.k8s.io/yaml"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// newMessage returns an empty typed resource for a kind as written in files.
func newMessage(kind string) (proto.Message, error) {
	switch kind {
	case "user":
		return &typesv1.User{}, nil
	case "role":
		return &typesv1.Role{}, nil
	case "lock":
		return &typesv1.Lock{}, nil
	case "saml":
		return &typesv1.SAMLConnector{}, nil
	case "plugin":
		return &typesv1.Plugin{}, nil
	case "":
		return nil, trace.BadParameter("resource has no kind")
	}
	return nil, trace.BadParameter("unknown resource kind %q (want user, role, lock, saml or plugin)", kind)
}

// decodeResources reads one or more YAML documents (JSON is YAML too) with
// kind, version, metadata and spec into typed resources. Unknown fields are
// refused so that a typo is not silently dropped.
func decodeResources(data []byte) ([]proto.Message, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []proto.Message
	for i := 1; ; i++ {
		var doc any
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, trace.BadParameter("document %d: %v", i, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if doc == nil {
			continue // an empty document, e.g. a trailing "---"
		}
		obj, ok := doc.(map[string]any)
		if !ok {
			return nil, trace.BadParameter("document %d: want a resource with kind, version, metadata and spec", i)
		}
		kind, _ := obj["kind"].(string)
		msg, err := newMessage(kind)
		if err != nil {
			return nil, trace.BadParameter("document %d: %v", i, err)
		}
		if v, _ := obj["version"].(string); v != "v1" {
			return nil, trace.BadParameter("document %d (%s): version %q: want v1", i, kind, obj["version"])
		}
		js, err := json.Marshal(normalize(doc))
		if err != nil {
			return nil, trace.BadParameter("document %d (%s): %v", i, kind, err)
		}
		if err := protojson.Unmarshal(js, msg); err != nil {
			return nil, trace.BadParameter("document %d (%s): %v", i, kind, err)
		}
		out = append(out, msg)
	}
	if len(out) == 0 {
		return nil, trace.BadParameter("no resources found")
	}
	return out, nil
}

// normalize turns YAML maps with non-string keys, which encoding/json cannot
// write, into string-keyed maps.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[toString(k)] = normalize(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	}
	return v
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true}

// resourceJSON returns a resource as a JSON value with snake_case names.
func resourceJSON(m proto.Message) (json.RawMessage, error) {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	// Re-encode through encoding/json for stable compact output: protojson
	// deliberately randomizes whitespace.
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, trace.Wrap(err)
	}
	out, err := json.Marshal(v)
	return out, trace.Wrap(err)
}

// encodeResources writes resources as YAML documents or as JSON: one object
// when single is set, otherwise an array.
func encodeResources(w io.Writer, format string, msgs []proto.Message, single bool) error {
	raws := make([]json.RawMessage, 0, len(msgs))
	for _, m := range msgs {
		r, err := resourceJSON(m)
		if err != nil {
			return trace.Wrap(err)
		}
		raws = append(raws, r)
	}
	switch format {
	case "json":
		var v any = raws
		if single && len(raws) == 1 {
			v = raws[0]
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return trace.Wrap(err)
		}
		_, err = w.Write(append(b, '\n'))
		return trace.Wrap(err)
	case "yaml":
		for i, r := range raws {
			y, err := sigsyaml.JSONToYAML(r)
			if err != nil {
				return trace.Wrap(err)
			}
			if i > 0 {
				if _, err := io.WriteString(w, "---\n"); err != nil {
					return trace.Wrap(err)
				}
			}
			if _, err := w.Write(y); err != nil {
				return trace.Wrap(err)
			}
		}
		return nil
	}
	return trace.BadParameter("unknown format %q", format)
}
