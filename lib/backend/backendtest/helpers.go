package backendtest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// key returns a key under the fixture's prefix: key("a", "b") is
// "<prefix>a/b".
func (f *fixture) key(parts ...string) backend.Key {
	return backend.Key(f.prefix + strings.Join(parts, string(backend.Separator)))
}

// rangeAll returns the bounds of everything under the fixture's prefix.
func (f *fixture) rangeAll() (start, end backend.Key) {
	start = backend.Key(f.prefix)
	return start, backend.RangeEnd(start)
}

// item builds an item without expiry.
func item(key backend.Key, value string) backend.Item {
	return backend.Item{Key: key, Value: []byte(value)}
}

// put writes key=value and checks the lease.
func (f *fixture) put(key backend.Key, value string) *backend.Lease {
	f.t.Helper()
	lease, err := f.b.Put(f.t.Context(), item(key, value))
	require.NoError(f.t, err, "put %q", key)
	requireLease(f.t, lease, key)
	return lease
}

// putItem writes i and checks the lease.
func (f *fixture) putItem(i backend.Item) *backend.Lease {
	f.t.Helper()
	lease, err := f.b.Put(f.t.Context(), i)
	require.NoError(f.t, err, "put %q", i.Key)
	requireLease(f.t, lease, i.Key)
	return lease
}

// get reads key, which must exist.
func (f *fixture) get(key backend.Key) *backend.Item {
	f.t.Helper()
	got, err := f.b.Get(f.t.Context(), key)
	require.NoError(f.t, err, "get %q", key)
	require.NotNil(f.t, got, "get %q returned nil item", key)
	require.Equal(f.t, key.String(), got.Key.String(), "get returned another key")
	return got
}

// requireValue checks that key exists with value and, if revision is not
// empty, at revision.
func (f *fixture) requireValue(key backend.Key, value, revision string) {
	f.t.Helper()
	got := f.get(key)
	require.Equal(f.t, value, string(got.Value), "value of %q", key)
	if revision != "" {
		require.Equal(f.t, revision, got.Revision, "revision of %q", key)
	}
}

// requireMissing checks that Get reports key as not found.
func (f *fixture) requireMissing(key backend.Key) {
	f.t.Helper()
	got, err := f.b.Get(f.t.Context(), key)
	require.Error(f.t, err, "get %q should fail, got %+v", key, got)
	require.True(f.t, trace.IsNotFound(err), "get %q: want NotFound, got %v", key, err)
}

// keys lists the keys in [start, end) with the given limit.
func (f *fixture) keys(start, end backend.Key, limit int) []string {
	f.t.Helper()
	res, err := f.b.GetRange(f.t.Context(), start, end, limit)
	require.NoError(f.t, err, "get range [%q, %q) limit %d", start, end, limit)
	require.NotNil(f.t, res)
	return itemKeys(res.Items)
}

// allKeys lists every key under the fixture's prefix.
func (f *fixture) allKeys() []string {
	f.t.Helper()
	start, end := f.rangeAll()
	return f.keys(start, end, backend.MaxRangeLimit)
}

func itemKeys(items []backend.Item) []string {
	out := make([]string, 0, len(items))
	for _, i := range items {
		out = append(out, i.Key.String())
	}
	return out
}

// strs turns keys into strings for readable comparisons.
func strs(keys ...backend.Key) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.String())
	}
	return out
}

// requireLease checks that a write returned its key and a revision.
func requireLease(t *testing.T, lease *backend.Lease, key backend.Key) {
	t.Helper()
	require.NotNil(t, lease, "write of %q returned a nil lease", key)
	require.Equal(t, key.String(), lease.Key.String(), "lease key")
	require.NotEmpty(t, lease.Revision, "lease revision of %q", key)
}

// requireKind checks that err is of the kind is reports.
func requireKind(t *testing.T, err error, is func(error) bool, kind string, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	require.Error(t, err, "%s: want %s, got success", what, kind)
	require.True(t, is(err), "%s: want %s, got %T: %v", what, kind, trace.Unwrap(err), err)
}

func requireNotFound(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	requireKind(t, err, trace.IsNotFound, "NotFound", format, args...)
}

func requireAlreadyExists(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	requireKind(t, err, trace.IsAlreadyExists, "AlreadyExists", format, args...)
}

// requireCompareFailed checks that err is a CompareFailed error that also
// matches the backend.ErrIncorrectRevision sentinel.
func requireCompareFailed(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	requireKind(t, err, trace.IsCompareFailed, "CompareFailed", format, args...)
	requireKind(t, err, func(err error) bool { return errors.Is(err, backend.ErrIncorrectRevision) }, "backend.ErrIncorrectRevision", format, args...)
}

func requireBadParameter(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	requireKind(t, err, trace.IsBadParameter, "BadParameter", format, args...)
}

// requireSameTime compares instants, ignoring location and monotonic
// readings.
func requireSameTime(t *testing.T, want, got time.Time, what string) {
	t.Helper()
	require.True(t, want.Equal(got), "%s: want %v, got %v", what, want, got)
}

// bigValue returns n bytes of non-text data.
func bigValue(n int) []byte {
	return bytes.Repeat([]byte{0x00, 0xff, 'x'}, n/3+1)[:n]
}

// panicFree runs fn and turns a panic into a test failure naming what.
func panicFree(t *testing.T, what string, fn func() error) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s panicked: %v", what, r)
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn()
}
