package main

import (
	"encoding/json"
	"io"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/lib/services/resource"
)

// decodeResources reads resources in the resource file format
// (lib/services/resource) and keeps only the kinds gatectl manages.
func decodeResources(data []byte) ([]proto.Message, error) {
	msgs, err := resource.Parse(data)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if len(msgs) == 0 {
		return nil, trace.BadParameter("no resources found")
	}
	for i, m := range msgs {
		if _, err := lookupKind(resource.KindOf(m)); err != nil {
			return nil, trace.BadParameter("document %d: %v", i+1, err)
		}
	}
	return msgs, nil
}

// encodeResources prints resources in the resource file format. JSON is one
// object when single is set (KIND/NAME) and otherwise always an array, even
// of one or none, so that scripts see one shape per command.
func encodeResources(w io.Writer, format string, msgs []proto.Message, single bool) error {
	switch format {
	case "yaml":
		if len(msgs) == 0 {
			return nil
		}
		return trace.Wrap(resource.Write(w, resource.YAML, msgs...))
	case "json":
		if single && len(msgs) == 1 {
			return trace.Wrap(resource.Write(w, resource.JSON, msgs[0]))
		}
		raws := make([]json.RawMessage, 0, len(msgs))
		for _, m := range msgs {
			b, err := resource.Marshal(resource.JSON, m)
			if err != nil {
				return trace.Wrap(err)
			}
			raws = append(raws, b)
		}
		return printData(w, "json", raws)
	}
	return trace.BadParameter("unknown format %q", format)
}

// messageJSON returns any message (audit events) as JSON with snake_case
// names.
func messageJSON(m proto.Message) (json.RawMessage, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	return b, trace.Wrap(err)
}
