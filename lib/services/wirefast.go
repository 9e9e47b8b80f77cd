package services

import (
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// A deactivation marshals a lock and two audit events, and proto's deterministic encoding sorts
// every map (the lock's labels, the events' fields) through reflection: a sorted copy of the
// keys, a boxed value per entry, a few dozen allocations per message, a good part of the write's
// marshalling CPU. The encoders below write the same bytes directly for the two kinds that every
// deactivation writes. They decline (ok false) anything they cannot prove they encode exactly as
// proto.MarshalOptions{Deterministic: true} does (unknown fields kept from a decode, a string
// that is not valid UTF-8, which proto refuses with an error), and the caller then marshals with
// proto as before. FuzzFastWire compares them with proto byte for byte, and
// TestFastWireCoversEveryField fails when a field is added to one of these messages without
// being added here.

// marshalDeterministic is proto.MarshalOptions{Deterministic: true}.Marshal(m), through
// the direct encoder of m's kind when it applies.
func marshalDeterministic(m proto.Message) ([]byte, error) {
	var (
		out []byte
		ok  bool
	)
	switch v := m.(type) {
	case *typesv1.Lock:
		out, ok = appendLockFast(nil, v)
	case *typesv1.AuditEvent:
		out, ok = appendAuditEventFast(nil, v)
	}
	if ok {
		if out == nil {
			// proto answers an empty message with an empty, not nil, slice.
			out = []byte{}
		}
		return out, nil
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// wireSizer accumulates a message's encoded size and whether the fast encoder may write it.
type wireSizer struct {
	ok bool
}

func (s *wireSizer) str(num protowire.Number, v string) int {
	if v == "" {
		return 0
	}
	if !utf8.ValidString(v) {
		s.ok = false
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(v))
}

// msgSize is the size of a present submessage field num whose body is n bytes.
func msgSize(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func appendStr(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendMsgHeader(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

func noUnknown(m proto.Message) bool {
	return len(m.ProtoReflect().GetUnknown()) == 0
}

// timestampSize is the body size of t (not nil).
func timestampSize(s *wireSizer, t *timestamppb.Timestamp) int {
	if !noUnknown(t) {
		s.ok = false
	}
	n := 0
	if t.Seconds != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(t.Seconds))
	}
	if t.Nanos != 0 {
		// int32 is encoded sign-extended to 64 bits, as proto does.
		n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(int64(t.Nanos)))
	}
	return n
}

func appendTimestamp(b []byte, num protowire.Number, t *timestamppb.Timestamp, n int) []byte {
	b = appendMsgHeader(b, num, n)
	if t.Seconds != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t.Seconds))
	}
	if t.Nanos != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(t.Nanos)))
	}
	return b
}

// stringMap is a map<string, string> field's entries in key order, with the size of each entry's
// body: proto writes both the key and the value of every entry, empty or not.
type stringMap struct {
	keys  []string
	sizes []int
	total int
}

// mapKeysInline is how many keys a stringMap sorts without allocating beyond its arrays.
const mapKeysInline = 8

func sizeStringMap(s *wireSizer, num protowire.Number, m map[string]string, keys []string, sizes []int) stringMap {
	sm := stringMap{keys: keys[:0], sizes: sizes[:0]}
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			s.ok = false
		}
		sm.keys = append(sm.keys, k)
	}
	slices.Sort(sm.keys)
	for _, k := range sm.keys {
		v := m[k]
		n := protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(len(v))
		sm.sizes = append(sm.sizes, n)
		sm.total += msgSize(num, n)
	}
	return sm
}

func appendStringMap(b []byte, num protowire.Number, m map[string]string, sm *stringMap) []byte {
	for i, k := range sm.keys {
		b = appendMsgHeader(b, num, sm.sizes[i])
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, m[k])
	}
	return b
}

// metadataSizes are the sizes the encoding of a Metadata needs.
type metadataSizes struct {
	body, expires int
	labels        stringMap
}

func sizeMetadata(s *wireSizer, md *typesv1.Metadata, keys []string, sizes []int) metadataSizes {
	if !noUnknown(md) {
		s.ok = false
	}
	var ms metadataSizes
	ms.body = s.str(1, md.Name) + s.str(2, md.Description)
	ms.labels = sizeStringMap(s, 3, md.Labels, keys, sizes)
	ms.body += ms.labels.total
	if md.Expires != nil {
		ms.expires = timestampSize(s, md.Expires)
		ms.body += msgSize(4, ms.expires)
	}
	ms.body += s.str(5, md.Revision)
	return ms
}

func appendMetadata(b []byte, num protowire.Number, md *typesv1.Metadata, ms *metadataSizes) []byte {
	b = appendMsgHeader(b, num, ms.body)
	b = appendStr(b, 1, md.Name)
	b = appendStr(b, 2, md.Description)
	b = appendStringMap(b, 3, md.Labels, &ms.labels)
	if md.Expires != nil {
		b = appendTimestamp(b, 4, md.Expires, ms.expires)
	}
	return appendStr(b, 5, md.Revision)
}

// appendLockFast appends l's deterministic encoding to b; ok false if it must be left to proto.
func appendLockFast(b []byte, l *typesv1.Lock) ([]byte, bool) {
	s := wireSizer{ok: noUnknown(l)}
	var keys [mapKeysInline]string
	var sizes [mapKeysInline]int
	size := s.str(1, l.Kind) + s.str(2, l.Version)
	var ms metadataSizes
	if l.Metadata != nil {
		ms = sizeMetadata(&s, l.Metadata, keys[:], sizes[:])
		size += msgSize(3, ms.body)
	}
	var specBody, targetBody, createdAt int
	spec := l.Spec
	if spec != nil {
		if !noUnknown(spec) {
			s.ok = false
		}
		if t := spec.Target; t != nil {
			if !noUnknown(t) {
				s.ok = false
			}
			targetBody = s.str(1, t.User) + s.str(2, t.Role) + s.str(3, t.Login) + s.str(4, t.Node)
			specBody += msgSize(1, targetBody)
		}
		specBody += s.str(2, spec.Message) + s.str(3, spec.CreatedBy)
		if spec.CreatedAt != nil {
			createdAt = timestampSize(&s, spec.CreatedAt)
			specBody += msgSize(4, createdAt)
		}
		size += msgSize(4, specBody)
	}
	if !s.ok {
		return nil, false
	}
	b = slices.Grow(b, size)
	b = appendStr(b, 1, l.Kind)
	b = appendStr(b, 2, l.Version)
	if l.Metadata != nil {
		b = appendMetadata(b, 3, l.Metadata, &ms)
	}
	if spec != nil {
		b = appendMsgHeader(b, 4, specBody)
		if t := spec.Target; t != nil {
			b = appendMsgHeader(b, 1, targetBody)
			b = appendStr(b, 1, t.User)
			b = appendStr(b, 2, t.Role)
			b = appendStr(b, 3, t.Login)
			b = appendStr(b, 4, t.Node)
		}
		b = appendStr(b, 2, spec.Message)
		b = appendStr(b, 3, spec.CreatedBy)
		if spec.CreatedAt != nil {
			b = appendTimestamp(b, 4, spec.CreatedAt, createdAt)
		}
	}
	return b, true
}

// appendAuditEventFast appends e's deterministic encoding to b; ok false if it must be left to
// proto.
func appendAuditEventFast(b []byte, e *typesv1.AuditEvent) ([]byte, bool) {
	s := wireSizer{ok: noUnknown(e)}
	var keys [mapKeysInline]string
	var sizes [mapKeysInline]int
	size := s.str(1, e.Id) + s.str(2, e.Type)
	var ts int
	if e.Time != nil {
		ts = timestampSize(&s, e.Time)
		size += msgSize(3, ts)
	}
	size += s.str(4, e.User) + s.str(5, e.Outcome) + s.str(6, e.Resource) + s.str(7, e.Message)
	fields := sizeStringMap(&s, 8, e.Fields, keys[:], sizes[:])
	size += fields.total
	if !s.ok {
		return nil, false
	}
	b = slices.Grow(b, size)
	b = appendStr(b, 1, e.Id)
	b = appendStr(b, 2, e.Type)
	if e.Time != nil {
		b = appendTimestamp(b, 3, e.Time, ts)
	}
	b = appendStr(b, 4, e.User)
	b = appendStr(b, 5, e.Outcome)
	b = appendStr(b, 6, e.Resource)
	b = appendStr(b, 7, e.Message)
	return appendStringMap(b, 8, e.Fields, &fields), true
}

// cloneLock is proto.Clone(l) for the locks MarshalLock validates on a copy: proto's merge copies
// the labels map through reflection (a boxed key and value per entry), a third of a lock write's
// allocations. It declines (ok false) a lock with unknown fields, which proto.Clone keeps; the
// messages' fields are pinned by TestFastWireCoversEveryField, and FuzzCloneLock holds the copy
// to proto.Equal with no memory shared.
func cloneLock(l *typesv1.Lock) (*typesv1.Lock, bool) {
	if !noUnknown(l) {
		return nil, false
	}
	c := &typesv1.Lock{Kind: l.Kind, Version: l.Version}
	if md := l.Metadata; md != nil {
		if !noUnknown(md) {
			return nil, false
		}
		c.Metadata = &typesv1.Metadata{Name: md.Name, Description: md.Description, Revision: md.Revision}
		if md.Labels != nil {
			c.Metadata.Labels = make(map[string]string, len(md.Labels))
			for k, v := range md.Labels {
				c.Metadata.Labels[k] = v
			}
		}
		var ok bool
		if c.Metadata.Expires, ok = cloneTimestamp(md.Expires); !ok {
			return nil, false
		}
	}
	if spec := l.Spec; spec != nil {
		if !noUnknown(spec) {
			return nil, false
		}
		c.Spec = &typesv1.LockSpec{Message: spec.Message, CreatedBy: spec.CreatedBy}
		if t := spec.Target; t != nil {
			if !noUnknown(t) {
				return nil, false
			}
			c.Spec.Target = &typesv1.LockTarget{User: t.User, Role: t.Role, Login: t.Login, Node: t.Node}
		}
		var ok bool
		if c.Spec.CreatedAt, ok = cloneTimestamp(spec.CreatedAt); !ok {
			return nil, false
		}
	}
	return c, true
}

func cloneTimestamp(t *timestamppb.Timestamp) (*timestamppb.Timestamp, bool) {
	if t == nil {
		return nil, true
	}
	if !noUnknown(t) {
		return nil, false
	}
	return &timestamppb.Timestamp{Seconds: t.Seconds, Nanos: t.Nanos}, true
}

// Every lock write is decoded by each lock watcher of every server. decodeLockFast reads the
// encoding appendLockFast (and proto's deterministic marshal) writes: every field at most once,
// in field order, with its wire type, map entries of a key then a value, strings in UTF-8, no
// field it does not know. It declines (ok false) anything else, valid or not, for proto, which
// then decides the value or the error (unknown fields dropped, repeated fields merged, ...).
// FuzzDecodeLockFast holds it to proto.Unmarshal.
func decodeLockFast(b []byte) (*typesv1.Lock, bool) {
	l := &typesv1.Lock{}
	d := wireDecoder{b: b}
	for d.next(4) {
		switch d.num {
		case 1:
			l.Kind = d.str()
		case 2:
			l.Version = d.str()
		case 3:
			l.Metadata = decodeMetadataFast(d.msg())
		case 4:
			l.Spec = decodeLockSpecFast(d.msg())
		}
	}
	return l, d.done()
}

func decodeMetadataFast(d wireDecoder, ok bool) *typesv1.Metadata {
	// A failed sub-decoder fails its parent through wireDecoder.sub.
	md := &typesv1.Metadata{}
	if !ok {
		return md
	}
	for d.nextRepeated(5, 3) {
		switch d.num {
		case 1:
			md.Name = d.str()
		case 2:
			md.Description = d.str()
		case 3:
			e, eok := d.msg()
			k, v, kvok := decodeStringEntry(e, eok)
			if !kvok {
				d.bad = true
				break
			}
			if md.Labels == nil {
				md.Labels = map[string]string{}
			}
			md.Labels[k] = v
		case 4:
			md.Expires = decodeTimestampFast(&d)
		case 5:
			md.Revision = d.str()
		}
	}
	d.finishSub()
	return md
}

func decodeLockSpecFast(d wireDecoder, ok bool) *typesv1.LockSpec {
	s := &typesv1.LockSpec{}
	if !ok {
		return s
	}
	for d.next(4) {
		switch d.num {
		case 1:
			t := &typesv1.LockTarget{}
			td, tok := d.msg()
			if !tok {
				break
			}
			for td.next(4) {
				switch td.num {
				case 1:
					t.User = td.str()
				case 2:
					t.Role = td.str()
				case 3:
					t.Login = td.str()
				case 4:
					t.Node = td.str()
				}
			}
			if !td.done() {
				d.bad = true
			}
			s.Target = t
		case 2:
			s.Message = d.str()
		case 3:
			s.CreatedBy = d.str()
		case 4:
			s.CreatedAt = decodeTimestampFast(&d)
		}
	}
	d.finishSub()
	return s
}

func decodeTimestampFast(parent *wireDecoder) *timestamppb.Timestamp {
	t := &timestamppb.Timestamp{}
	d, ok := parent.msg()
	if !ok {
		return t
	}
	for d.next(2) {
		v := d.varint()
		if d.num == 1 {
			t.Seconds = int64(v)
		} else {
			t.Nanos = int32(v)
		}
	}
	if !d.done() {
		parent.bad = true
	}
	return t
}

// decodeStringEntry reads a map<string, string> entry as proto writes it: key, then value.
func decodeStringEntry(d wireDecoder, ok bool) (k, v string, _ bool) {
	if !ok {
		return "", "", false
	}
	if !d.next(2) || d.num != 1 {
		return "", "", false
	}
	k = d.str()
	if !d.next(2) || d.num != 2 {
		return "", "", false
	}
	v = d.str()
	return k, v, !d.next(2) && d.done()
}

// wireDecoder reads the fields of one message strictly (see decodeLockFast).
type wireDecoder struct {
	b      []byte
	num    protowire.Number
	typ    protowire.Type
	last   protowire.Number
	bad    bool
	parent *wireDecoder
}

// next reads the next field's tag; false at the end or on anything out of the strict form
// (then done reports it). Field numbers must rise, up to max.
func (d *wireDecoder) next(max protowire.Number) bool {
	return d.nextRepeated(max, 0)
}

// nextRepeated is next where field rep may repeat (a map's entries).
func (d *wireDecoder) nextRepeated(max, rep protowire.Number) bool {
	if d.bad || len(d.b) == 0 {
		return false
	}
	num, typ, n := protowire.ConsumeTag(d.b)
	if n < 0 || num > max || num < d.last || (num == d.last && num != rep) || num < 1 {
		d.bad = true
		return false
	}
	d.b = d.b[n:]
	d.num, d.typ, d.last = num, typ, num
	return true
}

func (d *wireDecoder) str() string {
	if d.typ != protowire.BytesType {
		d.bad = true
		return ""
	}
	v, n := protowire.ConsumeBytes(d.b)
	if n < 0 || !utf8.Valid(v) {
		d.bad = true
		return ""
	}
	d.b = d.b[n:]
	return string(v)
}

func (d *wireDecoder) varint() uint64 {
	if d.typ != protowire.VarintType {
		d.bad = true
		return 0
	}
	v, n := protowire.ConsumeVarint(d.b)
	if n < 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// msg returns a decoder of the embedded message field just read, whose failure fails d.
func (d *wireDecoder) msg() (wireDecoder, bool) {
	if d.typ != protowire.BytesType {
		d.bad = true
		return wireDecoder{}, false
	}
	v, n := protowire.ConsumeBytes(d.b)
	if n < 0 {
		d.bad = true
		return wireDecoder{}, false
	}
	d.b = d.b[n:]
	return wireDecoder{b: v, parent: d}, true
}

// finishSub fails the parent if this embedded message was not read whole and strictly.
func (d *wireDecoder) finishSub() {
	if !d.done() && d.parent != nil {
		d.parent.bad = true
	}
}

// done reports whether the message was read to its end in the strict form.
func (d *wireDecoder) done() bool { return !d.bad && len(d.b) == 0 }
