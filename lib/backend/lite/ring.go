package lite

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
)

// ring stores the read cache's entries: one ring buffer in memory mapped
// outside the Go heap, and an index from key hash to entry offset that holds
// no pointers. Neither costs the garbage collector anything to scan, and
// the buffer does not count toward the heap that GC pacing lets grow to
// twice its live size (a 256 MiB Go-heap cache made the process carry as
// much garbage again). Pages are resident only once written.
//
// Entries are appended at head; when the buffer is full, the oldest are
// overwritten (first in, first out) and dropped from the index. An entry
// never wraps: if it does not fit before the end, the rest of the buffer is
// padding and it starts over at offset 0.
//
// ring does no locking: readCache serializes writers against readers.
type ring struct {
	buf []byte // nil once closed
	// head and tail are absolute byte positions (they only grow); the
	// live entries are those in [tail, head), at position % len(buf).
	head, tail int64
	index      map[uint64]int64 // key hash -> absolute position of its entry
	seed       maphash.Seed
	evictions  int64
}

// Entry layout: total length (4 bytes), key length (2), revision (8), key,
// value. A total length of 0 marks padding up to the end of the buffer.
const (
	ringHeader = 4 + 2 + 8
	// ringMaxEntryFraction: an entry over 1/16 of the buffer is not cached,
	// so that one big item cannot flush a large part of the cache.
	ringMaxEntryFraction = 16
)

func newRing(size int) (*ring, error) {
	buf, err := mapAnonymous(size)
	if err != nil {
		return nil, err
	}
	return &ring{buf: buf, index: make(map[uint64]int64), seed: maphash.MakeSeed()}, nil
}

func (r *ring) hash(key []byte) uint64 { return maphash.Bytes(r.seed, key) }

// get returns the revision and value stored for key; the value aliases the
// buffer and is valid until the next write.
func (r *ring) get(key []byte) (rev int64, value []byte, ok bool) {
	if r.buf == nil {
		return 0, nil, false
	}
	at, ok := r.index[r.hash(key)]
	if !ok || at < r.tail {
		return 0, nil, false
	}
	e := r.entry(at)
	keyLen := int(binary.BigEndian.Uint16(e[4:]))
	if !bytes.Equal(e[ringHeader:ringHeader+keyLen], key) {
		return 0, nil, false // another key with the same hash
	}
	return int64(binary.BigEndian.Uint64(e[6:])), e[ringHeader+keyLen:], true
}

// entry returns the bytes of the entry at absolute position at.
func (r *ring) entry(at int64) []byte {
	pos := int(at % int64(len(r.buf)))
	n := int(binary.BigEndian.Uint32(r.buf[pos:]))
	return r.buf[pos : pos+n]
}

// del forgets key.
func (r *ring) del(key []byte) {
	if r.buf != nil {
		delete(r.index, r.hash(key))
	}
}

// set stores key's revision and value, or forgets key if the entry is too
// big to cache.
func (r *ring) set(key []byte, rev int64, value []byte) {
	if r.buf == nil {
		return
	}
	h := r.hash(key)
	size := int64(len(r.buf))
	n := int64(ringHeader + len(key) + len(value))
	if len(key) > 0xffff || n > size/ringMaxEntryFraction {
		delete(r.index, h)
		return
	}
	// Pad to the start of the buffer if the entry does not fit before the
	// end (a gap too small for a header is skipped implicitly).
	if pos := r.head % size; pos+n > size {
		r.makeRoom(size - pos)
		if size-pos >= 4 {
			binary.BigEndian.PutUint32(r.buf[pos:], 0)
		}
		r.head += size - pos
	}
	r.makeRoom(n)
	pos := int(r.head % size)
	e := r.buf[pos : pos+int(n)]
	binary.BigEndian.PutUint32(e, uint32(n))
	binary.BigEndian.PutUint16(e[4:], uint16(len(key)))
	binary.BigEndian.PutUint64(e[6:], uint64(rev))
	copy(e[ringHeader:], key)
	copy(e[ringHeader+len(key):], value)
	r.index[h] = r.head
	r.head += n
}

// makeRoom advances tail, dropping the oldest entries, until n more bytes
// fit after head.
func (r *ring) makeRoom(n int64) {
	size := int64(len(r.buf))
	for r.head+n-r.tail > size {
		pos := r.tail % size
		if size-pos < 4 || binary.BigEndian.Uint32(r.buf[pos:]) == 0 {
			r.tail += size - pos // padding: the next entry is at offset 0
			continue
		}
		e := r.entry(r.tail)
		keyLen := int(binary.BigEndian.Uint16(e[4:]))
		h := r.hash(e[ringHeader : ringHeader+keyLen])
		if at, ok := r.index[h]; ok && at == r.tail {
			delete(r.index, h)
			r.evictions++
		}
		r.tail += int64(len(e))
	}
}

// clear forgets every entry.
func (r *ring) clear() {
	clear(r.index)
	r.tail = r.head
}

// close releases the buffer; the ring keeps nothing afterwards.
func (r *ring) close() error {
	if r.buf == nil {
		return nil
	}
	buf := r.buf
	r.buf = nil
	clear(r.index)
	return unmapAnonymous(buf)
}
