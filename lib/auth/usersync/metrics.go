package usersync

import (
	"strconv"
	"time"

	"github.com/gravitational/trace"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Metrics are user sync's Prometheus metrics.
type Metrics struct {
	runs     *prometheus.HistogramVec
	seen     *prometheus.GaugeVec
	calls    *prometheus.CounterVec
	changes  *prometheus.CounterVec
	lastGood *prometheus.GaugeVec
}

// NewMetrics registers user sync's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		runs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_usersync_run_duration_seconds",
			Help:    "Duration of user sync runs, by plugin, pass (full or incremental) and outcome (ok or error).",
			Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"plugin", "pass", "outcome"}),
		seen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_usersync_users_seen",
			Help: "Users Okta listed in the last user sync run.",
		}, []string{"plugin"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_usersync_api_calls_total",
			Help: "Okta API calls made by user sync, by endpoint and HTTP status (0: no answer).",
		}, []string{"plugin", "endpoint", "code"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_usersync_changes_total",
			Help: "Accounts changed by user sync: created, updated, reactivated, locked.",
		}, []string{"plugin", "change"}),
		lastGood: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_usersync_last_success_timestamp_seconds",
			Help: "When the last clean user sync run ended (Unix time).",
		}, []string{"plugin"}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.seen, m.calls, m.changes, m.lastGood} {
		if err := reg.Register(c); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	return m, nil
}

func (m *Metrics) observeRun(plugin string, full bool, err error, d time.Duration, st *typesv1.OktaUserSyncState) {
	if m == nil {
		return
	}
	pass, outcome := "incremental", "ok"
	if full {
		pass = "full"
	}
	if err != nil {
		outcome = "error"
	} else {
		m.lastGood.WithLabelValues(plugin).Set(float64(st.GetLastRunEnd().AsTime().Unix()))
	}
	m.runs.WithLabelValues(plugin, pass, outcome).Observe(d.Seconds())
	m.seen.WithLabelValues(plugin).Set(float64(st.GetUsersSeen()))
}

func (m *Metrics) observeCall(plugin, endpoint string, status int) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(plugin, endpoint, strconv.Itoa(status)).Inc()
}

func (m *Metrics) observeChange(plugin string, res scimprov.PullResult) {
	if m == nil {
		return
	}
	var change string
	switch res {
	case scimprov.PullCreated:
		change = "created"
	case scimprov.PullUpdated:
		change = "updated"
	case scimprov.PullReactivated:
		change = "reactivated"
	case scimprov.PullDeactivated:
		change = "locked"
	default:
		return
	}
	m.changes.WithLabelValues(plugin, change).Inc()
}
