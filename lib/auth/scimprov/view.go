package scimprov

import (
	"bytes"
	"context"
	"iter"
	"maps"
	"sync"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// SettingsCacheMode says whether the request path reads plugin settings and
// credential hashes from an in-memory view fed by a backend watcher, or from
// the backend on every request.
type SettingsCacheMode int

const (
	// SettingsCacheAuto enables the view only over a backend that declares
	// (AckAfterWatchFanOut) that a write's events reach its in-process
	// watchers before the write is acknowledged: lite. Over any other
	// backend (etcd: events arrive over a stream some time after the write,
	// possibly written by another server) every request reads the backend,
	// so that a rotation, a disable or a deletion on any server takes
	// effect on the next request everywhere; over etcd with its read cache
	// those reads are fenced and answered from memory (Provisioner.fenced).
	SettingsCacheAuto SettingsCacheMode = iota
	// SettingsCacheOff always reads the backend.
	SettingsCacheOff
	// SettingsCacheOn forces the view. Only correct over a backend whose
	// watchers receive a write's events before the write returns (lite,
	// memory); tests use it with wrapped backends.
	SettingsCacheOn
)

// ackAfterFanOut is implemented by backends whose in-process watchers are
// handed a write's events before the write is acknowledged (lite.Backend).
type ackAfterFanOut interface {
	AckAfterWatchFanOut() bool
}

// settingsWatchName names the view's watcher in backend logs.
const settingsWatchName = "scimprov-settings"

// pluginEntry is one plugin as the request path needs it. Entries are
// immutable once stored; an event replaces them.
type pluginEntry struct {
	// okta is nil for a plugin that is not an Okta (SCIM) plugin.
	okta *typesv1.OktaPluginSettings
	// credLabels is the static_credentials_ref selector.
	credLabels map[string]string
	// scim is the SCIM settings okta gives, made once: the token check
	// returns it to every request, which only reads it.
	scim    *scimrecord.SCIMSettings
	expires time.Time
	// err is set when the stored plugin could not be decoded: the request
	// path then reads the backend, which reports the error as it always did.
	err error
}

// credEntry is one static credential: its revision, hash and token
// fingerprint (empty on credentials written before fingerprints).
type credEntry struct {
	key         credKey
	labels      map[string]string
	hash        []byte
	fingerprint []byte
	expires     time.Time
	err         error
}

func live(expires, now time.Time) bool { return expires.IsZero() || expires.After(now) }

// settingsView is the in-memory copy of plugins/ and
// plugin_static_credentials/. It is consulted only while in sync: its
// watcher is open, its initial load is done and every event already handed
// to the watcher is applied. The request path applies pending events itself
// (under mu) before it answers, so over a backend that fans events out
// before acknowledging a write, a request that starts after a write was
// acknowledged always sees it. Only holders of mu.Lock receive from the
// watcher's channel, so an event can never be "taken but not yet applied"
// while a reader holds mu.RLock.
type settingsView struct {
	b backend.Backend

	mu sync.RWMutex
	// w is the watcher feeding the view; nil while not in sync.
	w       backend.Watcher
	plugins map[string]*pluginEntry
	creds   map[string]*credEntry
	// auth caches lookupLocked's answer for each existing plugin (plugin
	// name → *authCacheEntry), so that a request does not walk the
	// credentials and build its authView again. Every change of plugins or
	// creds clears it under mu.Lock, and entries are stored only while mu
	// is held (for reading or writing), so an entry always describes the
	// maps as readers see them. Only plugins the view holds get an entry:
	// its size is bounded by theirs, whatever names requests carry.
	auth sync.Map
}

// authCacheEntry is authViewOf's answer for one plugin, valid from at (a
// clock that went back is recomputed) until the first expiry among the
// plugin and the credentials it selects (zero: none expires).
type authCacheEntry struct {
	av        authView
	at, until time.Time
}

// valid reports whether the entry is what authViewOf would answer at now:
// nothing it holds has expired, and what it left out as expired still is.
func (e *authCacheEntry) valid(now time.Time) bool {
	return !now.Before(e.at) && (e.until.IsZero() || e.until.After(now))
}

// firstExpiry is the earliest non-zero expiry of av's plugin and
// credentials.
func firstExpiry(av authView) time.Time {
	first := av.plugin.expires
	for _, c := range av.creds {
		if !c.expires.IsZero() && (first.IsZero() || c.expires.Before(first)) {
			first = c.expires
		}
	}
	return first
}

// viewPrefixes are the watched prefixes (with their trailing separator, so
// that "plugins_x/" is not matched).
func viewPrefixes() []backend.Key {
	return []backend.Key{
		services.PrefixKey(services.PluginsPrefix),
		services.PrefixKey(services.PluginStaticCredentialsPrefix),
	}
}

func decodePlugin(item backend.Item) *pluginEntry {
	pl, err := services.UnmarshalPlugin(item)
	if err != nil {
		return &pluginEntry{err: err}
	}
	okta := pl.GetSpec().GetOkta()
	return &pluginEntry{
		okta:       okta,
		credLabels: pl.GetSpec().GetStaticCredentialsRef().GetLabels(),
		scim:       scimSettingsOf(okta),
		expires:    item.Expires,
	}
}

func decodeCred(item backend.Item) *credEntry {
	c, err := services.UnmarshalPluginStaticCredentials(item)
	if err != nil {
		return &credEntry{err: err}
	}
	return &credEntry{
		key:         credKey{name: c.GetMetadata().GetName(), revision: c.GetMetadata().GetRevision()},
		labels:      c.GetMetadata().GetLabels(),
		hash:        c.GetSpec().GetScimTokenHash(),
		fingerprint: c.GetSpec().GetScimTokenFingerprint(),
		expires:     item.Expires,
	}
}

// nameIn returns the resource name of key under prefix ("plugins/okta" →
// "okta"), and false for keys that are not directly under it.
func nameIn(key, prefix backend.Key) (string, bool) {
	if !bytes.HasPrefix(key, prefix) {
		return "", false
	}
	name := key[len(prefix):]
	if len(name) == 0 || bytes.IndexByte(name, backend.Separator) >= 0 {
		return "", false
	}
	return string(name), true
}

// applyLocked applies one watcher event; mu is held for writing.
func (v *settingsView) applyLocked(ev backend.Event) {
	v.auth.Clear()
	prefixes := viewPrefixes()
	if name, ok := nameIn(ev.Item.Key, prefixes[0]); ok {
		if ev.Type == backend.OpPut {
			v.plugins[name] = decodePlugin(ev.Item)
		} else {
			delete(v.plugins, name)
		}
		return
	}
	if name, ok := nameIn(ev.Item.Key, prefixes[1]); ok {
		if ev.Type == backend.OpPut {
			v.creds[name] = decodeCred(ev.Item)
		} else {
			delete(v.creds, name)
		}
	}
}

// syncLocked applies every pending event and reports whether the view is in
// sync; mu is held for writing. A watcher found closed is dropped (its
// events may have been lost): the run loop opens a new one and reloads.
func (v *settingsView) syncLocked() bool {
	if v.w == nil {
		return false
	}
	for {
		select {
		case ev := <-v.w.Events():
			v.applyLocked(ev)
			continue
		default:
		}
		break
	}
	select {
	case <-v.w.Done():
		v.w.Close()
		v.w = nil
		return false
	default:
		return true
	}
}

// inSyncRLocked reports whether the view can be read as is: mu is held for
// reading, nothing is pending and the watcher is open.
func (v *settingsView) inSyncRLocked() bool {
	if v.w == nil || len(v.w.Events()) > 0 {
		return false
	}
	select {
	case <-v.w.Done():
		return false
	default:
		return true
	}
}

// authView is what one request needs: the plugin and the credentials its
// reference selects, as of the moment it was taken.
type authView struct {
	plugin *pluginEntry // nil: no such plugin (or expired)
	creds  []*credEntry
}

// get returns plugin's entry and its credentials; ok is false when the view
// is not in sync (or holds an undecodable entry the caller must read from
// the backend to report).
func (v *settingsView) get(plugin string, now time.Time) (av authView, ok bool) {
	v.mu.RLock()
	if v.inSyncRLocked() {
		av, ok = v.lookupLocked(plugin, now)
		v.mu.RUnlock()
		return av, ok
	}
	v.mu.RUnlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.syncLocked() {
		return authView{}, false
	}
	return v.lookupLocked(plugin, now)
}

// lookupLocked answers get from the maps; mu is held (for reading or
// writing) and the view is in sync.
func (v *settingsView) lookupLocked(plugin string, now time.Time) (authView, bool) {
	if e, ok := v.auth.Load(plugin); ok {
		if ce := e.(*authCacheEntry); ce.valid(now) {
			return ce.av, true
		}
	}
	av, ok := authViewOf(v.plugins[plugin], now, maps.Values(v.creds))
	if ok && av.plugin != nil {
		// Full slice: a caller that appended could not write into the
		// entry's array.
		av.creds = av.creds[:len(av.creds):len(av.creds)]
		v.auth.Store(plugin, &authCacheEntry{av: av, at: now, until: firstExpiry(av)})
	}
	return av, ok
}

// authViewOf is what the token check sees of the plugin entry pe (nil: no
// such plugin) and the stored credentials creds yields: the plugin, if it is
// live, and the live credentials its reference selects. ok is false when an
// entry could not be decoded: the caller must then read through the
// services, which report the error.
func authViewOf(pe *pluginEntry, now time.Time, creds iter.Seq[*credEntry]) (av authView, ok bool) {
	if pe == nil || !live(pe.expires, now) {
		return authView{}, true
	}
	if pe.err != nil {
		return authView{}, false
	}
	av = authView{plugin: pe}
	if len(pe.credLabels) == 0 {
		return av, true
	}
	for c := range creds {
		if c.err != nil {
			// Cannot tell whether it matches: let the backend decide.
			return authView{}, false
		}
		if live(c.expires, now) && services.MatchLabels(c.labels, pe.credLabels) {
			av.creds = append(av.creds, c)
		}
	}
	return av, true
}

// scanPrefix visits the items directly under prefix (see nameIn), in key
// order, page by page, until visit returns false.
func scanPrefix(ctx context.Context, b backend.Backend, prefix backend.Key, visit func(name string, item backend.Item) bool) error {
	start, end := prefix, backend.RangeEnd(prefix)
	for {
		res, err := b.GetRange(ctx, start, end, backend.MaxRangeLimit)
		if err != nil {
			return trace.Wrap(err)
		}
		for _, item := range res.Items {
			if name, ok := nameIn(item.Key, prefix); ok && !visit(name, item) {
				return nil
			}
		}
		if len(res.Items) < backend.MaxRangeLimit {
			return nil
		}
		start = backend.NextKey(res.Items[len(res.Items)-1].Key)
	}
}

// load reads both prefixes in full.
func (v *settingsView) load(ctx context.Context) (map[string]*pluginEntry, map[string]*credEntry, error) {
	plugins := map[string]*pluginEntry{}
	creds := map[string]*credEntry{}
	for i, prefix := range viewPrefixes() {
		err := scanPrefix(ctx, v.b, prefix, func(name string, item backend.Item) bool {
			if i == 0 {
				plugins[name] = decodePlugin(item)
			} else {
				creds[name] = decodeCred(item)
			}
			return true
		})
		if err != nil {
			return nil, nil, trace.Wrap(err)
		}
	}
	return plugins, creds, nil
}

// connect opens a watcher, waits for its OpInit, loads the view and puts it
// in sync. Events that arrive during the load are queued in the watcher and
// applied in order afterwards; a Put replays an item that the load may
// already have read, which is harmless.
func (v *settingsView) connect(ctx context.Context) (backend.Watcher, error) {
	w, err := v.b.NewWatcher(ctx, backend.Watch{Name: settingsWatchName, Prefixes: viewPrefixes()})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	select {
	case ev := <-w.Events():
		if ev.Type != backend.OpInit {
			w.Close()
			return nil, trace.Errorf("settings watcher: first event is %v, not init", ev.Type)
		}
	case <-w.Done():
		return nil, trace.ConnectionProblem(nil, "settings watcher closed before init")
	case <-ctx.Done():
		w.Close()
		return nil, trace.Wrap(ctx.Err())
	}
	plugins, creds, err := v.load(ctx)
	if err != nil {
		w.Close()
		return nil, trace.Wrap(err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.plugins, v.creds, v.w = plugins, creds, w
	v.auth.Clear()
	if !v.syncLocked() {
		return nil, trace.ConnectionProblem(nil, "settings watcher closed during the initial load")
	}
	return w, nil
}

// drop takes the view out of sync if w still feeds it.
func (v *settingsView) drop(w backend.Watcher) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.w == w && w != nil {
		v.w.Close()
		v.w = nil
	}
}

// run keeps the view in sync until ctx ends: it connects, applies events
// every interval so that the watcher's queue never fills while no request
// comes, and reconnects (after retry, then doubling up to 16×retry) when the
// watcher closes.
func (p *Provisioner) runSettingsView(ctx context.Context, v *settingsView, interval, retry time.Duration) {
	defer close(p.viewDone)
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		if backoff > 0 {
			select {
			case <-p.cfg.Clock.After(backoff):
			case <-ctx.Done():
				return
			}
		}
		w, err := v.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.cfg.Logger.WarnContext(ctx, "Settings view could not sync; requests read the backend meanwhile.", "error", err)
			backoff = min(max(2*backoff, retry), 16*retry)
			continue
		}
		backoff = 0
		ticker := p.cfg.Clock.NewTicker(interval)
	follow:
		for {
			select {
			case <-ctx.Done():
				ticker.Stop()
				v.drop(w)
				return
			case <-w.Done():
				break follow
			case <-ticker.Chan():
				v.mu.Lock()
				v.syncLocked()
				v.mu.Unlock()
			}
		}
		ticker.Stop()
		v.drop(w)
		p.cfg.Logger.InfoContext(ctx, "Settings watcher closed; requests read the backend until it is reloaded.")
	}
}

// inSync applies pending events and reports whether the view is in sync.
func (v *settingsView) inSync() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.syncLocked()
}
