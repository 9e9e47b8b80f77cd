package scimprov

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gravitational/trace"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// freshReads coalesces the token check's credential reads without weakening
// what any request sees. Over a backend where the settings view is off and
// that does not fence these reads (etcd with its read cache off; see
// Provisioner.fenced), every SCIM request reads the credentials its plugin
// references,
// so that a rotation or a deletion acknowledged on any server is seen by
// the next request on every server. Concurrent requests that want the same
// credentials share one read, on one condition: the read starts after every
// request it answers arrived. A request that arrives while a read is in
// flight does not take that read's answer (it may have started before the
// rotation the request must see); it joins the next read, which starts
// when the one in flight ends. Each request therefore sees what a read of
// its own would have seen, at the cost of one read per wave of concurrent
// requests instead of one per request, and at most one read in flight per
// selector.
type freshReads struct {
	mu sync.Mutex
	// next is the read each selector's new arrivals join; it starts when
	// no read of that selector is in flight.
	next map[string]*freshRead
	// inFlight marks the selectors with a read running.
	inFlight map[string]bool
}

// freshRead is one shared read; its result is set before done is closed
// and never changed after.
type freshRead struct {
	done  chan struct{}
	creds []*typesv1.PluginStaticCredentials
	err   error
}

// credentialLister is the read freshReads shares.
type credentialLister func(ctx context.Context, labels map[string]string, withSecrets bool) ([]*typesv1.PluginStaticCredentials, error)

// list returns the credentials labels selects, from a read that started
// after this call did. The result is shared with the other callers of that
// read and must not be modified.
func (f *freshReads) list(ctx context.Context, read credentialLister, labels map[string]string) ([]*typesv1.PluginStaticCredentials, error) {
	key := selectorKey(labels)
	f.mu.Lock()
	if f.next == nil {
		f.next, f.inFlight = make(map[string]*freshRead), make(map[string]bool)
	}
	r, ok := f.next[key]
	if !ok {
		r = &freshRead{done: make(chan struct{})}
		f.next[key] = r
		if !f.inFlight[key] {
			f.startLocked(ctx, read, key, labels)
		}
	}
	f.mu.Unlock()
	select {
	case <-r.done:
		return r.creds, trace.Wrap(r.err)
	case <-ctx.Done():
		return nil, trace.Wrap(ctx.Err())
	}
}

// startLocked starts the read that key's arrivals joined. It runs under a
// context that no single caller can cancel (the others still wait for it),
// bounded by the backend's own request timeout, and starts the next wave
// when it ends.
func (f *freshReads) startLocked(ctx context.Context, read credentialLister, key string, labels map[string]string) {
	r := f.next[key]
	delete(f.next, key)
	f.inFlight[key] = true
	rctx := context.WithoutCancel(ctx)
	go func() {
		r.creds, r.err = read(rctx, labels, true)
		close(r.done)
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.inFlight, key) // the maps hold only selectors in use
		if _, waiting := f.next[key]; waiting {
			f.startLocked(rctx, read, key, labels)
		}
	}()
}

// selectorKey is a canonical, unambiguous string for a label selector
// (length-prefixed keys and values, in key order).
func selectorKey(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		for _, s := range []string{k, labels[k]} {
			b.WriteString(strconv.Itoa(len(s)))
			b.WriteByte(':')
			b.WriteString(s)
		}
	}
	return b.String()
}
