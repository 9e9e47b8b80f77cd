package scimstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
)

// oldUnmarshalUser is UnmarshalUser as it was before its strings were cut
// from one allocation: the reference of FuzzUnmarshalUserMatchesOld.
func oldUnmarshalUser(item backend.Item) (*scimrecord.UserRecord, error) {
	var rec scimrecord.UserRecord
	var err error
	if len(item.Value) > 0 && item.Value[0] == '{' {
		err = json.Unmarshal(item.Value, &rec)
	} else {
		err = oldDecodeUserRecord(item.Value, &rec)
	}
	if err != nil {
		return nil, trace.BadParameter("stored SCIM user at %q is corrupt: %v", item.Key, err)
	}
	if rec.ID == "" {
		k := string(item.Key)
		rec.ID = k[strings.LastIndexByte(k, backend.Separator)+1:]
	}
	rec.Revision = item.Revision
	return &rec, nil
}

func oldDecodeUserRecord(v []byte, rec *scimrecord.UserRecord) error {
	d := oldDecoder{buf: v}
	if d.byte() != userRecordV1 {
		return trace.BadParameter("unknown record encoding")
	}
	rec.UserName = d.string()
	rec.ExternalID = d.string()
	rec.Active = d.byte() == 1
	rec.Created = d.time()
	rec.LastModified = d.time()
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.fail()
	}
	if n > 0 && d.err == nil {
		rec.Groups = make([]scimrecord.GroupRef, n)
		for i := range rec.Groups {
			rec.Groups[i] = scimrecord.GroupRef{ID: d.string(), DisplayName: d.string()}
		}
	}
	if d.err != nil {
		return d.err
	}
	rec.Attributes = json.RawMessage(bytes.Clone(d.buf))
	if len(rec.Attributes) == 0 {
		rec.Attributes = nil
	}
	return nil
}

type oldDecoder struct {
	buf []byte
	err error
}

func (d *oldDecoder) fail() {
	if d.err == nil {
		d.err = trace.BadParameter("truncated record")
	}
	d.buf = nil
}

func (d *oldDecoder) byte() byte {
	if len(d.buf) == 0 {
		d.fail()
		return 0
	}
	c := d.buf[0]
	d.buf = d.buf[1:]
	return c
}

func (d *oldDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *oldDecoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.fail()
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	return s
}

func (d *oldDecoder) time() time.Time {
	sec, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail()
		return time.Time{}
	}
	d.buf = d.buf[n:]
	nsec := d.uvarint()
	if nsec >= uint64(time.Second) {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// FuzzUnmarshalUserMatchesOld holds UnmarshalUser to the decoder it
// replaces, on any stored value and key: the same record (every field) or
// the same error. The seeds are real encodings, whole, cut short and
// altered, and JSON records.
func FuzzUnmarshalUserMatchesOld(f *testing.F) {
	created := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	for _, rec := range []*scimrecord.UserRecord{
		{UserName: "jane@example.com", ExternalID: "00u1", Active: true, Created: created, LastModified: created.Add(time.Hour),
			Attributes: json.RawMessage(`{"name":{"givenName":"Jane"}}`)},
		{UserName: "bob", Groups: []scimrecord.GroupRef{{ID: "g1", DisplayName: "Eng"}, {ID: "g2", DisplayName: "Ops ☃"}}},
		{UserName: "", Created: time.Unix(-5, 0)},
	} {
		v := encodeUserRecord(rec)
		f.Add(v, []byte("scim/okta/users/3f1c"))
		for _, cut := range []int{0, 1, 2, len(v) / 2, len(v) - 1} {
			f.Add(v[:cut], []byte("scim/okta/users/x"))
		}
		w := bytes.Clone(v)
		w[1] = 0xff
		f.Add(w, []byte("no-separator"))
		j, err := json.Marshal(rec)
		require.NoError(f, err)
		f.Add(j, []byte("scim/okta/users/json"))
	}
	f.Add([]byte(`{"id":"from-value","user_name":"a"}`), []byte("scim/okta/users/k"))
	f.Fuzz(func(t *testing.T, value, key []byte) {
		item := backend.Item{Key: key, Value: value, Revision: "rev"}
		want, wantErr := oldUnmarshalUser(item)
		got, gotErr := UnmarshalUser(item)
		if wantErr != nil || gotErr != nil {
			require.Error(t, wantErr)
			require.Error(t, gotErr)
			require.Equal(t, wantErr.Error(), gotErr.Error())
			return
		}
		require.Equal(t, want, got)
	})
}

// TestUnmarshalUserAllocations pins the decode of a record with a group
// to its allocations: the record, its strings (one), its groups and its
// attributes.
func TestUnmarshalUserAllocations(t *testing.T) {
	rec := &scimrecord.UserRecord{UserName: "jane@example.com", ExternalID: "00u1", Active: true,
		Groups: []scimrecord.GroupRef{{ID: "g1", DisplayName: "Eng"}}, Attributes: json.RawMessage(`{"locale":"en-US"}`)}
	item := backend.Item{Key: UserKey("okta", "0b5a7e52-7e0b-4c36-9d7e-1d6f3a0b2c11"), Value: encodeUserRecord(rec), Revision: "7"}
	got, err := UnmarshalUser(item)
	require.NoError(t, err)
	require.Equal(t, "0b5a7e52-7e0b-4c36-9d7e-1d6f3a0b2c11", got.ID)
	require.Equal(t, 4.0, testing.AllocsPerRun(100, func() { _, _ = UnmarshalUser(item) }))
}
