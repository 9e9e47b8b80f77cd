package scimprov

import (
	"context"
	"sync"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/tick"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// maxStatusError bounds the last error kept in plugin status.
const maxStatusError = 1024

// statusDelta is what happened to one plugin since the last flush.
type statusDelta struct {
	provisioned, deactivated, locks int64
	lastRequest                     time.Time
	lastError                       string
	lastErrorTime                   time.Time
	// rolesDropped are the roles last cut by the plugin's ceiling.
	rolesDropped     []string
	rolesDroppedTime time.Time
}

// statusAggregator collects status in memory so that the request path never
// writes the plugin resource.
type statusAggregator struct {
	mu     sync.Mutex
	deltas map[string]*statusDelta
}

func (a *statusAggregator) init() { a.deltas = make(map[string]*statusDelta) }

// update applies fn to plugin's delta under the lock.
func (a *statusAggregator) update(plugin string, fn func(d *statusDelta)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.deltas[plugin]
	if d == nil {
		d = &statusDelta{}
		a.deltas[plugin] = d
	}
	fn(d)
}

// take removes and returns every pending delta.
func (a *statusAggregator) take() map[string]*statusDelta {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.deltas
	a.deltas = make(map[string]*statusDelta)
	return out
}

// putBack merges a delta whose write failed into the pending ones.
func (a *statusAggregator) putBack(plugin string, old *statusDelta) {
	a.update(plugin, func(d *statusDelta) {
		d.provisioned += old.provisioned
		d.deactivated += old.deactivated
		d.locks += old.locks
		if old.lastRequest.After(d.lastRequest) {
			d.lastRequest = old.lastRequest
		}
		if d.lastError == "" && old.lastError != "" {
			d.lastError, d.lastErrorTime = old.lastError, old.lastErrorTime
		}
		if d.rolesDropped == nil && old.rolesDropped != nil {
			d.rolesDropped, d.rolesDroppedTime = old.rolesDropped, old.rolesDroppedTime
		}
	})
}

// isClientError reports errors that are the client's doing (or a normal
// protocol outcome) rather than a failure on Gatehouse's side.
func isClientError(err error) bool {
	return trace.IsNotFound(err) || trace.IsAlreadyExists(err) || trace.IsBadParameter(err) ||
		trace.IsCompareFailed(err) || trace.IsAccessDenied(err) || trace.IsLimitExceeded(err) ||
		trace.IsNotImplemented(err)
}

// RecordSCIMRequest notes a SCIM request to plugin for its status: the
// request time, and failure as the last error when it is a failure on
// Gatehouse's side (client errors such as NotFound or BadParameter are not
// errors of the integration). It only touches memory: it never blocks on
// I/O and never fails.
func (p *Provisioner) RecordSCIMRequest(ctx context.Context, plugin string, failure error) {
	now := p.cfg.Clock.Now()
	p.status.update(plugin, func(d *statusDelta) {
		d.lastRequest = now
		if failure != nil && !isClientError(failure) {
			msg := trace.UserMessage(failure)
			if len(msg) > maxStatusError {
				msg = msg[:maxStatusError]
			}
			d.lastError, d.lastErrorTime = msg, now
		}
	})
}

func (p *Provisioner) countProvisioned(plugin string) {
	p.status.update(plugin, func(d *statusDelta) { d.provisioned++ })
}

// flushLoop writes status every StatusFlushInterval until ctx ends.
// The ticker is made by the caller, so that it exists when New returns.
func (p *Provisioner) flushLoop(ctx context.Context, t clockwork.Ticker) {
	defer close(p.done)
	tick.Every(ctx.Done(), t, func() {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		p.FlushStatus(fctx)
		cancel()
	})
}

// FlushStatus writes the pending status of every plugin now: counters are
// added to the stored ones (update-and-swap, so a concurrent settings change
// is kept). A failed write is kept for the next flush; a deleted plugin's
// status is dropped.
func (p *Provisioner) FlushStatus(ctx context.Context) {
	for plugin, d := range p.status.take() {
		_, err := p.cfg.Plugins.UpdateAndSwapPlugin(ctx, plugin, func(pl *typesv1.Plugin) error {
			applyDelta(pl, d, p.cfg.Clock.Now())
			return nil
		})
		switch {
		case err == nil:
		case trace.IsNotFound(err):
		default:
			p.cfg.Logger.WarnContext(ctx, "Failed to write SCIM plugin status; will retry.", "plugin", plugin, "error", err)
			p.status.putBack(plugin, d)
		}
	}
}

func applyDelta(pl *typesv1.Plugin, d *statusDelta, now time.Time) {
	if pl.Status == nil {
		pl.Status = &typesv1.PluginStatus{}
	}
	st := pl.Status
	if st.Okta == nil {
		st.Okta = &typesv1.OktaPluginStatus{}
	}
	o := st.Okta
	o.UsersProvisioned += d.provisioned
	o.UsersDeactivated += d.deactivated
	o.LocksWritten += d.locks
	if !d.lastRequest.IsZero() && (o.LastScimRequest == nil || d.lastRequest.After(o.LastScimRequest.AsTime())) {
		o.LastScimRequest = timestamppb.New(d.lastRequest)
	}
	if d.lastError != "" {
		o.LastError = d.lastError
		o.LastErrorTime = timestamppb.New(d.lastErrorTime)
	}
	if d.rolesDropped != nil {
		o.RolesDropped = d.rolesDropped
		o.RolesDroppedTime = timestamppb.New(d.rolesDroppedTime)
	}
	st.LastSyncTime = timestamppb.New(now)
}
