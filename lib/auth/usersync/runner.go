package usersync

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/tick"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Runner defaults.
const (
	// DefaultPollInterval is how often the runner looks for due runs,
	// "sync now" requests and leases to take or renew.
	DefaultPollInterval = time.Second
	// DefaultLeaseTTL is how long a server's claim on a plugin's sync
	// lasts without renewal: another server takes over this long after
	// the holder dies.
	DefaultLeaseTTL = 15 * time.Second
)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Syncer  *Syncer
	Backend backend.Backend
	Plugins Plugins
	// ServerID is written in the lease; unique per server.
	ServerID     string
	PollInterval time.Duration
	LeaseTTL     time.Duration
	Clock        clockwork.Clock
	Logger       *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *RunnerConfig) CheckAndSetDefaults() error {
	switch {
	case c.Syncer == nil:
		return trace.BadParameter("usersync: missing Syncer")
	case c.Backend == nil:
		return trace.BadParameter("usersync: missing Backend")
	case c.Plugins == nil:
		return trace.BadParameter("usersync: missing Plugins")
	case c.ServerID == "":
		return trace.BadParameter("usersync: missing ServerID")
	}
	defaults.IfNotPositive(&c.PollInterval, DefaultPollInterval)
	defaults.IfNotPositive(&c.LeaseTTL, DefaultLeaseTTL)
	if c.LeaseTTL < 3*c.PollInterval {
		return trace.BadParameter("usersync: the lease TTL must be at least three poll intervals")
	}
	defaults.ClockFrom(&c.Clock, c.Backend.Clock)
	defaults.Logger(&c.Logger, "usersync")
	return nil
}

// Runner runs the sync of every plugin with user sync on, on the one
// server that holds the plugin's lease: a key in the backend created with
// an expiry (backend Create fails while another server's lease lives),
// renewed with a conditional update at the revision it holds, and taken
// over by another server once it expires. A run in progress stops if its
// lease cannot be renewed, so two servers never run one plugin's sync at
// once for longer than a renewal round trip.
type Runner struct {
	cfg    RunnerConfig
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	leases map[string]*backend.Lease
}

// NewRunner starts a runner; Close stops it.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cfg: cfg, cancel: cancel, done: make(chan struct{}), leases: map[string]*backend.Lease{}}
	go r.loop(ctx, cfg.Clock.NewTicker(cfg.PollInterval))
	return r, nil
}

// Close stops the runner, ending a run in progress (it changes nothing it
// has not confirmed), and gives up its leases so another server takes over
// at once.
func (r *Runner) Close() error {
	r.stop(true)
	return nil
}

// stop ends the loop; release gives up the leases (a server that dies
// does not: its leases expire).
func (r *Runner) stop(release bool) {
	r.cancel()
	<-r.done
	if !release {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	for plugin, l := range r.leases {
		_ = r.cfg.Backend.ConditionalDelete(ctx, l.Key, l.Revision)
		delete(r.leases, plugin)
	}
}

func (r *Runner) loop(ctx context.Context, t clockwork.Ticker) {
	defer close(r.done)
	defer t.Stop()
	for {
		wait := r.tick(ctx)
		// A run due before the next poll starts on time rather than up to
		// a poll interval late.
		var due <-chan time.Time
		if wait < r.cfg.PollInterval {
			due = r.cfg.Clock.After(max(wait, 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		case <-due:
		}
	}
}

// tick takes or renews leases and runs what is due; it returns the time
// until the next run of a plugin this server holds is due.
func (r *Runner) tick(ctx context.Context) time.Duration {
	next := r.cfg.PollInterval
	plugins, err := r.cfg.Plugins.ListAllPlugins(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Logger.WarnContext(ctx, "Failed to list plugins for user sync.", "error", err)
		}
		return next
	}
	enabled := map[string]*typesv1.Plugin{}
	for _, p := range plugins {
		okta := p.GetSpec().GetOkta()
		if okta.GetUserSync().GetEnabled() && !okta.GetScimEnabled() {
			enabled[p.GetMetadata().GetName()] = p
		}
	}
	r.mu.Lock()
	for plugin, l := range r.leases {
		if enabled[plugin] == nil {
			_ = r.cfg.Backend.ConditionalDelete(ctx, l.Key, l.Revision)
			delete(r.leases, plugin)
		}
	}
	r.mu.Unlock()
	for name, p := range enabled {
		if ctx.Err() != nil {
			return next
		}
		if !r.holdLease(ctx, name) {
			continue
		}
		wait, err := r.maybeRun(ctx, name, p)
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.DebugContext(ctx, "User sync not run.", "plugin", name, "error", err)
		}
		next = min(next, wait)
	}
	return next
}

// holdLease takes plugin's lease if it is free, or renews it if this
// server holds it; it reports whether this server holds it now.
func (r *Runner) holdLease(ctx context.Context, plugin string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	expires := r.cfg.Clock.Now().Add(r.cfg.LeaseTTL)
	if l := r.leases[plugin]; l != nil {
		nl, err := services.HoldUserSyncLease(ctx, r.cfg.Backend, plugin, r.cfg.ServerID, expires, l)
		if err == nil {
			r.leases[plugin] = nl
			return true
		}
		delete(r.leases, plugin)
		r.cfg.Logger.WarnContext(ctx, "Lost the user sync lease.", "plugin", plugin, "error", err)
		return false
	}
	nl, err := services.HoldUserSyncLease(ctx, r.cfg.Backend, plugin, r.cfg.ServerID, expires, nil)
	if err != nil {
		return false
	}
	r.leases[plugin] = nl
	r.cfg.Logger.InfoContext(ctx, "This server now runs user sync.", "plugin", plugin, "server", r.cfg.ServerID)
	return true
}

// maybeRun runs plugin's sync if a "sync now" request waits or an
// interval has passed since the last run started (runs start on a fixed
// schedule, whatever they take). It returns the time until the next run is
// due.
func (r *Runner) maybeRun(ctx context.Context, plugin string, p *typesv1.Plugin) (time.Duration, error) {
	interval, _, err := services.UserSyncIntervals(p.GetSpec().GetOkta().GetUserSync())
	if err != nil {
		return r.cfg.PollInterval, trace.Wrap(err)
	}
	trigger, err := services.TakeUserSyncTrigger(ctx, r.cfg.Backend, plugin)
	if err != nil {
		return r.cfg.PollInterval, trace.Wrap(err)
	}
	st, err := services.GetUserSyncState(ctx, r.cfg.Backend, plugin)
	if err != nil {
		return r.cfg.PollInterval, trace.Wrap(err)
	}
	if last := st.GetLastRunStart(); trigger == nil && last != nil {
		if wait := last.AsTime().Add(interval).Sub(r.cfg.Clock.Now()); wait > 0 {
			return wait, nil
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		r.renewDuringRun(runCtx, cancel, plugin)
	}()
	req := RunRequest{Holder: r.cfg.ServerID}
	if trigger != nil {
		req.Full, req.TriggerID = trigger.Full, trigger.ID
	}
	st, err = r.cfg.Syncer.Run(runCtx, plugin, req)
	cancel()
	<-renewDone
	wait := interval
	if st.GetLastRunStart() != nil {
		wait = st.GetLastRunStart().AsTime().Add(interval).Sub(r.cfg.Clock.Now())
	}
	return wait, trace.Wrap(err)
}

// renewDuringRun renews the lease while a run lasts, and ends the run if
// the lease is lost.
func (r *Runner) renewDuringRun(ctx context.Context, stop context.CancelFunc, plugin string) {
	tick.While(ctx.Done(), r.cfg.Clock.NewTicker(r.cfg.LeaseTTL/3), func() bool {
		if r.holdLease(ctx, plugin) {
			return true
		}
		if ctx.Err() == nil {
			r.cfg.Logger.WarnContext(ctx, "User sync lease lost during a run; stopping the run.", "plugin", plugin)
		}
		stop()
		return false
	})
}
