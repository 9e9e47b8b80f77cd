package services

import (
	"github.com/gravitational/trace"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/generic"
)

// newGeneric returns the generic service a typed service is built on: cfg
// checked, resources stored on its backend, in the binary encoding for the
// binaryKinds. gc gives the rest (kind, key prefix, validation, caching).
func newGeneric[T generic.Resource](cfg Config, gc generic.Config[T]) (*generic.Service[T], error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	gc.Backend = cfg.Backend
	gc.Binary = binaryKinds[gc.KeyPrefix]
	svc, err := generic.New(gc)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return svc, nil
}

// unmarshalStored decodes a stored resource of kind T, in either encoding,
// secrets included: the body of every Unmarshal<Kind>.
func unmarshalStored[T generic.Resource](item backend.Item) (T, error) {
	r, err := generic.UnmarshalResource[T](item, protojson.UnmarshalOptions{})
	return r, trace.Wrap(err)
}
