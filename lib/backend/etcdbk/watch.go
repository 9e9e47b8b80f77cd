package etcdbk

import (
	"context"
	"sync"
	"time"

	"github.com/gravitational/trace"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// Watchers.
//
// A watcher follows one etcd watch over the smallest key range that covers
// its prefixes (the whole backend prefix if it has none) and filters events
// by prefix on this side, so that events of every prefix come in etcd's
// commit order, one stream.
//
// Start: a linearizable read gives the current revision R; the watch starts
// at R and OpInit is queued once etcd confirms the watch exists. A consumer
// that reads after OpInit sees everything up to at least R, and the watch
// delivers everything after R: nothing falls between. (Events of revision R
// itself are dropped on this side. The watch starts at R, not R+1, because
// etcd answers a progress request only when every watch on the stream has
// started at or below its current revision; see Health.)
//
// Resume: the watcher remembers the revision of the last event it delivered.
// The etcd client already re-establishes a broken watch stream from there by
// itself; when the watch ends anyway (etcd cancelled it, e.g. a member lost
// its leader), the watcher opens a new one from the last revision + 1 after
// a short backoff. If etcd has compacted that revision away, the events in
// between are gone: the watcher queues a fresh OpInit (the consumer must
// reload, exactly as after a new watcher) and continues from the current
// revision. It never skips silently.
//
// Health: the etcd client re-establishes a broken watch stream by itself,
// silently and for ever, so a watcher on a cluster without quorum (etcd
// ends require-leader watches on a member that lost its leader, and refuses
// new ones) or out of reach would otherwise look alive and deliver nothing.
// A watcher therefore needs a confirmation at least every
// Config.WatchHealthTimeout: any answer on its stream (events, the created
// notice, a progress notification), or a quorum read whose revision shows
// that it has missed nothing. When it has had none for a quarter of the
// bound it asks etcd for a progress notification and makes that read; when
// it has had none for the whole bound it is closed, and its consumer learns
// through Done that its view may be stale. The bound is in real time: etcd
// runs on it, whatever the backend clock.
//
// Overflow: events are queued without blocking; a watcher whose queue is
// full is closed, never skipped, and its consumer starts again.

// watcher is one subscriber.
type watcher struct {
	b        *Backend
	name     string
	prefixes []backend.Key
	// from and to bound the etcd range the watch follows.
	from, to string
	events   chan backend.Event
	done     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	stopCtx  func() bool
}

var _ backend.Watcher = (*watcher)(nil)

// Events delivers OpInit first, then Put and Delete events in commit order
// (and a fresh OpInit after a compaction made the watcher lose its place).
func (w *watcher) Events() <-chan backend.Event { return w.events }

// Done is closed when the watcher stops delivering events.
func (w *watcher) Done() <-chan struct{} { return w.done }

// Close stops the watcher and waits until it has stopped.
func (w *watcher) Close() error {
	w.cancel()
	<-w.done
	return nil
}

// NewWatcher follows changes under w.Prefixes until ctx ends, the watcher or
// the backend is closed, or the watcher's queue overflows. It returns once
// the etcd watch is established, with OpInit queued.
func (b *Backend) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	w, err := backend.PrepareWatch(ctx, w)
	if err != nil {
		return nil, trace.Wrap(err)
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed()
	}
	// Registered under mu, so Close either sees this watcher in loops or
	// refused it above.
	b.loops.Add(1)
	b.mu.Unlock()

	wctx, cancel := context.WithCancel(b.ctx)
	wt := &watcher{
		b:        b,
		name:     w.Name,
		prefixes: w.Prefixes,
		// One slot more than asked for, so that OpInit does not use up the
		// consumer's buffer.
		events: make(chan backend.Event, w.QueueSize+1),
		done:   make(chan struct{}),
		ctx:    wctx,
		cancel: cancel,
	}
	wt.from, wt.to = b.watchRange(w.Prefixes)
	wt.stopCtx = context.AfterFunc(ctx, cancel)

	rev, stream, err := wt.open(ctx)
	if err != nil {
		wt.stopCtx()
		cancel()
		close(wt.done)
		b.loops.Done()
		return nil, trace.Wrap(err, "starting watcher %q", w.Name)
	}
	wt.events <- backend.Event{Type: backend.OpInit}
	go wt.run(rev, stream)
	return wt, nil
}

// watchRange returns the etcd range covering every prefix.
func (b *Backend) watchRange(prefixes []backend.Key) (from, to string) {
	if len(prefixes) == 0 {
		return b.prefix, b.etcdEnd(nil)
	}
	for i, p := range prefixes {
		start := b.etcdKey(p)
		end := string(backend.RangeEnd(backend.Key(start)))
		if i == 0 || start < from {
			from = start
		}
		if i == 0 || end > to {
			to = end
		}
	}
	return from, to
}

// stream is one open etcd watch.
type stream struct {
	ch     clientv3.WatchChan
	cancel context.CancelFunc
}

// open reads the current revision R and starts a watch at R+1, waiting (up
// to RequestTimeout, or until callerCtx ends) until etcd confirms it.
func (w *watcher) open(callerCtx context.Context) (int64, *stream, error) {
	readCtx, cancelRead := w.b.callCtx(w.ctx)
	resp, err := w.b.client.Get(readCtx, w.from, clientv3.WithCountOnly())
	cancelRead()
	if err != nil {
		return 0, nil, trace.Wrap(convertErr(err))
	}
	rev := resp.Header.Revision
	s := w.watchFrom(rev)
	timer := time.NewTimer(w.b.cfg.RequestTimeout)
	defer timer.Stop()
	for {
		select {
		case wr, ok := <-s.ch:
			switch {
			case !ok:
				s.cancel()
				return 0, nil, trace.ConnectionProblem(w.ctx.Err(), "the etcd watch closed before it started")
			case wr.Err() != nil:
				s.cancel()
				return 0, nil, trace.Wrap(convertErr(wr.Err()))
			case wr.Created:
				return rev, s, nil
			}
		case <-timer.C:
			s.cancel()
			return 0, nil, trace.ConnectionProblem(nil, "etcd did not start the watch within %v", w.b.cfg.RequestTimeout)
		case <-callerCtx.Done():
			s.cancel()
			return 0, nil, trace.Wrap(callerCtx.Err())
		case <-w.ctx.Done():
			s.cancel()
			return 0, nil, errClosed()
		}
	}
}

// watchFrom starts an etcd watch of the watcher's range at rev.
func (w *watcher) watchFrom(rev int64) *stream {
	// RequireLeader makes a member that lost its cluster end the watch
	// instead of going quiet, so the watcher moves to a healthy member.
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(w.ctx))
	ch := w.b.client.Watch(ctx, w.from,
		clientv3.WithRange(w.to),
		clientv3.WithRev(rev),
		clientv3.WithCreatedNotify(),
		// Progress notifications move the resume point forward while the
		// range is quiet, so that a later resume is less likely to land on
		// a compacted revision (and cost the consumer a reload).
		clientv3.WithProgressNotify(),
	)
	return &stream{ch: ch, cancel: cancel}
}

// run delivers events until the watcher stops. last is the revision up to
// which everything has been delivered; the stream s starts at last.
func (w *watcher) run(last int64, s *stream) {
	var probes sync.WaitGroup
	defer func() {
		s.cancel()
		w.cancel()
		probes.Wait()
		w.stopCtx()
		close(w.done)
		w.b.loops.Done()
	}()
	timeout := w.b.cfg.WatchHealthTimeout
	probeAfter := timeout / 4
	ticker := time.NewTicker(probeAfter / 2)
	defer ticker.Stop()
	// confirmed is when the stream was last known to be healthy; open just
	// got etcd's answer.
	confirmed := time.Now()
	// heard is the highest revision etcd reported on the stream (in any
	// answer's header, at least last): if the cluster is still at it,
	// nothing has been written since the stream last answered.
	heard := last
	probing := false
	probed := make(chan probeResult, 1)
	retry := newRetryDelay()
	for {
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case <-w.ctx.Done():
			return
		case <-ticker.C:
			quiet := time.Since(confirmed)
			switch {
			case quiet >= timeout:
				w.b.log.Warn("Closing a watcher whose etcd stream has not been confirmed healthy; its consumer must reload.",
					"watcher", w.name, "unconfirmed_for", quiet.Round(time.Millisecond), "watch_health_timeout", timeout)
				return
			case quiet >= probeAfter && !probing:
				probing = true
				probes.Add(1)
				go func() {
					defer probes.Done()
					probed <- w.probe(probeAfter)
				}()
			}
			continue
		case p := <-probed:
			probing = false
			// A quorum read at or below what the stream last reported
			// proves that nothing was missed up to the moment it was sent.
			if p.err == nil && p.rev <= max(last, heard) {
				confirmed = later(confirmed, p.sent)
			}
			continue
		case wr, ok = <-s.ch:
		}
		switch {
		case w.ctx.Err() != nil:
			return
		case ok && wr.CompactRevision != 0:
			// The revision to resume from is gone: start over.
			w.b.log.Warn("Watcher lost its place to a compaction; sending a fresh init.", "watcher", w.name, "resume_revision", last, "compact_revision", wr.CompactRevision)
			s.cancel()
			rev, ns, err := w.reopen(retry, confirmed)
			if err != nil {
				return
			}
			if !w.send(backend.Event{Type: backend.OpInit}) {
				return
			}
			last, s, heard = rev, ns, rev
			confirmed = time.Now()
			retry.reset()
			continue
		case !ok || wr.Canceled || wr.Err() != nil:
			// The etcd client resumes broken streams by itself; this watch
			// ended for good (e.g. its member lost the leader), so open
			// another from where we were. The health bound still runs: a
			// new watch that etcd never confirms closes the watcher.
			w.b.log.Info("Etcd watch ended; resuming.", "watcher", w.name, "resume_revision", last, "error", wr.Err())
			s.cancel()
			if !retry.wait(w.ctx) {
				return
			}
			s = w.watchFrom(last)
			continue
		}
		retry.reset()
		confirmed = time.Now()
		if wr.Header.Revision > heard {
			heard = wr.Header.Revision
		}
		if wr.IsProgressNotify() {
			// Everything up to the header's revision has been delivered.
			last = max(last, wr.Header.Revision)
			continue
		}
		// Events of revisions already delivered (the watch starts at the
		// last one) are dropped; one revision's events come in one response.
		delivered := last
		for _, ev := range wr.Events {
			if ev.Kv == nil || ev.Kv.ModRevision <= delivered {
				continue
			}
			if !w.deliver(ev) {
				return
			}
			last = ev.Kv.ModRevision
		}
	}
}

// probeResult is the outcome of one health probe.
type probeResult struct {
	sent time.Time
	rev  int64
	err  error
}

// probe asks etcd for a progress notification on the watcher's stream
// (answered on the stream itself, if it is healthy) and makes a quorum read
// of the current revision, both bounded by timeout. The read confirms a
// watcher whose stream etcd will not answer a progress request for: etcd
// answers only when every watch on the stream has caught up, and a watch
// the client resumed after the last revision waits for the next write.
func (w *watcher) probe(timeout time.Duration) probeResult {
	sent := time.Now()
	ctx, cancel := context.WithTimeout(w.ctx, timeout)
	defer cancel()
	// The request goes to the client's stream for this context's metadata,
	// which is the require-leader stream every watcher of the backend shares.
	_ = w.b.client.RequestProgress(clientv3.WithRequireLeader(ctx))
	resp, err := w.b.client.Get(ctx, w.from, clientv3.WithCountOnly())
	if err != nil {
		return probeResult{sent: sent, err: err}
	}
	return probeResult{sent: sent, rev: resp.Header.Revision}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// reopen starts over after a compaction, retrying until it works, the
// watcher stops, or the stream has gone unconfirmed since confirmed for the
// health timeout.
func (w *watcher) reopen(retry *retryDelay, confirmed time.Time) (int64, *stream, error) {
	for {
		rev, s, err := w.open(w.ctx)
		if err == nil {
			return rev, s, nil
		}
		if time.Since(confirmed) >= w.b.cfg.WatchHealthTimeout {
			w.b.log.Warn("Closing a watcher that could not restart within the watch health timeout; its consumer must reload.", "watcher", w.name, "error", err)
			return 0, nil, trace.Wrap(err)
		}
		w.b.log.Info("Could not restart a watcher; retrying.", "watcher", w.name, "error", err)
		if !retry.wait(w.ctx) {
			return 0, nil, trace.Wrap(err)
		}
	}
}

// deliver translates one etcd event and queues it if it matches; false
// means the watcher must stop (its queue overflowed).
func (w *watcher) deliver(ev *clientv3.Event) bool {
	if ev.Kv == nil || len(ev.Kv.Key) < len(w.b.prefix) {
		return true
	}
	key := w.b.backendKey(ev.Kv.Key)
	if !backend.MatchesPrefixes(key, w.prefixes) {
		return true
	}
	var out backend.Event
	switch ev.Type {
	case clientv3.EventTypePut:
		item, err := w.b.decode(ev.Kv)
		if err != nil {
			w.b.log.Warn("Watcher skipping a value that gatehouse did not write.", "watcher", w.name, "error", err)
			return true
		}
		out = backend.Event{Type: backend.OpPut, Item: item}
	case clientv3.EventTypeDelete:
		out = backend.Event{Type: backend.OpDelete, Item: backend.Item{Key: key}}
	default:
		return true
	}
	return w.send(out)
}

// send queues ev without blocking; a full queue closes the watcher.
func (w *watcher) send(ev backend.Event) bool {
	select {
	case w.events <- ev:
		return true
	default:
		w.b.log.Warn("Closing a watcher that fell behind; its consumer must reload.", "watcher", w.name, "queue_size", cap(w.events)-1)
		return false
	}
}

// retryDelay is a small exponential backoff in real time: it paces
// reconnection to etcd, which runs on real time whatever the backend clock.
type retryDelay struct{ next time.Duration }

const (
	retryMin = 50 * time.Millisecond
	retryMax = 2 * time.Second
)

func newRetryDelay() *retryDelay { return &retryDelay{next: retryMin} }

func (r *retryDelay) reset() { r.next = retryMin }

// wait sleeps for the current delay and doubles it; false if ctx ended.
func (r *retryDelay) wait(ctx context.Context) bool {
	t := time.NewTimer(r.next)
	defer t.Stop()
	r.next = min(2*r.next, retryMax)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
