package scimprov

import (
	"context"
	"sync"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
)

// fencedReads resolves a request's plugin and credentials over a backend
// that fences these reads (scimprov.go: Provisioner.fenced): each request
// reads the plugin and the credentials prefix, which the backend answers
// from memory yet as of a moment after the request arrived, and decodes
// each item once per revision. The decoded entries are immutable (as the
// view's are), so no request copies them.
type fencedReads struct {
	mu      sync.Mutex
	decoded map[string]decodedItem
}

// decodedItem is an item's decoded form and what identifies the item: a
// backend gives every write a new revision; the expiry is in the entry.
type decodedItem struct {
	revision string
	expires  time.Time
	plugin   *pluginEntry
	cred     *credEntry
}

// maxFencedDecoded bounds the decode cache (plugins and credentials are
// few); past it the cache starts over.
const maxFencedDecoded = 1024

// decode returns item's entry from the cache, or decodes and keeps it.
func (f *fencedReads) decode(item backend.Item, plugin bool) decodedItem {
	f.mu.Lock()
	d, ok := f.decoded[string(item.Key)]
	f.mu.Unlock()
	if ok && d.revision == item.Revision && d.expires.Equal(item.Expires) {
		return d
	}
	d = decodedItem{revision: item.Revision, expires: item.Expires}
	if plugin {
		d.plugin = decodePlugin(item)
	} else {
		d.cred = decodeCred(item)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.decoded == nil || len(f.decoded) >= maxFencedDecoded {
		f.decoded = make(map[string]decodedItem)
	}
	f.decoded[string(item.Key)] = d
	return d
}

// get reads plugin and the credentials its reference selects. ok is false
// when an item could not be decoded: the caller then reads through the
// services, which report the error as they always did.
func (f *fencedReads) get(ctx context.Context, plugins Plugins, b backend.Backend, plugin string, now time.Time) (av authView, ok bool, err error) {
	item, err := plugins.GetPluginItem(ctx, plugin)
	switch {
	case trace.IsNotFound(err):
		return authView{}, true, nil
	case err != nil:
		return authView{}, false, trace.Wrap(err)
	}
	pe := f.decode(*item, true).plugin
	var scanErr error
	creds := func(yield func(*credEntry) bool) {
		prefix := services.PrefixKey(services.PluginStaticCredentialsPrefix)
		scanErr = scanPrefix(ctx, b, prefix, func(_ string, item backend.Item) bool {
			return yield(f.decode(item, false).cred)
		})
	}
	av, ok = authViewOf(pe, now, creds)
	if scanErr != nil {
		return authView{}, false, trace.Wrap(scanErr)
	}
	return av, ok, nil
}
