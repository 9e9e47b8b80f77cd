package etcdbk

import (
	"encoding/binary"
	"time"

	"github.com/gravitational/trace"
)

// The stored form of an item is an envelope around its value:
//
//	byte 0      format version (envelopeVersion)
//	bytes 1-8   expiry seconds since the Unix epoch, big-endian, sign bit flipped
//	bytes 9-12  expiry nanoseconds, big-endian
//	byte 13     0x00 (terminator, see below)
//	bytes 14-   the value
//
// An item without expiry has 0xff in bytes 1-12, which sorts after every real
// time. Flipping the sign bit makes the byte order of bytes 1-12 the time
// order for every instant, before 1970 as well as after.
//
// The layout exists so that an etcd transaction can test "the item is live
// at now" by itself, without a read first: a stored envelope is byte-wise
// greater than liveThreshold(now) exactly when its expiry is after now (or it
// has none). Bytes 0-12 decide unless the expiry equals now; then byte 13
// (0x00) is less than the threshold's 0xff, so an item whose expiry is now
// counts as expired, as backend.Expired says. etcd compares values with
// bytes.Compare, and a comparison on the value of a missing key is false, so
// one Compare covers both "missing" and "expired".
const (
	envelopeVersion    = 0x01
	envelopeHeaderSize = 14
	envelopeTerminator = 0x00
)

// encodeExpiry writes the 12 ordered expiry bytes of t into dst.
func encodeExpiry(dst []byte, t time.Time) {
	if t.IsZero() {
		for i := range 12 {
			dst[i] = 0xff
		}
		return
	}
	binary.BigEndian.PutUint64(dst[0:8], uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(dst[8:12], uint32(t.Nanosecond()))
}

// decodeExpiry reads what encodeExpiry wrote.
func decodeExpiry(src []byte) time.Time {
	never := true
	for _, c := range src[:12] {
		if c != 0xff {
			never = false
			break
		}
	}
	if never {
		return time.Time{}
	}
	sec := int64(binary.BigEndian.Uint64(src[0:8]) ^ (1 << 63))
	nsec := int64(binary.BigEndian.Uint32(src[8:12]))
	return time.Unix(sec, nsec).UTC()
}

// encodeEnvelope returns the stored form of value with expiry expires. The
// result never shares memory with value.
func encodeEnvelope(value []byte, expires time.Time) []byte {
	out := make([]byte, envelopeHeaderSize+len(value))
	out[0] = envelopeVersion
	encodeExpiry(out[1:13], expires)
	out[13] = envelopeTerminator
	copy(out[envelopeHeaderSize:], value)
	return out
}

// decodeEnvelope splits a stored envelope into a copy of the value and the
// expiry. A value that gatehouse did not write is refused.
func decodeEnvelope(stored []byte) (value []byte, expires time.Time, err error) {
	if len(stored) < envelopeHeaderSize || stored[0] != envelopeVersion || stored[13] != envelopeTerminator {
		return nil, time.Time{}, trace.BadParameter("stored value is not a gatehouse item envelope (%d bytes)", len(stored))
	}
	value = make([]byte, len(stored)-envelopeHeaderSize)
	copy(value, stored[envelopeHeaderSize:])
	return value, decodeExpiry(stored[1:13]), nil
}

// liveThreshold returns the bytes that a stored envelope is greater than
// exactly when its item is live at now (see the layout above).
func liveThreshold(now time.Time) string {
	var out [envelopeHeaderSize]byte
	out[0] = envelopeVersion
	encodeExpiry(out[1:13], now)
	out[13] = 0xff
	return string(out[:])
}
