package services

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/backend"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// protoDeterministic is what the direct encoders must write.
func protoDeterministic(t testing.TB, m proto.Message) []byte {
	t.Helper()
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	require.NoError(t, err)
	return out
}

// TestFastWireCoversEveryField fails when one of the messages the direct encoders write gains a
// field: the encoder would silently drop it, so it must learn it first (and this list with it).
func TestFastWireCoversEveryField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msg    proto.Message
		fields []protoreflect.FieldNumber
	}{
		{&typesv1.Lock{}, []protoreflect.FieldNumber{1, 2, 3, 4}},
		{&typesv1.Metadata{}, []protoreflect.FieldNumber{1, 2, 3, 4, 5}},
		{&typesv1.LockSpec{}, []protoreflect.FieldNumber{1, 2, 3, 4}},
		{&typesv1.LockTarget{}, []protoreflect.FieldNumber{1, 2, 3, 4}},
		{&typesv1.AuditEvent{}, []protoreflect.FieldNumber{1, 2, 3, 4, 5, 6, 7, 8}},
		{&timestamppb.Timestamp{}, []protoreflect.FieldNumber{1, 2}},
	} {
		fds := tc.msg.ProtoReflect().Descriptor().Fields()
		var got []protoreflect.FieldNumber
		for i := range fds.Len() {
			got = append(got, fds.Get(i).Number())
		}
		require.Equal(t, tc.fields, got, "%s", tc.msg.ProtoReflect().Descriptor().FullName())
	}
}

func sampleLock() *typesv1.Lock {
	now := time.Date(2026, 12, 5, 21, 0, 0, 123456789, time.UTC)
	return &typesv1.Lock{
		Kind: KindLock, Version: V1,
		Metadata: &typesv1.Metadata{
			Name: "scim-okta-0123456789abcdef0123456789abcdef",
			Labels: map[string]string{
				LabelOrigin: "okta", LabelPlugin: "okta", "gatehouse/reason": "scim-deactivation", LabelSCIMID: "id-1",
			},
			Expires: timestamppb.New(now.Add(time.Hour)),
		},
		Spec: &typesv1.LockSpec{
			Target:    &typesv1.LockTarget{User: "jane.doe@example.com"},
			Message:   `deactivated in Okta (SCIM, plugin "okta", SCIM id id-1, externalId "00u1") at 2026-12-05T21:00:00Z`,
			CreatedBy: "@plugin/okta",
			CreatedAt: timestamppb.New(now),
		},
	}
}

func sampleEvent() *typesv1.AuditEvent {
	return &typesv1.AuditEvent{
		Type: "scim.user.deactivate", User: "@plugin/okta", Outcome: OutcomeSuccess, Resource: "user/jane.doe@example.com",
		Message: "user deactivated over SCIM",
		Fields:  map[string]string{"plugin": "okta", "scim_id": "id-1", "external_id": "", "username": "jane.doe@example.com", "via": "okta"},
	}
}

// TestFastWireMatchesProto pins the direct encoders to proto's deterministic encoding on the
// shapes a SCIM write makes and on the edges of the wire format, and checks that they decline
// what they must leave to proto.
func TestFastWireMatchesProto(t *testing.T) {
	t.Parallel()
	manyLabels := sampleLock()
	for i := range 20 {
		manyLabels.Metadata.Labels[fmt.Sprintf("k%02d", 19-i)] = fmt.Sprint(i)
	}
	negative := sampleLock()
	negative.Spec.CreatedAt = &timestamppb.Timestamp{Seconds: -62135596800, Nanos: -5}
	event := sampleEvent()
	event.Id, event.Time = "id", timestamppb.New(time.Unix(1, 0))
	for name, m := range map[string]proto.Message{
		"lock":                    sampleLock(),
		"empty lock":              &typesv1.Lock{},
		"empty submessages":       &typesv1.Lock{Metadata: &typesv1.Metadata{Expires: &timestamppb.Timestamp{}}, Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{}, CreatedAt: &timestamppb.Timestamp{}}},
		"empty label key, value":  &typesv1.Lock{Metadata: &typesv1.Metadata{Labels: map[string]string{"": "", "a": ""}}},
		"many labels":             manyLabels,
		"negative time":           negative,
		"all target fields":       &typesv1.Lock{Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "u", Role: "r", Login: "l", Node: "n"}}},
		"revision, description":   &typesv1.Lock{Metadata: &typesv1.Metadata{Name: "n", Description: "d", Revision: "7"}},
		"event":                   sampleEvent(),
		"event with id and time":  event,
		"empty event":             &typesv1.AuditEvent{},
		"event with long message": &typesv1.AuditEvent{Message: string(make([]byte, 300)), Fields: map[string]string{"x": string(make([]byte, 200))}},
	} {
		out, err := marshalDeterministic(m)
		require.NoError(t, err, name)
		require.Equal(t, protoDeterministic(t, m), out, name)
	}

	// Unknown fields (kept by a decode without DiscardUnknown) are left to proto.
	unknown := sampleLock()
	unknown.Spec.Target.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	_, ok := appendLockFast(nil, unknown)
	require.False(t, ok)
	out, err := marshalDeterministic(unknown)
	require.NoError(t, err)
	require.Equal(t, protoDeterministic(t, unknown), out)

	// A string that is not UTF-8 is left to proto, which refuses it.
	bad := sampleEvent()
	bad.Fields["k"] = "\xff"
	_, ok = appendAuditEventFast(nil, bad)
	require.False(t, ok)
	_, err = marshalDeterministic(bad)
	_, protoErr := proto.MarshalOptions{Deterministic: true}.Marshal(bad)
	require.Error(t, err)
	require.Equal(t, protoErr.Error(), err.Error())
}

// FuzzFastWire compares the direct encoders with proto on messages built from the fuzzer's
// strings and numbers: the same bytes, or a decline and proto's own answer.
func FuzzFastWire(f *testing.F) {
	f.Add("scim-okta-x", "okta", "id-1", "jane", "msg", int64(1700000000), int32(5), 4, true, true)
	f.Add("", "", "", "", "", int64(0), int32(0), 0, false, false)
	f.Add("\xff", "a\x00b", "é", "", "", int64(-1), int32(-999999999), 12, true, false)
	f.Fuzz(func(t *testing.T, name, label, value, user, msg string, secs int64, nanos int32, labels int, withSpec, withTimes bool) {
		labels = max(0, min(labels, 16))
		l := &typesv1.Lock{Kind: KindLock, Version: V1, Metadata: &typesv1.Metadata{Name: name, Labels: map[string]string{}}}
		e := &typesv1.AuditEvent{Id: name, Type: label, User: user, Message: msg, Fields: map[string]string{}}
		for i := range labels {
			k := fmt.Sprintf("%s%d", label, labels-i)
			l.Metadata.Labels[k] = value
			e.Fields[k+value] = label
		}
		if withSpec {
			l.Spec = &typesv1.LockSpec{Target: &typesv1.LockTarget{User: user, Node: value}, Message: msg}
		}
		if withTimes {
			ts := &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
			l.Metadata.Expires, e.Time = ts, ts
			if l.Spec != nil {
				l.Spec.CreatedAt = ts
			}
		}
		for _, m := range []proto.Message{l, e} {
			got, err := marshalDeterministic(m)
			want, wantErr := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if wantErr != nil {
				require.Error(t, err)
				require.Equal(t, wantErr.Error(), err.Error())
				continue
			}
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
	})
}

// BenchmarkMarshalLock is the lock a deactivation writes, marshalled as MarshalLock stores it.
func BenchmarkMarshalLock(b *testing.B) {
	l := sampleLock()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalLock(l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalEvent is a deactivation's audit event, encoded directly and by proto.
func BenchmarkMarshalEvent(b *testing.B) {
	e := sampleEvent()
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshalDeterministic(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := (proto.MarshalOptions{Deterministic: true}).Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzCloneLock holds cloneLock to proto.Clone: an equal lock sharing no message or map with the
// original, or a decline (unknown fields only).
func FuzzCloneLock(f *testing.F) {
	f.Add("scim-okta-x", "okta", "id-1", "jane", int64(1700000000), int32(5), 4, true, true, false)
	f.Add("", "", "", "", int64(0), int32(0), 0, false, false, true)
	f.Fuzz(func(t *testing.T, name, label, value, user string, secs int64, nanos int32, labels int, withSpec, withTimes, unknown bool) {
		l := sampleLock()
		l.Metadata.Name = name
		l.Metadata.Labels = nil
		if labels > 0 {
			l.Metadata.Labels = map[string]string{}
		}
		for i := range min(labels, 16) {
			l.Metadata.Labels[fmt.Sprint(label, i)] = value
		}
		if !withSpec {
			l.Spec = nil
		} else {
			l.Spec.Target.User, l.Spec.Target.Login = user, value
		}
		if withTimes {
			l.Metadata.Expires = &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
		} else {
			l.Metadata.Expires = nil
		}
		if unknown {
			l.Metadata.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
		}
		c, ok := cloneLock(l)
		if unknown {
			require.False(t, ok)
			return
		}
		require.True(t, ok)
		require.True(t, proto.Equal(proto.Clone(l), c))
		want := proto.Clone(l)
		// Nothing is shared: changing the copy leaves the original as it was.
		c.Metadata.Name += "x"
		if c.Metadata.Labels != nil {
			c.Metadata.Labels["new"] = "x"
		}
		if c.Metadata.Expires != nil {
			c.Metadata.Expires.Seconds++
		}
		if c.Spec != nil {
			c.Spec.Target.User += "x"
			c.Spec.CreatedAt.Nanos++
			c.Spec.Message += "x"
		}
		require.True(t, proto.Equal(want, l))
	})
}

// TestMarshalLockLeavesTheLockAlone: the validation's defaults and canonical target go into the
// stored copy, not into the caller's lock, through the direct copy as through proto.Clone.
func TestMarshalLockLeavesTheLockAlone(t *testing.T) {
	t.Parallel()
	for _, unknown := range []bool{false, true} {
		l := sampleLock()
		l.Kind, l.Version, l.Spec.Target.User = "", "", "Jane.Doe@Example.com"
		if unknown {
			l.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
		}
		before := proto.Clone(l)
		item, err := MarshalLock(l)
		require.NoError(t, err)
		require.True(t, proto.Equal(before, l))
		stored, err := UnmarshalLock(item)
		require.NoError(t, err)
		require.Equal(t, KindLock, stored.GetKind())
		require.Equal(t, "jane.doe@example.com", stored.GetSpec().GetTarget().GetUser())
	}
}

// FuzzDecodeLockFast holds decodeLockFast to proto.Unmarshal (as stored locks are read, unknown
// fields dropped): whatever it accepts, proto decodes to an equal lock.
func FuzzDecodeLockFast(f *testing.F) {
	for _, l := range []*typesv1.Lock{sampleLock(), {}, {Metadata: &typesv1.Metadata{Labels: map[string]string{"": ""}}, Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{}}}} {
		f.Add(protoDeterministic(f, l))
	}
	f.Add([]byte{0x1a, 0x00, 0x1a, 0x00})
	f.Add([]byte{0x0a, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := decodeLockFast(b)
		if !ok {
			return
		}
		var want typesv1.Lock
		require.NoError(t, proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, &want))
		require.True(t, proto.Equal(&want, got), "%x", b)
	})
}

// TestUnmarshalLockMatchesGeneric: a stored lock read through the direct decoder is the lock the
// generic path reads (revision and expiry from the item), and the locks a write stores take it.
func TestUnmarshalLockMatchesGeneric(t *testing.T) {
	t.Parallel()
	noMeta := &typesv1.Lock{Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "u"}}}
	for name, l := range map[string]*typesv1.Lock{"sample": sampleLock(), "no expiry": {Kind: KindLock, Metadata: &typesv1.Metadata{Name: "n"}, Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{Role: "r"}}}} {
		item, err := MarshalLock(l)
		require.NoError(t, err, name)
		item.Revision = "42"
		_, ok := decodeLockFast(item.Value)
		require.True(t, ok, name)
		got, err := UnmarshalLock(item)
		require.NoError(t, err)
		want, err := unmarshalStored[*typesv1.Lock](item)
		require.NoError(t, err)
		require.True(t, proto.Equal(want, got), name)
		require.Equal(t, "42", got.GetMetadata().GetRevision())
	}
	value := protoDeterministic(t, noMeta)
	item := backend.Item{Key: LockKey("x"), Value: value, Revision: "7", Expires: time.Unix(100, 0)}
	got, err := UnmarshalLock(item)
	require.NoError(t, err)
	want, err := unmarshalStored[*typesv1.Lock](item)
	require.NoError(t, err)
	require.True(t, proto.Equal(want, got))
	// What the direct decoder declines still decodes, or fails, as before.
	for _, v := range [][]byte{append(value, 0x48, 0x01), {0x0a, 0x01, 0xff}} {
		item := backend.Item{Key: LockKey("x"), Value: v}
		got, gotErr := UnmarshalLock(item)
		want, wantErr := unmarshalStored[*typesv1.Lock](item)
		if wantErr != nil {
			require.EqualError(t, gotErr, wantErr.Error())
			continue
		}
		require.NoError(t, gotErr)
		require.True(t, proto.Equal(want, got))
	}
}

// BenchmarkUnmarshalLock is the lock a deactivation writes, read as every lock watcher reads it:
// directly, and through proto (the generic path).
func BenchmarkUnmarshalLock(b *testing.B) {
	item, err := MarshalLock(sampleLock())
	require.NoError(b, err)
	for name, read := range map[string]func(backend.Item) (*typesv1.Lock, error){"direct": UnmarshalLock, "proto": unmarshalStored[*typesv1.Lock]} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := read(item); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
