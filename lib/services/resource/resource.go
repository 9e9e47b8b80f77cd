// Package resource reads and writes the resource file format: what
// `gatectl create -f` reads and `gatectl get` prints. A file holds one or
// more resources, each with kind, version (v1), metadata and spec, written
// with the protobuf field names in snake_case, as YAML (documents separated
// by "---") or JSON (one object, several objects, or an array of them).
//
// Parsing is strict: an unknown field is an error, so that a typo never
// silently drops a setting. It does not validate resources beyond kind and
// version; the server runs the services' Validate* functions.
package resource

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
	k8syaml "sigs.k8s.io/yaml"

	"github.com/gatehouse/gatehouse/lib/safetext"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Format is an output format.
type Format string

const (
	// YAML prints YAML documents separated by "---".
	YAML Format = "yaml"
	// JSON prints one indented JSON object, or an array of several.
	JSON Format = "json"
)

// Bounds on one input file.
const (
	// MaxDocuments bounds the resources one file may hold.
	MaxDocuments = 1000
	// MaxInputSize bounds the bytes Parse reads.
	MaxInputSize = 16 << 20
)

// kinds maps every kind to a constructor of its message.
var kinds = map[string]func() proto.Message{
	services.KindUser:                    func() proto.Message { return &typesv1.User{} },
	services.KindRole:                    func() proto.Message { return &typesv1.Role{} },
	services.KindLock:                    func() proto.Message { return &typesv1.Lock{} },
	services.KindPlugin:                  func() proto.Message { return &typesv1.Plugin{} },
	services.KindPluginStaticCredentials: func() proto.Message { return &typesv1.PluginStaticCredentials{} },
	services.KindSAMLConnector:           func() proto.Message { return &typesv1.SAMLConnector{} },
	services.KindCertAuthority:           func() proto.Message { return &typesv1.CertAuthority{} },
}

// Kinds lists the kinds the format knows, sorted.
func Kinds() []string {
	return []string{
		services.KindCertAuthority, services.KindLock, services.KindPlugin,
		services.KindPluginStaticCredentials, services.KindRole, services.KindSAMLConnector,
		services.KindUser,
	}
}

// New returns an empty message of the given kind.
func New(kind string) (proto.Message, error) {
	mk, ok := kinds[kind]
	if !ok {
		return nil, trace.BadParameter("unknown resource kind %q (known: %s)", kind, strings.Join(Kinds(), ", "))
	}
	return mk(), nil
}

// KindOf returns a resource message's kind field.
func KindOf(m proto.Message) string {
	if k, ok := m.(interface{ GetKind() string }); ok {
		return k.GetKind()
	}
	return ""
}

// header is what is read first to choose the message type.
type header struct {
	Kind    string `json:"kind"`
	Version string `json:"version"`
}

// Parse reads every resource in data, YAML or JSON, in order. Errors name the
// document (counted from 1) and its kind.
func Parse(data []byte) ([]proto.Message, error) {
	if len(data) > MaxInputSize {
		return nil, trace.LimitExceeded("resource file is %d bytes, over the limit of %d", len(data), MaxInputSize)
	}
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if len(docs) == 0 {
		return nil, trace.BadParameter("no resources found")
	}
	out := make([]proto.Message, 0, len(docs))
	for i, doc := range docs {
		m, err := parseDocument(doc)
		if err != nil {
			return nil, trace.BadParameter("document %d%s: %v", i+1, kindHint(doc), err)
		}
		out = append(out, m)
	}
	return out, nil
}

// kindHint names a document's kind in errors, when it can be read.
func kindHint(doc []byte) string {
	var h header
	if json.Unmarshal(doc, &h) == nil && h.Kind != "" {
		return " (kind " + strconvQuote(h.Kind) + ")"
	}
	return ""
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// parseDocument decodes one JSON document into its kind's message.
func parseDocument(doc []byte) (proto.Message, error) {
	var h header
	if err := json.Unmarshal(doc, &h); err != nil {
		return nil, trace.BadParameter("not a resource object: %v", err)
	}
	if h.Kind == "" {
		return nil, trace.BadParameter("missing kind")
	}
	m, err := New(h.Kind)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if h.Version != services.V1 {
		return nil, trace.BadParameter("unsupported version %q, only %q is supported", h.Version, services.V1)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(doc, m); err != nil {
		return nil, trace.BadParameter("%v", err)
	}
	return m, nil
}

// splitDocuments turns the input into one JSON object per resource.
func splitDocuments(data []byte) ([][]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if trimmed[0] == '{' || trimmed[0] == '[' {
		return splitJSON(trimmed)
	}
	return splitYAML(trimmed)
}

func splitJSON(data []byte) ([][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for i := 1; ; i++ {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, trace.BadParameter("document %d: invalid JSON: %v", i, err)
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) > 0 && raw[0] == '[' {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, trace.BadParameter("document %d: invalid JSON array: %v", i, err)
			}
			docs = append(docs, toBytes(list)...)
		} else {
			docs = append(docs, raw)
		}
		if len(docs) > MaxDocuments {
			return nil, trace.LimitExceeded("more than %d resources in one file", MaxDocuments)
		}
	}
}

func toBytes(list []json.RawMessage) [][]byte {
	out := make([][]byte, len(list))
	for i, r := range list {
		out[i] = r
	}
	return out
}

// splitYAML decodes each YAML document (a real YAML parser, so that "---"
// inside a block scalar is not a separator) and converts it to JSON. Empty
// documents, such as a leading "---", are skipped.
func splitYAML(data []byte) ([][]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for i := 1; ; i++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, trace.BadParameter("document %d: invalid YAML: %v", i, err)
		}
		if len(node.Content) == 0 || (node.Content[0].Kind == yaml.ScalarNode && node.Content[0].Tag == "!!null") {
			i--
			continue
		}
		if node.Content[0].Kind != yaml.MappingNode {
			return nil, trace.BadParameter("document %d: a resource must be a mapping with kind, version, metadata and spec", i)
		}
		text, err := yaml.Marshal(&node)
		if err != nil {
			return nil, trace.BadParameter("document %d: %v", i, err)
		}
		js, err := k8syaml.YAMLToJSON(text)
		if err != nil {
			return nil, trace.BadParameter("document %d: %v", i, err)
		}
		docs = append(docs, js)
		if len(docs) > MaxDocuments {
			return nil, trace.LimitExceeded("more than %d resources in one file", MaxDocuments)
		}
	}
}

// Marshal prints resources in the given format: YAML documents separated by
// "---", or JSON (one object for one resource, an array for several; an
// empty array for none). Field names are the protobuf names in snake_case.
func Marshal(format Format, resources ...proto.Message) ([]byte, error) {
	objs := make([]json.RawMessage, 0, len(resources))
	for i, r := range resources {
		if r == nil || !r.ProtoReflect().IsValid() {
			return nil, trace.BadParameter("resource %d is empty", i+1)
		}
		js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		objs = append(objs, js)
	}
	switch format {
	case JSON:
		var v any = objs
		if len(objs) == 1 {
			v = objs[0]
		}
		out, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, trace.Wrap(err)
		}
		return append(out, '\n'), nil
	case YAML, "":
		var buf bytes.Buffer
		for i, js := range objs {
			// The YAML parser refuses a raw C1 control or DEL in its input
			// (protojson leaves them raw), which would make one hostile
			// string fail a whole listing; escaped, the JSON says the same.
			y, err := k8syaml.JSONToYAML([]byte(safetext.Escape(string(js))))
			if err != nil {
				return nil, trace.Wrap(err)
			}
			if i > 0 {
				buf.WriteString("---\n")
			}
			buf.Write(y)
		}
		return buf.Bytes(), nil
	default:
		return nil, trace.BadParameter("unknown format %q (yaml or json)", format)
	}
}

// Write prints resources to w (see Marshal).
func Write(w io.Writer, format Format, resources ...proto.Message) error {
	out, err := Marshal(format, resources...)
	if err != nil {
		return trace.Wrap(err)
	}
	_, err = w.Write(out)
	return trace.Wrap(err)
}
